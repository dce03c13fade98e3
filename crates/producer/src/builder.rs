//! Typed event construction. The required fields are a struct literal, so
//! an event missing one does not compile; everything optional is a builder
//! method, and the event id (UUIDv7) and time (now) have defaults.
//!
//! ```
//! use std::time::Duration;
//! use centile_producer::{Latency, Outcome, Usage};
//!
//! let call = Latency {
//!     tenant_id: "acme",
//!     model_id: "gpt-4o",
//!     provider: "openai",
//!     tool: "chat",
//!     response_time: Duration::from_millis(840),
//!     outcome: Outcome::Success,
//! }
//! .event()
//! .parameter("temperature", "0.2")
//! .tokens(512, 128)
//! .build();
//! assert_eq!(call.response_time_ms, 840.0);
//!
//! let bill = Usage {
//!     tenant_id: "acme",
//!     model_id: "gpt-4o",
//!     provider: "openai",
//!     feature: "summarise",
//!     input_tokens: 512,
//!     output_tokens: 128,
//!     cost_usd_nanos: Some(1_250_000),
//! }
//! .event()
//! .user("u-42")
//! .build();
//! assert_eq!(bill.user_id.as_deref(), Some("u-42"));
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use centile_events::{Event, LatencyEvent, UsageEvent};

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    Success,
    /// Failed, with a short error class such as `timeout` or `rate_limited`.
    Error(&'a str),
}

/// The fields every latency event must carry.
#[derive(Debug, Clone, Copy)]
pub struct Latency<'a> {
    pub tenant_id: &'a str,
    pub model_id: &'a str,
    pub provider: &'a str,
    pub tool: &'a str,
    /// A `Duration`, so it can be neither negative nor NaN.
    pub response_time: Duration,
    pub outcome: Outcome<'a>,
}

/// The fields every usage event must carry; unsigned, so never negative.
#[derive(Debug, Clone, Copy)]
pub struct Usage<'a> {
    pub tenant_id: &'a str,
    pub model_id: &'a str,
    pub provider: &'a str,
    pub feature: &'a str,
    pub input_tokens: u32,
    pub output_tokens: u32,
    /// Billionths of a US dollar, as the provider reported it; `None` lets
    /// the price book price the tokens.
    pub cost_usd_nanos: Option<u64>,
}

/// A fresh event id: a UUIDv7, so ids sort by creation time.
pub fn new_event_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Milliseconds since the Unix epoch.
pub fn epoch_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Latency<'_> {
    /// Starts a builder with a new event id and the current time.
    pub fn event(self) -> LatencyBuilder {
        let (success, error_type) = match self.outcome {
            Outcome::Success => (true, None),
            Outcome::Error(kind) => (false, Some(kind.to_owned())),
        };
        LatencyBuilder(LatencyEvent {
            event_id: new_event_id(),
            occurred_at: epoch_ms(SystemTime::now()),
            tenant_id: self.tenant_id.to_owned(),
            model_id: self.model_id.to_owned(),
            provider: self.provider.to_owned(),
            tool: self.tool.to_owned(),
            parameters: Default::default(),
            response_time_ms: self.response_time.as_secs_f64() * 1000.0,
            success,
            error_type,
            input_tokens: None,
            output_tokens: None,
            session_id: None,
        })
    }
}

/// Optional latency fields; finish with [`LatencyBuilder::build`].
#[derive(Debug, Clone)]
pub struct LatencyBuilder(LatencyEvent);

/// The setters both builders share.
macro_rules! id_and_time {
    () => {
        /// Sets the id; reuse it when re-sending, so the event counts once.
        pub fn event_id(mut self, id: impl Into<String>) -> Self {
            self.0.event_id = id.into();
            self
        }

        /// Sets the event time (default: when `.event()` was called).
        pub fn occurred_at(mut self, time: SystemTime) -> Self {
            self.0.occurred_at = epoch_ms(time);
            self
        }

        /// The conversation or session the event belongs to.
        pub fn session(mut self, session_id: impl Into<String>) -> Self {
            self.0.session_id = Some(session_id.into());
            self
        }
    };
}

impl LatencyBuilder {
    id_and_time!();

    pub fn parameter(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.parameters.insert(name.into(), value.into());
        self
    }

    pub fn tokens(mut self, input: u32, output: u32) -> Self {
        self.0.input_tokens = Some(input.into());
        self.0.output_tokens = Some(output.into());
        self
    }

    pub fn build(self) -> LatencyEvent {
        self.0
    }
}

impl From<LatencyBuilder> for Event {
    fn from(builder: LatencyBuilder) -> Self {
        Event::Latency(builder.0)
    }
}

impl Usage<'_> {
    /// Starts a builder with a new event id and the current time.
    pub fn event(self) -> UsageBuilder {
        UsageBuilder(UsageEvent {
            event_id: new_event_id(),
            occurred_at: epoch_ms(SystemTime::now()),
            tenant_id: self.tenant_id.to_owned(),
            user_id: None,
            model_id: self.model_id.to_owned(),
            provider: self.provider.to_owned(),
            feature: self.feature.to_owned(),
            input_tokens: self.input_tokens.into(),
            output_tokens: self.output_tokens.into(),
            cost_usd_nanos: self
                .cost_usd_nanos
                .map(|c| i64::try_from(c).unwrap_or(i64::MAX)),
            cache_read_input_tokens: None,
            cache_write_input_tokens: None,
            reasoning_output_tokens: None,
            session_id: None,
        })
    }
}

/// Optional usage fields; finish with [`UsageBuilder::build`].
#[derive(Debug, Clone)]
pub struct UsageBuilder(UsageEvent);

impl UsageBuilder {
    id_and_time!();

    pub fn user(mut self, user_id: impl Into<String>) -> Self {
        self.0.user_id = Some(user_id.into());
        self
    }

    /// Input tokens read from and written to the prompt cache (parts of
    /// the input count).
    pub fn cache_tokens(mut self, read: u32, write: u32) -> Self {
        self.0.cache_read_input_tokens = Some(read.into());
        self.0.cache_write_input_tokens = Some(write.into());
        self
    }

    /// Output tokens spent on reasoning (part of the output count).
    pub fn reasoning_tokens(mut self, reasoning: u32) -> Self {
        self.0.reasoning_output_tokens = Some(reasoning.into());
        self
    }

    pub fn build(self) -> UsageEvent {
        self.0
    }
}

impl From<UsageBuilder> for Event {
    fn from(builder: UsageBuilder) -> Self {
        Event::Usage(builder.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_a_fresh_v7_id_and_now() {
        let before = epoch_ms(SystemTime::now());
        let a = Latency {
            tenant_id: "t",
            model_id: "m",
            provider: "p",
            tool: "x",
            response_time: Duration::from_micros(1500),
            outcome: Outcome::Error("timeout"),
        }
        .event()
        .build();
        let b = Latency {
            tenant_id: "t",
            model_id: "m",
            provider: "p",
            tool: "x",
            response_time: Duration::ZERO,
            outcome: Outcome::Success,
        }
        .event()
        .build();
        assert_ne!(a.event_id, b.event_id);
        assert_eq!(
            uuid::Uuid::parse_str(&a.event_id)
                .unwrap()
                .get_version_num(),
            7
        );
        assert!(a.occurred_at >= before);
        assert_eq!(a.response_time_ms, 1.5);
        assert!(!a.success);
        assert_eq!(a.error_type.as_deref(), Some("timeout"));
        assert!(b.success && b.error_type.is_none());
    }
}
