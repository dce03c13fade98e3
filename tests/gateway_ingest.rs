//! Events posted to the HTTP gateway, as JSON objects, arrays and NDJSON,
//! with RFC 3339 and epoch-millisecond times, with and without event ids,
//! arrive in the ClickHouse views with exactly the right counts and sums.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use centile::{
    gateway_kit::TestGateway,
    testkit::{civil_from_days, eventually, metric_value, now_ms, TestEnv},
};
use serde_json::{json, Value};

const KEY: &str = "ck_gateway_ingest_test_key";
const TENANT: &str = "gw-acme";
const HOUR_MS: i64 = 3_600_000;

fn rfc3339(ms: i64, offset_hours: i64) -> String {
    let shifted = ms + offset_hours * HOUR_MS;
    let secs = shifted.div_euclid(1000);
    let millis = shifted.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let sign = if offset_hours < 0 { '-' } else { '+' };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}{sign}{:02}:00",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        offset_hours.abs()
    )
}

fn call(at: Value, i: i64) -> Value {
    json!({
        "occurred_at": at,
        "model_id": format!("model-{}", i % 2),
        "provider": "openai",
        "tool": "chat",
        "parameters": {"temperature": 0.2, "streaming": i % 2 == 0},
        "response_time_ms": 100 + i,
        "success": i % 5 != 0,
        "error_type": if i % 5 == 0 { Value::from("timeout") } else { Value::Null },
        "input_tokens": 10,
        "output_tokens": i,
        "session_id": format!("conv-{}", i % 4),
    })
}

fn bill(at: Value, i: i64) -> Value {
    json!({
        "occurred_at": at,
        "user_id": format!("user-{}", i % 3),
        "model_id": "model-0",
        "provider": "openai",
        "feature": "summarise",
        "input_tokens": 100,
        "output_tokens": i,
        "cost_usd_nanos": 1_000_000,
        "session_id": if i % 2 == 0 { Value::from(format!("conv-{}", i % 4)) } else { Value::Null },
    })
}

fn ndjson(events: &[Value]) -> String {
    events.iter().map(|e| e.to_string() + "\n").collect()
}

/// Polls `sql` until its single row satisfies `done`, and returns it.
async fn row_once<T>(env: &TestEnv, sql: &str, what: &str, done: impl Fn(&T) -> bool) -> T
where
    T: clickhouse::RowOwned + clickhouse::RowRead,
{
    eventually(what, Duration::from_secs(90), || async {
        let row = env.clickhouse().query(sql).fetch_one::<T>().await.ok()?;
        done(&row).then_some(row)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posted_events_of_every_shape_reach_the_views_exactly_once() {
    let env = TestEnv::new("gw_ingest");
    env.create_topics().await;
    let _aggregator = env.spawn("centile-aggregator", &[]);
    let _sink = env.spawn("centile-sink", &[]);
    let gateway = TestGateway::start(&env, &[(KEY, TENANT)], &[]).await;

    // An hour-aligned window in the past hour, inside every admission bound.
    let base = (now_ms() / HOUR_MS - 1) * HOUR_MS + 5 * 60_000;
    let mut ids = BTreeSet::new();
    let mut accept = |answer: centile::gateway_kit::Answer, expected: usize| {
        assert_eq!(answer.status, 202, "{:?}", answer.body);
        assert_eq!(answer.body["accepted"], expected);
        for id in answer.body["event_ids"].as_array().expect("ids") {
            assert!(
                ids.insert(id.as_str().expect("id").to_owned()),
                "ids are unique"
            );
        }
    };

    // One object, RFC 3339 in UTC, with its own id.
    let mut single = call(json!(rfc3339(base, 0)), 0);
    single["event_id"] = json!("client-chosen-id");
    single["tenant_id"] = json!(TENANT);
    let answer = gateway.post_json("latency", KEY, &single).await;
    assert_eq!(answer.body["event_ids"][0], "client-chosen-id");
    accept(answer, 1);

    // An array with epoch milliseconds and no ids.
    let array: Vec<Value> = (1..=50).map(|i| call(json!(base + i * 1000), i)).collect();
    accept(
        gateway
            .post_json("latency", KEY, &Value::Array(array))
            .await,
        50,
    );

    // NDJSON mixing epoch times and RFC 3339 with a +02:00 offset.
    let lines: Vec<Value> = (51..=80)
        .map(|i| {
            let at = base + i * 1000;
            call(
                if i % 2 == 0 {
                    json!(at)
                } else {
                    json!(rfc3339(at, 2))
                },
                i,
            )
        })
        .collect();
    let answer = gateway
        .post(
            "latency",
            Some(KEY),
            "application/x-ndjson",
            ndjson(&lines),
            &[],
        )
        .await;
    accept(answer, 30);

    // Usage: an array with RFC 3339 (-05:00), then NDJSON with epoch times.
    let usage: Vec<Value> = (0..20)
        .map(|i| bill(json!(rfc3339(base + i * 500, -5)), i))
        .collect();
    accept(
        gateway.post_json("usage", KEY, &Value::Array(usage)).await,
        20,
    );
    let usage_lines: Vec<Value> = (20..30).map(|i| bill(json!(base + i * 500), i)).collect();
    let answer = gateway
        .post(
            "usage",
            Some(KEY),
            "application/x-ndjson; charset=utf-8",
            ndjson(&usage_lines),
            &[],
        )
        .await;
    accept(answer, 10);
    assert_eq!(ids.len(), 111);

    let hour = base / HOUR_MS * HOUR_MS / 1000;
    let latency_sql = format!(
        "SELECT toUInt64(sum(call_count)), toUInt64(sum(error_count)), toUInt64(sum(total_output_tokens)) \
         FROM latency_hourly WHERE tenant_id = '{TENANT}' AND window_start = toDateTime({hour})"
    );
    let (calls, errors, output_tokens): (u64, u64, u64) = row_once(
        &env,
        &latency_sql,
        "81 calls in latency_hourly",
        |r: &(u64, u64, u64)| r.0 == 81,
    )
    .await;
    assert_eq!(calls, 81);
    assert_eq!(errors, (0..=80).filter(|i| i % 5 == 0).count() as u64);
    assert_eq!(output_tokens, (0..=80).sum::<u64>());

    let usage_sql = format!(
        "SELECT toUInt64(sum(request_count)), toUInt64(sum(total_output_tokens)), toString(sum(total_cost_usd)) \
         FROM usage_hourly WHERE tenant_id = '{TENANT}' AND window_start = toDateTime({hour})"
    );
    let (requests, usage_tokens, cost): (u64, u64, String) = row_once(
        &env,
        &usage_sql,
        "30 requests in usage_hourly",
        |r: &(u64, u64, String)| r.0 == 30,
    )
    .await;
    assert_eq!(requests, 30);
    assert_eq!(usage_tokens, (0..30).sum::<u64>());
    assert_eq!(cost.trim_end_matches('0').trim_end_matches('.'), "0.03");

    // The raw tables hold every returned id once, and RFC 3339 offsets were
    // converted: the +02:00 events sit at their UTC instants.
    let raw: Vec<String> = env
        .clickhouse()
        .query(&format!(
            "SELECT event_id FROM (SELECT event_id FROM latency_events FINAL WHERE tenant_id = '{TENANT}' \
             UNION ALL SELECT event_id FROM usage_events FINAL WHERE tenant_id = '{TENANT}')"
        ))
        .fetch_all::<String>()
        .await
        .expect("raw ids");
    assert_eq!(raw.iter().cloned().collect::<BTreeSet<_>>(), ids);
    assert_eq!(raw.len(), ids.len());
    // `session_id` lands with the raw events: every call names one of 4,
    // every other bill one of 2 (a null is no session).
    let sessions: Vec<(String, u64, u64)> = env
        .clickhouse()
        .query(&format!(
            "SELECT 'latency', toUInt64(uniqExact(assumeNotNull(session_id))), toUInt64(countIf(session_id IS NULL)) \
             FROM latency_events_dedup WHERE tenant_id = '{TENANT}' \
             UNION ALL SELECT 'usage', toUInt64(uniqExact(assumeNotNull(session_id))), toUInt64(countIf(session_id IS NULL)) \
             FROM usage_events_dedup WHERE tenant_id = '{TENANT}' AND session_id IS NOT NULL \
             UNION ALL SELECT 'usage without', toUInt64(0), toUInt64(countIf(session_id IS NULL)) \
             FROM usage_events_dedup WHERE tenant_id = '{TENANT}'"
        ))
        .fetch_all()
        .await
        .expect("sessions");
    let sessions: BTreeMap<String, (u64, u64)> =
        sessions.into_iter().map(|(k, a, b)| (k, (a, b))).collect();
    assert_eq!(sessions["latency"], (4, 0), "{sessions:?}");
    assert_eq!(sessions["usage"], (2, 0), "{sessions:?}");
    assert_eq!(sessions["usage without"], (0, 15), "{sessions:?}");
    let minute = (base + 51 * 1000) / 60_000 * 60;
    let in_minute: u64 = env
        .query_u64(&format!(
            "SELECT toUInt64(sum(call_count)) FROM latency_minute \
             WHERE tenant_id = '{TENANT}' AND window_start = toDateTime({minute})"
        ))
        .await
        .expect("minute row");
    let expected = (0..=80)
        .filter(|i| (base + i * 1000) / 60_000 * 60 == minute)
        .count() as u64;
    assert_eq!(in_minute, expected);

    let scrape = gateway.service.metrics().await;
    assert_eq!(
        metric_value(
            &scrape,
            "centile_gateway_events_accepted_total{kind=\"latency\"}"
        ),
        Some(81.0)
    );
    assert_eq!(
        metric_value(
            &scrape,
            "centile_gateway_events_accepted_total{kind=\"usage\"}"
        ),
        Some(30.0)
    );
}
