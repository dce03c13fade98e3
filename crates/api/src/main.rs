//! `centile-api`: `serve` (the default) runs the query API and dashboard;
//! `new-key` and `hash-key` manage its bearer keys.

use std::{io::Read, path::PathBuf, sync::Arc};

use centile_api::{
    auth::{parse_role, KeyStore},
    catalog::Catalog,
    metrics::ApiMetrics,
    queries::Queries,
    server::{self, AppState},
};
use centile_runtime::{
    secret::hash_key,
    service::{run_service, BoxError},
};
use centile_sink::prices::Prices;
use clap::{Parser, Subcommand};
use rand::RngCore;

#[derive(Debug, Parser)]
#[command(version, about = "Serves Centile's query API and dashboard.")]
struct Cli {
    /// TOML config file; `CENTILE_*` environment variables override it.
    #[arg(long, global = true, env = "CENTILE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API and dashboard (settings in the `[api]` section).
    Serve,
    /// Print a new random API key and the key-file line that grants it.
    NewKey {
        /// `admin` (every tenant) or `tenant:<id>`.
        #[arg(long)]
        role: String,
    },
    /// Read an API key on stdin and print its SHA-256, as key files hold it.
    HashKey,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config).await,
        Command::NewKey { role } => {
            parse_role(&role).map_err(anyhow::Error::msg)?;
            let mut bytes = [0u8; 24];
            rand::rng().fill_bytes(&mut bytes);
            let key = format!("ca_{}", hex::encode(bytes));
            println!("key:  {key}");
            println!("line: {} {role}", hex::encode(hash_key(&key)));
            eprintln!("Give the key to its user; put only the line in api.keys_file.");
            Ok(())
        }
        Command::HashKey => {
            let mut key = String::new();
            std::io::stdin().read_to_string(&mut key)?;
            println!("{}", hex::encode(hash_key(key.trim())));
            Ok(())
        }
    }
}

async fn serve(config: Option<PathBuf>) -> anyhow::Result<()> {
    run_service(
        "centile-api",
        config.as_deref(),
        ([127, 0, 0, 1], 9468).into(),
        |ctx| async move {
            let settings = ctx.config.api.clone();
            let keys = KeyStore::from_config(&settings)?;
            if settings.allow_unauthenticated {
                tracing::warn!("api.allow_unauthenticated: /v1 answers without a key, as admin");
            }
            let catalog = Catalog::load(settings.catalog_file.as_deref())?;
            // The sink's book: the models' prices are the ones it prices with.
            let prices = Prices::load(ctx.config.pricing.book.as_deref())?;
            let client = centile_sink::client::database_client(&ctx.config.clickhouse);
            let queries = Queries::new(client, &ctx.config.clickhouse.database, catalog.clone())
                .with_prices(prices)
                .with_token_ttl(settings.token_ttl);
            let metrics = ApiMetrics::register(&ctx.registry)?;
            let listener = tokio::net::TcpListener::bind(settings.addr).await?;
            let addr = listener.local_addr()?;
            tracing::info!(
                url = %format!("http://{addr}/"),
                keys = keys.len(),
                catalog_models = catalog.len(),
                cache_entries = settings.cache_entries,
                "api listening"
            );
            let state = Arc::new(AppState::new(
                queries,
                keys,
                settings,
                metrics,
                ctx.readiness.clone(),
                ctx.shutdown.clone(),
            ));
            server::run(listener, state, ctx.shutdown.clone(), ctx.deadline.clone()).await?;
            Ok::<(), BoxError>(())
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
