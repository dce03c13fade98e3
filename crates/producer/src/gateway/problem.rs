//! One reason a request was refused, as listed in a 400 answer.

use serde::Serialize;

/// The most problems an answer lists; the rest are summarised in one line
/// (`and K more problems`), and collecting stops there too, so neither the
/// answer nor the work behind it grows with a hostile body.
pub const MAX_LISTED: usize = 100;

const MORE: &str = "and ";
const MORE_TAIL: &str = " more problems";

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

    /// The summary line standing for `count` problems not listed.
    pub fn more(count: usize) -> Self {
        Self::body(format!("{MORE}{count}{MORE_TAIL}"))
    }

    /// The count a summary line stands for, or `None` for a real problem.
    pub fn summarised(&self) -> Option<usize> {
        if self.index.is_some() || !self.field.is_empty() {
            return None;
        }
        self.reason
            .strip_prefix(MORE)?
            .strip_suffix(MORE_TAIL)?
            .parse()
            .ok()
    }

    pub fn is_summary(&self) -> bool {
        self.summarised().is_some()
    }
}

/// Problems collected up to [`MAX_LISTED`], the rest only counted.
#[derive(Debug, Default)]
pub struct Collected {
    pub listed: Vec<Problem>,
    pub more: usize,
}

impl Collected {
    pub fn push(&mut self, problem: Problem) {
        if self.listed.len() < MAX_LISTED {
            self.listed.push(problem);
        } else {
            self.more += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.listed.is_empty() && self.more == 0
    }

    /// The listed problems, then the summary line if any were only counted.
    pub fn into_vec(mut self) -> Vec<Problem> {
        if self.more > 0 {
            self.listed.push(Problem::more(self.more));
        }
        self.listed
    }
}
