//! The gateway's Prometheus metrics. Labels are bounded: routes are the
//! fixed paths, statuses the handful the gateway answers, reasons a closed set.

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Debug, Clone)]
pub struct GatewayMetrics {
    pub requests: IntCounterVec,
    pub accepted: IntCounterVec,
    pub rejected: IntCounterVec,
    pub deduplicated: IntCounterVec,
    pub duration: HistogramVec,
    pub ack_duration: Histogram,
    pub queue_messages: IntGauge,
    pub in_flight_bytes: IntGauge,
    pub broker_up: IntGauge,
}

const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl GatewayMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "centile_gateway_requests_total",
                    "HTTP requests answered, by route and status code.",
                ),
                &["route", "status"],
            )?,
            accepted: IntCounterVec::new(
                Opts::new(
                    "centile_gateway_events_accepted_total",
                    "Events acknowledged by the broker and answered 202, by kind.",
                ),
                &["kind"],
            )?,
            rejected: IntCounterVec::new(
                Opts::new(
                    "centile_gateway_events_rejected_total",
                    "Events in refused requests, by kind and reason (invalid, cross_tenant, too_large, unavailable).",
                ),
                &["kind", "reason"],
            )?,
            deduplicated: IntCounterVec::new(
                Opts::new(
                    "centile_gateway_events_deduplicated_total",
                    "Events of accepted requests not published again: the broker had already acknowledged their ids.",
                ),
                &["kind"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "centile_gateway_request_duration_seconds",
                    "Time from request to answer, broker acknowledgement included.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["route"],
            )?,
            ack_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "centile_gateway_broker_ack_duration_seconds",
                    "Time for the broker to acknowledge every event of one request.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            )?,
            queue_messages: IntGauge::new(
                "centile_gateway_producer_queue_messages",
                "Messages in the producer waiting to be sent or acknowledged.",
            )?,
            in_flight_bytes: IntGauge::new(
                "centile_gateway_in_flight_bytes",
                "Encoded bytes of accepted requests awaiting acknowledgement.",
            )?,
            broker_up: IntGauge::new(
                "centile_gateway_broker_up",
                "1 while the broker answers metadata requests, else 0 (and requests get 503).",
            )?,
        };
        registry.register(Box::new(metrics.requests.clone()))?;
        registry.register(Box::new(metrics.accepted.clone()))?;
        registry.register(Box::new(metrics.rejected.clone()))?;
        registry.register(Box::new(metrics.deduplicated.clone()))?;
        registry.register(Box::new(metrics.duration.clone()))?;
        registry.register(Box::new(metrics.ack_duration.clone()))?;
        registry.register(Box::new(metrics.queue_messages.clone()))?;
        registry.register(Box::new(metrics.in_flight_bytes.clone()))?;
        registry.register(Box::new(metrics.broker_up.clone()))?;
        Ok(metrics)
    }
}
