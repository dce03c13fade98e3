//! The HTTP ingest gateway, `centile-producer serve`.
//!
//! - `POST /v1/events/latency` and `POST /v1/events/usage` take one JSON
//!   object, a JSON array or NDJSON ([`ingest`]);
//! - `POST /v1/events` takes CloudEvents 1.0 ([`cloudevents`]);
//! - `POST /v1/traces` and OTLP/gRPC take OpenTelemetry GenAI spans
//!   ([`otlp`]).
//!
//! On the JSON and CloudEvents routes a request is all or nothing: it is
//! authenticated (bearer key → tenant), rate-limited per key, size-checked,
//! every event is validated, and only then is anything published; the
//! answer is `202` once the broker has acknowledged every event. Nothing
//! else is ever published for a refused request. OTLP keeps the same
//! checks but rejects a malformed model-call span alone, as a partial
//! success (see [`otlp`]).

mod answer;
pub mod body;
pub mod cloudevents;
pub mod fields;
pub mod ids;
mod ingest;
mod keys;
mod metrics;
mod openapi;
pub mod otlp;
mod probe;
pub mod problem;
mod rate;
mod recent;

use std::{sync::Arc, time::Duration};

use axum::{
    extract::State,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use centile_events::{Admission, Limits};
use centile_runtime::{
    config::GatewayConfig,
    listener::{CappedListener, ConnectionLimits},
    telemetry::Readiness,
    Config,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::sync::CancellationToken;

pub use body::BodyFormat;
pub use fields::EventKind;
pub use keys::{hash_key, Grant, KeyStore};
pub use metrics::GatewayMetrics;
pub use openapi::OPENAPI_JSON;
pub use rate::{Rate, RateLimiter, TokenBucket};
pub use recent::{id_key, Claim, RecentIds};

use crate::{EventPublisher, ProducerError};

/// Why the gateway could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("api keys: {0}")]
    Keys(String),
    #[error("gateway.rate: {0}")]
    Rate(String),
    #[error("cannot read {path}: {source}")]
    KeysFile {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Producer(#[from] ProducerError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("http server: {0}")]
    Io(#[from] std::io::Error),
}

/// Everything a request needs; shared by all connections.
#[derive(Debug)]
pub struct Gateway {
    publisher: EventPublisher,
    keys: KeyStore,
    limiter: RateLimiter,
    /// Free in-flight capacity, one permit per KiB of encoded events.
    in_flight: Arc<Semaphore>,
    recent: RecentIds,
    in_flight_kib: u32,
    settings: GatewayConfig,
    limits: Limits,
    admission: Admission,
    /// Ready while the broker answers (set by the probe).
    readiness: Readiness,
    metrics: GatewayMetrics,
}

impl Gateway {
    /// Builds the gateway: loads keys, creates the producer and registers
    /// metrics.
    pub fn new(
        config: &Config,
        registry: &prometheus::Registry,
        readiness: Readiness,
    ) -> Result<Self, GatewayError> {
        let settings = config.gateway.clone();
        let default_rate = Rate::parse(&settings.rate).map_err(GatewayError::Rate)?;
        let file = match &settings.keys_file {
            Some(path) => Some((
                path.display().to_string(),
                std::fs::read_to_string(path).map_err(|source| GatewayError::KeysFile {
                    path: path.display().to_string(),
                    source,
                })?,
            )),
            None => None,
        };
        let keys = KeyStore::load(
            file.as_ref().map(|(p, t)| (p.as_str(), t.as_str())),
            &settings.keys,
            default_rate,
        )?;
        let mut producer_settings = config.clone();
        // Past the request deadline the producer keeps trying until its own
        // delivery timeout; the ids stay pending meanwhile, so a retry waits
        // for the outcome instead of publishing a second copy.
        producer_settings.kafka.delivery_timeout =
            config.kafka.delivery_timeout.max(settings.ack_timeout);
        producer_settings
            .kafka
            .extra
            .entry("queue.buffering.max.messages".into())
            .or_insert_with(|| "1000000".into());
        let publisher = EventPublisher::from_config(&producer_settings)?;
        let in_flight_kib = u32::try_from(settings.max_in_flight_bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, Semaphore::MAX_PERMITS as u32);
        tracing::info!(keys = keys.len(), rate = %settings.rate, "gateway configured");
        Ok(Self {
            publisher,
            keys,
            limiter: RateLimiter::default(),
            in_flight: Arc::new(Semaphore::new(in_flight_kib as usize)),
            recent: RecentIds::new(settings.dedup_window, settings.dedup_capacity),
            in_flight_kib,
            limits: Limits::default(),
            admission: config.admission.admission(),
            settings,
            readiness,
            metrics: GatewayMetrics::register(registry)?,
        })
    }

    fn retry_after(&self) -> Duration {
        self.settings.retry_after
    }

    /// The bounds of every listener of the gateway (HTTP and OTLP/gRPC).
    fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.settings.max_connections,
            idle_timeout: self.settings.idle_timeout,
            read_timeout: self.settings.read_timeout,
        }
    }

    /// What the events of a request for `tenant` are checked against, as
    /// of now.
    fn intake<'a>(&'a self, tenant: &'a str, ids: &'a ids::IdSource) -> fields::Intake<'a> {
        fields::Intake {
            tenant: fields::Tenant::Key(tenant),
            arrived_at: crate::epoch_ms(std::time::SystemTime::now()),
            limits: &self.limits,
            admission: self.admission,
            ids,
        }
    }
}

/// The gateway's routes.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/v1/events/latency", post(ingest::latency))
        .route("/v1/events/usage", post(ingest::usage))
        .route(cloudevents::ROUTE, post(cloudevents::ingest))
        .route(otlp::http::ROUTE, post(otlp::http::traces))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi::serve))
        .with_state(gateway)
}

/// Serves on `listener` until `shutdown`: then stops accepting, lets
/// in-flight requests finish until `deadline` (`service.shutdown_grace`),
/// closes whatever is still open (slow clients), and flushes the producer.
pub async fn run(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: CancellationToken,
    deadline: CancellationToken,
) -> Result<(), GatewayError> {
    let probe_stop = CancellationToken::new();
    let probe = tokio::spawn(probe::watch_broker(gateway.clone(), probe_stop.clone()));
    let listener = CappedListener::new(
        listener,
        gateway.connection_limits(),
        gateway.metrics.connections.clone(),
    );
    let grpc = match &gateway.settings {
        settings if settings.otlp_grpc => {
            let listener = TcpListener::bind(settings.otlp_grpc_addr).await?;
            tracing::info!(addr = %listener.local_addr()?, "OTLP/gRPC listening");
            Some(tokio::spawn(otlp::grpc::run(
                listener,
                gateway.clone(),
                shutdown.clone(),
                deadline.clone(),
            )))
        }
        _ => None,
    };
    let serving = axum::serve(listener, router(gateway.clone()))
        .with_graceful_shutdown(shutdown.cancelled_owned());
    let served = tokio::select! {
        served = std::future::IntoFuture::into_future(serving) => served,
        () = deadline.cancelled() => {
            tracing::warn!("connections still open at service.shutdown_grace; closing them");
            Ok(())
        }
    };
    if let Some(grpc) = grpc {
        match grpc.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "OTLP/gRPC server ended with an error"),
            Err(e) => tracing::warn!(error = %e, "OTLP/gRPC server panicked"),
            Ok(Ok(())) => {}
        }
    }
    probe_stop.cancel();
    let _ = probe.await;
    let flush_timeout = gateway.settings.ack_timeout;
    let gateway_for_flush = gateway.clone();
    tokio::task::spawn_blocking(move || gateway_for_flush.publisher.flush(flush_timeout))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    tracing::info!("gateway stopped: requests finished, producer flushed");
    served.map_err(GatewayError::Io)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(gateway): State<Arc<Gateway>>) -> Response {
    let (status, body) = gateway.readiness.answer();
    (status, Json(body)).into_response()
}
