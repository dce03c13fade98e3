//! Criterion benchmarks of the pure hot paths: Avro encode/decode of a
//! latency event, and the windowing engine's ingest and flush.
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

criterion_group!(benches, codec, engine);
criterion_main!(benches);
