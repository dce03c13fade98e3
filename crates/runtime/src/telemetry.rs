//! Tracing setup and the `/metrics`, `/healthz`, `/readyz` HTTP server.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use prometheus::{Encoder, IntGaugeVec, Registry, TextEncoder};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::{fmt, EnvFilter};

use crate::{
    config::LogConfig,
    listener::{CappedListener, ConnectionLimits, ConnectionMetrics},
    Secret,
};

/// Installs the global tracing subscriber. `RUST_LOG` overrides the config filter.
pub fn init_tracing(config: &LogConfig) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.filter));
    let builder = fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_writer(std::io::stderr);
    let result = if config.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // A second init (as in tests that start several services) keeps the first.
    drop(result);
}

/// Named readiness checks; the service is ready when every one passes.
///
/// A failing check carries its reason, and `/readyz` names each failing
/// check with it. Every change of a check between passing and failing is
/// logged (a warning when it starts failing) and mirrored in the
/// `centile_readiness_check_up{check}` gauge, in the same call.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    checks: Arc<Mutex<BTreeMap<&'static str, Option<String>>>>,
    gauge: Option<IntGaugeVec>,
}

impl Readiness {
    /// Readiness whose checks are exported as `gauge{check}`.
    pub fn with_gauge(gauge: IntGaugeVec) -> Self {
        Self {
            checks: Arc::default(),
            gauge: Some(gauge),
        }
    }

    pub fn pass(&self, check: &'static str) {
        self.update(check, None);
    }

    /// Marks `check` failing; `reason` says why (no secrets: it is served).
    pub fn fail(&self, check: &'static str, reason: impl Into<String>) {
        self.update(check, Some(reason.into()));
    }

    fn update(&self, check: &'static str, failing: Option<String>) {
        let mut checks = self.checks.lock().expect("readiness lock");
        let was = checks.insert(check, failing.clone());
        let changed = match &was {
            None => true,
            Some(before) => before.is_some() != failing.is_some(),
        };
        drop(checks);
        if let Some(gauge) = &self.gauge {
            gauge
                .with_label_values(&[check])
                .set(i64::from(failing.is_none()));
        }
        if changed {
            match &failing {
                Some(reason) => tracing::warn!(check, reason, "readiness check fails"),
                None if was.is_some() => tracing::info!(check, "readiness check passes again"),
                None => tracing::debug!(check, "readiness check passes"),
            }
        }
    }

    pub fn is_ready(&self) -> bool {
        let checks = self.checks.lock().expect("readiness lock");
        !checks.is_empty() && checks.values().all(Option::is_none)
    }

    /// The `/readyz` answer: 200 when ready, else 503, with a body naming
    /// each failing check and its reason.
    pub fn answer(&self) -> (StatusCode, serde_json::Value) {
        let checks = self.checks.lock().expect("readiness lock").clone();
        let mut failing = serde_json::Map::new();
        let mut states = serde_json::Map::new();
        for (check, state) in &checks {
            states.insert((*check).to_owned(), state.is_none().into());
            if let Some(reason) = state {
                failing.insert((*check).to_owned(), reason.clone().into());
            }
        }
        if checks.is_empty() {
            failing.insert("starting".into(), "no check has reported yet".into());
        }
        let ready = failing.is_empty();
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (
            status,
            serde_json::json!({ "ready": ready, "failing": failing, "checks": states }),
        )
    }
}

#[derive(Debug, Clone)]
struct ServerState {
    registry: Registry,
    readiness: Readiness,
    auth_token: Option<Secret>,
}

/// The metrics server's bounds: a scraper or two and a few probes need
/// little, and a client that connects and idles must not hold the port.
pub const TELEMETRY_LIMITS: ConnectionLimits = ConnectionLimits {
    max_connections: 64,
    idle_timeout: std::time::Duration::from_secs(30),
    read_timeout: std::time::Duration::from_secs(10),
};

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until
/// `shutdown`, within `limits` (connection cap, idle and read timeouts).
pub async fn serve(
    listener: TcpListener,
    limits: ConnectionLimits,
    connections: ConnectionMetrics,
    registry: Registry,
    readiness: Readiness,
    auth_token: Option<Secret>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let state = ServerState {
        registry,
        readiness,
        auth_token,
    };
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state);
    axum::serve(CappedListener::new(listener, limits, connections), app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn metrics(State(state): State<ServerState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.auth_token {
        let expected = format!("Bearer {}", token.expose());
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes())) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "missing or wrong bearer token\n",
            )
                .into_response();
        }
    }
    let mut body = Vec::new();
    let encoder = TextEncoder::new();
    if let Err(e) = encoder.encode(&state.registry.gather(), &mut body) {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    (
        [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
        body,
    )
        .into_response()
}

async fn readyz(State(state): State<ServerState>) -> Response {
    let (status, body) = state.readiness.answer();
    (status, Json(body)).into_response()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Idle clients beyond the cap wait, and are cut off at the idle
    /// timeout, after which a scrape gets through: a client that connects
    /// and says nothing cannot take the metrics port.
    #[tokio::test]
    async fn idle_clients_cannot_hold_the_metrics_port() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let registry = Registry::new();
        let connections = test_connections();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let limits = ConnectionLimits {
            max_connections: 2,
            idle_timeout: std::time::Duration::from_millis(300),
            read_timeout: std::time::Duration::from_millis(300),
        };
        let server = tokio::spawn(serve(
            listener,
            limits,
            connections.clone(),
            registry,
            Readiness::default(),
            None,
            stop.clone(),
        ));
        let idle: Vec<_> = [0, 1]
            .iter()
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        let mut scrape = tokio::net::TcpStream::connect(addr).await.unwrap();
        scrape
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            scrape.read_to_string(&mut answer),
        )
        .await
        .expect("answered once the idle clients are cut off")
        .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            started.elapsed() >= std::time::Duration::from_millis(200),
            "the third client waited for a slot"
        );
        assert!(connections.cap_reached.get() >= 1);
        assert_eq!(connections.timed_out.get(), 2, "both idle clients cut off");
        drop(idle);
        stop.cancel();
        server.await.unwrap().unwrap();
    }

    fn test_connections() -> ConnectionMetrics {
        ConnectionMetrics {
            open: prometheus::IntGauge::new("open", "open").unwrap(),
            cap_reached: prometheus::IntCounter::new("cap", "cap").unwrap(),
            timed_out: prometheus::IntCounter::new("timed_out", "timed out").unwrap(),
        }
    }

    async fn start(token: Option<&str>) -> (String, Readiness, CancellationToken) {
        let registry = Registry::new();
        let counter = prometheus::IntCounter::new("centile_test_events_total", "test").unwrap();
        registry.register(Box::new(counter.clone())).unwrap();
        counter.inc_by(7);
        let readiness = Readiness::default();
        let shutdown = CancellationToken::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(serve(
            listener,
            TELEMETRY_LIMITS,
            test_connections(),
            registry,
            readiness.clone(),
            token.map(Secret::new),
            shutdown.clone(),
        ));
        (base, readiness, shutdown)
    }

    #[tokio::test]
    async fn serves_metrics_health_and_readiness() {
        let (base, readiness, shutdown) = start(None).await;
        let http = reqwest::Client::new();
        let body = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(body.contains("centile_test_events_total 7"), "{body}");
        assert_eq!(
            http.get(format!("{base}/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            http.get(format!("{base}/readyz"))
                .send()
                .await
                .unwrap()
                .status(),
            503
        );
        readiness.pass("kafka");
        assert_eq!(
            http.get(format!("{base}/readyz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        readiness.fail("clickhouse", "connection refused");
        let response = http.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(
            response.text().await.unwrap(),
            r#"{"ready":false,"failing":{"clickhouse":"connection refused"},"checks":{"clickhouse":false,"kafka":true}}"#
        );
        shutdown.cancel();
    }

    #[tokio::test]
    async fn metrics_require_the_bearer_token_when_configured() {
        let (base, _, shutdown) = start(Some("s3cret")).await;
        let http = reqwest::Client::new();
        let url = format!("{base}/metrics");
        assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
        assert_eq!(
            http.get(&url)
                .bearer_auth("wrong")
                .send()
                .await
                .unwrap()
                .status(),
            401
        );
        assert_eq!(
            http.get(&url)
                .bearer_auth("s3cret")
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        shutdown.cancel();
    }
}
