//! Raw event types. Field names match the Avro schemas in `schemas/avro`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One call to a model or tool and how long it took (`centile.v1.LatencyEvent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyEvent {
    pub event_id: String,
    /// Event time in milliseconds since the Unix epoch, UTC.
    pub occurred_at: i64,
    pub tenant_id: String,
    pub model_id: String,
    pub provider: String,
    pub tool: String,
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    pub response_time_ms: f64,
    pub success: bool,
    #[serde(default)]
    pub error_type: Option<String>,
    #[serde(default)]
    pub input_tokens: Option<i64>,
    #[serde(default)]
    pub output_tokens: Option<i64>,
    /// The conversation or session the call belonged to (OpenTelemetry
    /// `session.id`); kept with the raw event, not a rollup dimension.
    #[serde(default)]
    pub session_id: Option<String>,
}

/// Billable use of a model by a tenant (`centile.v1.UsageEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEvent {
    pub event_id: String,
    /// Event time in milliseconds since the Unix epoch, UTC.
    pub occurred_at: i64,
    pub tenant_id: String,
    #[serde(default)]
    pub user_id: Option<String>,
    pub model_id: String,
    pub provider: String,
    pub feature: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Billionths of a US dollar, as the provider reported it. `None`: the
    /// price book prices the event, by the version in effect at
    /// `occurred_at`.
    #[serde(default)]
    pub cost_usd_nanos: Option<i64>,
    /// Input tokens read from the prompt cache: part of `input_tokens`.
    #[serde(default)]
    pub cache_read_input_tokens: Option<i64>,
    /// Input tokens written to the prompt cache: part of `input_tokens`.
    #[serde(default)]
    pub cache_write_input_tokens: Option<i64>,
    /// Output tokens spent on reasoning: part of `output_tokens`.
    #[serde(default)]
    pub reasoning_output_tokens: Option<i64>,
    /// The conversation or session the use belonged to (OpenTelemetry
    /// `session.id`); kept with the raw event, not a rollup dimension.
    #[serde(default)]
    pub session_id: Option<String>,
}

/// Either kind of raw event.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Latency(LatencyEvent),
    Usage(UsageEvent),
}

impl Event {
    pub fn event_id(&self) -> &str {
        match self {
            Self::Latency(e) => &e.event_id,
            Self::Usage(e) => &e.event_id,
        }
    }

    pub fn occurred_at(&self) -> i64 {
        match self {
            Self::Latency(e) => e.occurred_at,
            Self::Usage(e) => e.occurred_at,
        }
    }
}

impl From<LatencyEvent> for Event {
    fn from(event: LatencyEvent) -> Self {
        Self::Latency(event)
    }
}

impl From<UsageEvent> for Event {
    fn from(event: UsageEvent) -> Self {
        Self::Usage(event)
    }
}
