//! The API's Prometheus metrics, each declared and registered in one
//! statement. Labels are bounded: routes are the fixed route templates,
//! codes the statuses the API answers, cache results a closed set; every
//! known label value starts at zero so the first failure shows in `rate()`.

use centile_runtime::metrics::{Declare, Label};
use prometheus::{HistogramVec, IntCounter, IntCounterVec, IntGauge, Registry};

#[derive(Debug, Clone)]
pub struct ApiMetrics {
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub cache: IntCounterVec,
    pub cache_entries: IntGauge,
    pub cache_bytes: IntGauge,
    pub connections: IntGauge,
    pub connection_cap_reached: IntCounter,
    pub connections_timed_out: IntCounter,
    pub stream_clients: IntGauge,
    pub clickhouse_up: IntGauge,
}

/// Every route template, for labels.
pub const ROUTES: [&str; 9] = [
    "/v1/performance/trends",
    "/v1/usage/stats",
    "/v1/usage/top-models",
    "/v1/models",
    "/v1/models/{id}",
    "/v1/models/search",
    "/v1/realtime",
    "/v1/realtime/stream",
    "/v1/windows/status",
];
pub const CODES: [&str; 9] = [
    "200", "304", "400", "401", "403", "404", "500", "503", "504",
];
pub const CACHE_RESULTS: [&str; 4] = ["hit", "not_modified", "miss", "bypass"];

const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl ApiMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let d = Declare::new(registry, "api");
        Ok(Self {
            requests: d.counter_vec(
                "centile_api_requests_total",
                "API requests answered, by route and status code.",
                &[Label::Known("route", &ROUTES), Label::Known("code", &CODES)],
            )?,
            duration: d.histogram_vec(
                "centile_api_request_duration_seconds",
                "Time from request to answer, by route.",
                &BUCKETS,
                &[Label::Known("route", &ROUTES)],
            )?,
            cache: d.counter_vec(
                "centile_api_cache_requests_total",
                "Cacheable requests by result: hit (served from the cache), not_modified (304), miss (computed), bypass (cache off or uncacheable).",
                &[Label::Known("result", &CACHE_RESULTS)],
            )?,
            cache_entries: d.gauge("centile_api_cache_entries", "Answers held in the cache.")?,
            cache_bytes: d.gauge("centile_api_cache_bytes", "Bytes of answers held in the cache.")?,
            connections: d.gauge("centile_api_connections", "Open client connections.")?,
            connection_cap_reached: d.counter(
                "centile_api_connection_cap_reached_total",
                "Times api.max_connections was reached; further connections waited in the listen backlog.",
            )?,
            connections_timed_out: d.counter(
                "centile_api_connections_timed_out_total",
                "Connections closed for idling past api.idle_timeout or for a request arriving slower than api.read_timeout.",
            )?,
            stream_clients: d.gauge(
                "centile_api_stream_clients",
                "Open /v1/realtime/stream connections.",
            )?,
            clickhouse_up: d.gauge(
                "centile_api_clickhouse_up",
                "1 while ClickHouse answers the API's probe (then /readyz is 200), else 0.",
            )?,
        })
    }
}
