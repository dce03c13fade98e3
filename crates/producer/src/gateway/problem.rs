//! One reason a request was refused, as listed in a 400 answer.

use serde::Serialize;

/// A problem with one field of one event, or with the body as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The event's position in the request; `None` for the whole body.
    pub index: Option<usize>,
    /// The field name as in the Avro schema; empty for the whole event.
    pub field: String,
    pub reason: String,
}

impl Problem {
    pub fn new(index: usize, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            index: Some(index),
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn body(reason: impl Into<String>) -> Self {
        Self {
            index: None,
            field: String::new(),
            reason: reason.into(),
        }
    }
}
