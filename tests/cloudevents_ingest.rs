//! CloudEvents 1.0 in structured mode on `POST /v1/events`: batches
//! (`application/cloudevents-batch+json`) and single events
//! (`application/cloudevents+json`) of `centile.latency` and
//! `centile.usage` arrive in every view with exact counts, tokens and
//! costs; `id` is the event id (a re-sent batch counts once), `time` the
//! event time unless the data has one, `subject` the usage event's user
//! unless the data names one, and extension attributes are ignored. A batch
//! with one bad event is refused whole, each problem named by index and
//! attribute or data field, and nothing of it is published.

use std::{collections::BTreeSet, time::Duration};

use centile::{
    gateway_kit::TestGateway,
    testkit::{civil_from_days, metric_sum, metric_value, now_ms, TestEnv},
    truth::{assert_exact_aggregates, assert_raw_exactly_once, wait_until_complete, Truth},
};
use centile_events::{Event, LatencyEvent, UsageEvent};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::{json, Value};

const KEY: &str = "ck_cloudevents_ingest_test_key";
const TENANT: &str = "ce-acme";
const HOUR_MS: i64 = 3_600_000;
const BATCH: &str = "application/cloudevents-batch+json";
const SINGLE: &str = "application/cloudevents+json";

/// RFC 3339 for epoch milliseconds `ms`, written with a UTC offset.
fn rfc3339(ms: i64, offset_minutes: i64) -> String {
    let shifted = ms + offset_minutes * 60_000;
    let secs = shifted.div_euclid(1000);
    let millis = shifted.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let zone = match offset_minutes {
        0 => "Z".to_owned(),
        o => format!(
            "{}{:02}:{:02}",
            if o < 0 { '-' } else { '+' },
            o.abs() / 60,
            o.abs() % 60
        ),
    };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}{zone}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
    )
}

/// An expected event from its fields (optional ones may be left out).
fn expected(kind: &str, fields: Value) -> Event {
    match kind {
        "latency" => {
            Event::Latency(serde_json::from_value::<LatencyEvent>(fields).expect("latency"))
        }
        _ => Event::Usage(serde_json::from_value::<UsageEvent>(fields).expect("usage")),
    }
}

/// A CloudEvent envelope with extension attributes a real producer adds.
/// The `source` of the test's CloudEvents.
const SOURCE: &str = "//billing.example.invalid/chat-api";

fn envelope(
    id: &str,
    kind: &str,
    time: Option<String>,
    subject: Option<String>,
    data: Value,
) -> Value {
    let mut event = json!({
        "specversion": "1.0",
        "id": id,
        "source": SOURCE,
        "type": format!("centile.{kind}"),
        "datacontenttype": "application/json",
        "dataschema": "https://example.invalid/schemas/centile",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "comexampleregion": "eu-west-1",
        "data": data,
    });
    if let Some(time) = time {
        event["time"] = json!(time);
    }
    if let Some(subject) = subject {
        event["subject"] = json!(subject);
    }
    event
}

/// A mixed batch of latency and usage CloudEvents, and the events they
/// must become.
fn batch(tag: &str, base: i64, n: i64) -> (Vec<Value>, Vec<Event>) {
    let mut cloudevents = Vec::new();
    let mut events = Vec::new();
    for i in 0..n {
        let at = base + i * 1_700 + i % 3;
        let model = ["gpt-4o", "claude-sonnet-4", "gemini-2.5-pro"][(i % 3) as usize];
        let provider = ["openai", "anthropic", "gcp.gemini"][(i % 3) as usize];
        // Times in UTC and with offsets; the instant is what counts.
        let offset = [0, 120, -300, 330][(i % 4) as usize];
        if i % 5 < 3 {
            let id = format!("{tag}-lat-{i}");
            let success = i % 7 != 2;
            let mut data = json!({
                "model_id": model,
                "provider": provider,
                "tool": if i % 2 == 0 { "chat" } else { "embeddings" },
                "parameters": {"temperature": ([0.2, 0.7][(i % 2) as usize]), "stream": i % 4 == 0},
                "response_time_ms": 80.5 + (i * 37 % 900) as f64,
                "success": success,
                "input_tokens": 100 + i,
                "output_tokens": 10 + i % 13,
            });
            if !success {
                data["error_type"] = json!("timeout");
            }
            // Data's own occurred_at wins over `time`.
            let time = if i % 6 == 1 {
                data["occurred_at"] = json!(at);
                rfc3339(at - 3 * HOUR_MS, 0)
            } else {
                rfc3339(at, offset)
            };
            let parameters = json!({
                "temperature": (["0.2", "0.7"][(i % 2) as usize]),
                "stream": (i % 4 == 0).to_string(),
            });
            let mut fields = data.clone();
            fields["event_id"] = json!(scoped(&id));
            fields["occurred_at"] = json!(at);
            fields["tenant_id"] = json!(TENANT);
            fields["parameters"] = parameters;
            events.push(expected("latency", fields));
            cloudevents.push(envelope(
                &id,
                "latency",
                Some(time),
                Some(format!("session-{i}")),
                data,
            ));
        } else {
            let id = format!("{tag}-use-{i}");
            let subject = format!("user-{}", i % 4);
            let mut data = json!({
                "model_id": model,
                "provider": provider,
                "feature": (["summarise", "support"][(i % 2) as usize]),
                "input_tokens": 1_000 + i * 7,
                "output_tokens": 200 + i,
                "cost_usd_nanos": 1_250_000 + i * 1_000,
            });
            // Token classes, on some: parts of the input and output counts.
            if i % 3 == 0 {
                data["cache_read_input_tokens"] = json!((1_000 + i * 7) / 4);
            }
            if i % 4 == 1 {
                data["reasoning_output_tokens"] = json!((200 + i) / 2);
            }
            // Data's own user_id wins over `subject`.
            let user = if i % 9 == 4 {
                data["user_id"] = json!("data-user");
                "data-user".to_owned()
            } else {
                subject.clone()
            };
            let mut fields = data.clone();
            fields["event_id"] = json!(scoped(&id));
            fields["occurred_at"] = json!(at);
            fields["tenant_id"] = json!(TENANT);
            fields["user_id"] = json!(user);
            events.push(expected("usage", fields));
            cloudevents.push(envelope(
                &id,
                "usage",
                Some(rfc3339(at, offset)),
                Some(subject),
                data,
            ));
        }
    }
    (cloudevents, events)
}

/// Status and JSON body of a `POST /v1/events`.
async fn post(
    gateway: &TestGateway,
    key: Option<&str>,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut request = gateway
        .http
        .post(format!("{}/v1/events", gateway.url))
        .header(CONTENT_TYPE, content_type)
        .body(body);
    if let Some(key) = key {
        request = request.header(AUTHORIZATION, format!("Bearer {key}"));
    }
    let response = request.send().await.expect("the gateway answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The (index, field) pairs of a 400 answer's problems.
fn problems(body: &Value) -> BTreeSet<(Option<u64>, String)> {
    body["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("problems in {body}"))
        .iter()
        .map(|p| {
            (
                p["index"].as_u64(),
                p["field"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The event ids the gateway makes of CloudEvents: `<source>#<id>`.
fn ids_of(cloudevents: &[Value]) -> Value {
    cloudevents
        .iter()
        .map(|e| json!(scoped(e["id"].as_str().expect("id"))))
        .collect()
}

/// The event id of a CloudEvent `id` from [`SOURCE`].
fn scoped(id: &str) -> String {
    format!("{SOURCE}#{id}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudevent_batches_count_once_and_a_bad_batch_publishes_nothing() {
    let env = TestEnv::new("ce_ingest");
    env.create_topics().await;
    let _aggregator = env.spawn("centile-aggregator", &[]);
    let _sink = env.spawn("centile-sink", &[]);
    let gateway = TestGateway::start(&env, &[(KEY, TENANT)], &[]).await;
    let base = (now_ms() / HOUR_MS - 1) * HOUR_MS + 9 * 60_000;

    let (cloudevents, events) = batch("ce", base, 80);
    let mut truth = Truth::default();
    events.iter().for_each(|e| truth.add(e));
    let body = Value::Array(cloudevents.clone()).to_string();
    let (status, answer) = post(
        &gateway,
        Some(KEY),
        &format!("{BATCH}; charset=utf-8"),
        body.clone(),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"], 80);
    assert_eq!(
        answer["event_ids"],
        ids_of(&cloudevents),
        "the CloudEvent ids, in order"
    );

    // A single event in structured mode: no data time, so `time` it is.
    let single_at = base + 4 * 60_000 + 17;
    let single = envelope(
        "ce-single-1",
        "usage",
        Some(rfc3339(single_at, 60)),
        Some("user-single".into()),
        json!({"model_id": "ce-single-model", "provider": "mistral_ai", "feature": "search",
               "input_tokens": 77, "output_tokens": 0, "cost_usd_nanos": 5}),
    );
    let (status, answer) = post(&gateway, Some(KEY), SINGLE, single.to_string()).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        answer,
        json!({"accepted": 1, "event_ids": [scoped("ce-single-1")]})
    );
    truth.add(&expected(
        "usage",
        json!({"event_id": scoped("ce-single-1"), "occurred_at": single_at, "tenant_id": TENANT,
               "user_id": "user-single", "model_id": "ce-single-model", "provider": "mistral_ai",
               "feature": "search", "input_tokens": 77, "output_tokens": 0, "cost_usd_nanos": 5}),
    ));

    // One bad event refuses the batch: every problem named, nothing published.
    let (mut refused, _) = batch("never", base, 6);
    for event in &mut refused {
        event["data"]["model_id"] = json!("ce-never");
    }
    refused[1]["specversion"] = json!("0.3");
    refused[3]["data"]
        .as_object_mut()
        .expect("data")
        .remove("model_id");
    let (status, answer) = post(
        &gateway,
        Some(KEY),
        BATCH,
        Value::Array(refused).to_string(),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"], "invalid", "{answer}");
    assert_eq!(
        problems(&answer),
        BTreeSet::from([
            (Some(1), "specversion".to_owned()),
            (Some(3), "data.model_id".to_owned()),
        ]),
        "{answer}"
    );
    assert!(
        answer["problems"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("1.0")),
        "{answer}"
    );

    truth.seal();
    wait_until_complete(&env, &truth, Duration::from_secs(90)).await;
    assert_exact_aggregates(&env.clickhouse(), &truth).await;
    assert_raw_exactly_once(&env, &truth).await;
    let never = env
        .query_u64(
            "SELECT count() FROM (SELECT model_id FROM latency_events UNION ALL \
             SELECT model_id FROM usage_events) WHERE model_id = 'ce-never'",
        )
        .await;
    assert_eq!(never, Some(0), "nothing of the refused batch was published");
    let users: Vec<(String, u64)> = env
        .clickhouse()
        .query(
            "SELECT assumeNotNull(user_id) AS user, toUInt64(count()) FROM usage_events_dedup \
             GROUP BY user ORDER BY user",
        )
        .fetch_all()
        .await
        .expect("users");
    let mut want: Vec<(String, u64)> = Vec::new();
    for event in &events {
        if let Event::Usage(u) = event {
            let user = u.user_id.clone().expect("every usage event has a user");
            match want.iter_mut().find(|(name, _)| *name == user) {
                Some((_, n)) => *n += 1,
                None => want.push((user, 1)),
            }
        }
    }
    want.push(("user-single".into(), 1));
    want.sort();
    assert_eq!(users, want, "subject, or the data's user_id, is the user");

    // The same batch again: accepted, published nowhere a second time.
    let (status, answer) = post(&gateway, Some(KEY), BATCH, body).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["event_ids"], ids_of(&cloudevents));
    let scrape = gateway.service.metrics().await;
    let deduplicated = metric_sum(&scrape, "centile_gateway_events_deduplicated_total", &[]);
    assert_eq!(deduplicated, Some(80.0), "every re-sent event recognised");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_exact_aggregates(&env.clickhouse(), &truth).await;
    let raw = env
        .query_u64(
            "SELECT count() FROM (SELECT event_id FROM latency_events UNION ALL \
             SELECT event_id FROM usage_events)",
        )
        .await;
    assert_eq!(raw, Some(81), "nothing was published twice, not even raw");
    let latency_events = events
        .iter()
        .filter(|e| matches!(e, Event::Latency(_)))
        .count();
    for (topic, expected) in [
        (&env.config.topics.latency, latency_events),
        (&env.config.topics.usage, 81 - latency_events),
    ] {
        let messages = env.read_topic(topic, Duration::from_secs(3)).len();
        assert_eq!(messages, expected, "{topic}: each event published once");
    }

    assert_eq!(
        metric_sum(
            &scrape,
            "centile_gateway_requests_total",
            &["route=\"/v1/events\"", "code=\"400\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &scrape,
            "centile_gateway_events_accepted_total{kind=\"usage\"}"
        ),
        Some(
            (events
                .iter()
                .filter(|e| matches!(e, Event::Usage(_)))
                .count()
                * 2
                + 1) as f64
        ),
        "accepted counts every event of every 202"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudevent_refusals_name_the_attribute_and_publish_nothing() {
    let env = TestEnv::new("ce_refuse");
    env.create_topics().await;
    let gateway = TestGateway::start(&env, &[(KEY, TENANT)], &[]).await;
    let now = now_ms();
    let good = || {
        envelope(
            "ce-refused-0",
            "latency",
            Some(rfc3339(now - 60_000, 0)),
            None,
            json!({"model_id": "ce-refused", "provider": "openai", "tool": "chat",
                   "response_time_ms": 12.5, "success": true}),
        )
    };

    // Content types: only the two structured modes.
    for content_type in ["application/json", "text/plain", "application/cloudevents"] {
        let (status, answer) = post(&gateway, Some(KEY), content_type, good().to_string()).await;
        assert_eq!(status, 415, "{content_type}: {answer}");
        assert_eq!(answer["error"], "unsupported_media_type");
    }
    let (status, _) = post(&gateway, None, SINGLE, good().to_string()).await;
    assert_eq!(status, 401);
    // Single takes one object, batch an array.
    let (status, answer) = post(
        &gateway,
        Some(KEY),
        SINGLE,
        Value::Array(vec![good()]).to_string(),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = post(&gateway, Some(KEY), BATCH, good().to_string()).await;
    assert_eq!(status, 400, "{answer}");

    // Every broken attribute and data field, each under its event's index.
    let mut events: Vec<Value> = (0..7).map(|_| good()).collect();
    for (i, event) in events.iter_mut().enumerate() {
        event["id"] = json!(format!("ce-refused-{i}"));
    }
    events[0]["type"] = json!("com.example.order.created");
    events[1].as_object_mut().expect("event").remove("id");
    events[2].as_object_mut().expect("event").remove("time");
    events[3]["data"]["success"] = json!("yes");
    events[4]["data"]["tenant_id"] = json!("someone-else");
    events[5]["datacontenttype"] = json!("application/xml");
    events[6]["data"]["event_id"] = json!("a-different-id");
    let (status, answer) = post(&gateway, Some(KEY), BATCH, Value::Array(events).to_string()).await;
    assert_eq!(status, 400, "{answer}");
    let found = problems(&answer);
    for (index, field) in [
        (0, "type"),
        (1, "id"),
        (2, "time"),
        (3, "data.success"),
        (4, "data.tenant_id"),
        (5, "datacontenttype"),
        (6, "data.event_id"),
    ] {
        assert!(
            found.contains(&(Some(index), field.to_owned())),
            "[{index}] {field} missing from {answer}"
        );
    }
    let unknown_type = answer["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .find(|p| p["index"] == 0)
        .expect("problem 0");
    assert!(
        unknown_type["reason"]
            .as_str()
            .is_some_and(|r| r.contains("centile.latency") && r.contains("centile.usage")),
        "names the known types: {unknown_type}"
    );

    let scrape = gateway.service.metrics().await;
    assert_eq!(
        metric_sum(
            &scrape,
            "centile_gateway_requests_total",
            &["route=\"/v1/events\"", "code=\"415\""]
        ),
        Some(3.0)
    );
    assert_eq!(
        metric_sum(&scrape, "centile_gateway_events_accepted_total", &[]),
        Some(0.0)
    );
    for topic in [&env.config.topics.latency, &env.config.topics.usage] {
        let published = env.read_topic(topic, Duration::from_secs(2));
        assert!(
            published.is_empty(),
            "{topic}: {} messages",
            published.len()
        );
    }
}

/// A problem is named after what the client sent: a CloudEvent's `time`,
/// `id` and `subject` are attributes, not data fields, even though the
/// gateway folds them into the data before reading it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn cloudevent_problems_name_the_attributes_the_client_sent() {
    let env = TestEnv::new("ce_names");
    env.create_topics().await;
    let gateway = TestGateway::start(&env, &[(KEY, TENANT)], &[]).await;
    let now = now_ms();
    let usage = |id: &str, time: String, subject: &str| {
        envelope(
            id,
            "usage",
            Some(time),
            Some(subject.to_owned()),
            json!({"model_id": "ce-names", "provider": "openai", "feature": "f",
                   "input_tokens": 1, "output_tokens": 1, "cost_usd_nanos": 1}),
        )
    };
    let events = vec![
        usage("ce-names-0", "yesterday".into(), "u"),
        usage("ce-names-1", rfc3339(now - 30 * 24 * HOUR_MS, 0), "u"),
        usage(&"i".repeat(300), rfc3339(now, 0), "u"),
        usage("ce-names-3", rfc3339(now, 0), &"s".repeat(300)),
    ];
    let (status, answer) = post(&gateway, Some(KEY), BATCH, Value::Array(events).to_string()).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        problems(&answer),
        BTreeSet::from([
            (Some(0), "time".to_owned()),
            (Some(1), "time".to_owned()),
            (Some(2), "id".to_owned()),
            (Some(3), "subject".to_owned()),
        ]),
        "{answer:#}"
    );
}

/// CloudEvents 1.0: "Producers MUST ensure that source + id is unique for
/// each distinct event"; two sources may use the same id for different
/// events, and both must count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn cloudevent_ids_are_unique_per_source() {
    let env = TestEnv::new("ce_sources");
    env.create_topics().await;
    let gateway = TestGateway::start(&env, &[(KEY, TENANT)], &[]).await;
    let event = |source: &str, tokens: i64| {
        let mut event = envelope(
            "1",
            "usage",
            Some(rfc3339(now_ms() - 60_000, 0)),
            Some("u".into()),
            json!({"model_id": "ce-sources", "provider": "openai", "feature": "f",
                   "input_tokens": tokens, "output_tokens": 1, "cost_usd_nanos": 1}),
        );
        event["source"] = json!(source);
        event
    };
    let (status, first) = post(
        &gateway,
        Some(KEY),
        SINGLE,
        event("/billing/eu", 10).to_string(),
    )
    .await;
    assert_eq!(status, 202, "{first}");
    let (status, second) = post(
        &gateway,
        Some(KEY),
        SINGLE,
        event("/billing/us", 20).to_string(),
    )
    .await;
    assert_eq!(
        status, 202,
        "another source's event 1 is another event: {second}"
    );
    assert_ne!(first["event_ids"], second["event_ids"]);
}
