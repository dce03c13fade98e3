//! Freshness: how long after its publication an event shows in the current
//! minute and hour rows of the views, while a steady load flows.
//!
//! Needs the local stack (`deploy/local/stack up`). Run with
//! `cargo bench --bench freshness [-- PROBES RATE]`: PROBES probe events
//! (default 200), one every 250 ms, each of its own tenant so its row
//! appears only once the probe is in; RATE background events per second
//! (default 2000). The services run with their shipped defaults. Prints
//! p50, p90, p99 and max for `latency_minute` and `latency_hourly`.

use centile::bench_kit::percentile;
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use centile::testkit::{now_ms, TestEnv};
use centile_events::{Event, LatencyEvent};
use centile_producer::generator::{Generator, GeneratorConfig};

fn probe(n: usize, at: i64) -> Event {
    Event::Latency(LatencyEvent {
        event_id: format!("probe-{n}"),
        occurred_at: at,
        tenant_id: format!("probe-{n}"),
        model_id: "probe".into(),
        provider: "probe".into(),
        tool: "probe".into(),
        parameters: Default::default(),
        response_time_ms: 1.0,
        success: true,
        error_type: None,
        input_tokens: None,
        output_tokens: None,
        session_id: None,
    })
}

async fn seen(env: &TestEnv, view: &str) -> Vec<String> {
    env.clickhouse()
        .query(&format!(
            "SELECT DISTINCT tenant_id FROM {view} WHERE tenant_id LIKE 'probe-%'"
        ))
        .fetch_all::<String>()
        .await
        .unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let probes = args.first().copied().unwrap_or(200);
    let rate = args.get(1).copied().unwrap_or(2_000);

    let mut env = TestEnv::new("freshness");
    // The shipped defaults, not the test ones.
    let defaults = centile_runtime::Config::default();
    env.config.aggregator = defaults.aggregator.clone();
    env.config.sink.batch_max_wait = defaults.sink.batch_max_wait;
    println!(
        "freshness: {probes} probes, {rate} events/s of background load, emit interval {:?}, sink batch wait {:?}",
        defaults.aggregator.emit_interval, defaults.sink.batch_max_wait
    );
    let publisher = env.publisher().await;
    let _aggregator = env.spawn("centile-aggregator", &[]);
    let _sink = env.spawn("centile-sink", &[]);

    let load = {
        let publisher = env.publisher().await;
        tokio::spawn(async move {
            let mut generator = Generator::new(GeneratorConfig::default());
            let tick = Duration::from_millis(100);
            let per_tick = (rate / 10).max(1);
            loop {
                let started = Instant::now();
                let now = now_ms();
                let events: Vec<Event> = (0..per_tick)
                    .flat_map(|_| generator.next_events(now))
                    .collect();
                publisher.send_batch(&events).await.expect("load");
                tokio::time::sleep(tick.saturating_sub(started.elapsed())).await;
            }
        })
    };
    // Let the services start and the pipeline warm up.
    tokio::time::sleep(Duration::from_secs(10)).await;

    let mut published: HashMap<String, Instant> = HashMap::new();
    let mut visible: HashMap<&str, HashMap<String, f64>> = HashMap::from([
        ("latency_minute", HashMap::new()),
        ("latency_hourly", HashMap::new()),
    ]);
    let mut next_probe = Instant::now();
    let mut sent = 0;
    let deadline = Instant::now() + Duration::from_secs(probes as u64 / 4 + 60);
    while Instant::now() < deadline {
        if sent < probes && Instant::now() >= next_probe {
            let event = probe(sent, now_ms());
            let at = Instant::now();
            publisher.send(event).await.expect("probe");
            published.insert(format!("probe-{sent}"), at);
            sent += 1;
            next_probe += Duration::from_millis(250);
        }
        let (minute, hourly) =
            tokio::join!(seen(&env, "latency_minute"), seen(&env, "latency_hourly"));
        for (view, tenants) in [("latency_minute", minute), ("latency_hourly", hourly)] {
            let seen_at = visible.get_mut(view).expect("view");
            for tenant in tenants {
                if let Some(at) = published.get(&tenant) {
                    seen_at
                        .entry(tenant)
                        .or_insert_with(|| at.elapsed().as_secs_f64());
                }
            }
        }
        if sent == probes && visible.values().all(|v| v.len() == probes) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    load.abort();

    for view in ["latency_minute", "latency_hourly"] {
        let mut delays: Vec<f64> = visible[view].values().copied().collect();
        delays.sort_by(f64::total_cmp);
        assert_eq!(delays.len(), probes, "{view}: some probes never appeared");
        println!(
            "{view}: p50 {:.3} s, p90 {:.3} s, p99 {:.3} s, max {:.3} s ({} probes)",
            percentile(&delays, 0.5),
            percentile(&delays, 0.9),
            percentile(&delays, 0.99),
            delays[delays.len() - 1],
            delays.len()
        );
    }
}
