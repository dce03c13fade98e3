//! The common life of a service binary: load config, start tracing and the
//! metrics server, run the body until a signal or its own end, and stop the
//! metrics server last, so the final flush is still observable.

use std::{error::Error, future::Future, net::SocketAddr, path::Path, time::Duration};

use prometheus::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    metrics::ServiceMetrics,
    shutdown::{cancel_on_signal, deadline_after},
    telemetry::{init_tracing, serve, Readiness, TELEMETRY_LIMITS},
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
    /// Cancelled `service.shutdown_grace` after `shutdown`: final flushes
    /// and drains stop retrying then.
    pub deadline: CancellationToken,
}

pub type BoxError = Box<dyn Error + Send + Sync>;

/// How long after the shutdown deadline a process may still take to close
/// its clients before it is ended.
const BACKSTOP: Duration = Duration::from_secs(5);

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
    let service_metrics = ServiceMetrics::register(&registry, name)?;
    let readiness = Readiness::with_gauge(service_metrics.readiness);
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    let grace = config.service.shutdown_grace;
    let deadline = deadline_after(&shutdown, grace);
    // The last resort: a body that has not returned shortly after its
    // deadline (a hung client library) does not keep the process alive.
    let backstop = deadline.clone();
    tokio::spawn(async move {
        backstop.cancelled().await;
        tokio::time::sleep(BACKSTOP).await;
        tracing::error!(
            service = name,
            ?grace,
            "did not stop within service.shutdown_grace; exiting"
        );
        std::process::exit(1);
    });
    let server_stop = CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        TELEMETRY_LIMITS,
        service_metrics.telemetry.clone(),
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
        deadline,
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
