//! Criterion benchmarks of the pure hot paths: Avro encode/decode of a
//! latency event, the windowing engine's ingest and flush, and the
//! gateway's per-request work (JSON parsing, validation, Avro encoding).
//!
//! `cargo bench --bench engine`

use centile_aggregator::engine::{Engine, EngineConfig, SourcePos};
use centile_events::{decode, encode, Decoded, Event, Limits, Schemas};
use centile_producer::generator::{Generator, GeneratorConfig};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const T0: i64 = 1_795_435_200_000;

fn events(n: usize) -> Vec<Event> {
    let mut generator = Generator::new(GeneratorConfig {
        usage_ratio: 0.0,
        ..GeneratorConfig::default()
    });
    (0..n)
        .map(|i| Event::Latency(generator.next(T0 + i as i64 * 20).0))
        .collect()
}

fn codec(c: &mut Criterion) {
    let schemas = Schemas::new();
    let Event::Latency(event) = events(1).remove(0) else {
        unreachable!()
    };
    let message = Decoded::Latency(event);
    let bytes = encode(&schemas, &message);
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode_latency_event", |b| {
        b.iter(|| encode(&schemas, &message))
    });
    group.bench_function("decode_and_validate_latency_event", |b| {
        b.iter(|| decode(&schemas, &bytes).and_then(|d| d.into_event(&Limits::default())))
    });
    group.finish();
}

fn ingest_all(engine: &mut Engine, input: &[Event]) {
    for (offset, event) in input.iter().enumerate() {
        let pos = SourcePos {
            topic: "latency",
            partition: 0,
            offset: offset as i64,
        };
        engine.ingest(pos, event);
    }
}

fn engine(c: &mut Criterion) {
    let input = events(10_000);
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(input.len() as u64));
    group.sample_size(20);
    group.bench_function("ingest_10k_events", |b| {
        b.iter_batched(
            || Engine::new(EngineConfig::default()),
            |mut engine| {
                ingest_all(&mut engine, &input);
                engine
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("ingest_and_flush_10k_events", |b| {
        b.iter_batched(
            || Engine::new(EngineConfig::default()),
            |mut engine| {
                ingest_all(&mut engine, &input);
                engine.flush().panes().count()
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn gateway(c: &mut Criterion) {
    use centile_events::Admission;
    use centile_producer::gateway::{
        body::{split, BodyFormat},
        fields::{events as to_events, EventKind, Intake, Tenant},
        id_key,
        ids::IdSource,
    };
    let batch = events(100);
    let json: Vec<serde_json::Value> = batch
        .iter()
        .map(|e| match e {
            Event::Latency(e) => {
                let mut v = serde_json::to_value(e).expect("json");
                v.as_object_mut().expect("object").remove("tenant_id");
                v["occurred_at"] = serde_json::json!(T0);
                v
            }
            Event::Usage(_) => unreachable!(),
        })
        .collect();
    let body = serde_json::Value::Array(json).to_string();
    let limits = Limits::default();
    let schemas = Schemas::new();
    let intake = Intake {
        tenant: Tenant::Key("bench"),
        arrived_at: T0,
        limits: &limits,
        admission: Admission::default(),
        ids: &IdSource::Random,
    };
    let mut group = c.benchmark_group("gateway");
    group.throughput(Throughput::Elements(100));
    group.bench_function("parse_and_validate_100_events", |b| {
        b.iter(|| {
            let objects = split(BodyFormat::Json, body.as_bytes(), 5_000).expect("valid");
            to_events(EventKind::Latency, &objects, &intake).expect("valid")
        })
    });
    let parsed = to_events(
        EventKind::Latency,
        &split(BodyFormat::Json, body.as_bytes(), 5_000).expect("valid"),
        &intake,
    )
    .expect("valid");
    group.bench_function("encode_and_key_100_events", |b| {
        b.iter(|| {
            parsed
                .iter()
                .map(|e| {
                    let Event::Latency(l) = e else { unreachable!() };
                    (
                        id_key("bench", "latency", e.event_id()),
                        encode(&schemas, &Decoded::Latency(l.clone())),
                    )
                })
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, codec, engine, gateway);
criterion_main!(benches);
