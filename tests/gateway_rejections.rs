//! Every way the gateway refuses a request, each checked for its status,
//! its explanation, and that nothing of the refused request reached the
//! broker. Each refused request carries a marker model id; after an
//! accepted control request, the topic must hold the control events only.

use std::time::Duration;

use centile::{
    gateway_kit::TestGateway,
    testkit::{metric_sum, metric_value, now_ms, PrivateBroker, TestEnv},
};
use centile_events::{decode, Decoded, Schemas};
use rdkafka::Message;
use serde_json::{json, Value};

const KEY: &str = "ck_rejections_acme";
const SLOW_KEY: &str = "ck_rejections_acme_slow";
const OTHER_KEY: &str = "ck_rejections_globex";

fn call(marker: &str, i: usize) -> Value {
    json!({
        "occurred_at": now_ms() - 1_000,
        "model_id": marker,
        "provider": "openai",
        "tool": "chat",
        "response_time_ms": 10 + i,
        "success": true,
    })
}

fn calls(marker: &str, n: usize) -> Value {
    Value::Array((0..n).map(|i| call(marker, i)).collect())
}

/// The model ids of every latency event on the topic.
fn published_models(env: &TestEnv) -> Vec<String> {
    let schemas = Schemas::new();
    env.read_topic(&env.config.topics.latency, Duration::from_secs(4))
        .iter()
        .map(
            |m| match decode(&schemas, m.payload().unwrap_or_default()) {
                Ok(Decoded::Latency(e)) => e.model_id,
                other => panic!("unexpected message {other:?}"),
            },
        )
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_are_explained_and_publish_nothing() {
    let env = TestEnv::new("gw_reject");
    env.create_topics().await;
    let gateway = TestGateway::start(
        &env,
        &[(KEY, "acme"), (SLOW_KEY, "acme@2/h"), (OTHER_KEY, "globex")],
        &[
            ("CENTILE_GATEWAY_MAX_BODY_BYTES", "65536"),
            ("CENTILE_GATEWAY_MAX_BATCH_EVENTS", "100"),
        ],
    )
    .await;

    // 400: one bad event spoils the request; every problem is listed.
    let mut events = calls("rejected-400", 3);
    events[1]["response_time_ms"] = json!(-5);
    events[1]["input_tokens"] = json!("many");
    events[2]["occurred_at"] = json!(now_ms() + 3_600_000);
    events[2]["tool"] = json!("t".repeat(300));
    events[2]["parameters"] = Value::Object((0..65).map(|i| (format!("p{i}"), json!(i))).collect());
    events[2].as_object_mut().unwrap().remove("success");
    let answer = gateway.post_json("latency", KEY, &events).await;
    assert_eq!(answer.status, 400, "{:?}", answer.body);
    let mut problems: Vec<String> = answer.body["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            format!(
                "{} {}: {}",
                p["index"],
                p["field"].as_str().unwrap(),
                p["reason"].as_str().unwrap()
            )
        })
        .collect();
    problems.sort();
    assert_eq!(problems.len(), 6, "{problems:#?}");
    assert_eq!(
        problems[0],
        "1 input_tokens: wrong type: expected an integer, got a string"
    );
    assert_eq!(
        problems[1],
        "1 response_time_ms: must not be negative, got -5"
    );
    assert!(
        problems[2].starts_with("2 occurred_at: timestamp too far in the future"),
        "{problems:#?}"
    );
    assert_eq!(
        problems[3],
        "2 parameters: too many parameters: 65, limit 64"
    );
    assert_eq!(problems[4], "2 success: missing field");
    assert_eq!(
        problems[5],
        "2 tool: string too long: 300 characters, limit 256"
    );

    // 400: a body that is not JSON at all.
    let answer = gateway
        .post(
            "latency",
            Some(KEY),
            "application/json",
            "{\"model_id\": \"rejected-400\"",
            &[],
        )
        .await;
    assert_eq!(answer.status, 400);
    assert!(answer.body["problems"][0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("invalid json"));

    // 401: no key, a malformed header, an unknown key.
    let body = calls("rejected-401", 2).to_string();
    for key in [None, Some("")] {
        let answer = gateway
            .post("latency", key, "application/json", body.clone(), &[])
            .await;
        assert_eq!(answer.status, 401, "{:?}", answer.body);
    }
    let answer = gateway
        .post_json("latency", "ck_nobody_has_this", &calls("rejected-401", 2))
        .await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.body["message"], "unknown API key");

    // 403: one event names another tenant; an absent tenant_id is fine.
    let mut events = calls("rejected-403", 3);
    events[0]["tenant_id"] = json!("acme");
    events[2]["tenant_id"] = json!("globex");
    let answer = gateway.post_json("latency", KEY, &events).await;
    assert_eq!(answer.status, 403, "{:?}", answer.body);
    assert_eq!(answer.body["indexes"], json!([2]));
    // globex's key cannot write acme's events either.
    let mut events = calls("rejected-403", 1);
    events[0]["tenant_id"] = json!("acme");
    assert_eq!(
        gateway
            .post_json("latency", OTHER_KEY, &events)
            .await
            .status,
        403
    );

    // 413: too many events, then too many bytes.
    let answer = gateway
        .post_json("latency", KEY, &calls("rejected-413", 101))
        .await;
    assert_eq!(answer.status, 413);
    assert_eq!(
        answer.body["message"],
        "101 events in one request, limit 100"
    );
    let mut events = calls("rejected-413", 100);
    for event in events.as_array_mut().unwrap() {
        event["error_type"] = json!("x".repeat(250));
        event["tool"] = json!("y".repeat(250));
        event["provider"] = json!("z".repeat(250));
        event["success"] = json!(false);
    }
    assert!(events.to_string().len() > 65_536);
    let answer = gateway.post_json("latency", KEY, &events).await;
    assert_eq!(answer.status, 413, "{:?}", answer.body);
    assert_eq!(
        answer.body["message"],
        "the body is larger than 65536 bytes"
    );

    // 415: neither JSON nor NDJSON.
    let answer = gateway
        .post(
            "latency",
            Some(KEY),
            "text/csv",
            "model_id\nrejected-415\n",
            &[],
        )
        .await;
    assert_eq!(answer.status, 415);

    // 429: the slow key's bucket holds 2 requests per hour.
    for _ in 0..2 {
        let answer = gateway.post_json("latency", SLOW_KEY, &json!({})).await;
        assert_eq!(answer.status, 400, "spends a token, publishes nothing");
    }
    let answer = gateway
        .post_json("latency", SLOW_KEY, &calls("rejected-429", 2))
        .await;
    assert_eq!(answer.status, 429);
    let wait: u64 = answer.retry_after.expect("Retry-After").parse().unwrap();
    assert!(
        (1_700..=1_800).contains(&wait),
        "one token per 30 min, got {wait} s"
    );
    // Other keys of the same tenant are not held back.
    let answer = gateway
        .post_json("latency", KEY, &calls("accepted", 2))
        .await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);

    let models = published_models(&env);
    assert_eq!(
        models,
        ["accepted", "accepted"],
        "only the control request was published"
    );

    let scrape = gateway.service.metrics().await;
    for (status, count) in [
        ("400", 4.0),
        ("401", 3.0),
        ("403", 2.0),
        ("413", 2.0),
        ("415", 1.0),
        ("429", 1.0),
        ("202", 1.0),
    ] {
        assert_eq!(
            metric_sum(
                &scrape,
                "centile_gateway_requests_total",
                &[
                    "route=\"/v1/events/latency\"",
                    &format!("code=\"{status}\"")
                ]
            ),
            Some(count),
            "status {status}"
        );
    }
    assert_eq!(
        metric_value(
            &scrape,
            "centile_gateway_refused_messages_total{kind=\"latency\",reason=\"cross_tenant\"}"
        ),
        Some(4.0)
    );
    assert!(
        !gateway.service.log().contains(KEY),
        "keys never reach the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_broker_stopped_requests_get_503_and_publish_nothing() {
    let mut broker = PrivateBroker::start("gw_503");
    let mut env = TestEnv::new("gw_503");
    env.config.kafka.brokers = broker.brokers();
    env.create_topics().await;
    let gateway = TestGateway::start(
        &env,
        &[(KEY, "acme")],
        &[("CENTILE_GATEWAY_ACK_TIMEOUT", "3s")],
    )
    .await;
    let answer = gateway
        .post_json("latency", KEY, &calls("accepted", 3))
        .await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);

    broker.stop();
    gateway.wait_readyz(503, Duration::from_secs(30)).await;
    let answer = gateway
        .post_json("latency", KEY, &calls("rejected-503", 3))
        .await;
    assert_eq!(answer.status, 503, "{:?}", answer.body);
    assert_eq!(answer.retry_after.as_deref(), Some("1"));
    assert_eq!(answer.body["error"], "unavailable");

    broker.restart();
    gateway.wait_ready(Duration::from_secs(60)).await;
    let models = published_models(&env);
    assert_eq!(
        models, ["accepted"; 3],
        "nothing of the 503 request was published"
    );
    let scrape = gateway.service.metrics().await;
    assert_eq!(
        metric_value(
            &scrape,
            "centile_gateway_refused_messages_total{kind=\"latency\",reason=\"unavailable\"}"
        ),
        Some(3.0)
    );
}
