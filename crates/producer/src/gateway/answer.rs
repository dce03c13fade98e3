//! The gateway's answers: 202 with the ids, or a refusal with a JSON body
//! (`error`, `message`, and the `problems` or `indexes` behind it).

use std::time::Duration;

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;

use super::problem::Problem;

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
    problems: Option<&'a [Problem]>,
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
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
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
            Self::Unavailable { .. } => "unavailable",
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut retry_after = None;
        let body = match &self {
            Self::Unauthorized(message) => plain("unauthorized", message.to_string()),
            Self::Forbidden { tenant, indexes } => ErrorBody {
                indexes: Some(indexes),
                ..plain(
                    "forbidden",
                    format!("events name a tenant other than the key's ({tenant}); nothing was published"),
                )
            },
            Self::RateLimited { retry_after: wait } => {
                retry_after = Some(*wait);
                plain("rate_limited", "too many requests for this key".into())
            }
            Self::TooLarge(message) => plain("too_large", message.clone()),
            Self::UnsupportedMediaType(message) => plain("unsupported_media_type", message.clone()),
            Self::Invalid(problems) => ErrorBody {
                problems: Some(problems),
                ..plain(
                    "invalid",
                    format!("{} problem(s); nothing was published", problems.len()),
                )
            },
            Self::Unavailable {
                reason,
                retry_after: wait,
            } => {
                retry_after = Some(*wait);
                plain("unavailable", reason.clone())
            }
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(wait) = retry_after {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

fn plain(error: &str, message: String) -> ErrorBody<'_> {
    ErrorBody {
        error,
        message,
        problems: None,
        indexes: None,
    }
}
