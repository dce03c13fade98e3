//! The gateway findings of issue 12, each reproduced against a running
//! gateway: duplicate ids within one request, idempotency keys and ids
//! reused for other content, clients that disconnect mid-body, and a body
//! built to make the error answer (and the parsing behind it) huge.

use std::{
    collections::BTreeMap,
    io::Write,
    net::TcpStream,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use centile::{
    gateway_kit::{Answer, TestGateway},
    testkit::{metric_sum, metric_value, now_ms, rss_of, TestEnv},
};
use centile_events::{decode, Decoded, Schemas};
use rdkafka::Message;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde_json::{json, Value};

const KEY: &str = "ck_hardening_acme";

fn call(id: &str, model: &str, at: i64) -> Value {
    json!({
        "event_id": id,
        "occurred_at": at,
        "model_id": model,
        "provider": "openai",
        "tool": "chat",
        "response_time_ms": 12.5,
        "success": true,
    })
}

/// How many times each event id is on the latency topic, and its models.
fn published(env: &TestEnv) -> BTreeMap<String, Vec<String>> {
    let schemas = Schemas::new();
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for message in env.read_topic(&env.config.topics.latency, Duration::from_secs(4)) {
        match decode(&schemas, message.payload().unwrap_or_default()) {
            Ok(Decoded::Latency(e)) => found.entry(e.event_id).or_default().push(e.model_id),
            other => panic!("unexpected message {other:?}"),
        }
    }
    found
}

/// POSTs with an `Idempotency-Key` given as raw bytes (the kit's helper
/// only takes visible ASCII).
async fn post_with_key(gateway: &TestGateway, body: &Value, key: &[u8]) -> Answer {
    let response = gateway
        .http
        .post(format!("{}/v1/events/latency", gateway.url))
        .header(CONTENT_TYPE, "application/json")
        .header(AUTHORIZATION, format!("Bearer {KEY}"))
        .header(
            "idempotency-key",
            HeaderValue::from_bytes(key).expect("header bytes"),
        )
        .body(body.to_string())
        .send()
        .await
        .expect("the gateway answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    Answer {
        status,
        retry_after: None,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

fn problems(answer: &Answer) -> Vec<(Value, String, String)> {
    answer.body["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("problems in {:?}", answer.body))
        .iter()
        .map(|p| {
            (
                p["index"].clone(),
                p["field"].as_str().unwrap_or_default().to_owned(),
                p["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_id_twice_in_one_request_is_published_once_or_refused() {
    let env = TestEnv::new("gw_hard_dup");
    env.create_topics().await;
    let gateway = TestGateway::start(&env, &[(KEY, "acme")], &[]).await;
    let at = now_ms() - 1_000;

    // Identical copies collapse: the answer keeps one id per position.
    let same = call("dup-1", "model-a", at);
    let body = json!([same, call("dup-2", "model-a", at), same]);
    let answer = gateway.post_json("latency", KEY, &body).await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    assert_eq!(answer.body["event_ids"], json!(["dup-1", "dup-2", "dup-1"]));
    assert_eq!(answer.body["accepted"], 3);

    // Copies that differ are refused, both positions named.
    let body = json!([
        call("dup-3", "model-a", at),
        call("dup-4", "model-a", at),
        call("dup-3", "model-b", at),
    ]);
    let answer = gateway.post_json("latency", KEY, &body).await;
    assert_eq!(answer.status, 400, "{:?}", answer.body);
    let found = problems(&answer);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(
        (found[0].0.clone(), found[0].1.as_str()),
        (json!(0), "event_id")
    );
    assert_eq!(
        (found[1].0.clone(), found[1].1.as_str()),
        (json!(2), "event_id")
    );
    assert!(
        found[1].2.contains("dup-3") && found[1].2.contains("index 0"),
        "{found:?}"
    );

    let topic = published(&env);
    assert_eq!(
        topic.get("dup-1"),
        Some(&vec!["model-a".to_owned()]),
        "{topic:?}"
    );
    assert_eq!(topic.get("dup-2"), Some(&vec!["model-a".to_owned()]));
    assert!(
        !topic.contains_key("dup-3") && !topic.contains_key("dup-4"),
        "{topic:?}"
    );
    let scrape = gateway.service.metrics().await;
    assert_eq!(
        metric_value(
            &scrape,
            "centile_gateway_events_deduplicated_total{kind=\"latency\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_are_checked_and_reuse_with_other_content_is_a_conflict() {
    let env = TestEnv::new("gw_hard_idem");
    env.create_topics().await;
    let gateway = TestGateway::start(&env, &[(KEY, "acme")], &[]).await;
    let at = now_ms() - 1_000;

    // A key that is not ASCII, or longer than documented, is refused.
    let body = json!([call("idem-0", "model-a", at)]);
    let answer = post_with_key(&gateway, &body, "café-1".as_bytes()).await;
    assert_eq!(answer.status, 400, "{:?}", answer.body);
    let found = problems(&answer);
    assert_eq!(found[0].1, "Idempotency-Key");
    assert!(found[0].2.contains("ASCII"), "{found:?}");
    let long = "k".repeat(100 * 1024);
    let answer = post_with_key(&gateway, &body, long.as_bytes()).await;
    assert_eq!(answer.status, 400, "{:?}", answer.body);
    let found = problems(&answer);
    assert_eq!(found[0].1, "Idempotency-Key");
    assert!(found[0].2.contains("limit 256"), "{found:?}");
    let fits = json!([call("idem-5", "model-a", at)]);
    let answer = post_with_key(&gateway, &fits, "k".repeat(256).as_bytes()).await;
    assert_eq!(answer.status, 202, "256 bytes is fine: {:?}", answer.body);

    // A key reused: the same body replays, another body is a conflict.
    let first = json!([call("idem-1", "model-a", at)]);
    let other = json!([call("idem-2", "model-b", at)]);
    let answer = post_with_key(&gateway, &first, b"req-1").await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    let answer = post_with_key(&gateway, &other, b"req-1").await;
    assert_eq!(answer.status, 409, "{:?}", answer.body);
    assert_eq!(answer.body["error"], "conflict");
    assert_eq!(problems(&answer)[0].1, "Idempotency-Key");
    let answer = post_with_key(&gateway, &first, b"req-1").await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    assert_eq!(answer.body["event_ids"], json!(["idem-1"]));

    // Generated ids under one key, a different body: the same ids would
    // name other content.
    let mut unnamed = call("", "model-a", at);
    unnamed.as_object_mut().unwrap().remove("event_id");
    let answer = post_with_key(&gateway, &json!([unnamed]), b"req-2").await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    unnamed["model_id"] = json!("model-b");
    let answer = post_with_key(&gateway, &json!([unnamed]), b"req-2").await;
    assert_eq!(answer.status, 409, "{:?}", answer.body);

    // An id reused with other content: 409 naming it; the same content is
    // answered 202 without a second copy.
    let answer = gateway
        .post_json("latency", KEY, &json!([call("idem-3", "model-a", at)]))
        .await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    let changed = json!([call("idem-4", "model-a", at), call("idem-3", "model-b", at)]);
    let answer = gateway.post_json("latency", KEY, &changed).await;
    assert_eq!(answer.status, 409, "{:?}", answer.body);
    let found = problems(&answer);
    assert_eq!(
        (found[0].0.clone(), found[0].1.as_str()),
        (json!(1), "event_id")
    );
    assert!(found[0].2.contains("idem-3"), "{found:?}");
    let answer = gateway
        .post_json("latency", KEY, &json!([call("idem-3", "model-a", at)]))
        .await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);

    let topic = published(&env);
    assert_eq!(
        topic.get("idem-1"),
        Some(&vec!["model-a".to_owned()]),
        "{topic:?}"
    );
    assert_eq!(
        topic.get("idem-3"),
        Some(&vec!["model-a".to_owned()]),
        "{topic:?}"
    );
    for refused in ["idem-0", "idem-2", "idem-4"] {
        assert!(!topic.contains_key(refused), "{refused}: {topic:?}");
    }
    let models: Vec<&String> = topic.values().flatten().collect();
    assert_eq!(
        models.iter().filter(|m| m.as_str() == "model-b").count(),
        0,
        "{topic:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_mid_body_is_a_disconnect_not_a_413() {
    let env = TestEnv::new("gw_hard_gone");
    env.create_topics().await;
    let gateway = TestGateway::start(&env, &[(KEY, "acme")], &[]).await;
    let addr = gateway.url.trim_start_matches("http://").to_owned();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(&addr).expect("connect");
        write!(
            stream,
            "POST /v1/events/latency HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {KEY}\r\n\
             Content-Type: application/json\r\nContent-Length: 10000\r\n\r\n[{{\"event_id\": \"gone\""
        )
        .expect("write");
        stream.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(100));
        drop(stream);
    }
    let route = "route=\"/v1/events/latency\"";
    let scrape = centile::testkit::eventually(
        "three disconnects counted",
        Duration::from_secs(10),
        || async {
            let scrape = gateway.service.metrics().await;
            let gone = metric_sum(
                &scrape,
                "centile_gateway_requests_total",
                &[route, "code=\"499\""],
            );
            (gone == Some(3.0)).then_some(scrape)
        },
    )
    .await;
    // Every known code exists from start at zero; none was answered 413.
    assert_eq!(
        metric_sum(
            &scrape,
            "centile_gateway_requests_total",
            &[route, "code=\"413\""]
        ),
        Some(0.0),
        "{scrape}"
    );
    assert!(
        gateway
            .service
            .log()
            .contains("client disconnected mid-body"),
        "{}",
        gateway.service.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_400000_unknown_keys_draws_a_small_answer_in_bounded_memory() {
    let env = TestEnv::new("gw_hard_keys");
    env.create_topics().await;
    let gateway = TestGateway::start(&env, &[(KEY, "acme")], &[]).await;
    let mut event = call("many-keys", "model-a", now_ms() - 1_000);
    let object = event.as_object_mut().unwrap();
    for i in 0..400_000 {
        object.insert(format!("k{i}"), json!(0));
    }
    let body = event.to_string();
    assert!(
        body.len() > 4_000_000 && body.len() < 5 * 1024 * 1024,
        "{}",
        body.len()
    );
    let baseline = gateway.service.rss_bytes().expect("rss");
    let peak = Arc::new(AtomicU64::new(baseline));
    let done = Arc::new(AtomicBool::new(false));
    let pid = gateway.service.pid().expect("pid");
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(rss) = rss_of(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let response = gateway
        .http
        .post(format!("{}/v1/events/latency", gateway.url))
        .header(CONTENT_TYPE, "application/json")
        .header(AUTHORIZATION, format!("Bearer {KEY}"))
        .body(body)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 400);
    let text = response.text().await.expect("body");
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    assert!(text.len() < 16 * 1024, "the answer is {} bytes", text.len());
    let answer: Value = serde_json::from_str(&text).expect("json");
    let listed = answer["problems"].as_array().expect("problems");
    assert_eq!(listed.len(), 101, "100 problems and a summary");
    assert_eq!(listed[0]["reason"], "unknown field");
    assert_eq!(
        listed[100]["reason"],
        format!("and {} more problems", 400_000 - 100)
    );
    assert_eq!(
        answer["message"],
        "400000 problem(s); nothing was published"
    );
    let grown = peak.load(Ordering::Relaxed).saturating_sub(baseline);
    println!("rss: baseline {baseline} B, peak growth {grown} B");
    assert!(
        grown < 120 * 1024 * 1024,
        "parsing grew the gateway by {} MiB",
        grown / (1024 * 1024)
    );
}
