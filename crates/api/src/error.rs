//! The crate's errors, and how each becomes an `application/problem+json`
//! answer (RFC 9457) with a status that tells the client what to do.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query parameter is missing, malformed or out of range.
    #[error("{parameter}: {reason}")]
    BadParameter { parameter: String, reason: String },
    #[error("missing or unknown API key")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// Too many requests at once, or one ran past the request timeout.
    #[error("{0}")]
    Busy(String),
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error("api keys: {0}")]
    Keys(String),
    #[error("{0}")]
    Config(#[from] centile_runtime::RuntimeError),
    #[error("model catalog: {0}")]
    Catalog(String),
    #[error("{0}")]
    Prices(#[from] centile_sink::prices::PricesError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("http server: {0}")]
    Io(#[from] std::io::Error),
    #[error("query api at {url}: {reason}")]
    Remote { url: String, reason: String },
}

impl ApiError {
    pub fn bad(parameter: &str, reason: impl Into<String>) -> Self {
        Self::BadParameter {
            parameter: parameter.to_owned(),
            reason: reason.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadParameter { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            // The database being down or slow is the client's cue to retry.
            Self::Busy(_) | Self::ClickHouse(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A problem+json answer.
pub fn problem(status: StatusCode, detail: &str, parameter: Option<&str>) -> Response {
    let mut body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    if let Some(parameter) = parameter {
        body["parameter"] = parameter.into();
    }
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            // Server-side details (SQL, hosts) stay in the log.
            Self::ClickHouse(e) => {
                tracing::warn!(error = %e, "query failed");
                "the analytics database did not answer; try again".to_owned()
            }
            e if status.is_server_error() && !matches!(e, Self::Busy(_)) => {
                tracing::error!(error = %e, "request failed");
                "internal error".to_owned()
            }
            e => e.to_string(),
        };
        let parameter = match &self {
            Self::BadParameter { parameter, .. } => Some(parameter.as_str()),
            _ => None,
        };
        let mut response = problem(status, &detail, parameter);
        match self {
            Self::Unauthenticated => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"centile\""),
                );
            }
            Self::Busy(_) | Self::ClickHouse(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}
