//! End to end with a producer that is not Centile: Python's fastavro writes
//! latency and usage events in the Avro single-object layout of the
//! specification (`C3 01` + `bytes.fromhex(fingerprint(...))`), some of
//! them also with the deprecated reversed fingerprint order, and they are
//! published to the real broker. Every event must be counted exactly in
//! ClickHouse, nothing may be dead-lettered, the legacy messages must be
//! counted by both services and warned about once per writer schema, and
//! the panes and watermarks the aggregator writes must be readable by
//! fastavro, header included.
//!
//! Needs `python3` with `fastavro` (`pip install fastavro`), besides the
//! local stack.

use std::{
    collections::BTreeMap,
    io::Write,
    process::{Command, Stdio},
    time::Duration,
};

use centile::{
    testkit::{metric_sum, metric_value, now_ms, workspace_root, TestEnv},
    truth::{assert_exact_aggregates, wait_until_complete, Truth},
};
use centile_events::{Event, LatencyEvent, UsageEvent};
use centile_runtime::kafka::{producer_config, send_all, OutMessage};
use rdkafka::Message;
use serde_json::{json, Value};

const LEGACY_WARNING: &str = "deprecated reversed fingerprint byte order";

/// One command of `tests/interop/avro_codec.py`, JSON in and out.
fn codec(command: &str, request: &Value) -> Value {
    let mut child = Command::new("python3")
        .args(["tests/interop/avro_codec.py", command])
        .current_dir(workspace_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (with fastavro installed)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("write to python");
    let output = child.wait_with_output().expect("python finishes");
    assert!(
        output.status.success(),
        "avro_codec.py {command} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("json answer")
}

/// fastavro's messages for `events`, and its fingerprint of their schema.
fn fastavro_messages<T: serde::Serialize>(kind: &str, events: &[T]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let fingerprints = codec("fingerprints", &Value::Null);
    let fingerprint = hex::decode(fingerprints[kind]["fingerprint"].as_str().unwrap()).unwrap();
    let written = codec("encode", &json!({ "kind": kind, "records": events }));
    let messages: Vec<Vec<u8>> = written
        .as_array()
        .unwrap()
        .iter()
        .map(|m| hex::decode(m.as_str().unwrap()).unwrap())
        .collect();
    for message in &messages {
        assert_eq!(&message[..2], &[0xC3, 0x01]);
        assert_eq!(&message[2..10], fingerprint.as_slice(), "fastavro's header");
    }
    (messages, fingerprint)
}

/// The same message with the fingerprint's 8 bytes reversed: the layout
/// Centile wrote before it followed the specification.
fn legacy(message: &[u8]) -> Vec<u8> {
    let mut legacy = message.to_vec();
    legacy[2..10].reverse();
    assert_ne!(legacy, message, "a palindromic fingerprint proves nothing");
    legacy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastavro_messages_in_both_fingerprint_orders_are_counted_exactly() {
    let env = TestEnv::new("interop");
    env.create_topics().await;
    let aggregator = env.spawn("centile-aggregator", &[]);
    let sink = env.spawn("centile-sink", &[]);

    // Ten minutes of calls well inside the previous hour.
    let start = now_ms() - 50 * 60_000;
    let latency: Vec<LatencyEvent> = (0..8)
        .map(|i| LatencyEvent {
            event_id: format!("{}-py-latency-{i}", env.id),
            occurred_at: start + i * 75_000,
            tenant_id: "acme".into(),
            model_id: ["gpt-4o", "claude-sonnet-4"][i as usize % 2].into(),
            provider: ["openai", "anthropic"][i as usize % 2].into(),
            tool: "chat".into(),
            parameters: BTreeMap::from([("streaming".into(), "true".into())]),
            response_time_ms: 100.25 + i as f64 * 10.5,
            success: i != 3,
            error_type: (i == 3).then(|| "timeout".into()),
            input_tokens: Some(100 + i),
            output_tokens: (i % 3 != 0).then_some(40 + i),
            session_id: None,
        })
        .collect();
    let usage: Vec<UsageEvent> = (0..4)
        .map(|i| UsageEvent {
            event_id: format!("{}-py-usage-{i}", env.id),
            occurred_at: start + i * 120_000,
            tenant_id: "acme".into(),
            user_id: (i % 2 == 0).then(|| format!("u-{i}")),
            model_id: "gpt-4o".into(),
            provider: "openai".into(),
            feature: "chat".into(),
            input_tokens: 1_000 + i,
            output_tokens: 250,
            cost_usd_nanos: Some(1_234_567_891 + i),
            cache_read_input_tokens: None,
            cache_write_input_tokens: None,
            reasoning_output_tokens: None,
            session_id: None,
        })
        .collect();
    let mut truth = Truth::default();
    latency
        .iter()
        .for_each(|e| truth.add(&Event::Latency(e.clone())));
    usage
        .iter()
        .for_each(|e| truth.add(&Event::Usage(e.clone())));
    truth.seal();

    let (latency_bytes, _) = fastavro_messages("latency_event", &latency);
    let (usage_bytes, _) = fastavro_messages("usage_event", &usage);
    // Two latency events and one usage event in the legacy order, the rest
    // as the specification lays them out.
    const LEGACY_LATENCY: usize = 2;
    const LEGACY_USAGE: usize = 1;
    let mut out = Vec::new();
    for (i, (event, bytes)) in latency.iter().zip(&latency_bytes).enumerate() {
        out.push(OutMessage {
            topic: env.config.topics.latency.clone(),
            partition: None,
            key: Some(format!("{}/{}", event.tenant_id, event.model_id)),
            payload: if i < LEGACY_LATENCY {
                legacy(bytes)
            } else {
                bytes.clone()
            },
            headers: Vec::new(),
        });
    }
    for (i, (event, bytes)) in usage.iter().zip(&usage_bytes).enumerate() {
        out.push(OutMessage {
            topic: env.config.topics.usage.clone(),
            partition: None,
            key: Some(format!("{}/{}", event.tenant_id, event.model_id)),
            payload: if i < LEGACY_USAGE {
                legacy(bytes)
            } else {
                bytes.clone()
            },
            headers: Vec::new(),
        });
    }
    let producer = producer_config(&env.config.kafka)
        .create()
        .expect("producer");
    send_all(&producer, &out).await.expect("publish");

    wait_until_complete(&env, &truth, Duration::from_secs(180)).await;
    assert_exact_aggregates(&env.clickhouse(), &truth).await;
    assert_eq!(
        env.query_u64("SELECT toUInt64(sum(call_count)) FROM latency_hourly")
            .await,
        Some(latency.len() as u64)
    );
    assert_eq!(
        env.query_u64("SELECT count() FROM latency_events_dedup")
            .await,
        Some(latency.len() as u64)
    );
    assert_eq!(
        env.query_u64("SELECT count() FROM usage_events_dedup")
            .await,
        Some(usage.len() as u64)
    );
    assert!(
        env.read_topic(&env.config.topics.dlq, Duration::from_secs(3))
            .is_empty(),
        "nothing is dead-lettered"
    );

    // Both services counted the legacy messages, by kind, and nothing else:
    // the panes and watermarks the aggregator wrote are in the spec's order.
    let scrape = aggregator.metrics().await;
    let legacy_count = |scrape: &str, service: &str, kind: &str| {
        metric_value(
            scrape,
            &format!("centile_{service}_legacy_fingerprint_messages_total{{kind=\"{kind}\"}}"),
        )
    };
    assert_eq!(
        legacy_count(&scrape, "aggregator", "latency_event"),
        Some(LEGACY_LATENCY as f64)
    );
    assert_eq!(
        legacy_count(&scrape, "aggregator", "usage_event"),
        Some(LEGACY_USAGE as f64)
    );
    assert_eq!(
        metric_value(&scrape, "centile_aggregator_events_total{kind=\"latency\"}"),
        Some(latency.len() as f64)
    );
    let scrape = sink.metrics().await;
    assert_eq!(
        legacy_count(&scrape, "sink", "latency_event"),
        Some(LEGACY_LATENCY as f64)
    );
    assert_eq!(
        legacy_count(&scrape, "sink", "usage_event"),
        Some(LEGACY_USAGE as f64)
    );
    for kind in ["latency_pane", "usage_pane", "watermark"] {
        assert_eq!(legacy_count(&scrape, "sink", kind), Some(0.0), "{kind}");
    }
    assert_eq!(
        metric_sum(&scrape, "centile_sink_refused_messages_total", &[]),
        Some(0.0),
        "no dead letters counted"
    );

    // One warning per writer schema and process, however many messages.
    for service in [&aggregator, &sink] {
        let log = service.log();
        let warnings: Vec<&str> = log.lines().filter(|l| l.contains(LEGACY_WARNING)).collect();
        assert_eq!(warnings.len(), 2, "{}: {warnings:#?}", service.name);
        for kind in ["latency event", "usage event"] {
            assert_eq!(
                warnings
                    .iter()
                    .filter(|l| l.contains(&format!("producer of {kind} messages")))
                    .count(),
                1,
                "{}: {kind}: {warnings:#?}",
                service.name
            );
        }
        assert!(warnings.iter().all(|l| l.contains("WARN")), "{warnings:#?}");
    }

    // fastavro reads every pane and watermark the aggregator published; the
    // helper refuses any header but C3 01 + fastavro's own fingerprint.
    let rollups = env.read_topic(&env.config.topics.rollups, Duration::from_secs(3));
    assert!(!rollups.is_empty());
    let hex: Vec<String> = rollups
        .iter()
        .map(|m| hex::encode(m.payload().unwrap_or_default()))
        .collect();
    let read = codec("decode", &json!(hex));
    let mut kinds = BTreeMap::<String, usize>::new();
    for message in read.as_array().unwrap() {
        *kinds
            .entry(message["kind"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert!(kinds.contains_key("latency_pane"), "{kinds:?}");
    assert!(kinds.contains_key("usage_pane"), "{kinds:?}");
    assert!(kinds.contains_key("watermark"), "{kinds:?}");
    assert_eq!(kinds.values().sum::<usize>(), rollups.len());
    drop((aggregator, sink));
}
