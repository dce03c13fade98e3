//! A client whose request timed out retries it, and nothing is counted
//! twice. The broker is frozen while two requests are in flight, so both
//! time out with 503 although their events are already on the way; after
//! the broker thaws and acknowledges them, the client retries:
//! - through the same gateway, with the same `Idempotency-Key`: the gateway
//!   knows the ids were acknowledged and publishes nothing again;
//! - through a second gateway (as behind a load balancer), with its own
//!   event ids: a second copy is published, and the pipeline collapses it.
//!
//! The topic then holds exactly the expected duplicates, and ClickHouse
//! counts each event once.

use std::{collections::BTreeSet, time::Duration};

use centile::{
    gateway_kit::{Answer, TestGateway},
    testkit::{eventually, metric_value, now_ms, PrivateBroker, TestEnv},
};
use serde_json::{json, Value};

const KEY: &str = "ck_retry_test_key";
const TENANT: &str = "retry-tenant";

fn call(at: i64, id: Option<String>) -> Value {
    let mut event = json!({
        "occurred_at": at,
        "model_id": "retry-model",
        "provider": "openai",
        "tool": "chat",
        "response_time_ms": 42.0,
        "success": true,
    });
    if let Some(id) = id {
        event["event_id"] = json!(id);
    }
    event
}

fn ids(answer: &Answer) -> Vec<String> {
    answer.body["event_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().expect("id").to_owned())
        .collect()
}

/// Retries like a client: again after each 503 (the gateway answers 503
/// while an earlier attempt with the same ids is still settling).
async fn retry(gateway: &TestGateway, events: &Value, headers: &[(&str, &str)]) -> Answer {
    eventually("a 202 for the retry", Duration::from_secs(60), || async {
        let answer = gateway
            .post(
                "latency",
                Some(KEY),
                "application/json",
                events.to_string(),
                headers,
            )
            .await;
        assert!(matches!(answer.status, 202 | 503), "{answer:?}");
        (answer.status == 202).then_some(answer)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_after_a_timeout_never_counts_twice() {
    let broker = PrivateBroker::start("gw_retry");
    let mut env = TestEnv::new("gw_retry");
    env.config.kafka.brokers = broker.brokers();
    // No idle cut while the broker is frozen: first copies and retries
    // fall in one segment, where duplicate ids are caught.
    env.config.aggregator.idle_timeout = Duration::from_secs(60);
    env.create_topics().await;
    let _aggregator = env.spawn("centile-aggregator", &[]);
    let _sink = env.spawn("centile-sink", &[]);
    let gateway = TestGateway::start(
        &env,
        &[(KEY, TENANT)],
        &[("CENTILE_GATEWAY_ACK_TIMEOUT", "2s")],
    )
    .await;

    // One minute well in the past, so the watermark never crosses a boundary.
    let base = (now_ms() / 3_600_000 - 1) * 3_600_000 + 10 * 60_000 + 1_000;
    let control: Vec<Value> = (0..20)
        .map(|i| call(base + i, Some(format!("control-{i}"))))
        .collect();
    let answer = gateway
        .post_json("latency", KEY, &Value::Array(control))
        .await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);

    let own_ids = Value::Array(
        (0..20)
            .map(|i| call(base + 20 + i, Some(format!("own-{i}"))))
            .collect(),
    );
    let generated = Value::Array((0..20).map(|i| call(base + 40 + i, None)).collect());
    let idempotency = [("Idempotency-Key", "request-7f3a")];

    broker.pause();
    let (first_own, first_generated) = tokio::join!(
        gateway.post_json("latency", KEY, &own_ids),
        gateway.post(
            "latency",
            Some(KEY),
            "application/json",
            generated.to_string(),
            &idempotency
        )
    );
    assert_eq!(first_own.status, 503, "{:?}", first_own.body);
    assert_eq!(first_generated.status, 503, "{:?}", first_generated.body);
    assert!(first_own.retry_after.is_some());
    broker.resume();
    gateway.wait_ready(Duration::from_secs(60)).await;

    let retried_generated = retry(&gateway, &generated, &idempotency).await;
    let generated_ids = ids(&retried_generated);
    let distinct: BTreeSet<String> = generated_ids.iter().cloned().collect();
    assert_eq!(distinct.len(), 20);
    let again = retry(&gateway, &generated, &idempotency).await;
    assert_eq!(
        generated_ids,
        ids(&again),
        "the same Idempotency-Key gives the same ids"
    );
    let scrape = gateway.service.metrics().await;
    assert_eq!(
        metric_value(
            &scrape,
            "centile_gateway_events_deduplicated_total{kind=\"latency\"}"
        ),
        Some(40.0),
        "both retries were answered from the acknowledged ids"
    );

    let second = TestGateway::start(&env, &[(KEY, TENANT)], &[]).await;
    let retried_own = retry(&second, &own_ids, &[]).await;
    assert_eq!(
        ids(&retried_own),
        (0..20).map(|i| format!("own-{i}")).collect::<Vec<_>>()
    );

    // 20 control + 20 + 20 first attempts, which did land, + 20 copies
    // published by the second gateway.
    let on_topic = env
        .read_topic(&env.config.topics.latency, Duration::from_secs(4))
        .len();
    assert_eq!(on_topic, 80, "the timed-out attempts reached the broker");

    let minute = base / 60_000 * 60;
    let sql = format!(
        "SELECT toUInt64(sum(call_count)) FROM latency_minute \
         WHERE tenant_id = '{TENANT}' AND window_start = toDateTime({minute})"
    );
    eventually(
        "60 calls in latency_minute",
        Duration::from_secs(90),
        || async { (env.query_u64(&sql).await? == 60).then_some(()) },
    )
    .await;
    // Settle, then check nothing more arrives.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(env.query_u64(&sql).await, Some(60));
    let raw = env
        .query_u64(&format!(
            "SELECT count() FROM latency_events FINAL WHERE tenant_id = '{TENANT}'"
        ))
        .await;
    assert_eq!(raw, Some(60));
}
