//! Value rules for events, reported as one [`FieldError`] per problem.

use crate::{DecodeError, FieldError, LatencyEvent, UsageEvent};

/// Bounds on event contents; generous defaults, all configurable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_string_len: usize,
    pub max_parameters: usize,
    /// The largest event time accepted, in ms; ClickHouse `DateTime` ends in 2106.
    pub max_timestamp_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_string_len: 256,
            max_parameters: 64,
            max_timestamp_ms: 4_294_967_295_000,
        }
    }
}

/// Checks an event's values against [`Limits`].
pub trait Validate {
    fn problems(&self, limits: &Limits) -> Vec<FieldError>;

    fn validate(&self, limits: &Limits) -> Result<(), DecodeError> {
        let problems = self.problems(limits);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Invalid(problems))
        }
    }
}

struct Checker<'a> {
    limits: &'a Limits,
    problems: Vec<FieldError>,
}

impl Checker<'_> {
    fn text(&mut self, field: &str, value: &str) {
        if value.is_empty() {
            self.problems
                .push(FieldError::new(field, "must not be empty"));
        } else {
            self.bounded(field, value);
        }
    }

    fn bounded(&mut self, field: &str, value: &str) {
        let len = value.chars().count();
        if len > self.limits.max_string_len {
            self.problems.push(FieldError::new(
                field,
                format!(
                    "string too long: {len} characters, limit {}",
                    self.limits.max_string_len
                ),
            ));
        }
    }

    fn timestamp(&mut self, field: &str, value: i64) {
        if value < 0 || value > self.limits.max_timestamp_ms {
            self.problems.push(FieldError::new(
                field,
                format!("timestamp {value} ms is outside 1970-01-01..2106-02-07"),
            ));
        }
    }

    fn tokens(&mut self, field: &str, value: Option<i64>) {
        if let Some(v) = value.filter(|v| *v < 0) {
            self.problems.push(FieldError::new(
                field,
                format!("must not be negative, got {v}"),
            ));
        }
    }
}

impl Validate for LatencyEvent {
    fn problems(&self, limits: &Limits) -> Vec<FieldError> {
        let mut c = Checker {
            limits,
            problems: Vec::new(),
        };
        c.text("event_id", &self.event_id);
        c.timestamp("occurred_at", self.occurred_at);
        c.text("tenant_id", &self.tenant_id);
        c.text("model_id", &self.model_id);
        c.text("provider", &self.provider);
        c.text("tool", &self.tool);
        if self.parameters.len() > limits.max_parameters {
            c.problems.push(FieldError::new(
                "parameters",
                format!(
                    "too many parameters: {}, limit {}",
                    self.parameters.len(),
                    limits.max_parameters
                ),
            ));
        }
        for (key, value) in &self.parameters {
            if key.chars().count() > limits.max_string_len {
                c.problems.push(FieldError::new(
                    "parameters",
                    format!("key `{key}` too long, limit {}", limits.max_string_len),
                ));
            }
            c.bounded(&format!("parameters.{key}"), value);
        }
        if !self.response_time_ms.is_finite() {
            c.problems.push(FieldError::new(
                "response_time_ms",
                format!("must be finite, got {}", self.response_time_ms),
            ));
        } else if self.response_time_ms < 0.0 {
            c.problems.push(FieldError::new(
                "response_time_ms",
                format!("must not be negative, got {}", self.response_time_ms),
            ));
        }
        if let Some(error_type) = &self.error_type {
            c.bounded("error_type", error_type);
        }
        c.tokens("input_tokens", self.input_tokens);
        c.tokens("output_tokens", self.output_tokens);
        if let Some(session) = &self.session_id {
            c.bounded("session_id", session);
        }
        c.problems
    }
}

impl Validate for UsageEvent {
    fn problems(&self, limits: &Limits) -> Vec<FieldError> {
        let mut c = Checker {
            limits,
            problems: Vec::new(),
        };
        c.text("event_id", &self.event_id);
        c.timestamp("occurred_at", self.occurred_at);
        c.text("tenant_id", &self.tenant_id);
        if let Some(user) = &self.user_id {
            c.bounded("user_id", user);
        }
        if let Some(session) = &self.session_id {
            c.bounded("session_id", session);
        }
        c.text("model_id", &self.model_id);
        c.text("provider", &self.provider);
        c.text("feature", &self.feature);
        c.tokens("input_tokens", Some(self.input_tokens));
        c.tokens("output_tokens", Some(self.output_tokens));
        c.tokens("cost_usd_nanos", self.cost_usd_nanos);
        c.tokens("cache_read_input_tokens", self.cache_read_input_tokens);
        c.tokens("cache_write_input_tokens", self.cache_write_input_tokens);
        c.tokens("reasoning_output_tokens", self.reasoning_output_tokens);
        // Cache and reasoning tokens are parts of the input and output
        // counts (the OpenTelemetry GenAI convention), never added on top.
        let cached = self
            .cache_read_input_tokens
            .unwrap_or(0)
            .saturating_add(self.cache_write_input_tokens.unwrap_or(0));
        if self.input_tokens >= 0 && cached > self.input_tokens {
            c.problems.push(FieldError::new(
                "cache_read_input_tokens",
                format!(
                    "cache reads and writes ({cached}) exceed input_tokens ({}): cache tokens are part of the input count, not added on top",
                    self.input_tokens
                ),
            ));
        }
        if let Some(reasoning) = self.reasoning_output_tokens {
            if self.output_tokens >= 0 && reasoning > self.output_tokens {
                c.problems.push(FieldError::new(
                    "reasoning_output_tokens",
                    format!(
                        "{reasoning} exceeds output_tokens ({}): reasoning tokens are part of the output count, not added on top",
                        self.output_tokens
                    ),
                ));
            }
        }
        c.problems
    }
}
