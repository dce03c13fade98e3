//! The gateway's Prometheus metrics, each declared and registered in one
//! statement. Labels are bounded: routes are the fixed paths, codes the
//! statuses the gateway answers, reasons a closed set; every known value
//! starts at zero, so the first 403 or 503 shows in `rate()`.

use centile_runtime::{
    listener::ConnectionMetrics,
    metrics::{Declare, Label, DURATION_BUCKETS},
};
use std::time::Instant;

use prometheus::{Histogram, HistogramVec, IntCounterVec, IntGauge, Registry};

use super::otlp::Exported;

/// The ingest routes; gRPC exports count under the service method.
pub const ROUTES: [&str; 5] = [
    "/v1/events/latency",
    "/v1/events/usage",
    "/v1/events",
    "/v1/traces",
    GRPC_EXPORT,
];
/// The OTLP/gRPC trace export, as a `route`.
pub const GRPC_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// What became of an exported span.
const SPAN_OUTCOMES: [&str; 3] = ["accepted", "ignored", "rejected"];
/// Every status the ingest routes answer.
pub const CODES: [&str; 12] = [
    "200", "202", "400", "401", "403", "409", "413", "415", "429", "499", "500", "503",
];
/// Every `reason` of a refused request (see `Rejection::reason`).
pub const REASONS: [&str; 9] = [
    "unauthorized",
    "cross_tenant",
    "rate_limited",
    "too_large",
    "unsupported_media_type",
    "invalid",
    "conflict",
    "disconnected",
    "unavailable",
];
const KINDS: [&str; 2] = ["latency", "usage"];

#[derive(Debug, Clone)]
pub struct GatewayMetrics {
    pub requests: IntCounterVec,
    pub accepted: IntCounterVec,
    pub refused: IntCounterVec,
    pub deduplicated: IntCounterVec,
    pub spans: IntCounterVec,
    pub duration: HistogramVec,
    pub ack_duration: Histogram,
    pub queue_messages: IntGauge,
    pub in_flight_bytes: IntGauge,
    pub broker_up: IntGauge,
    pub connections: ConnectionMetrics,
}

impl GatewayMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let d = Declare::new(registry, "gateway");
        Ok(Self {
            requests: d.counter_vec(
                "centile_gateway_requests_total",
                "HTTP requests answered, by route and status code.",
                &[Label::Known("route", &ROUTES), Label::Known("code", &CODES)],
            )?,
            accepted: d.counter_vec(
                "centile_gateway_events_accepted_total",
                "Events acknowledged by the broker and answered 202, by kind.",
                &[Label::Known("kind", &KINDS)],
            )?,
            refused: d.counter_vec(
                "centile_gateway_refused_messages_total",
                "Events in refused requests (nothing of a refused request is published), by kind and reason.",
                &[Label::Known("kind", &KINDS), Label::Known("reason", &REASONS)],
            )?,
            deduplicated: d.counter_vec(
                "centile_gateway_events_deduplicated_total",
                "Events of accepted requests not published again: the broker had already acknowledged their ids.",
                &[Label::Known("kind", &KINDS)],
            )?,
            spans: d.counter_vec(
                "centile_gateway_spans_total",
                "OTLP spans received: accepted (a model call, published as events), ignored (not a model call) or rejected (a model call that cannot be an event, reported as a partial success).",
                &[Label::Known("outcome", &SPAN_OUTCOMES)],
            )?,
            duration: d.histogram_vec(
                "centile_gateway_request_duration_seconds",
                "Time from request to answer, broker acknowledgement included.",
                &DURATION_BUCKETS,
                &[Label::Known("route", &ROUTES)],
            )?,
            ack_duration: d.histogram(
                "centile_gateway_broker_ack_duration_seconds",
                "Time for the broker to acknowledge every event of one request.",
                &DURATION_BUCKETS,
            )?,
            queue_messages: d.gauge(
                "centile_gateway_producer_queue_messages",
                "Messages in the producer waiting to be sent or acknowledged.",
            )?,
            in_flight_bytes: d.gauge(
                "centile_gateway_in_flight_bytes",
                "Encoded bytes of accepted requests awaiting acknowledgement.",
            )?,
            broker_up: d.gauge(
                "centile_gateway_broker_up",
                "1 while the broker answers metadata requests, else 0 (and requests get 503).",
            )?,
            connections: ConnectionMetrics {
                open: d.gauge("centile_gateway_connections", "Open client connections.")?,
                cap_reached: d.counter(
                    "centile_gateway_connection_cap_reached_total",
                    "Times gateway.max_connections was reached; further connections waited in the listen backlog.",
                )?,
                timed_out: d.counter(
                    "centile_gateway_connections_timed_out_total",
                    "Connections closed for idling past gateway.idle_timeout or for a request arriving slower than gateway.read_timeout.",
                )?,
            },
        })
    }
}

impl GatewayMetrics {
    /// Counts one answered request of `route`.
    pub fn answered(&self, route: &str, code: axum::http::StatusCode, started: Instant) {
        self.requests
            .with_label_values(&[route, code.as_str()])
            .inc();
        self.duration
            .with_label_values(&[route])
            .observe(started.elapsed().as_secs_f64());
    }

    /// Counts the spans of one export.
    pub fn count_spans(&self, exported: &Exported) {
        for (outcome, n) in [
            ("accepted", exported.accepted_spans),
            ("ignored", exported.ignored_spans),
            ("rejected", exported.rejected_spans),
        ] {
            self.spans.with_label_values(&[outcome]).inc_by(n as u64);
        }
    }
}
