//! Confluent wire format through a schema registry, next to Avro
//! single-object messages on the same topic.
//!
//! No Confluent-compatible registry can run on this machine (Karapace is
//! not on PyPI, Confluent's and Apicurio's need Maven Central, Redpanda's
//! is not packaged), so these tests serve the two registry calls Centile
//! uses (`POST /subjects/{s}/versions`, `GET /schemas/ids/{id}`) from a
//! small in-test registry that follows Confluent's API, ids included.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use centile::testkit::{eventually, metric_sum, now_ms, TestEnv};
use centile_events::{encode_with, Decoded, Event, Framing, LatencyEvent, Schemas};
use centile_producer::EventPublisher;
use centile_runtime::{
    config::SchemaRegistryConfig,
    kafka::{producer_config, send_all, OutMessage},
    registry::SchemaRegistry,
};
use serde_json::{json, Value};

mod faults;

#[derive(Default)]
struct Registry {
    schemas: Mutex<Vec<String>>,
    subjects: Mutex<HashMap<String, u32>>,
    registrations: AtomicUsize,
    lookups: AtomicUsize,
    down: AtomicBool,
}

async fn register(
    State(registry): State<Arc<Registry>>,
    Path(subject): Path<String>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if registry.down.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error_code": 50301})),
        );
    }
    registry.registrations.fetch_add(1, Ordering::SeqCst);
    let text = body["schema"].as_str().unwrap_or_default().to_owned();
    let mut schemas = registry.schemas.lock().unwrap();
    let id = match schemas.iter().position(|s| *s == text) {
        Some(i) => i as u32 + 1,
        None => {
            schemas.push(text);
            schemas.len() as u32
        }
    };
    registry.subjects.lock().unwrap().insert(subject, id);
    (StatusCode::OK, Json(json!({ "id": id })))
}

async fn lookup(
    State(registry): State<Arc<Registry>>,
    Path(id): Path<u32>,
) -> (StatusCode, Json<Value>) {
    if registry.down.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error_code": 50301})),
        );
    }
    registry.lookups.fetch_add(1, Ordering::SeqCst);
    let schemas = registry.schemas.lock().unwrap();
    match schemas.get((id as usize).wrapping_sub(1)) {
        Some(schema) => (StatusCode::OK, Json(json!({ "schema": schema }))),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error_code": 40403, "message": "Schema not found"})),
        ),
    }
}

async fn start_registry() -> (Arc<Registry>, String) {
    let registry = Arc::new(Registry::default());
    let app = Router::new()
        .route("/subjects/{subject}/versions", post(register))
        .route("/schemas/ids/{id}", get(lookup))
        .with_state(registry.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (registry, url)
}

fn client(url: &str) -> SchemaRegistry {
    SchemaRegistry::from_config(&SchemaRegistryConfig {
        url: Some(url.to_owned()),
        ..SchemaRegistryConfig::default()
    })
    .unwrap()
    .unwrap()
}

fn call(tenant: &str, id: String, at: i64) -> LatencyEvent {
    LatencyEvent {
        event_id: id,
        occurred_at: at,
        tenant_id: tenant.into(),
        model_id: "m".into(),
        provider: "p".into(),
        tool: "chat".into(),
        parameters: Default::default(),
        response_time_ms: 20.0,
        success: true,
        error_type: None,
        input_tokens: None,
        output_tokens: None,
        session_id: None,
    }
}

async fn calls_in(env: &TestEnv, tenant: &str) -> Option<u64> {
    env.query_u64(&format!(
        "SELECT toUInt64(sum(call_count)) FROM latency_hourly WHERE tenant_id = '{tenant}'"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_framings_share_a_topic_and_ids_are_registered_once() {
    let (registry, url) = start_registry().await;
    let mut env = TestEnv::new("registry_mixed");
    env.set("CENTILE_SCHEMA_REGISTRY_URL", &url);
    let plain = env.publisher().await;
    let confluent = EventPublisher::new(&env.config.kafka, &env.config.topics)
        .unwrap()
        .with_registry(client(&url));
    let _aggregator = env.spawn("centile-aggregator", &[]);
    let _sink = env.spawn("centile-sink", &[]);

    let at = now_ms() - 60_000;
    let framed: Vec<Event> = (0..30)
        .map(|i| Event::Latency(call("mixed", format!("confluent-{i}"), at + i)))
        .collect();
    confluent.send_batch(&framed[..10]).await.expect("publish");
    for event in &framed[10..] {
        confluent.send(event.clone()).await.expect("publish");
    }
    let single: Vec<Event> = (0..20)
        .map(|i| Event::Latency(call("mixed", format!("single-{i}"), at + i)))
        .collect();
    plain.send_batch(&single).await.expect("publish");

    eventually("50 calls", Duration::from_secs(90), || async {
        (calls_in(&env, "mixed").await? == 50).then_some(())
    })
    .await;
    let raw = env
        .query_u64("SELECT count() FROM latency_events FINAL WHERE tenant_id = 'mixed'")
        .await;
    assert_eq!(raw, Some(50));
    assert_eq!(
        registry.registrations.load(Ordering::SeqCst),
        1,
        "registered on first use, then cached"
    );
    let subject = format!("{}-value", env.config.topics.latency);
    assert_eq!(registry.subjects.lock().unwrap().get(&subject), Some(&1));
    assert_eq!(
        registry.schemas.lock().unwrap()[0],
        Schemas::source(centile_events::SchemaKind::LatencyEvent)
    );
    assert_eq!(
        registry.lookups.load(Ordering::SeqCst),
        2,
        "the aggregator and the sink each looked the id up once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_and_an_unavailable_registry_are_dead_lettered_with_the_reason() {
    let (registry, url) = start_registry().await;
    let mut env = TestEnv::new("registry_faults");
    env.set("CENTILE_SCHEMA_REGISTRY_URL", &url);
    env.set("CENTILE_SCHEMA_REGISTRY_LOOKUP_BACKOFF", "50ms");
    env.set("CENTILE_SCHEMA_REGISTRY_FAILURE_MEMORY", "1s");
    env.create_topics().await;
    let aggregator = env.spawn("centile-aggregator", &[]);
    let sink = env.spawn("centile-sink", &[]);
    let producer = producer_config(&env.config.kafka).create().unwrap();
    let schemas = Schemas::new();
    let at = now_ms() - 60_000;
    let framed = |event: LatencyEvent, schema_id: u32| OutMessage {
        topic: env.config.topics.latency.clone(),
        partition: Some(0),
        key: None,
        payload: encode_with(
            &schemas,
            &Decoded::Latency(event),
            Framing::Confluent { schema_id },
        ),
        headers: Vec::new(),
    };

    // An id no registry knows, between two good single-object messages.
    let good = |i: i64| OutMessage {
        payload: centile_events::encode(
            &schemas,
            &Decoded::Latency(call("faults", format!("good-{i}"), at + i)),
        ),
        ..framed(call("faults", String::new(), at), 0)
    };
    send_all(
        &producer,
        &[
            good(0),
            framed(call("faults", "unknown".into(), at), 4242),
            good(1),
        ],
    )
    .await
    .unwrap();

    eventually(
        "the unknown id to be dead-lettered",
        Duration::from_secs(60),
        || async {
            let scrape = sink.metrics_if_up().await?;
            (metric_sum(
                &scrape,
                "centile_sink_refused_messages_total",
                &["reason=\"unknown_schema_id\""],
            ) == Some(1.0))
            .then_some(())
        },
    )
    .await;

    // A real id while the registry is down: retried, then dead-lettered.
    let subject = format!("{}-value", env.config.topics.latency);
    let id = client(&url)
        .register(
            &subject,
            Schemas::source(centile_events::SchemaKind::LatencyEvent),
        )
        .await
        .unwrap();
    registry.down.store(true, Ordering::SeqCst);
    send_all(
        &producer,
        &[
            framed(call("faults", "during-outage".into(), at), id),
            good(2),
        ],
    )
    .await
    .unwrap();
    eventually("two dead letters", Duration::from_secs(60), || async {
        let scrape = sink.metrics().await;
        let unknown = metric_sum(
            &scrape,
            "centile_sink_refused_messages_total",
            &["reason=\"unknown_schema_id\""],
        );
        let down = metric_sum(
            &scrape,
            "centile_sink_refused_messages_total",
            &["reason=\"schema_registry_unavailable\""],
        );
        (unknown == Some(1.0) && down == Some(1.0)).then_some(())
    })
    .await;

    // Back up: the same id now resolves, and later messages count.
    registry.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    send_all(
        &producer,
        &[framed(call("faults", "after-outage".into(), at), id)],
    )
    .await
    .unwrap();
    eventually("4 calls counted", Duration::from_secs(90), || async {
        (calls_in(&env, "faults").await? == 4).then_some(())
    })
    .await;

    let letters: HashMap<String, String> = faults::dead_letter_reasons(&env).into_iter().collect();
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert!(letters["unknown_schema_id"].contains("4242"), "{letters:?}");
    let outage = &letters["schema_registry_unavailable"];
    assert!(outage.contains(&format!("schema id {id}")), "{outage}");
    assert!(
        outage.contains("503") && outage.contains("after 4 attempts"),
        "{outage}"
    );
    let scrape = aggregator.metrics().await;
    for reason in ["unknown_schema_id", "schema_registry_unavailable"] {
        assert_eq!(
            metric_sum(
                &scrape,
                "centile_aggregator_refused_messages_total",
                &[&format!("reason=\"{reason}\"")]
            ),
            Some(1.0),
            "{reason}"
        );
    }
    let raw = env
        .query_u64("SELECT count() FROM latency_events FINAL WHERE tenant_id = 'faults'")
        .await;
    assert_eq!(raw, Some(4));
}
