//! `centile-producer`: publishes events; `generate` makes realistic load.

mod load;

use std::{path::PathBuf, time::Duration};

use centile_producer::{generator::GeneratorConfig, EventPublisher};
use centile_runtime::{
    kafka::ensure_centile_topics,
    service::{run_service, BoxError},
};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Publishes Centile latency and usage events to Kafka."
)]
struct Cli {
    /// TOML config file; `CENTILE_*` environment variables override it.
    #[arg(long, global = true, env = "CENTILE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate realistic latency and usage events.
    Generate(GenerateArgs),
}

#[derive(Debug, clap::Args)]
struct GenerateArgs {
    /// Latency events per second (0: as fast as the broker acknowledges).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Stop after this many latency events.
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this long, e.g. `60s` (default when no count: 60s).
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Backfill: event times sweep from this far in the past up to now, e.g. `3h`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    spread: Duration,
    /// Maximum out-of-order delay of event times.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    jitter: Duration,
    #[arg(long, default_value_t = 5)]
    tenants: usize,
    #[arg(long, default_value_t = 6)]
    models: usize,
    #[arg(long, default_value_t = 3)]
    tools: usize,
    /// Distinct performance-parameter combinations.
    #[arg(long, default_value_t = 4)]
    parameter_sets: usize,
    /// Usage events per latency event.
    #[arg(long, default_value_t = 0.2)]
    usage_ratio: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let Command::Generate(args) = cli.command;
    let default_metrics = ([127, 0, 0, 1], 9464).into();
    run_service("centile-producer", cli.config.as_deref(), default_metrics, |ctx| async move {
        let topics = &ctx.config.topics;
        ensure_centile_topics(&ctx.config).await?;
        let publisher = EventPublisher::new(&ctx.config.kafka, topics)?;
        ctx.readiness.set("kafka", true);
        let plan = load::LoadPlan {
            rate: args.rate,
            count: args.count,
            duration: args.duration.or(args.count.is_none().then_some(Duration::from_secs(60))),
            spread: args.spread,
            jitter: args.jitter,
        };
        let generator = GeneratorConfig {
            seed: args.seed,
            tenants: args.tenants,
            models: args.models,
            tools: args.tools,
            parameter_sets: args.parameter_sets,
            usage_ratio: args.usage_ratio,
        };
        let metrics = load::LoadMetrics::register(&ctx.registry)?;
        let report = load::run(&publisher, generator, &plan, &metrics, &ctx.shutdown).await?;
        let total = report.latency + report.usage;
        println!(
            "published {} latency and {} usage events in {:.1} s ({:.0} events/s, acknowledged by the broker)",
            report.latency,
            report.usage,
            report.elapsed.as_secs_f64(),
            total as f64 / report.elapsed.as_secs_f64().max(1e-9)
        );
        Ok::<(), BoxError>(())
    })
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
