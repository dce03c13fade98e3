//! The gateway's answers: 202 with the ids, or a refusal with a JSON body
//! (`error`, `message`, and the `problems` or `indexes` behind it).

use std::time::Duration;

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;

use super::problem::{Problem, MAX_LISTED};

/// Every event of the request was acknowledged by the broker.
#[derive(Debug, Serialize)]
pub struct Accepted {
    pub accepted: usize,
    /// In request order; generated ones included.
    pub event_ids: Vec<String>,
}

impl IntoResponse for Accepted {
    fn into_response(self) -> Response {
        (StatusCode::ACCEPTED, Json(self)).into_response()
    }
}

/// Why nothing of a request was published.
#[derive(Debug)]
pub enum Rejection {
    Unauthorized(&'static str),
    Forbidden {
        tenant: String,
        indexes: Vec<usize>,
    },
    RateLimited {
        retry_after: Duration,
    },
    TooLarge(String),
    UnsupportedMediaType(String),
    Invalid(Vec<Problem>),
    /// An `Idempotency-Key` or event ids reused for different content.
    Conflict {
        message: String,
        problems: Vec<Problem>,
    },
    /// The client went away before its body was read; nobody reads the
    /// answer, but logs and metrics record it as 499, not as a refusal.
    Disconnected(String),
    Unavailable {
        reason: String,
        retry_after: Duration,
    },
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    problems: Option<Vec<Problem>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    indexes: Option<&'a [usize]>,
}

impl Rejection {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Disconnected(_) => StatusCode::from_u16(499).expect("499 is a status"),
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// `Retry-After` (whole seconds, at least 1) on refusals worth a retry,
    /// and `WWW-Authenticate` on 401, whatever the body's protocol.
    pub fn add_headers(&self, headers: &mut axum::http::HeaderMap) {
        if let Some(wait) = self.retry_after() {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        if self.status() == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
    }

    /// How long to wait before retrying, for the refusals worth a retry.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } | Self::Unavailable { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }

    /// One line for protocols with a message and no problem list (OTLP's
    /// `google.rpc.Status`): what went wrong, with the first problems.
    pub fn message(&self) -> String {
        let listed = |problems: &[Problem]| {
            let shown: Vec<String> = problems
                .iter()
                .take(MAX_LISTED)
                .map(|p| match p.index {
                    Some(index) => format!("[{index}] {}: {}", p.field, p.reason),
                    None => format!("{}: {}", p.field, p.reason),
                })
                .collect();
            shown.join("; ")
        };
        match self {
            Self::Unauthorized(message) => (*message).to_owned(),
            Self::Forbidden { tenant, indexes } => format!(
                "{} item(s) name a tenant other than the key's ({tenant}); nothing was published",
                indexes.len()
            ),
            Self::RateLimited { .. } => "too many requests for this key".into(),
            Self::TooLarge(message) | Self::UnsupportedMediaType(message) => message.clone(),
            Self::Invalid(problems) => format!("nothing was published: {}", listed(problems)),
            Self::Conflict { message, problems } => format!("{message}: {}", listed(problems)),
            Self::Disconnected(message) => format!("the client went away: {message}"),
            Self::Unavailable { reason, .. } => reason.clone(),
        }
    }

    /// The bounded `reason` label of the rejected-events metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden { .. } => "cross_tenant",
            Self::RateLimited { .. } => "rate_limited",
            Self::TooLarge(_) => "too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Invalid(_) => "invalid",
            Self::Conflict { .. } => "conflict",
            Self::Disconnected(_) => "disconnected",
            Self::Unavailable { .. } => "unavailable",
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let body = match &self {
            Self::Unauthorized(message) => plain("unauthorized", message.to_string()),
            Self::Forbidden { tenant, indexes } => ErrorBody {
                indexes: Some(indexes),
                ..plain(
                    "forbidden",
                    format!("events name a tenant other than the key's ({tenant}); nothing was published"),
                )
            },
            Self::RateLimited { .. } => {
                plain("rate_limited", "too many requests for this key".into())
            }
            Self::TooLarge(message) => plain("too_large", message.clone()),
            Self::UnsupportedMediaType(message) => plain("unsupported_media_type", message.clone()),
            Self::Invalid(problems) => ErrorBody {
                problems: Some(capped(problems)),
                ..plain(
                    "invalid",
                    format!("{} problem(s); nothing was published", counted(problems)),
                )
            },
            Self::Conflict { message, problems } => ErrorBody {
                problems: Some(capped(problems)),
                ..plain("conflict", message.clone())
            },
            Self::Disconnected(message) => plain(
                "disconnected",
                format!("the client closed the connection mid-body: {message}"),
            ),
            Self::Unavailable { reason, .. } => plain("unavailable", reason.clone()),
        };
        let mut response = (self.status(), Json(body)).into_response();
        self.add_headers(response.headers_mut());
        response
    }
}

/// At most [`MAX_LISTED`] problems, then one `and K more problems` line,
/// so an answer's size is bounded whatever the request held.
fn capped(problems: &[Problem]) -> Vec<Problem> {
    let total = counted(problems);
    let mut listed: Vec<Problem> = problems
        .iter()
        .filter(|p| !p.is_summary())
        .take(MAX_LISTED)
        .cloned()
        .collect();
    if total > listed.len() {
        listed.push(Problem::more(total - listed.len()));
    }
    listed
}

/// How many problems a list stands for, a summary line included.
fn counted(problems: &[Problem]) -> usize {
    problems.iter().map(|p| p.summarised().unwrap_or(1)).sum()
}

fn plain(error: &str, message: String) -> ErrorBody<'_> {
    ErrorBody {
        error,
        message,
        problems: None,
        indexes: None,
    }
}
