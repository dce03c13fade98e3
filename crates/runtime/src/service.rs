//! The common life of a service binary: load config, start tracing and the
//! metrics server, run the body until a signal or its own end, and stop the
//! metrics server last, so the final flush is still observable.

use std::{error::Error, future::Future, net::SocketAddr, path::Path};

use prometheus::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    shutdown::cancel_on_signal,
    telemetry::{init_tracing, serve, Readiness},
    Config,
};

/// What a service body gets to work with.
#[derive(Debug, Clone)]
pub struct ServiceContext {
    pub config: Config,
    pub registry: Registry,
    pub readiness: Readiness,
    /// Cancelled by SIGTERM/SIGINT; the body then flushes, commits and returns.
    pub shutdown: CancellationToken,
}

pub type BoxError = Box<dyn Error + Send + Sync>;

/// Runs `body` as the service `name`, with `/metrics` on the configured
/// address or `default_metrics_addr`.
pub async fn run_service<F, Fut>(
    name: &'static str,
    config_file: Option<&Path>,
    default_metrics_addr: SocketAddr,
    body: F,
) -> Result<(), BoxError>
where
    F: FnOnce(ServiceContext) -> Fut,
    Fut: Future<Output = Result<(), BoxError>>,
{
    let config = Config::load(config_file)?;
    init_tracing(&config.log);
    let addr = config.metrics.addr.unwrap_or(default_metrics_addr);
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!(service = name, metrics = %format!("http://{local}/metrics"), "starting");

    let registry = Registry::new();
    let readiness = Readiness::default();
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    let server_stop = CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        registry.clone(),
        readiness.clone(),
        config.metrics.auth_token.clone(),
        server_stop.clone(),
    ));

    let result = body(ServiceContext {
        config,
        registry,
        readiness,
        shutdown,
    })
    .await;
    server_stop.cancel();
    server.await??;
    match &result {
        Ok(()) => tracing::info!(service = name, "stopped cleanly"),
        Err(e) => tracing::error!(service = name, error = %e, "stopped with an error"),
    }
    result
}
