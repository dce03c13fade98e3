//! `centile-producer`: `serve` runs the HTTP ingest gateway, `generate`
//! makes realistic load, `import` loads history from files, `new-key` and
//! `hash-key` manage gateway API keys.

use std::{io::Read, path::PathBuf, sync::Arc, time::Duration};

use centile_producer::{
    gateway::{self, hash_key, EventKind, Gateway},
    generator::GeneratorConfig,
    import::{self, input::Format, report::Counters, ImportOptions},
    load, EventPublisher,
};
use centile_runtime::{
    kafka::ensure_centile_topics,
    kafka_health::{start_up, wait_for_brokers},
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
    /// Run the HTTP ingest gateway (settings in the `[gateway]` section).
    Serve,
    /// Print a new random API key and the key-file line that grants it.
    NewKey {
        /// The tenant the key writes as.
        #[arg(long)]
        tenant: String,
        /// The key's request rate, e.g. `100/h`; the default rate otherwise.
        #[arg(long)]
        rate: Option<String>,
    },
    /// Read an API key on stdin and print its SHA-256, as key files hold it.
    HashKey,
    /// Import history from NDJSON or CSV files (`.gz` too; `-` is stdin).
    ///
    /// Rows are checked with the gateway's rules (each row names its
    /// `tenant_id`; any age is accepted) and refused ones are reported as
    /// FILE:LINE: field `name`: reason. Rollup panes are built here and
    /// published to the rollups topic; rows younger than the restatement
    /// horizon minus an hour are also published raw. Re-running the import
    /// of the same file counts nothing twice.
    ///
    /// Exit status: 0 all rows imported; 1 failed (safe to re-run); 2 bad
    /// command line; 3 rows refused, the others imported; 4 rows refused
    /// with --all-or-nothing, nothing published.
    Import(ImportArgs),
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum KindArg {
    Latency,
    Usage,
}

#[derive(Debug, clap::Args)]
struct ImportArgs {
    /// Which events the files hold.
    #[arg(long, value_enum)]
    kind: KindArg,
    /// Publish nothing at all if any row is refused.
    #[arg(long)]
    all_or_nothing: bool,
    /// Row format: by extension (`.csv`, `.csv.gz`: CSV; else NDJSON).
    #[arg(long, value_enum, default_value = "auto")]
    format: Format,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Input files; `-` reads standard input (NDJSON unless --format csv).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<String>,
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
    let args = match cli.command {
        Command::Generate(args) => args,
        Command::Serve => return serve(cli.config).await,
        Command::Import(args) => return import_history(cli.config, args).await,
        Command::NewKey { tenant, rate } => {
            let key = format!("ck_{}", uuid::Uuid::new_v4().simple());
            let hash = hex::encode(hash_key(&key));
            println!("key (give it to the client; it is not stored): {key}");
            println!(
                "key-file line: {hash} {tenant}{}",
                rate.map(|r| format!(" {r}")).unwrap_or_default()
            );
            return Ok(());
        }
        Command::HashKey => {
            let mut key = String::new();
            std::io::stdin().read_to_string(&mut key)?;
            println!("{}", hex::encode(hash_key(key.trim())));
            return Ok(());
        }
    };
    let default_metrics = ([127, 0, 0, 1], 9464).into();
    run_service("centile-producer", cli.config.as_deref(), default_metrics, |ctx| async move {
        if !wait_for_brokers(&ctx.config.kafka, &ctx.readiness, &ctx.shutdown).await? {
            return Ok(());
        }
        ensure_centile_topics(&ctx.config).await?;
        let publisher = EventPublisher::from_config(&ctx.config)?;
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

async fn serve(config: Option<PathBuf>) -> anyhow::Result<()> {
    let default_metrics = ([127, 0, 0, 1], 9467).into();
    run_service(
        "centile-gateway",
        config.as_deref(),
        default_metrics,
        |ctx| async move {
            // Logs what it waits for and says so on /readyz meanwhile.
            let started = start_up(
                &ctx.config.kafka,
                &ctx.readiness,
                &ctx.shutdown,
                &[],
                || ensure_centile_topics(&ctx.config),
            )
            .await?;
            if started.is_none() {
                return Ok(());
            }
            let gateway = Arc::new(Gateway::new(
                &ctx.config,
                &ctx.registry,
                ctx.readiness.clone(),
            )?);
            let listener = tokio::net::TcpListener::bind(ctx.config.gateway.addr).await?;
            tracing::info!(addr = %listener.local_addr()?, "gateway listening");
            gateway::run(
                listener,
                gateway,
                ctx.shutdown.clone(),
                ctx.deadline.clone(),
            )
            .await?;
            Ok::<(), BoxError>(())
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))
}

async fn import_history(config: Option<PathBuf>, args: ImportArgs) -> anyhow::Result<()> {
    if args.files.iter().filter(|f| *f == "-").count() > 1 {
        eprintln!("error: standard input (`-`) can be named only once");
        std::process::exit(import::exit::USAGE);
    }
    let config = centile_runtime::Config::load(config.as_deref())?;
    let options = ImportOptions {
        kind: match args.kind {
            KindArg::Latency => EventKind::Latency,
            KindArg::Usage => EventKind::Usage,
        },
        files: args.files,
        format: args.format,
        all_or_nothing: args.all_or_nothing,
    };
    let counters = Arc::new(Counters::default());
    let stop = tokio_util::sync::CancellationToken::new();
    let progress = import::report::progress(counters.clone(), stop.clone());
    let outcome = import::run(&config, &options, counters).await;
    stop.cancel();
    if let Some(progress) = progress {
        let _ = progress.await;
    }
    let summary = match outcome {
        Ok(summary) => summary,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("the import did not complete; running it again is safe");
            std::process::exit(import::exit::FAILED);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!("{}", summary.line());
    }
    std::process::exit(summary.exit_code())
}
