//! Gateway throughput and latency, side by side with the broker's ceiling.
//!
//! Needs the local stack (`deploy/local/stack up`). Run with
//! `cargo bench --bench gateway [-- EVENTS CONNECTIONS REPS]` (defaults
//! 100000 events, 8 connections, 3 repetitions). Each repetition, on fresh
//! topics:
//! 1. ceiling: the same events, pre-encoded, handed to one producer at once
//!    and timed to the last acknowledgement (acks=all, idempotent): the
//!    broker's raw produce rate;
//! 2. gateway: `centile-producer serve` (release build) driven over
//!    loopback with JSON batches of 100 from CONNECTIONS HTTP connections,
//!    each request answered only after the broker's acknowledgement.
//!
//! 3. OTLP: the same calls as OpenTelemetry GenAI spans (100 per
//!    `ExportTraceServiceRequest`, binary protobuf) posted to `/v1/traces`
//!    of a second gateway on its own topics, so both paths publish the same
//!    latency events.
//!
//! Prints events/s (spans/s) for each, the ratios, and the p50/p99 request
//! latency, then the medians over the repetitions.

use centile::bench_kit::{arg, percentile};
use std::time::{Duration, Instant};

use centile::{gateway_kit::TestGateway, testkit::TestEnv};
use centile_events::Event;
use centile_producer::generator::{Generator, GeneratorConfig};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{any_value::Value as V, AnyValue, KeyValue},
    resource::v1::Resource,
    trace::v1::{status::StatusCode, ResourceSpans, ScopeSpans, Span, Status},
};
use prost::Message;

const BATCH: usize = 100;
const KEY: &str = "ck_bench_gateway_key";

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    percentile(&values, 0.5)
}

/// `events` latency events of one tenant, in batches of [`BATCH`].
fn batches(events: usize, seed: u64) -> Vec<Vec<Event>> {
    let mut generator = Generator::new(GeneratorConfig {
        seed,
        usage_ratio: 0.0,
        ..GeneratorConfig::default()
    });
    let now = centile::testkit::now_ms();
    let mut all = Vec::with_capacity(events);
    while all.len() < events {
        let (mut call, _) = generator.next(now);
        call.tenant_id = "bench".into();
        all.push(Event::Latency(call));
    }
    all.truncate(events);
    all.chunks(BATCH).map(<[Event]>::to_vec).collect()
}

fn json_body(batch: &[Event]) -> String {
    let values: Vec<serde_json::Value> = batch
        .iter()
        .map(|event| match event {
            Event::Latency(e) => serde_json::to_value(e).expect("json"),
            Event::Usage(e) => serde_json::to_value(e).expect("json"),
        })
        .collect();
    serde_json::Value::Array(values).to_string()
}

/// The broker's raw produce rate: every event pre-encoded and handed to
/// the producer at once, timed until the last acknowledgement.
async fn ceiling(env: &TestEnv, batches: &[Vec<Event>]) -> f64 {
    let publisher = env.publisher().await;
    let warm = publisher.messages(&batches[0]).await.expect("encode");
    publisher.send_messages(&warm).await.expect("warm-up");
    let all: Vec<Event> = batches.concat();
    let messages = publisher.messages(&all).await.expect("encode");
    let started = Instant::now();
    publisher.send_messages(&messages).await.expect("publish");
    all.len() as f64 / started.elapsed().as_secs_f64()
}

fn kv(key: &str, value: V) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// The batch as one OTLP export: each call a GenAI span with the same
/// model, provider, tool, parameters, duration and outcome.
fn otlp_body(batch: &[Event], batch_index: usize) -> Vec<u8> {
    let spans = batch
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let Event::Latency(e) = event else {
                panic!("latency events only")
            };
            let n = (batch_index * BATCH + i) as u64 + 1;
            let start = e.occurred_at as u64 * 1_000_000;
            let mut attributes = vec![
                kv("gen_ai.operation.name", V::StringValue(e.tool.clone())),
                kv("gen_ai.provider.name", V::StringValue(e.provider.clone())),
                kv("gen_ai.request.model", V::StringValue(e.model_id.clone())),
            ];
            for (name, value) in &e.parameters {
                attributes.push(kv(
                    &format!("gen_ai.request.{name}"),
                    V::StringValue(value.clone()),
                ));
            }
            if let Some(error) = &e.error_type {
                attributes.push(kv("error.type", V::StringValue(error.clone())));
            }
            Span {
                trace_id: [n.to_be_bytes(), 7u64.to_be_bytes()].concat(),
                span_id: n.to_be_bytes().to_vec(),
                name: format!("{} {}", e.tool, e.model_id),
                kind: 3,
                start_time_unix_nano: start,
                end_time_unix_nano: start + (e.response_time_ms * 1_000_000.0) as u64,
                attributes,
                status: Some(Status {
                    code: if e.success {
                        StatusCode::Ok as i32
                    } else {
                        StatusCode::Error as i32
                    },
                    message: String::new(),
                }),
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", V::StringValue("bench".into()))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// One ingest path: its route, content type and the status it answers.
#[derive(Clone, Copy)]
struct Path {
    route: &'static str,
    content_type: &'static str,
    ok: u16,
}

const JSON: Path = Path {
    route: "/v1/events/latency",
    content_type: "application/json",
    ok: 202,
};
const OTLP: Path = Path {
    route: "/v1/traces",
    content_type: "application/x-protobuf",
    ok: 200,
};

async fn through_gateway(
    gateway: &TestGateway,
    path: Path,
    bodies: Vec<Vec<u8>>,
    connections: usize,
) -> (f64, Vec<f64>) {
    let events = bodies.len() * BATCH;
    let queues = split(bodies, connections);
    let warm = reqwest::Client::new()
        .post(format!("{}{}", gateway.url, path.route))
        .header("content-type", path.content_type)
        .header("authorization", format!("Bearer {KEY}"))
        .body(queues[0][0].clone())
        .send()
        .await
        .expect("warm-up");
    assert_eq!(warm.status(), path.ok);
    let started = Instant::now();
    let tasks: Vec<_> = queues
        .into_iter()
        .map(|queue| {
            // A client per task: one keep-alive connection each.
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .expect("client");
            let url = format!("{}{}", gateway.url, path.route);
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(queue.len());
                for body in queue {
                    let sent = Instant::now();
                    let response = http
                        .post(&url)
                        .header("content-type", path.content_type)
                        .header("authorization", format!("Bearer {KEY}"))
                        .body(body)
                        .send()
                        .await
                        .expect("gateway answers");
                    assert_eq!(response.status(), path.ok, "{:?}", response.text().await);
                    latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("task"));
    }
    let rate = events as f64 / started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    (rate, latencies)
}

fn split<T>(items: Vec<T>, parts: usize) -> Vec<Vec<T>> {
    let mut queues: Vec<Vec<T>> = (0..parts).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        queues[i % parts].push(item);
    }
    queues
}

#[tokio::main]
async fn main() {
    let events = arg(0, 100_000);
    let connections = arg(1, 8);
    let reps = arg(2, 3);
    println!("gateway bench: {events} events, batches of {BATCH}, {connections} connections, {reps} repetitions");
    let mut runs: Vec<[f64; 7]> = Vec::new();
    for rep in 1..=reps {
        let env = TestEnv::new(&format!("bench_gw{rep}"));
        let direct = batches(events, rep as u64);
        let bodies: Vec<Vec<u8>> = direct.iter().map(|b| json_body(b).into_bytes()).collect();
        let spans: Vec<Vec<u8>> = direct
            .iter()
            .enumerate()
            .map(|(i, b)| otlp_body(b, i))
            .collect();
        let ceiling = ceiling(&env, &direct).await;
        let gateway = TestGateway::start(&env, &[(KEY, "bench@1000000/s")], &[]).await;
        let (rate, latencies) = through_gateway(&gateway, JSON, bodies, connections).await;
        let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
        drop(gateway);
        // Its own topics, so the spans are not deduplicated against the
        // JSON events and both paths publish to equally empty topics.
        let otlp_env = TestEnv::new(&format!("bench_otlp{rep}"));
        otlp_env.create_topics().await;
        let gateway = TestGateway::start(&otlp_env, &[(KEY, "bench@1000000/s")], &[]).await;
        let (span_rate, span_latencies) = through_gateway(&gateway, OTLP, spans, connections).await;
        let (s50, s99) = (
            percentile(&span_latencies, 0.5),
            percentile(&span_latencies, 0.99),
        );
        println!(
            "rep {rep}: broker ceiling {ceiling:.0} events/s; JSON {rate:.0} events/s (ratio {:.2}), p50 {p50:.1} ms, p99 {p99:.1} ms; OTLP {span_rate:.0} spans/s (ratio {:.2}, {:.2} of JSON), p50 {s50:.1} ms, p99 {s99:.1} ms",
            rate / ceiling,
            span_rate / ceiling,
            span_rate / rate
        );
        runs.push([ceiling, rate, p50, p99, span_rate, s50, s99]);
        drop(gateway);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let column = |i: usize| median(runs.iter().map(|r| r[i]).collect());
    let (ceiling, rate, span_rate) = (column(0), column(1), column(4));
    println!(
        "median: broker ceiling {ceiling:.0} events/s; JSON {rate:.0} events/s (ratio {:.2}), p50 {:.1} ms, p99 {:.1} ms; OTLP {span_rate:.0} spans/s (ratio {:.2}, {:.2} of JSON), p50 {:.1} ms, p99 {:.1} ms",
        rate / ceiling,
        column(2),
        column(3),
        span_rate / ceiling,
        span_rate / rate,
        column(5),
        column(6)
    );
}
