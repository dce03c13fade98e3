//! The two ingest routes. Checks run cheapest first, and nothing is handed
//! to the producer until every event of the request has passed them all.

use std::{
    sync::{atomic::Ordering, Arc},
    time::{Instant, SystemTime},
};

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap},
    response::{IntoResponse, Response},
};
use centile_events::Event;
use tokio::sync::SemaphorePermit;

use super::{
    answer::{Accepted, Rejection},
    body::{split, BodyError, BodyFormat},
    fields::{events, EventKind, Intake, Refusal},
    ids::IdSource,
    keys::{hash_key, Grant},
    Gateway,
};
use crate::epoch_ms;

const IDEMPOTENCY_KEY: &str = "idempotency-key";

pub async fn latency(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(gateway, EventKind::Latency, headers, body).await
}

pub async fn usage(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(gateway, EventKind::Usage, headers, body).await
}

async fn handle(
    gateway: Arc<Gateway>,
    kind: EventKind,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let route = match kind {
        EventKind::Latency => "/v1/events/latency",
        EventKind::Usage => "/v1/events/usage",
    };
    let mut events_seen = 0;
    let response = match accept(&gateway, kind, &headers, body, &mut events_seen).await {
        Ok(accepted) => {
            gateway
                .metrics
                .accepted
                .with_label_values(&[kind.label()])
                .inc_by(accepted.accepted as u64);
            accepted.into_response()
        }
        Err(rejection) => {
            if events_seen > 0 {
                gateway
                    .metrics
                    .rejected
                    .with_label_values(&[kind.label(), rejection.reason()])
                    .inc_by(events_seen as u64);
            }
            rejection.into_response()
        }
    };
    gateway
        .metrics
        .requests
        .with_label_values(&[route, response.status().as_str()])
        .inc();
    gateway
        .metrics
        .duration
        .with_label_values(&[route])
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn accept(
    gateway: &Gateway,
    kind: EventKind,
    headers: &HeaderMap,
    body: Body,
    events_seen: &mut usize,
) -> Result<Accepted, Rejection> {
    let (key_hash, grant) = authenticate(gateway, headers)?;
    gateway
        .limiter
        .check(&key_hash, grant.rate, tokio::time::Instant::now())
        .map_err(|retry_after| Rejection::RateLimited { retry_after })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("invalid"));
    let format = BodyFormat::from_content_type(content_type).ok_or_else(|| {
        Rejection::UnsupportedMediaType(format!(
            "content type {:?} is not supported: use application/json or application/x-ndjson",
            content_type.unwrap_or_default()
        ))
    })?;
    let bytes = read_body(gateway, headers, body).await?;
    let limit = gateway.settings.max_batch_events;
    let objects = split(format, &bytes, limit).map_err(|e| match e {
        BodyError::Malformed(problems) => Rejection::Invalid(problems),
        BodyError::TooMany { count, limit } => {
            Rejection::TooLarge(format!("{count} events in one request, limit {limit}"))
        }
    })?;
    *events_seen = objects.len();
    if !gateway.broker_up.load(Ordering::Relaxed) {
        return Err(unavailable(gateway, "the broker is unreachable"));
    }
    let ids = match headers.get(IDEMPOTENCY_KEY).and_then(|v| v.to_str().ok()) {
        Some(key) if !key.is_empty() => IdSource::Idempotent(key.to_owned()),
        _ => IdSource::Random,
    };
    let intake = Intake {
        tenant: &grant.tenant,
        arrived_at: epoch_ms(SystemTime::now()),
        limits: &gateway.limits,
        admission: gateway.admission,
        ids: &ids,
    };
    let events = events(kind, &objects, &intake).map_err(|refusal| match refusal {
        Refusal::CrossTenant(indexes) => Rejection::Forbidden {
            tenant: grant.tenant.clone(),
            indexes,
        },
        Refusal::Invalid(problems) => Rejection::Invalid(problems),
    })?;
    publish(gateway, &events).await?;
    Ok(Accepted {
        accepted: events.len(),
        event_ids: events.iter().map(|e| e.event_id().to_owned()).collect(),
    })
}

fn authenticate<'g>(
    gateway: &'g Gateway,
    headers: &HeaderMap,
) -> Result<([u8; 32], &'g Grant), Rejection> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(Rejection::Unauthorized(
            "missing Authorization: Bearer <key>",
        ))?;
    let key = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or(Rejection::Unauthorized(
            "the Authorization header must be `Bearer <key>`",
        ))?;
    let hash = hash_key(key);
    let grant = gateway
        .keys
        .grant(&hash)
        .ok_or(Rejection::Unauthorized("unknown API key"))?;
    Ok((hash, grant))
}

async fn read_body(
    gateway: &Gateway,
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<u8>, Rejection> {
    let max = gateway.settings.max_body_bytes;
    let too_large = || Rejection::TooLarge(format!("the body is larger than {max} bytes"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > max) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, max)
        .await
        .map(|b| b.to_vec())
        .map_err(|_| too_large())
}

fn unavailable(gateway: &Gateway, reason: impl Into<String>) -> Rejection {
    Rejection::Unavailable {
        reason: reason.into(),
        retry_after: gateway.retry_after(),
    }
}

/// Reserves in-flight room, publishes, and waits for every acknowledgement
/// until the deadline.
async fn publish(gateway: &Gateway, events: &[Event]) -> Result<(), Rejection> {
    let messages = gateway.publisher.messages(events).await.map_err(|e| {
        tracing::warn!(error = %e, "cannot frame events");
        unavailable(gateway, format!("cannot frame events: {e}"))
    })?;
    let bytes: usize = messages.iter().map(|m| m.payload.len() + 64).sum();
    let _permit = reserve(gateway, bytes)?;
    gateway.metrics.in_flight_bytes.add(bytes as i64);
    let started = Instant::now();
    let sent = tokio::time::timeout(
        gateway.settings.ack_timeout,
        gateway.publisher.send_messages(&messages),
    )
    .await;
    gateway.metrics.in_flight_bytes.sub(bytes as i64);
    match sent {
        Ok(Ok(())) => {
            gateway
                .metrics
                .ack_duration
                .observe(started.elapsed().as_secs_f64());
            Ok(())
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "broker did not acknowledge");
            Err(unavailable(
                gateway,
                "the broker did not acknowledge every event; retry with the same event ids",
            ))
        }
        Err(_) => Err(unavailable(
            gateway,
            "the broker did not acknowledge in time; retry with the same event ids",
        )),
    }
}

fn reserve(gateway: &Gateway, bytes: usize) -> Result<SemaphorePermit<'_>, Rejection> {
    let kib = u32::try_from(bytes.div_ceil(1024))
        .unwrap_or(u32::MAX)
        .clamp(1, gateway.in_flight_kib);
    gateway
        .in_flight
        .try_acquire_many(kib)
        .map_err(|_| unavailable(gateway, "too many events awaiting acknowledgement"))
}
