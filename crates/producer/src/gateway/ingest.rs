//! The two ingest routes. Checks run cheapest first, and nothing is handed
//! to the producer until every event of the request has passed them all.

use std::{
    sync::Arc,
    time::{Instant, SystemTime},
};

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap},
    response::{IntoResponse, Response},
};
use centile_events::Event;
use tokio::sync::OwnedSemaphorePermit;

use super::{
    answer::{Accepted, Rejection},
    body::{split, BodyError, BodyFormat},
    fields::{events, EventKind, Intake, Refusal, Tenant},
    ids::IdSource,
    keys::{hash_key, Grant},
    recent::{id_key, Claim, IdKey},
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
    gateway: &Arc<Gateway>,
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
    if !gateway.readiness.is_ready() {
        return Err(unavailable(gateway, "the broker is unreachable"));
    }
    let ids = match headers.get(IDEMPOTENCY_KEY).and_then(|v| v.to_str().ok()) {
        Some(key) if !key.is_empty() => IdSource::Idempotent(key.to_owned()),
        _ => IdSource::Random,
    };
    let intake = Intake {
        tenant: Tenant::Key(&grant.tenant),
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
    let event_ids: Vec<String> = events.iter().map(|e| e.event_id().to_owned()).collect();
    publish(gateway, kind, &grant.tenant, events).await?;
    Ok(Accepted {
        accepted: event_ids.len(),
        event_ids,
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

/// Publishes the events the broker has not acknowledged through this
/// gateway yet, and waits for every acknowledgement until the deadline.
/// The send runs as its own task that holds the in-flight reservation until
/// the producer settles, so a request answered 503 at the deadline still
/// records its ids once they are acknowledged, and a retry finds them.
async fn publish(
    gateway: &Arc<Gateway>,
    kind: EventKind,
    tenant: &str,
    events: Vec<Event>,
) -> Result<(), Rejection> {
    let all_keys: Vec<IdKey> = events
        .iter()
        .map(|e| id_key(tenant, e.event_id()))
        .collect();
    let fresh_positions = match gateway.recent.claim(&all_keys, Instant::now()) {
        Claim::Busy => {
            return Err(unavailable(
                gateway,
                "an earlier request with some of these event ids is still awaiting acknowledgement; retry",
            ))
        }
        Claim::Publish(positions) => positions,
    };
    let repeated = events.len() - fresh_positions.len();
    if repeated > 0 {
        gateway
            .metrics
            .deduplicated
            .with_label_values(&[kind.label()])
            .inc_by(repeated as u64);
    }
    if fresh_positions.is_empty() {
        return Ok(());
    }
    let (keys, fresh): (Vec<IdKey>, Vec<Event>) = all_keys
        .into_iter()
        .zip(events)
        .enumerate()
        .filter(|(position, _)| fresh_positions.binary_search(position).is_ok())
        .map(|(_, pair)| pair)
        .unzip();
    let claimed = Claimed {
        gateway: gateway.clone(),
        keys,
        settled: false,
    };
    let messages = gateway.publisher.frame_all(fresh).await.map_err(|e| {
        tracing::warn!(error = %e, "cannot frame events");
        unavailable(gateway, format!("cannot frame events: {e}"))
    })?;
    let bytes: usize = messages.iter().map(|m| m.payload.len() + 64).sum();
    let permit = reserve(gateway, bytes)?;
    gateway.metrics.in_flight_bytes.add(bytes as i64);
    let sender = gateway.clone();
    let send = tokio::spawn(async move {
        let started = Instant::now();
        let result = sender.publisher.send_messages(&messages).await;
        claimed.settle(result.is_ok());
        if result.is_ok() {
            sender
                .metrics
                .ack_duration
                .observe(started.elapsed().as_secs_f64());
        }
        sender.metrics.in_flight_bytes.sub(bytes as i64);
        drop(permit);
        result
    });
    match tokio::time::timeout(gateway.settings.ack_timeout, send).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => {
            tracing::warn!(error = %e, "broker did not acknowledge");
            Err(unavailable(
                gateway,
                "the broker did not acknowledge every event; retry with the same event ids",
            ))
        }
        Ok(Err(e)) => Err(unavailable(gateway, format!("publishing failed: {e}"))),
        Err(_) => Err(unavailable(
            gateway,
            "the broker did not acknowledge in time; retry with the same event ids",
        )),
    }
}

/// Ids marked pending by a request; released if the request ends before
/// its send settles (a dropped connection, a refusal), so they never stay
/// pending forever.
struct Claimed {
    gateway: Arc<Gateway>,
    keys: Vec<IdKey>,
    settled: bool,
}

impl Claimed {
    fn settle(mut self, acknowledged: bool) {
        self.gateway
            .recent
            .settle(&self.keys, acknowledged, Instant::now());
        self.settled = true;
    }
}

impl Drop for Claimed {
    fn drop(&mut self) {
        if !self.settled {
            self.gateway
                .recent
                .settle(&self.keys, false, Instant::now());
        }
    }
}

fn reserve(gateway: &Gateway, bytes: usize) -> Result<OwnedSemaphorePermit, Rejection> {
    let kib = u32::try_from(bytes.div_ceil(1024))
        .unwrap_or(u32::MAX)
        .clamp(1, gateway.in_flight_kib);
    gateway
        .in_flight
        .clone()
        .try_acquire_many_owned(kib)
        .map_err(|_| unavailable(gateway, "too many events awaiting acknowledgement"))
}
