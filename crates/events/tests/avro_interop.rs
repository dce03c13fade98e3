//! Interoperability with Avro implementations other than Centile's own:
//! Python's fastavro and Apache's `avro` package write and read messages at
//! test time (`tests/interop/avro_codec.py`), and every fingerprint Centile
//! uses is compared with theirs. No vector here comes from Centile's writer.
//!
//! Needs `python3` with `fastavro` and `avro` (`pip install fastavro avro`;
//! the local stack script installs them).

mod common;

use std::{
    collections::BTreeMap,
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
    time::{SystemTime, UNIX_EPOCH},
};

use centile_events::{
    decode, decode_message, encode, Centroid, Decoded, DecodedMessage, Granularity, LatencyEvent,
    LatencyPane, LegacyFingerprint, PaneSource, SchemaKind, Schemas, UsageEvent, UsagePane,
    Watermark,
};
use serde_json::{json, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `python3` on `args` in the workspace root with `stdin`, and returns
/// its standard output; fails the test with its standard error otherwise.
fn python(args: &[&str], stdin: &str) -> String {
    let mut child = Command::new("python3")
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (with fastavro and avro installed)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write to python");
    let output = child.wait_with_output().expect("python finishes");
    assert!(
        output.status.success(),
        "python {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// One command of the interop helper, JSON in and out.
fn codec(command: &str, request: &Value) -> Value {
    let out = python(
        &["tests/interop/avro_codec.py", command],
        &request.to_string(),
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{command}: {e}: {out}"))
}

fn messages(answer: Value) -> Vec<Vec<u8>> {
    answer
        .as_array()
        .expect("a list of messages")
        .iter()
        .map(|m| hex::decode(m.as_str().expect("hex")).expect("hex"))
        .collect()
}

/// Messages that fastavro writes for `records` of `kind`.
fn fastavro_encode(kind: &str, records: Value) -> Vec<Vec<u8>> {
    messages(codec(
        "encode",
        &json!({ "kind": kind, "records": records }),
    ))
}

fn kind_of(label: &str) -> SchemaKind {
    SchemaKind::ALL
        .into_iter()
        .find(|k| k.label() == label)
        .unwrap_or_else(|| panic!("no schema kind {label}"))
}

fn fastavro_fingerprints() -> BTreeMap<String, (String, [u8; 8])> {
    let answer = codec("fingerprints", &Value::Null);
    answer
        .as_object()
        .expect("an object")
        .iter()
        .map(|(kind, v)| {
            let bytes = hex::decode(v["fingerprint"].as_str().unwrap()).unwrap();
            let canonical = v["canonical"].as_str().unwrap().to_owned();
            (
                kind.clone(),
                (canonical, bytes.try_into().expect("8 bytes")),
            )
        })
        .collect()
}

fn spec(message: Decoded) -> DecodedMessage {
    DecodedMessage {
        message,
        legacy_fingerprint: None,
    }
}

#[test]
fn bundled_fingerprints_and_canonical_forms_match_fastavro() {
    let schemas = Schemas::new();
    let fastavro = fastavro_fingerprints();
    assert_eq!(fastavro.len(), SchemaKind::ALL.len());
    for (label, (canonical, fingerprint)) in fastavro {
        let kind = kind_of(&label);
        assert_eq!(schemas.fingerprint(kind), fingerprint, "{label}");
        assert_eq!(schemas.canonical_form(kind), canonical, "{label}");
    }
}

/// Removes every `logicalType`, so the schema's canonical form is the same
/// for every implementation (Apache's Python `avro` keeps
/// `{"type":"long"}` for a logical type where Java and fastavro write
/// `"long"`).
fn without_logical_types(schema: Value) -> Value {
    match schema {
        Value::Object(mut map) => {
            if map.remove("logicalType").is_some() && map.len() == 1 {
                return map.remove("type").expect("a type");
            }
            Value::Object(
                map.into_iter()
                    .map(|(k, v)| (k, without_logical_types(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(without_logical_types).collect()),
        other => other,
    }
}

#[test]
fn fingerprints_match_apache_avro_on_schemas_without_logical_types() {
    let mut schemas = Schemas::new();
    // Every bundled schema without its logical types, plus one that uses the
    // types and attributes the bundled ones do not (fixed, bytes, float, int,
    // nested namespaces, aliases, docs, defaults, order).
    let mut cases: Vec<(SchemaKind, String)> = SchemaKind::ALL
        .into_iter()
        .map(|kind| {
            let parsed: Value = serde_json::from_str(Schemas::source(kind)).unwrap();
            (kind, without_logical_types(parsed).to_string())
        })
        .collect();
    cases.push((
        SchemaKind::Watermark,
        json!({
            "type": "record", "name": "Probe", "namespace": "interop.test", "doc": "dropped",
            "aliases": ["Old"],
            "fields": [
                {"name": "id", "type": {"type": "fixed", "name": "Id", "size": 16}},
                {"name": "blob", "type": "bytes", "default": ""},
                {"name": "ratio", "type": "float", "order": "descending"},
                {"name": "count", "type": "int"},
                {"name": "inner", "type": {"type": "record", "name": "other.Inner", "fields": [
                    {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}},
                    {"name": "tags", "type": {"type": "array", "items": "string"}}
                ]}},
                {"name": "maybe", "type": ["null", "other.Inner"], "default": null}
            ]
        })
        .to_string(),
    ));
    for (kind, avsc) in cases {
        let centile = schemas.register_writer(kind, &avsc).unwrap();
        let apache = codec("apache-fingerprint", &json!({ "avsc": avsc }));
        let apache_bytes = hex::decode(apache["fingerprint"].as_str().unwrap()).unwrap();
        assert_eq!(
            hex::encode(centile),
            hex::encode(&apache_bytes),
            "{kind:?}: Centile's fingerprint differs from Apache avro's for {}",
            apache["canonical"]
        );
    }
}

/// A message Apache's `avro` writes with a writer schema Centile only knows
/// by registration decodes into the current schema.
#[test]
fn decodes_a_message_apache_avro_writes_with_a_registered_writer_schema() {
    let mut schemas = Schemas::new();
    let parsed: Value = serde_json::from_str(Schemas::source(SchemaKind::UsageEvent)).unwrap();
    let avsc = without_logical_types(parsed).to_string();
    schemas
        .register_writer(SchemaKind::UsageEvent, &avsc)
        .unwrap();
    let records = json!([{
        "event_id": "apache-1", "occurred_at": 1_795_435_200_123_i64, "tenant_id": "acme",
        "user_id": "u-42", "model_id": "gpt-4o", "provider": "openai", "feature": "comparison",
        "input_tokens": 7, "output_tokens": 9, "cost_usd_nanos": 9_007_199_254_740_993_i64,
    }]);
    let bytes = messages(codec(
        "apache-encode",
        &json!({ "avsc": avsc, "records": records }),
    ));
    assert_eq!(
        decode_message(&schemas, &bytes[0]).unwrap(),
        spec(Decoded::Usage(UsageEvent {
            event_id: "apache-1".into(),
            occurred_at: 1_795_435_200_123,
            tenant_id: "acme".into(),
            user_id: Some("u-42".into()),
            model_id: "gpt-4o".into(),
            provider: "openai".into(),
            feature: "comparison".into(),
            input_tokens: 7,
            output_tokens: 9,
            cost_usd_nanos: Some(9_007_199_254_740_993),
            cache_read_input_tokens: None,
            cache_write_input_tokens: None,
            reasoning_output_tokens: None,
            session_id: None,
        }))
    );
}

fn latency_records() -> (Value, Vec<LatencyEvent>) {
    let records = json!([
        {
            "event_id": "fa-1", "occurred_at": 1_795_435_200_000_i64, "tenant_id": "acme",
            "model_id": "gpt-4o", "provider": "openai", "tool": "chat",
            "parameters": {"streaming": "true", "temperature": "0.2", "ключ": "значение ✓"},
            "response_time_ms": 812.5, "success": true, "error_type": null,
            "input_tokens": 120, "output_tokens": 48, "session_id": "conv-1 ✓"
        },
        {
            "event_id": "fa-2", "occurred_at": 1, "tenant_id": "t", "model_id": "m",
            "provider": "p", "tool": "search", "parameters": {},
            "response_time_ms": 0.1, "success": false, "error_type": "timeout",
            "input_tokens": null, "output_tokens": 9_007_199_254_740_993_i64,
            "session_id": null
        }
    ]);
    let events = vec![
        LatencyEvent {
            event_id: "fa-1".into(),
            occurred_at: 1_795_435_200_000,
            tenant_id: "acme".into(),
            model_id: "gpt-4o".into(),
            provider: "openai".into(),
            tool: "chat".into(),
            parameters: BTreeMap::from([
                ("streaming".into(), "true".into()),
                ("temperature".into(), "0.2".into()),
                ("ключ".into(), "значение ✓".into()),
            ]),
            response_time_ms: 812.5,
            success: true,
            error_type: None,
            input_tokens: Some(120),
            output_tokens: Some(48),
            session_id: Some("conv-1 ✓".into()),
        },
        LatencyEvent {
            event_id: "fa-2".into(),
            occurred_at: 1,
            tenant_id: "t".into(),
            model_id: "m".into(),
            provider: "p".into(),
            tool: "search".into(),
            parameters: BTreeMap::new(),
            response_time_ms: 0.1,
            success: false,
            error_type: Some("timeout".into()),
            input_tokens: None,
            output_tokens: Some(9_007_199_254_740_993),
            session_id: None,
        },
    ];
    (records, events)
}

fn usage_records() -> (Value, Vec<UsageEvent>) {
    let records = json!([
        {
            "event_id": "fu-1", "occurred_at": 1_795_435_260_001_i64, "tenant_id": "acme",
            "user_id": "u-42", "model_id": "claude-sonnet-4", "provider": "anthropic",
            "feature": "auto-router", "input_tokens": 1000, "output_tokens": 250,
            "cost_usd_nanos": 1_234_567_891, "cache_read_input_tokens": 600,
            "cache_write_input_tokens": 100, "reasoning_output_tokens": 50,
            "session_id": "conv-7"
        },
        {
            "event_id": "fu-2", "occurred_at": 0, "tenant_id": "acme", "user_id": null,
            "model_id": "m", "provider": "p", "feature": "image", "input_tokens": 0,
            "output_tokens": 0, "cost_usd_nanos": 9_223_372_036_854_775_807_i64,
            "cache_read_input_tokens": null, "cache_write_input_tokens": null,
            "reasoning_output_tokens": null, "session_id": null
        },
        {
            "event_id": "fu-3", "occurred_at": 1_795_435_260_002_i64, "tenant_id": "acme",
            "user_id": null, "model_id": "gpt-4o", "provider": "openai", "feature": "chat",
            "input_tokens": 40, "output_tokens": 7, "cost_usd_nanos": null,
            "cache_read_input_tokens": 10, "cache_write_input_tokens": null,
            "reasoning_output_tokens": null, "session_id": null
        }
    ]);
    let events = vec![
        UsageEvent {
            event_id: "fu-1".into(),
            occurred_at: 1_795_435_260_001,
            tenant_id: "acme".into(),
            user_id: Some("u-42".into()),
            model_id: "claude-sonnet-4".into(),
            provider: "anthropic".into(),
            feature: "auto-router".into(),
            input_tokens: 1000,
            output_tokens: 250,
            cost_usd_nanos: Some(1_234_567_891),
            cache_read_input_tokens: Some(600),
            cache_write_input_tokens: Some(100),
            reasoning_output_tokens: Some(50),
            session_id: Some("conv-7".into()),
        },
        UsageEvent {
            event_id: "fu-2".into(),
            occurred_at: 0,
            tenant_id: "acme".into(),
            user_id: None,
            model_id: "m".into(),
            provider: "p".into(),
            feature: "image".into(),
            input_tokens: 0,
            output_tokens: 0,
            cost_usd_nanos: Some(i64::MAX),
            cache_read_input_tokens: None,
            cache_write_input_tokens: None,
            reasoning_output_tokens: None,
            session_id: None,
        },
        // No cost: the price book prices it.
        UsageEvent {
            event_id: "fu-3".into(),
            occurred_at: 1_795_435_260_002,
            tenant_id: "acme".into(),
            user_id: None,
            model_id: "gpt-4o".into(),
            provider: "openai".into(),
            feature: "chat".into(),
            input_tokens: 40,
            output_tokens: 7,
            cost_usd_nanos: None,
            cache_read_input_tokens: Some(10),
            cache_write_input_tokens: None,
            reasoning_output_tokens: None,
            session_id: None,
        },
    ];
    (records, events)
}

#[test]
fn decodes_events_fastavro_writes() {
    let schemas = Schemas::new();
    let (records, expected) = latency_records();
    let written = fastavro_encode("latency_event", records);
    assert_eq!(written.len(), expected.len());
    for (bytes, event) in written.iter().zip(expected) {
        assert_eq!(
            decode_message(&schemas, bytes).unwrap(),
            spec(Decoded::Latency(event))
        );
    }
    let (records, expected) = usage_records();
    let written = fastavro_encode("usage_event", records);
    assert_eq!(written.len(), expected.len());
    for (bytes, event) in written.iter().zip(expected) {
        assert_eq!(
            decode_message(&schemas, bytes).unwrap(),
            spec(Decoded::Usage(event))
        );
    }
}

#[test]
fn fastavro_reads_every_kind_centile_writes() {
    let schemas = Schemas::new();
    let (latency_json, latency) = latency_records();
    let (usage_json, usage) = usage_records();
    let source = PaneSource {
        topic: "centile.latency.v1".into(),
        partition: 2,
        first_offset: 10,
        last_offset: 99,
    };
    let latency_pane = LatencyPane {
        pane_id: "pane-1".into(),
        version: 99,
        granularity: Granularity::Minute,
        window_start: 1_795_435_200_000,
        window_end: 1_795_435_260_000,
        tenant_id: "acme".into(),
        model_id: "gpt-4o".into(),
        provider: "openai".into(),
        tool: "chat".into(),
        parameter_hash: "00ff00ff00ff00ff".into(),
        parameters: BTreeMap::from([("streaming".into(), "true".into())]),
        source: source.clone(),
        is_final: true,
        watermark: 1_795_435_265_000,
        calls: 3,
        successes: 2,
        errors: 1,
        rt_sum: 30.25,
        rt_min: 5.0,
        rt_max: 20.125,
        input_tokens_sum: 7,
        input_tokens_count: 2,
        output_tokens_sum: 9,
        output_tokens_count: 3,
        centroids: vec![
            Centroid {
                mean: 5.0,
                weight: 1,
            },
            Centroid {
                mean: 12.5625,
                weight: 2,
            },
        ],
    };
    let usage_pane = UsagePane {
        pane_id: "pane-2".into(),
        version: 4,
        granularity: Granularity::Minute,
        window_start: 0,
        window_end: 60_000,
        tenant_id: "acme".into(),
        model_id: "m".into(),
        provider: "p".into(),
        feature: "chat".into(),
        source: PaneSource {
            topic: "centile.usage.v1".into(),
            ..source
        },
        is_final: false,
        watermark: 5,
        requests: 2,
        input_tokens_sum: 3,
        output_tokens_sum: 4,
        cost_usd_nanos_sum: 9_000_000_001,
        cache_read_input_tokens_sum: 2,
        cache_write_input_tokens_sum: 1,
        reasoning_output_tokens_sum: 3,
        unpriced: centile_events::Unpriced {
            requests: 1,
            input: 2,
            output: 3,
            cache_read: 1,
            cache_write: 1,
            reasoning: 2,
        },
    };
    let watermark = Watermark {
        source_topic: "centile.latency.v1".into(),
        source_partition: 1,
        watermark: 1_795_435_260_000,
        next_offset: 12_345,
        emitted_at: 1_795_435_266_789,
    };
    let mut sent = Vec::new();
    let mut expected = Vec::new();
    for (event, record) in latency.into_iter().zip(latency_json.as_array().unwrap()) {
        sent.push(Decoded::Latency(event));
        expected.push(json!({ "kind": "latency_event", "record": record }));
    }
    for (event, record) in usage.into_iter().zip(usage_json.as_array().unwrap()) {
        sent.push(Decoded::Usage(event));
        expected.push(json!({ "kind": "usage_event", "record": record }));
    }
    sent.push(Decoded::LatencyPane(latency_pane));
    expected.push(json!({ "kind": "latency_pane", "record": {
        "pane_id": "pane-1", "version": 99, "granularity": "minute",
        "window_start": 1_795_435_200_000_i64, "window_end": 1_795_435_260_000_i64,
        "tenant_id": "acme", "model_id": "gpt-4o", "provider": "openai", "tool": "chat",
        "parameter_hash": "00ff00ff00ff00ff", "parameters": {"streaming": "true"},
        "source_topic": "centile.latency.v1", "source_partition": 2,
        "first_offset": 10, "last_offset": 99, "is_final": true,
        "watermark": 1_795_435_265_000_i64, "calls": 3, "successes": 2, "errors": 1,
        "rt_sum": 30.25, "rt_min": 5.0, "rt_max": 20.125,
        "input_tokens_sum": 7, "input_tokens_count": 2,
        "output_tokens_sum": 9, "output_tokens_count": 3,
        "centroids": [{"mean": 5.0, "weight": 1}, {"mean": 12.5625, "weight": 2}]
    }}));
    sent.push(Decoded::UsagePane(usage_pane));
    expected.push(json!({ "kind": "usage_pane", "record": {
        "pane_id": "pane-2", "version": 4, "granularity": "minute",
        "window_start": 0, "window_end": 60_000, "tenant_id": "acme", "model_id": "m",
        "provider": "p", "feature": "chat", "source_topic": "centile.usage.v1",
        "source_partition": 2, "first_offset": 10, "last_offset": 99, "is_final": false,
        "watermark": 5, "requests": 2, "input_tokens_sum": 3, "output_tokens_sum": 4,
        "cost_usd_nanos_sum": 9_000_000_001_i64, "cache_read_input_tokens_sum": 2,
        "cache_write_input_tokens_sum": 1, "reasoning_output_tokens_sum": 3,
        "unpriced_requests": 1, "unpriced_input_tokens_sum": 2,
        "unpriced_output_tokens_sum": 3, "unpriced_cache_read_input_tokens_sum": 1,
        "unpriced_cache_write_input_tokens_sum": 1, "unpriced_reasoning_output_tokens_sum": 2
    }}));
    sent.push(Decoded::Watermark(watermark));
    expected.push(json!({ "kind": "watermark", "record": {
        "source_topic": "centile.latency.v1", "source_partition": 1,
        "watermark": 1_795_435_260_000_i64, "next_offset": 12_345,
        "emitted_at": 1_795_435_266_789_i64
    }}));

    let hex: Vec<String> = sent
        .iter()
        .map(|m| hex::encode(encode(&schemas, m)))
        .collect();
    // The helper refuses any header other than C3 01 + fastavro's fingerprint.
    let read = codec("decode", &json!(hex));
    assert_eq!(read, Value::Array(expected));
}

/// The README's Python example, run exactly as written; only a line that
/// prints the message is appended.
#[test]
fn readme_python_example_runs_as_written() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("### Publishing from another language")
        .nth(1)
        .expect("README has a section on publishing from another language");
    let code = section
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("the section has a python code block");
    assert!(code.contains(
        "bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), \"CRC-64-AVRO\"))"
    ));
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let before = now();
    let out = python(&["-"], &format!("{code}\nprint(value.hex())\n"));
    let after = now();
    let bytes = hex::decode(out.trim()).expect("the example prints its message");
    // Python's datetime keeps microseconds; the event rounds down to the ms.
    common::assert_readme_example(&bytes, "py-0001", before - 1, after);
}

/// Headers with the fingerprint's bytes reversed (what Centile wrote before
/// it followed the specification) still decode during the deprecation
/// window, and say so.
#[test]
fn a_reversed_fingerprint_still_decodes_and_is_flagged_legacy() {
    let schemas = Schemas::new();
    let fastavro = fastavro_fingerprints();
    let (latency_json, latency) = latency_records();
    let (usage_json, usage) = usage_records();
    let cases = [
        (
            "latency_event",
            fastavro_encode("latency_event", latency_json),
            Decoded::Latency(latency[0].clone()),
        ),
        (
            "usage_event",
            fastavro_encode("usage_event", usage_json),
            Decoded::Usage(usage[0].clone()),
        ),
    ];
    for (label, written, expected) in cases {
        let mut bytes = written[0].clone();
        let fingerprint = fastavro[label].1;
        assert_eq!(&bytes[2..10], &fingerprint, "fastavro's header");
        let mut reversed = fingerprint;
        reversed.reverse();
        assert_ne!(
            reversed, fingerprint,
            "{label}: a palindrome proves nothing"
        );
        bytes[2..10].copy_from_slice(&reversed);

        let decoded = decode_message(&schemas, &bytes).unwrap();
        assert_eq!(decoded.message, expected, "{label}");
        let legacy = decoded.legacy_fingerprint.expect("flagged as legacy");
        assert_eq!(
            legacy,
            LegacyFingerprint {
                kind: kind_of(label),
                written: reversed,
                fingerprint,
            }
        );
        let advice = legacy.to_string();
        assert!(
            advice.contains("deprecated reversed fingerprint byte order")
                && advice.contains(&hex::encode(fingerprint))
                && advice.contains("BinaryMessageEncoder"),
            "{advice}"
        );
        // The plain decoder accepts it too.
        assert_eq!(decode(&schemas, &bytes).unwrap(), expected);
        // The same message in the specification's order is not flagged.
        assert_eq!(
            decode_message(&schemas, &written[0])
                .unwrap()
                .legacy_fingerprint,
            None
        );
    }
}

/// Schema evolution with an independent writer: fastavro writes usage
/// events with the first schema (no token classes, its own fingerprint)
/// and with the current one; both decode, the old ones with the classes
/// absent, so producers can be upgraded one at a time.
#[test]
fn old_and_new_usage_writers_flow_side_by_side() {
    let schemas = Schemas::new();
    let old = fastavro_encode(
        "history/usage_event.v1",
        json!([{
            "event_id": "old-1", "occurred_at": 1_795_435_260_001_i64, "tenant_id": "acme",
            "user_id": null, "model_id": "m", "provider": "p", "feature": "chat",
            "input_tokens": 40, "output_tokens": 7, "cost_usd_nanos": 11
        }]),
    );
    let new = fastavro_encode(
        "usage_event",
        json!([{
            "event_id": "new-1", "occurred_at": 1_795_435_260_002_i64, "tenant_id": "acme",
            "user_id": "u", "model_id": "m", "provider": "p", "feature": "chat",
            "input_tokens": 40, "output_tokens": 7, "cost_usd_nanos": 11,
            "cache_read_input_tokens": 30, "cache_write_input_tokens": 5,
            "reasoning_output_tokens": 2
        }]),
    );
    assert_ne!(
        old[0][2..10],
        schemas.fingerprint(SchemaKind::UsageEvent),
        "the old writer names its own schema"
    );
    let Decoded::Usage(old) = decode(&schemas, &old[0]).expect("the old schema decodes") else {
        panic!("a usage event");
    };
    assert_eq!(old.event_id, "old-1");
    assert_eq!(old.input_tokens, 40);
    assert_eq!(
        old.cost_usd_nanos,
        Some(11),
        "a long cost reads as reported"
    );
    assert_eq!(
        (
            old.cache_read_input_tokens,
            old.cache_write_input_tokens,
            old.reasoning_output_tokens
        ),
        (None, None, None)
    );
    let Decoded::Usage(new) = decode(&schemas, &new[0]).expect("the new schema decodes") else {
        panic!("a usage event");
    };
    assert_eq!(
        (
            new.cache_read_input_tokens,
            new.cache_write_input_tokens,
            new.reasoning_output_tokens
        ),
        (Some(30), Some(5), Some(2))
    );
    assert_eq!(new.cost_usd_nanos, Some(11));

    // The second schema (token classes, a cost that must be there) still
    // decodes beside the current one, where the cost may be null.
    let v2 = fastavro_encode(
        "history/usage_event.v2",
        json!([{
            "event_id": "v2-1", "occurred_at": 1_795_435_260_003_i64, "tenant_id": "acme",
            "user_id": null, "model_id": "m", "provider": "p", "feature": "chat",
            "input_tokens": 40, "output_tokens": 7, "cost_usd_nanos": 13,
            "cache_read_input_tokens": 30, "cache_write_input_tokens": null,
            "reasoning_output_tokens": null
        }]),
    );
    let Decoded::Usage(v2) = decode(&schemas, &v2[0]).expect("the v2 schema decodes") else {
        panic!("a usage event");
    };
    assert_eq!(
        (v2.cost_usd_nanos, v2.cache_read_input_tokens),
        (Some(13), Some(30))
    );
}

/// `session_id` (OpenTelemetry `session.id`) came to both kinds of event:
/// fastavro writes each with the schema before it (their own
/// fingerprints) and with the current one; the old ones decode with no
/// session, the new ones with theirs.
#[test]
fn writers_before_and_after_the_session_id_flow_side_by_side() {
    let schemas = Schemas::new();
    let usage = |schema: &str, id: &str, session: serde_json::Value| {
        let mut event = json!({
            "event_id": id, "occurred_at": 1_795_435_260_001_i64, "tenant_id": "acme",
            "user_id": "u", "model_id": "m", "provider": "p", "feature": "chat",
            "input_tokens": 40, "output_tokens": 7, "cost_usd_nanos": null,
            "cache_read_input_tokens": null, "cache_write_input_tokens": null,
            "reasoning_output_tokens": null
        });
        if !session.is_null() {
            event["session_id"] = session;
        }
        let Decoded::Usage(e) = decode(&schemas, &fastavro_encode(schema, json!([event]))[0])
            .unwrap_or_else(|e| panic!("{schema} decodes: {e}"))
        else {
            panic!("{schema}: a usage event");
        };
        e
    };
    let old = usage("history/usage_event.v3", "old-u", json!(null));
    assert_eq!((old.event_id.as_str(), old.session_id), ("old-u", None));
    let new = usage("usage_event", "new-u", json!("conv-42"));
    assert_eq!(new.session_id.as_deref(), Some("conv-42"));

    let latency = |schema: &str, id: &str, session: serde_json::Value| {
        let mut event = json!({
            "event_id": id, "occurred_at": 1_795_435_260_001_i64, "tenant_id": "acme",
            "model_id": "m", "provider": "p", "tool": "chat", "parameters": {},
            "response_time_ms": 12.5, "success": true, "error_type": null,
            "input_tokens": null, "output_tokens": null
        });
        if !session.is_null() {
            event["session_id"] = session;
        }
        let Decoded::Latency(e) = decode(&schemas, &fastavro_encode(schema, json!([event]))[0])
            .unwrap_or_else(|e| panic!("{schema} decodes: {e}"))
        else {
            panic!("{schema}: a latency event");
        };
        e
    };
    let old = latency("history/latency_event.v1", "old-l", json!(null));
    assert_eq!((old.event_id.as_str(), old.session_id), ("old-l", None));
    let new = latency("latency_event", "new-l", json!("conv-42"));
    assert_eq!(new.session_id.as_deref(), Some("conv-42"));
}
