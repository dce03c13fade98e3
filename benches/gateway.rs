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
//! Prints events/s for both, their ratio, and the gateway's p50/p99 request
//! latency, then the medians over the repetitions.

use centile::bench_kit::{arg, percentile};
use std::time::{Duration, Instant};

use centile::{gateway_kit::TestGateway, testkit::TestEnv};
use centile_events::Event;
use centile_producer::generator::{Generator, GeneratorConfig};

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

async fn through_gateway(
    gateway: &TestGateway,
    bodies: Vec<String>,
    connections: usize,
) -> (f64, Vec<f64>) {
    let events = bodies.len() * BATCH;
    let queues = split(bodies, connections);
    let warm = reqwest::Client::new()
        .post(format!("{}/v1/events/latency", gateway.url))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {KEY}"))
        .body(queues[0][0].clone())
        .send()
        .await
        .expect("warm-up");
    assert_eq!(warm.status(), 202);
    let started = Instant::now();
    let tasks: Vec<_> = queues
        .into_iter()
        .map(|queue| {
            // A client per task: one keep-alive connection each.
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .expect("client");
            let url = format!("{}/v1/events/latency", gateway.url);
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(queue.len());
                for body in queue {
                    let sent = Instant::now();
                    let response = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("authorization", format!("Bearer {KEY}"))
                        .body(body)
                        .send()
                        .await
                        .expect("gateway answers");
                    assert_eq!(response.status(), 202, "{:?}", response.text().await);
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
    let events = arg(1, 100_000);
    let connections = arg(2, 8);
    let reps = arg(3, 3);
    println!("gateway bench: {events} events, batches of {BATCH}, {connections} connections, {reps} repetitions");
    let (mut ceilings, mut rates, mut p50s, mut p99s) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for rep in 1..=reps {
        let env = TestEnv::new(&format!("bench_gw{rep}"));
        let direct = batches(events, rep as u64);
        let bodies: Vec<String> = direct.iter().map(|b| json_body(b)).collect();
        let ceiling = ceiling(&env, &direct).await;
        let gateway = TestGateway::start(&env, &[(KEY, "bench@1000000/s")], &[]).await;
        let (rate, latencies) = through_gateway(&gateway, bodies, connections).await;
        let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
        println!(
            "rep {rep}: broker ceiling {ceiling:.0} events/s, gateway {rate:.0} events/s (ratio {:.2}), request p50 {p50:.1} ms, p99 {p99:.1} ms",
            rate / ceiling
        );
        ceilings.push(ceiling);
        rates.push(rate);
        p50s.push(p50);
        p99s.push(p99);
        drop(gateway);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (ceiling, rate) = (median(ceilings), median(rates));
    println!(
        "median: broker ceiling {ceiling:.0} events/s, gateway {rate:.0} events/s, ratio {:.2}, request p50 {:.1} ms, p99 {:.1} ms",
        rate / ceiling,
        median(p50s),
        median(p99s)
    );
}
