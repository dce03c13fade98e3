//! `centile-sink`: lands raw events and rollup panes in ClickHouse.

use std::path::PathBuf;

use centile_runtime::{
    service::{run_service, BoxError},
    telemetry::init_tracing,
    Config,
};
use centile_sink::{
    client::{check_connection, database_client},
    metrics::SinkMetrics,
    migrate::{migrate, MIGRATIONS},
    prices::Prices,
    retention,
    rollup::{compact_statements, pricing::for_other_clients, Compactor, Dirty},
    runner,
};
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
    /// Drop every partition past its retention tier and align TTLs, then
    /// exit; `--dry-run` only lists what would go.
    Retention {
        #[arg(long)]
        dry_run: bool,
    },
    /// Recompute the minute, hour, day and week rows of every minute that
    /// has panes in the last DAYS days (after an upgrade from a release
    /// without stored tiers), then exit.
    Backfill {
        #[arg(long, default_value_t = 7)]
        days: i64,
    },
    /// Write every migration's SQL, generated ones included, into DIR
    /// (placeholders such as `${database}` left in), then exit.
    SchemaSql { dir: PathBuf },
    /// Print the statements that recompute the stored tiers holding the
    /// given minutes (Unix seconds, comma-separated), then exit.
    CompactSql {
        #[arg(long)]
        database: String,
        #[arg(long, value_delimiter = ',')]
        latency_minutes: Vec<i64>,
        #[arg(long, value_delimiter = ',')]
        usage_minutes: Vec<i64>,
        /// Price with this book (none: an empty book).
        #[arg(long)]
        prices: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Retention { dry_run } => {
            let config = Config::load(cli.config.as_deref())?;
            init_tracing(&config.log);
            check_connection(&config.clickhouse).await?;
            let client = database_client(&config.clickhouse);
            let now = runner::now_ms() / 1000;
            let report = retention::run(
                &client,
                &config.clickhouse.database,
                &config.retention,
                now,
                dry_run,
            )
            .await?;
            let verb = if dry_run { "would drop" } else { "dropped" };
            for e in &report.dropped {
                println!(
                    "{verb} {}.{} partition {} (holds rows up to {}, kept {} days)",
                    config.clickhouse.database,
                    e.table,
                    e.partition_id,
                    humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(e.ends as u64)
                    ),
                    e.keep_days
                );
            }
            let verb = if dry_run { "would run" } else { "ran" };
            for statement in &report.ttl_changes {
                println!("{verb} {statement}");
            }
            if report.dropped.is_empty() && report.ttl_changes.is_empty() {
                println!("nothing has expired");
            }
            Ok(())
        }
        Command::Backfill { days } => {
            let config = Config::load(cli.config.as_deref())?;
            init_tracing(&config.log);
            check_connection(&config.clickhouse).await?;
            migrate(&config).await?;
            let compactor = Compactor::new(
                database_client(&config.clickhouse),
                &config.clickhouse.database,
                Prices::load(config.pricing.book.as_deref())?,
            );
            let since = runner::now_ms() / 1000 - days * 86_400;
            let minutes = compactor.backfill(since).await?;
            println!("recomputed the tiers of {minutes} minutes with panes");
            Ok(())
        }
        Command::SchemaSql { dir } => {
            std::fs::create_dir_all(&dir)?;
            for m in MIGRATIONS {
                let file = m.name.split_whitespace().next().unwrap_or(m.name);
                let file = if file.ends_with(".sql") {
                    file.to_owned()
                } else {
                    format!("{file}.sql")
                };
                std::fs::write(dir.join(file), m.text())?;
            }
            Ok(())
        }
        Command::CompactSql {
            database,
            latency_minutes,
            usage_minutes,
            prices,
        } => {
            let prices = Prices::load(prices.as_deref())?;
            let dirty = Dirty {
                latency: latency_minutes.into_iter().collect(),
                usage: usage_minutes.into_iter().collect(),
            };
            for statement in compact_statements(&database, &dirty, &prices.sql()) {
                println!("{};\n", for_other_clients(&statement));
            }
            Ok(())
        }
        Command::Migrate => {
            let config = Config::load(cli.config.as_deref())?;
            init_tracing(&config.log);
            // Says why when the server cannot be reached (TLS, credentials).
            check_connection(&config.clickhouse).await?;
            let report = migrate(&config).await?;
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
    }
}
