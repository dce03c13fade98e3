//! The two ingest routes. Checks run cheapest first, and nothing is handed
//! to the producer until every event of the request has passed them all.

use std::{collections::HashMap, pin::Pin, sync::Arc, time::Instant};

use axum::{
    body::{Body, HttpBody},
    extract::State,
    http::{header, HeaderMap},
    response::{IntoResponse, Response},
};
use centile_events::Event;
use tokio::sync::OwnedSemaphorePermit;

use super::{
    answer::{Accepted, Rejection},
    body::{split, BodyError, BodyFormat},
    fields::{events, EventKind, Refusal},
    ids::IdSource,
    keys::{hash_key, Grant},
    problem::Problem,
    recent::{fingerprint, id_key, idempotency_key, Claim, Fingerprint, IdKey},
    Gateway,
};

const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The longest `Idempotency-Key` taken, in bytes (as documented).
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 256;

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
            if let Rejection::Disconnected(error) = &rejection {
                tracing::info!(route, %error, "client disconnected mid-body");
            }
            if events_seen > 0 {
                gateway
                    .metrics
                    .refused
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
    let grant = admit_key(gateway, headers)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("invalid"));
    let format = BodyFormat::from_content_type(content_type).ok_or_else(|| {
        Rejection::UnsupportedMediaType(format!(
            "content type {:?} is not supported: use application/json or application/x-ndjson",
            content_type.unwrap_or_default()
        ))
    })?;
    let idempotency = idempotency_key_of(headers)?;
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
    let ids = match &idempotency {
        Some(key) => IdSource::Idempotent(key.clone()),
        None => IdSource::Random,
    };
    let intake = gateway.intake(&grant.tenant, &ids);
    let events = events(kind, &objects, &intake).map_err(|refusal| match refusal {
        Refusal::CrossTenant(indexes) => Rejection::Forbidden {
            tenant: grant.tenant.clone(),
            indexes,
        },
        Refusal::Invalid(problems) => Rejection::Invalid(problems),
    })?;
    drop(objects);
    let event_ids: Vec<String> = events.iter().map(|e| e.event_id().to_owned()).collect();
    let prints: Vec<Fingerprint> = events.iter().map(content_print).collect();
    let total = events.len();
    let (events, prints, kept) = collapse(events, prints)?;
    let collapsed = total - kept.len();
    let request = idempotency.as_ref().map(|key| {
        let mut parts: Vec<&[u8]> = vec![kind.label().as_bytes()];
        parts.extend(prints.iter().map(|p| p.as_slice()));
        (idempotency_key(&grant.tenant, key), fingerprint(&parts))
    });
    if let Some((key, print)) = &request {
        if gateway.recent.conflicts(key, print, Instant::now()) {
            return Err(Rejection::Conflict {
                message: "this Idempotency-Key was used for a different request body in the dedup window; nothing was published".into(),
                problems: vec![Problem {
                    index: None,
                    field: "Idempotency-Key".into(),
                    reason: "already used with a different request body".into(),
                }],
            });
        }
    }
    if collapsed > 0 {
        gateway
            .metrics
            .deduplicated
            .with_label_values(&[kind.label()])
            .inc_by(collapsed as u64);
    }
    publish(gateway, &grant.tenant, events, prints, &kept).await?;
    if let Some((key, print)) = request {
        gateway.recent.remember(key, print, Instant::now());
    }
    Ok(Accepted {
        accepted: event_ids.len(),
        event_ids,
    })
}

/// The request's `Idempotency-Key`, if any: visible ASCII (and spaces), at
/// most [`MAX_IDEMPOTENCY_KEY_BYTES`]; anything else is refused rather than
/// silently ignored. An empty key counts as none.
fn idempotency_key_of(headers: &HeaderMap) -> Result<Option<String>, Rejection> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let refuse = |reason: String| {
        Rejection::Invalid(vec![Problem {
            index: None,
            field: "Idempotency-Key".into(),
            reason,
        }])
    };
    let bytes = value.as_bytes();
    if bytes.len() > MAX_IDEMPOTENCY_KEY_BYTES {
        return Err(refuse(format!(
            "too long: {} bytes, limit {MAX_IDEMPOTENCY_KEY_BYTES}",
            bytes.len()
        )));
    }
    let key = value.to_str().map_err(|_| {
        refuse("must be printable ASCII (no bytes above 0x7e or control characters)".into())
    })?;
    let key = key.trim();
    Ok((!key.is_empty()).then(|| key.to_owned()))
}

/// A digest of an event's canonical content (its fields as JSON, in the
/// schema's order), to tell a true duplicate from an id reused for other
/// content.
pub(super) fn content_print(event: &Event) -> Fingerprint {
    let (tag, json) = match event {
        Event::Latency(e) => ("latency", serde_json::to_vec(e)),
        Event::Usage(e) => ("usage", serde_json::to_vec(e)),
    };
    fingerprint(&[tag.as_bytes(), &json.unwrap_or_default()])
}

/// The events left to publish, their fingerprints, and their positions in
/// the request.
pub(super) type Collapsed = (Vec<Event>, Vec<Fingerprint>, Vec<usize>);

/// Collapses identical copies of one event id in a request to the first
/// (returning the request positions of the events kept), or refuses the request when copies
/// with the same id differ: each such position is listed under `event_id`.
pub(super) fn collapse(
    events: Vec<Event>,
    prints: Vec<Fingerprint>,
) -> Result<Collapsed, Rejection> {
    let mut first: HashMap<(&str, &str), usize> = HashMap::with_capacity(events.len());
    let mut copies = Vec::new();
    let mut problems = Vec::new();
    for (position, event) in events.iter().enumerate() {
        let id = event.event_id();
        match first.get(&(kind_of(event).label(), id)) {
            None => {
                first.insert((kind_of(event).label(), id), position);
            }
            Some(&original) if prints[original] == prints[position] => copies.push(position),
            Some(&original) => {
                if !problems.iter().any(|p: &Problem| p.index == Some(original)) {
                    problems.push(Problem::new(
                        original,
                        "event_id",
                        format!("{id:?} is repeated with different content at index {position}"),
                    ));
                }
                problems.push(Problem::new(
                    position,
                    "event_id",
                    format!("{id:?} is already used with different content at index {original}"),
                ));
            }
        }
    }
    if !problems.is_empty() {
        problems.sort_by_key(|p| p.index);
        return Err(Rejection::Invalid(problems));
    }
    let kept: Vec<usize> = (0..events.len())
        .filter(|position| copies.binary_search(position).is_err())
        .collect();
    if copies.is_empty() {
        return Ok((events, prints, kept));
    }
    let (events, prints) = events
        .into_iter()
        .zip(prints)
        .enumerate()
        .filter(|(position, _)| copies.binary_search(position).is_err())
        .map(|(_, pair)| pair)
        .unzip();
    Ok((events, prints, kept))
}

/// The kind of an event, as routes and metrics name it.
pub(super) fn kind_of(event: &Event) -> EventKind {
    match event {
        Event::Latency(_) => EventKind::Latency,
        Event::Usage(_) => EventKind::Usage,
    }
}

/// The grant of the request's key, once it is known and within its rate:
/// the first check of every ingest route and transport.
pub(super) fn admit_key<'g>(
    gateway: &'g Gateway,
    headers: &HeaderMap,
) -> Result<&'g Grant, Rejection> {
    let (key_hash, grant) = authenticate(gateway, headers)?;
    gateway
        .limiter
        .check(&key_hash, grant.rate, tokio::time::Instant::now())
        .map_err(|retry_after| Rejection::RateLimited { retry_after })?;
    Ok(grant)
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

pub(super) async fn read_body(
    gateway: &Gateway,
    headers: &HeaderMap,
    mut body: Body,
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
    let mut bytes = Vec::with_capacity(declared.unwrap_or_default());
    // Frame by frame, so that a body over the limit (413) is told apart
    // from a client that went away mid-body (counted as a disconnect).
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| Rejection::Disconnected(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > max {
                return Err(too_large());
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

pub(super) fn unavailable(gateway: &Gateway, reason: impl Into<String>) -> Rejection {
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
pub(super) async fn publish(
    gateway: &Arc<Gateway>,
    tenant: &str,
    events: Vec<Event>,
    prints: Vec<Fingerprint>,
    request_positions: &[usize],
) -> Result<(), Rejection> {
    let all_keys: Vec<(IdKey, Fingerprint)> = events
        .iter()
        .zip(prints)
        .map(|(e, print)| (id_key(tenant, kind_of(e).label(), e.event_id()), print))
        .collect();
    let fresh_positions = match gateway.recent.claim(&all_keys, Instant::now()) {
        Claim::Conflict(positions) => {
            let problems = positions
                .into_iter()
                .map(|position| {
                    Problem::new(
                        request_positions[position],
                        "event_id",
                        format!(
                            "{:?} was accepted within the dedup window with different content",
                            events[position].event_id()
                        ),
                    )
                })
                .collect();
            return Err(Rejection::Conflict {
                message: "event ids already accepted with different content; nothing was published".into(),
                problems,
            });
        }
        Claim::Busy => {
            return Err(unavailable(
                gateway,
                "an earlier request with some of these event ids is still awaiting acknowledgement; retry",
            ))
        }
        Claim::Publish(positions) => positions,
    };
    for (position, event) in events.iter().enumerate() {
        if fresh_positions.binary_search(&position).is_err() {
            gateway
                .metrics
                .deduplicated
                .with_label_values(&[kind_of(event).label()])
                .inc();
        }
    }
    if fresh_positions.is_empty() {
        return Ok(());
    }
    let (keys, fresh): (Vec<(IdKey, Fingerprint)>, Vec<Event>) = all_keys
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
    keys: Vec<(IdKey, Fingerprint)>,
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
