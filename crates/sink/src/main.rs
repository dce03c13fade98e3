//! `centile-sink`: lands raw events and rollup panes in ClickHouse.

use std::path::PathBuf;

use centile_runtime::{
    service::{run_service, BoxError},
    telemetry::init_tracing,
    Config,
};
use centile_sink::{client::check_connection, metrics::SinkMetrics, migrate::migrate, runner};
use clap::{Parser, Subcommand};

/// Lands raw events and rollup panes from Kafka in ClickHouse.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// TOML config file; `CENTILE_*` environment variables override it.
    #[arg(long, global = true, env = "CENTILE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Consume and write until SIGTERM (the default).
    Run,
    /// Create the database and apply pending schema migrations, then exit.
    Migrate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Migrate => {
            let config = Config::load(cli.config.as_deref())?;
            init_tracing(&config.log);
            // Says why when the server cannot be reached (TLS, credentials).
            check_connection(&config.clickhouse).await?;
            let report = migrate(&config.clickhouse).await?;
            println!(
                "clickhouse {} database {}: applied {:?}, already applied {:?}, deferred {:?}",
                report.server_version,
                config.clickhouse.database,
                report.applied,
                report.already_applied,
                report.deferred
            );
            Ok(())
        }
        Command::Run => {
            let default_metrics = ([127, 0, 0, 1], 9466).into();
            run_service(
                "centile-sink",
                cli.config.as_deref(),
                default_metrics,
                |ctx| async move {
                    let metrics = SinkMetrics::register(&ctx.registry)?;
                    runner::run(&ctx.config, &metrics, ctx.readiness, ctx.shutdown)
                        .await
                        .map_err(BoxError::from)
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!(e))
        }
    }
}
