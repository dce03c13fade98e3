//! `centile-aggregator`: windows raw events into minute, hour and day panes.

use std::path::PathBuf;

use centile_aggregator::{metrics::AggregatorMetrics, runner};
use centile_runtime::service::{run_service, BoxError};
use clap::Parser;

/// Windows latency and usage events by event time into rollup panes.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// TOML config file; `CENTILE_*` environment variables override it.
    #[arg(long, env = "CENTILE_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let default_metrics = ([127, 0, 0, 1], 9465).into();
    run_service(
        "centile-aggregator",
        cli.config.as_deref(),
        default_metrics,
        |ctx| async move {
            let metrics = AggregatorMetrics::register(&ctx.registry)?;
            runner::run(
                &ctx.config,
                &metrics,
                ctx.readiness,
                ctx.shutdown,
                ctx.deadline,
            )
            .await
            .map_err(BoxError::from)
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
