//! OTLP/HTTP: `POST /v1/traces` with an `ExportTraceServiceRequest` as
//! binary protobuf (`application/x-protobuf`) or OTLP/JSON
//! (`application/json`), optionally `Content-Encoding: gzip`.
//!
//! Answers follow the OTLP/HTTP specification: 200 with an
//! `ExportTraceServiceResponse` in the request's encoding; refusals carry a
//! `google.rpc.Status` in the same encoding; 429 and 503 say `Retry-After`
//! (exporters retry those), and 400, 401, 403, 413 and 415 are final.

use std::{io::Read, sync::Arc, time::Instant};

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use super::Exported;
use crate::gateway::{
    answer::Rejection,
    ingest::{admit_key, read_body},
    Gateway,
};

pub const ROUTE: &str = "/v1/traces";

/// `google.rpc.Status`, the body of every OTLP refusal.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoAny {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// How the request body is encoded, and so the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn of(headers: &HeaderMap) -> Option<Self> {
        let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let media = value.split(';').next()?.trim().to_ascii_lowercase();
        match media.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Self::Protobuf),
            "application/json" => Some(Self::Json),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }
}

pub async fn traces(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let encoding = Encoding::of(&headers).unwrap_or(Encoding::Json);
    let response = match receive(&gateway, &headers, body).await {
        Ok(exported) => {
            gateway.metrics.count_spans(&exported);
            ok(encoding, &exported.response())
        }
        Err(rejection) => {
            if let Rejection::Disconnected(error) = &rejection {
                tracing::info!(route = ROUTE, %error, "client disconnected mid-body");
            }
            refusal(encoding, &rejection)
        }
    };
    gateway.metrics.answered(ROUTE, response.status(), started);
    response
}

async fn receive(
    gateway: &Arc<Gateway>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Exported, Rejection> {
    let grant = admit_key(gateway, headers)?;
    let encoding = Encoding::of(headers).ok_or_else(|| {
        Rejection::UnsupportedMediaType(format!(
            "content type {:?} is not supported: use application/x-protobuf or application/json",
            headers
                .get(header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap_or("invalid"))
                .unwrap_or_default()
        ))
    })?;
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("invalid").trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("" | "identity") => false,
        Some("gzip") => true,
        Some(other) => {
            return Err(Rejection::UnsupportedMediaType(format!(
                "content encoding {other:?} is not supported: use gzip or none"
            )))
        }
    };
    let bytes = read_body(gateway, headers, body).await?;
    let max = gateway.settings.max_body_bytes;
    let bytes = if gzip { gunzip(&bytes, max)? } else { bytes };
    let request = decode(encoding, &bytes)?;
    drop(bytes);
    super::export(gateway, &grant.tenant, &request).await
}

/// Inflates a gzip body, refusing it once it grows past `max` bytes, so a
/// small bomb cannot take the gateway's memory.
fn gunzip(bytes: &[u8], max: usize) -> Result<Vec<u8>, Rejection> {
    let mut inflated = Vec::with_capacity(bytes.len().saturating_mul(4).min(max));
    let mut decoder = flate2::read::MultiGzDecoder::new(bytes).take(max as u64 + 1);
    decoder.read_to_end(&mut inflated).map_err(|e| {
        Rejection::Invalid(vec![crate::gateway::problem::Problem {
            index: None,
            field: "body".into(),
            reason: format!("not valid gzip: {e}"),
        }])
    })?;
    if inflated.len() > max {
        return Err(Rejection::TooLarge(format!(
            "the body inflates to more than {max} bytes"
        )));
    }
    Ok(inflated)
}

fn decode(encoding: Encoding, bytes: &[u8]) -> Result<ExportTraceServiceRequest, Rejection> {
    let invalid = |reason: String| {
        Rejection::Invalid(vec![crate::gateway::problem::Problem {
            index: None,
            field: "body".into(),
            reason,
        }])
    };
    match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(bytes)
            .map_err(|e| invalid(format!("not an OTLP ExportTraceServiceRequest: {e}"))),
        Encoding::Json => serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("not OTLP/JSON ExportTraceServiceRequest: {e}"))),
    }
}

fn ok(encoding: Encoding, response: &ExportTraceServiceResponse) -> Response {
    let body = match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        // `{}` for full success: no `"partialSuccess": null` for clients to
        // misread.
        Encoding::Json => match &response.partial_success {
            None => b"{}".to_vec(),
            Some(partial) => serde_json::to_vec(&serde_json::json!({
                "partialSuccess": {
                    "rejectedSpans": partial.rejected_spans.to_string(),
                    "errorMessage": partial.error_message,
                }
            }))
            .unwrap_or_default(),
        },
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response()
}

/// A refusal as OTLP/HTTP states it: the gateway's status code and
/// `Retry-After`, with a `google.rpc.Status` body naming the problem.
fn refusal(encoding: Encoding, rejection: &Rejection) -> Response {
    let status = rejection.status();
    let message = rejection.message();
    let code = grpc_code(rejection) as i32;
    let body = match encoding {
        Encoding::Protobuf => RpcStatus {
            code,
            message,
            details: Vec::new(),
        }
        .encode_to_vec(),
        Encoding::Json => {
            serde_json::to_vec(&serde_json::json!({"code": code, "message": message}))
                .unwrap_or_default()
        }
    };
    let mut response = (
        status,
        [(header::CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response();
    rejection.add_headers(response.headers_mut());
    response
}

/// The gRPC status code of a refusal (used by both transports).
pub fn grpc_code(rejection: &Rejection) -> tonic::Code {
    match rejection {
        Rejection::Unauthorized(_) => tonic::Code::Unauthenticated,
        Rejection::Forbidden { .. } => tonic::Code::PermissionDenied,
        Rejection::RateLimited { .. } => tonic::Code::ResourceExhausted,
        Rejection::TooLarge(_)
        | Rejection::UnsupportedMediaType(_)
        | Rejection::Invalid(_)
        | Rejection::Conflict { .. } => tonic::Code::InvalidArgument,
        Rejection::Disconnected(_) => tonic::Code::Cancelled,
        Rejection::Unavailable { .. } => tonic::Code::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_bombs_are_refused_at_the_limit() {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&vec![b'{'; 1 << 20]).expect("write");
        let bomb = encoder.finish().expect("gzip");
        assert!(bomb.len() < 4096);
        assert!(matches!(
            gunzip(&bomb, 64 * 1024),
            Err(Rejection::TooLarge(m)) if m.contains("65536")
        ));
        assert_eq!(gunzip(&bomb, 2 << 20).expect("fits").len(), 1 << 20);
        assert!(matches!(
            gunzip(b"not gzip", 1024),
            Err(Rejection::Invalid(_))
        ));
    }

    #[test]
    fn otlp_json_decodes_with_hex_ids_and_string_ints() {
        let json = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
            "scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
            "name":"chat","kind":3,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000",
            "attributes":[{"key":"gen_ai.usage.input_tokens","value":{"intValue":"42"}}]}]}]}]}"#;
        let request = decode(Encoding::Json, json).expect("decodes");
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(
            hex::encode(&span.trace_id),
            "5b8efff798038103d269b633813fc60c"
        );
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
        assert!(matches!(
            decode(Encoding::Json, b"{\"resourceSpans\": 3}"),
            Err(Rejection::Invalid(p)) if p[0].field == "body"
        ));
        assert!(decode(Encoding::Protobuf, b"\xff\xff\xff").is_err());
    }
}
