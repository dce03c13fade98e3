//! Round trips and refusals of the message codec.

use std::collections::BTreeMap;

use centile_events::{
    decode, encode, encode_with, Centroid, DecodeError, Decoded, Framing, Granularity,
    LatencyEvent, LatencyPane, Limits, PaneSource, SchemaKind, Schemas, UsageEvent, UsagePane,
    Validate,
};

fn latency() -> LatencyEvent {
    LatencyEvent {
        event_id: "evt-1".into(),
        occurred_at: 1_700_000_000_123,
        tenant_id: "acme".into(),
        model_id: "gpt-x".into(),
        provider: "openai".into(),
        tool: "chat".into(),
        parameters: BTreeMap::from([
            ("temperature".into(), "0.2".into()),
            ("streaming".into(), "true".into()),
        ]),
        response_time_ms: 812.5,
        success: false,
        error_type: Some("timeout".into()),
        input_tokens: Some(120),
        output_tokens: None,
        session_id: None,
    }
}

fn usage() -> UsageEvent {
    UsageEvent {
        event_id: "use-1".into(),
        occurred_at: 1_700_000_000_000,
        tenant_id: "acme".into(),
        user_id: None,
        model_id: "gpt-x".into(),
        provider: "openai".into(),
        feature: "auto-router".into(),
        input_tokens: 1_000,
        output_tokens: 250,
        cost_usd_nanos: Some(1_234_567_891),
        cache_read_input_tokens: Some(600),
        cache_write_input_tokens: Some(100),
        reasoning_output_tokens: Some(50),
        session_id: None,
    }
}

fn source() -> PaneSource {
    PaneSource {
        topic: "centile.latency.v1".into(),
        partition: 2,
        first_offset: 10,
        last_offset: 99,
    }
}

#[test]
fn every_message_kind_round_trips() {
    let schemas = Schemas::new();
    let messages = [
        Decoded::Latency(latency()),
        Decoded::Usage(usage()),
        Decoded::LatencyPane(LatencyPane {
            pane_id: "p".into(),
            version: 198,
            granularity: Granularity::Hour,
            window_start: 3_600_000,
            window_end: 7_200_000,
            tenant_id: "acme".into(),
            model_id: "gpt-x".into(),
            provider: "openai".into(),
            tool: "chat".into(),
            parameter_hash: "00ff".into(),
            parameters: BTreeMap::from([("streaming".into(), "true".into())]),
            source: source(),
            is_final: true,
            watermark: 7_300_000,
            calls: 3,
            successes: 2,
            errors: 1,
            rt_sum: 30.0,
            rt_min: 5.0,
            rt_max: 20.0,
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
                    mean: 12.5,
                    weight: 2,
                },
            ],
        }),
        Decoded::UsagePane(UsagePane {
            pane_id: "u".into(),
            version: 4,
            granularity: Granularity::Day,
            window_start: 0,
            window_end: 86_400_000,
            tenant_id: "acme".into(),
            model_id: "gpt-x".into(),
            provider: "openai".into(),
            feature: "chat".into(),
            source: source(),
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
                input: 7,
                output: 6,
                cache_read: 5,
                cache_write: 1,
                reasoning: 2,
            },
        }),
    ];
    for message in messages {
        let bytes = encode(&schemas, &message);
        assert_eq!(&bytes[..2], &[0xC3, 0x01]);
        assert_eq!(&bytes[2..10], &schemas.fingerprint(message.kind()));
        assert_eq!(decode(&schemas, &bytes).unwrap(), message);
    }
}

#[test]
fn confluent_framing_decodes_when_the_id_is_known() {
    let mut schemas = Schemas::new();
    let message = Decoded::Usage(usage());
    let bytes = encode_with(&schemas, &message, Framing::Confluent { schema_id: 42 });
    assert_eq!(&bytes[..5], &[0, 0, 0, 0, 42]);
    assert_eq!(
        decode(&schemas, &bytes),
        Err(DecodeError::UnknownSchemaId(42))
    );
    schemas
        .register_confluent_id(
            42,
            SchemaKind::UsageEvent,
            Schemas::source(SchemaKind::UsageEvent),
        )
        .unwrap();
    assert_eq!(decode(&schemas, &bytes).unwrap(), message);
}

#[test]
fn wrong_magic_is_refused() {
    let schemas = Schemas::new();
    let err = decode(&schemas, b"{\"json\": true}").unwrap_err();
    assert_eq!(err, DecodeError::UnknownFraming("7b22".into()));
    assert_eq!(err.kind(), "unknown_framing");
    assert_eq!(decode(&schemas, &[]), Err(DecodeError::Empty));
}

#[test]
fn unknown_fingerprint_is_refused() {
    let schemas = Schemas::new();
    let mut bytes = encode(&schemas, &Decoded::Latency(latency()));
    bytes[2..10].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(
        decode(&schemas, &bytes),
        Err(DecodeError::UnknownFingerprint("0102030405060708".into()))
    );
}

#[test]
fn truncated_header_and_datum_are_refused() {
    let schemas = Schemas::new();
    let bytes = encode(&schemas, &Decoded::Latency(latency()));
    assert!(matches!(
        decode(&schemas, &bytes[..6]),
        Err(DecodeError::TruncatedHeader {
            len: 6,
            need: 10,
            ..
        })
    ));
    for cut in [11, bytes.len() / 2, bytes.len() - 1] {
        let err = decode(&schemas, &bytes[..cut]).unwrap_err();
        assert!(
            matches!(err, DecodeError::Datum(_) | DecodeError::Invalid(_)),
            "cut at {cut}: {err:?}"
        );
    }
}

#[test]
fn trailing_bytes_are_refused() {
    let schemas = Schemas::new();
    let mut bytes = encode(&schemas, &Decoded::Usage(usage()));
    bytes.extend_from_slice(&[0, 0]);
    assert_eq!(decode(&schemas, &bytes), Err(DecodeError::TrailingBytes(2)));
}

#[test]
fn missing_required_field_is_named() {
    let mut schemas = Schemas::new();
    // A producer on a schema without `tool` and `provider`: every missing field is reported.
    let old = r#"{"type":"record","name":"LatencyEvent","namespace":"centile.v1","fields":[
        {"name":"event_id","type":"string"},
        {"name":"occurred_at","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"tenant_id","type":"string"},
        {"name":"model_id","type":"string"},
        {"name":"response_time_ms","type":"double"},
        {"name":"success","type":"boolean"}]}"#;
    let fingerprint = schemas
        .register_writer(SchemaKind::LatencyEvent, old)
        .unwrap();
    let writer = apache_avro::Schema::parse_str(old).unwrap();
    let value = apache_avro::types::Value::Record(vec![
        ("event_id".into(), "e".into()),
        (
            "occurred_at".into(),
            apache_avro::types::Value::TimestampMillis(5),
        ),
        ("tenant_id".into(), "t".into()),
        ("model_id".into(), "m".into()),
        ("response_time_ms".into(), 1.5f64.into()),
        ("success".into(), true.into()),
    ]);
    let mut bytes = vec![0xC3, 0x01];
    bytes.extend_from_slice(&fingerprint);
    bytes.extend(apache_avro::to_avro_datum(&writer, value).unwrap());
    let DecodeError::Invalid(problems) = decode(&schemas, &bytes).unwrap_err() else {
        panic!("expected field errors");
    };
    let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["provider", "tool"]);
    assert!(problems
        .iter()
        .all(|p| p.reason == "missing required field"));
}

#[test]
fn negative_tokens_and_non_finite_latency_are_named() {
    let limits = Limits::default();
    let mut event = latency();
    event.input_tokens = Some(-3);
    event.response_time_ms = f64::NAN;
    let err = event.validate(&limits).unwrap_err();
    let DecodeError::Invalid(problems) = &err else {
        panic!("expected field errors")
    };
    let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["response_time_ms", "input_tokens"]);
    assert_eq!(
        err.to_string(),
        "invalid event: field `response_time_ms`: must be finite, got NaN; field `input_tokens`: must not be negative, got -3"
    );

    event.response_time_ms = f64::INFINITY;
    event.input_tokens = None;
    assert_eq!(event.problems(&limits)[0].reason, "must be finite, got inf");

    let mut spend = usage();
    spend.cost_usd_nanos = Some(-1);
    spend.output_tokens = -2;
    let fields: Vec<_> = spend
        .problems(&limits)
        .into_iter()
        .map(|p| p.field)
        .collect();
    assert_eq!(fields, ["output_tokens", "cost_usd_nanos"]);
}

#[test]
fn empty_ids_and_oversized_strings_are_named() {
    let limits = Limits {
        max_string_len: 12,
        max_parameters: 1,
        ..Limits::default()
    };
    let mut event = latency();
    event.tenant_id.clear();
    event.model_id = "a-very-long-model".into();
    let problems = event.problems(&limits);
    let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["tenant_id", "model_id", "parameters"]);
    assert!(problems[1].reason.starts_with("string too long"));
    assert!(problems[2].reason.starts_with("too many parameters"));
}

#[test]
fn valid_events_pass_validation() {
    assert!(latency().validate(&Limits::default()).is_ok());
    assert!(usage().validate(&Limits::default()).is_ok());
}

// Fingerprints, canonical forms and messages written or read by other Avro
// implementations (fastavro, Apache avro), produced at test time: see
// `avro_interop.rs`.
