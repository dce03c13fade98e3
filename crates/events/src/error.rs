//! Errors raised while decoding or validating a message.

use std::fmt;

/// One problem with one field of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The Avro field name, as in the schema (`input_tokens`, `parameters.temperature`).
    pub field: String,
    /// Why the value was refused, in lowercase prose.
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}`: {}", self.field, self.reason)
    }
}

/// Why a Kafka message value could not become a valid event or pane.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty message")]
    Empty,
    #[error("unknown framing: leading bytes {0} are neither avro single-object (c3 01) nor confluent (00)")]
    UnknownFraming(String),
    #[error("truncated {framing} header: {len} bytes, need {need}")]
    TruncatedHeader {
        framing: &'static str,
        len: usize,
        need: usize,
    },
    #[error("unknown schema fingerprint {0}")]
    UnknownFingerprint(String),
    #[error("unknown confluent schema id {0}: no schema registry knows it")]
    UnknownSchemaId(u32),
    #[error("confluent schema id {schema_id}: the schema registry could not be asked: {reason}")]
    RegistryUnavailable { schema_id: u32, reason: String },
    #[error("confluent schema id {schema_id}: {reason}")]
    RegistrySchemaRefused { schema_id: u32, reason: String },
    #[error("malformed avro datum: {0}")]
    Datum(String),
    #[error("{0} trailing bytes after the avro datum")]
    TrailingBytes(usize),
    #[error("a {found} does not belong on this topic, which carries {expected}")]
    WrongTopic {
        found: &'static str,
        expected: &'static str,
    },
    #[error("invalid event: {}", join(.0))]
    Invalid(Vec<FieldError>),
    #[error("field `occurred_at`: too late, published {age_ms} ms after it occurred, beyond the restatement horizon of {horizon_ms} ms")]
    TooLate { age_ms: i64, horizon_ms: i64 },
    #[error("field `occurred_at`: {ahead_ms} ms after the record's publication time, beyond the allowed clock skew of {max_skew_ms} ms")]
    FromTheFuture { ahead_ms: i64, max_skew_ms: i64 },
}

impl DecodeError {
    /// Every value [`DecodeError::kind`] returns: the `reason` label values
    /// of the refused-message metrics, created at zero at start.
    pub const KINDS: [&'static str; 13] = [
        "empty",
        "unknown_framing",
        "truncated_header",
        "unknown_fingerprint",
        "unknown_schema_id",
        "schema_registry_unavailable",
        "schema_refused",
        "malformed_datum",
        "trailing_bytes",
        "wrong_topic",
        "invalid_field",
        "too_late",
        "future",
    ];

    /// A short, bounded label for metrics and DLQ headers.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::UnknownFraming(_) => "unknown_framing",
            Self::TruncatedHeader { .. } => "truncated_header",
            Self::UnknownFingerprint(_) => "unknown_fingerprint",
            Self::UnknownSchemaId(_) => "unknown_schema_id",
            Self::RegistryUnavailable { .. } => "schema_registry_unavailable",
            Self::RegistrySchemaRefused { .. } => "schema_refused",
            Self::Datum(_) => "malformed_datum",
            Self::TrailingBytes(_) => "trailing_bytes",
            Self::WrongTopic { .. } => "wrong_topic",
            Self::Invalid(_) => "invalid_field",
            Self::TooLate { .. } => "too_late",
            Self::FromTheFuture { .. } => "future",
        }
    }
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::DecodeError;

    #[test]
    fn every_kind_is_listed_once() {
        let all = [
            DecodeError::Empty,
            DecodeError::UnknownFraming(String::new()),
            DecodeError::TruncatedHeader {
                framing: "",
                len: 0,
                need: 0,
            },
            DecodeError::UnknownFingerprint(String::new()),
            DecodeError::UnknownSchemaId(0),
            DecodeError::RegistryUnavailable {
                schema_id: 0,
                reason: String::new(),
            },
            DecodeError::RegistrySchemaRefused {
                schema_id: 0,
                reason: String::new(),
            },
            DecodeError::Datum(String::new()),
            DecodeError::TrailingBytes(0),
            DecodeError::WrongTopic {
                found: "",
                expected: "",
            },
            DecodeError::Invalid(Vec::new()),
            DecodeError::TooLate {
                age_ms: 0,
                horizon_ms: 0,
            },
            DecodeError::FromTheFuture {
                ahead_ms: 0,
                max_skew_ms: 0,
            },
        ];
        let kinds: Vec<&str> = all.iter().map(DecodeError::kind).collect();
        assert_eq!(kinds, DecodeError::KINDS);
    }
}
