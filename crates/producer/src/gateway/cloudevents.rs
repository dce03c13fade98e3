//! CloudEvents 1.0 in structured JSON mode: `POST /v1/events` with
//! `application/cloudevents+json` (one event) or
//! `application/cloudevents-batch+json` (an array of them).
//!
//! - `type` selects the kind (`gateway.cloudevents_types`, by default
//!   `centile.latency` and `centile.usage`);
//! - `source` and `id` together (`<source>#<id>`) become the event id, as
//!   the specification makes only the pair unique: a re-sent CloudEvent
//!   counts once, and two sources may both send an event "1";
//! - `time` is the event time unless `data` has `occurred_at`;
//! - `subject` is the usage event's user unless `data` has `user_id`;
//! - `data` carries the fields of the JSON routes, by the same rules.
//!
//! Like the JSON routes, a request is all or nothing: every problem is
//! listed with the event's index and the attribute (`id`, `type`) or the
//! data field (`data.model_id`), and nothing is published.

use std::{sync::Arc, time::Instant};

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap},
    response::{IntoResponse, Response},
};
use centile_runtime::config::GatewayConfig;
use serde_json::{Map, Value};

use super::{
    answer::{Accepted, Rejection},
    body::{split, BodyError, BodyFormat},
    fields::{event, EventKind},
    ids::IdSource,
    ingest::{admit_key, collapse, content_print, kind_of, publish, read_body, unavailable},
    problem::{Collected, Problem},
    Gateway,
};

pub const ROUTE: &str = "/v1/events";

const SINGLE: &str = "application/cloudevents+json";
const BATCH: &str = "application/cloudevents-batch+json";
/// Context attributes this route reads; any other is an extension and is
/// ignored, as the specification allows.
const SPEC_VERSION: &str = "1.0";

pub async fn ingest(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let mut seen = Vec::new();
    let response = match accept(&gateway, &headers, body, &mut seen).await {
        Ok(accepted) => {
            for kind in &seen {
                gateway
                    .metrics
                    .accepted
                    .with_label_values(&[kind.label()])
                    .inc();
            }
            accepted.into_response()
        }
        Err(rejection) => {
            for kind in &seen {
                gateway
                    .metrics
                    .refused
                    .with_label_values(&[kind.label(), rejection.reason()])
                    .inc();
            }
            rejection.into_response()
        }
    };
    gateway.metrics.answered(ROUTE, response.status(), started);
    response
}

async fn accept(
    gateway: &Arc<Gateway>,
    headers: &HeaderMap,
    body: Body,
    seen: &mut Vec<EventKind>,
) -> Result<Accepted, Rejection> {
    let grant = admit_key(gateway, headers)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("invalid"))
        .unwrap_or_default();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let batch = match essence.as_str() {
        SINGLE => false,
        BATCH => true,
        _ => {
            return Err(Rejection::UnsupportedMediaType(format!(
                "content type {content_type:?} is not supported: use {SINGLE} or {BATCH} (structured mode)"
            )))
        }
    };
    let bytes = read_body(gateway, headers, body).await?;
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some() && (first == Some(&b'[')) != batch {
        let expected = if batch { "an array" } else { "one object" };
        return Err(Rejection::Invalid(vec![Problem::body(format!(
            "{essence} takes {expected}"
        ))]));
    }
    let objects = split(BodyFormat::Json, &bytes, gateway.settings.max_batch_events).map_err(
        |e| match e {
            BodyError::Malformed(problems) => Rejection::Invalid(problems),
            BodyError::TooMany { count, limit } => {
                Rejection::TooLarge(format!("{count} events in one request, limit {limit}"))
            }
        },
    )?;
    drop(bytes);
    let ids = IdSource::Random;
    let intake = gateway.intake(&grant.tenant, &ids);
    let mut problems = Collected::default();
    let mut events = Vec::with_capacity(objects.len());
    for (index, object) in objects.iter().enumerate() {
        match unwrap(&gateway.settings, index, object) {
            Err(found) => found.into_iter().for_each(|p| problems.push(p)),
            Ok(Unwrapped { kind, data, folded }) => {
                seen.push(kind);
                match event(kind, index, &data, &intake) {
                    Ok(read) => events.push(read),
                    Err(found) => found.into_iter().for_each(|mut p| {
                        p.field = named_as_sent(&p.field, &folded);
                        problems.push(p);
                    }),
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(Rejection::Invalid(problems.into_vec()));
    }
    if !gateway.readiness.is_ready() {
        return Err(unavailable(gateway, "the broker is unreachable"));
    }
    let event_ids: Vec<String> = events.iter().map(|e| e.event_id().to_owned()).collect();
    let prints = events.iter().map(content_print).collect();
    // Problems about event ids are about the CloudEvent `id` the client sent.
    let as_sent = |mut rejection: Rejection| {
        if let Rejection::Conflict { problems, .. } | Rejection::Invalid(problems) = &mut rejection
        {
            for p in problems.iter_mut().filter(|p| p.field == "event_id") {
                p.field = "id".into();
            }
        }
        rejection
    };
    let (events, prints, kept) = collapse(events, prints).map_err(as_sent)?;
    debug_assert!(events.iter().all(|e| seen.contains(&kind_of(e))));
    publish(gateway, &grant.tenant, events, prints, &kept)
        .await
        .map_err(as_sent)?;
    Ok(Accepted {
        accepted: event_ids.len(),
        event_ids,
    })
}

/// One CloudEvent read: its kind, its data as an event object (with the id,
/// time and subject folded in), and which data fields came from which
/// attribute, so problems name what the client sent.
#[derive(Debug)]
struct Unwrapped {
    kind: EventKind,
    data: Map<String, Value>,
    folded: Vec<(&'static str, &'static str)>,
}

/// A data field's problem named as the client sent it: the attribute it
/// was folded in from, or `data.<field>`.
fn named_as_sent(field: &str, folded: &[(&'static str, &'static str)]) -> String {
    if field.is_empty() {
        return String::new();
    }
    match folded.iter().find(|(data, _)| *data == field) {
        Some((_, attribute)) => (*attribute).to_owned(),
        None => format!("data.{field}"),
    }
}

/// The event id of a CloudEvent: `source` and `id` together, as the
/// specification makes only the pair unique (two sources may both send an
/// event "1").
pub fn event_id(source: &str, id: &str) -> String {
    format!("{source}#{id}")
}

/// One CloudEvent's kind and data, or its problems.
fn unwrap(
    settings: &GatewayConfig,
    index: usize,
    object: &Map<String, Value>,
) -> Result<Unwrapped, Vec<Problem>> {
    let mut folded = Vec::new();
    let mut problems = Vec::new();
    let text = |name: &str, problems: &mut Vec<Problem>| -> Option<String> {
        match object.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::String(_)) => {
                problems.push(Problem::new(index, name, "must not be empty"));
                None
            }
            None | Some(Value::Null) => {
                problems.push(Problem::new(index, name, "required"));
                None
            }
            Some(other) => {
                problems.push(Problem::new(
                    index,
                    name,
                    format!("must be a string, got {}", super::body::type_name(other)),
                ));
                None
            }
        }
    };
    let id = text("id", &mut problems);
    let source = text("source", &mut problems);
    match text("specversion", &mut problems) {
        Some(version) if version != SPEC_VERSION => problems.push(Problem::new(
            index,
            "specversion",
            format!("must be \"{SPEC_VERSION}\", got {version:?}"),
        )),
        _ => {}
    }
    let kind = text("type", &mut problems).and_then(|kind| {
        let found = settings
            .cloudevents_types
            .get(&kind)
            .and_then(|k| match k.as_str() {
                "latency" => Some(EventKind::Latency),
                "usage" => Some(EventKind::Usage),
                _ => None,
            });
        if found.is_none() {
            let known: Vec<&str> = settings
                .cloudevents_types
                .keys()
                .map(String::as_str)
                .collect();
            problems.push(Problem::new(
                index,
                "type",
                format!(
                    "{kind:?} is not an event type here; known: {}",
                    known.join(", ")
                ),
            ));
        }
        found
    });
    if let Some(media) = object.get("datacontenttype") {
        let json = media.as_str().is_some_and(|m| {
            let essence = m.split(';').next().unwrap_or_default().trim();
            essence == "application/json" || essence.ends_with("+json")
        });
        if !json {
            problems.push(Problem::new(
                index,
                "datacontenttype",
                format!("must be application/json, got {media}"),
            ));
        }
    }
    if object.contains_key("data_base64") {
        problems.push(Problem::new(
            index,
            "data_base64",
            "binary data is not taken: send the fields as JSON in `data`",
        ));
    }
    let mut data = match object.get("data") {
        Some(Value::Object(data)) => data.clone(),
        None | Some(Value::Null) => {
            if !object.contains_key("data_base64") {
                problems.push(Problem::new(index, "data", "required: the event's fields"));
            }
            Map::new()
        }
        Some(other) => {
            problems.push(Problem::new(
                index,
                "data",
                format!("must be an object, got {}", super::body::type_name(other)),
            ));
            Map::new()
        }
    };
    if let (Some(id), Some(source)) = (id, source) {
        let scoped = event_id(&source, &id);
        match data.get("event_id") {
            Some(Value::String(own)) if *own != id && *own != scoped => {
                problems.push(Problem::new(
                    index,
                    "data.event_id",
                    format!("{own:?} differs from the CloudEvent id {id:?}; leave it out"),
                ))
            }
            _ => {
                data.insert("event_id".into(), Value::String(scoped));
                folded.push(("event_id", "id"));
            }
        }
    }
    if !data.contains_key("occurred_at") {
        match object.get("time") {
            Some(time @ Value::String(_)) => {
                data.insert("occurred_at".into(), time.clone());
                folded.push(("occurred_at", "time"));
            }
            _ => problems.push(Problem::new(
                index,
                "time",
                "required when data has no occurred_at",
            )),
        }
    }
    if kind == Some(EventKind::Usage) && !data.contains_key("user_id") {
        if let Some(subject @ Value::String(_)) = object.get("subject") {
            data.insert("user_id".into(), subject.clone());
            folded.push(("user_id", "subject"));
        }
    }
    match (kind, problems.is_empty()) {
        (Some(kind), true) => Ok(Unwrapped { kind, data, folded }),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().expect("object").clone()
    }

    #[test]
    fn id_time_and_subject_fold_into_the_data() {
        let settings = GatewayConfig::default();
        let Unwrapped { kind, data, .. } = unwrap(
            &settings,
            0,
            &object(json!({
                "specversion": "1.0", "id": "ce-1", "source": "/billing",
                "type": "centile.usage", "subject": "user-9",
                "time": "2026-11-30T10:00:00Z", "datacontenttype": "application/json",
                "traceparent": "00-extension-is-ignored",
                "data": {"model_id": "m", "provider": "p", "feature": "f",
                         "input_tokens": 1, "output_tokens": 2, "cost_usd_nanos": 3}
            })),
        )
        .expect("valid");
        assert_eq!(kind, EventKind::Usage);
        assert_eq!(data["event_id"], "/billing#ce-1", "source and id together");
        assert_eq!(data["occurred_at"], "2026-11-30T10:00:00Z");
        assert_eq!(data["user_id"], "user-9");
    }

    #[test]
    fn every_broken_attribute_is_named() {
        let settings = GatewayConfig::default();
        let problems = unwrap(
            &settings,
            4,
            &object(json!({
                "specversion": "0.3", "id": "", "type": "com.example.other",
                "datacontenttype": "text/plain", "data": [1]
            })),
        )
        .unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "id",
                "source",
                "specversion",
                "type",
                "datacontenttype",
                "data",
                "time"
            ]
        );
        assert!(problems.iter().all(|p| p.index == Some(4)));
        assert!(problems[3].reason.contains("centile.latency"));
    }
}
