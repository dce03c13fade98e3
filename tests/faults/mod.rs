//! A fault-injection harness on the real broker and ClickHouse: a seeded
//! workload with its exact truth, a feeder that publishes it while faults
//! happen, services restarted by SIGKILL or SIGTERM at seeded random moments
//! in bounded loops, and the final comparison of every view with the truth.
//!
//! Any test can use it with `mod faults;`. Sizes follow
//! `CENTILE_FAULT_EVENTS` (latency events, default 200,000) and the seed
//! `CENTILE_FAULT_SEED`, so a failure can be replayed exactly.

#![allow(dead_code)]

use std::time::Duration;

use centile::{
    testkit::{eventually, metric_sum, metric_value, now_ms, Service, TestEnv},
    truth::{
        assert_exact_aggregates, assert_percentiles, assert_raw_exactly_once, wait_until_complete,
        PercentileReport, Truth,
    },
};
use centile_events::Event;
use centile_producer::generator::{Generator, GeneratorConfig};
use rand::{rngs::StdRng, Rng, SeedableRng};
use tokio::task::JoinHandle;

pub const HOUR_MS: i64 = 3_600_000;

/// Latency events per fault workload.
pub fn scale() -> usize {
    std::env::var("CENTILE_FAULT_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

pub fn seed() -> u64 {
    std::env::var("CENTILE_FAULT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| now_ms() as u64)
}

/// Events and the exact aggregates they must produce.
pub struct Workload {
    pub events: Vec<Event>,
    pub truth: Truth,
}

impl Workload {
    /// `latency` latency events, plus about a quarter as many usage events,
    /// over the `hours` whole hours before the current one, slightly out of
    /// order. A heavy tenant gives windows of 10k+ events; a varied one
    /// gives many dimension sets.
    pub fn new(seed: u64, latency: usize, hours: i64) -> Self {
        let mut heavy = Generator::new(GeneratorConfig {
            seed,
            tenants: 1,
            models: 2,
            tools: 1,
            parameter_sets: 1,
            usage_ratio: 0.25,
        });
        let mut varied = Generator::new(GeneratorConfig {
            seed: seed ^ 0x5eed,
            tenants: 4,
            models: 5,
            tools: 3,
            parameter_sets: 3,
            usage_ratio: 0.25,
        });
        let start = (now_ms() / HOUR_MS - hours) * HOUR_MS + 60_000;
        let span = hours * HOUR_MS - 120_000;
        let events: Vec<Event> = (0..latency)
            .flat_map(|i| {
                let at = start + span * i as i64 / latency as i64 - (i as i64 * 7919 % 1_500);
                if i % 10 < 7 {
                    heavy.next_events(at)
                } else {
                    varied.next_events(at)
                }
            })
            .collect();
        let mut truth = Truth::default();
        events.iter().for_each(|e| truth.add(e));
        truth.seal();
        Self { events, truth }
    }
}

/// Publishes `events` in chunks with a pause between them, so that the
/// publication lasts while faults are injected.
pub async fn feed(
    env: &TestEnv,
    events: Vec<Event>,
    chunk: usize,
    pause: Duration,
) -> JoinHandle<()> {
    let publisher = env.publisher().await;
    tokio::spawn(async move {
        for part in events.chunks(chunk) {
            publisher.send_batch(part).await.expect("publish workload");
            tokio::time::sleep(pause).await;
        }
    })
}

/// Feeds a whole workload in 150 chunks 250 ms apart: about 40 s of
/// publication for the faults to hit.
pub async fn feed_slowly(env: &TestEnv, workload: &Workload) -> JoinHandle<()> {
    let chunk = workload.events.len().div_ceil(150);
    feed(
        env,
        workload.events.clone(),
        chunk,
        Duration::from_millis(250),
    )
    .await
}

/// Like [`feed`], but as a careful client does through a broker outage:
/// each event is sent on its own, and only the ones whose publication
/// failed are sent again, until every event is acknowledged.
pub async fn feed_retrying(
    env: &TestEnv,
    events: Vec<Event>,
    chunk: usize,
    pause: Duration,
) -> JoinHandle<usize> {
    let publisher = env.publisher().await;
    tokio::spawn(async move {
        let mut retries = 0;
        for part in events.chunks(chunk) {
            let mut pending: Vec<&Event> = part.iter().collect();
            while !pending.is_empty() {
                let results =
                    futures::future::join_all(pending.iter().map(|e| publisher.send((*e).clone())))
                        .await;
                pending = pending
                    .into_iter()
                    .zip(results)
                    .filter_map(|(event, result)| result.is_err().then_some(event))
                    .collect();
                if !pending.is_empty() {
                    retries += pending.len();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
            tokio::time::sleep(pause).await;
        }
        retries
    })
}

/// One instance reading every partition without joining its consumer
/// group. A SIGKILLed process never leaves its group; Tansu never evicts a
/// vanished group leader, so group mode cannot recover from a kill there
/// (Apache Kafka evicts it after the session timeout). Resuming does not
/// depend on the group: the aggregator resumes from its checkpoints and
/// the sink from the group's committed offsets.
pub fn single_instance() -> Vec<(String, String)> {
    vec![("CENTILE_KAFKA_ASSIGNMENT".to_owned(), "all".to_owned())]
}

/// Seeded randomness for when and what to break.
pub struct Chaos {
    rng: StdRng,
}

impl Chaos {
    pub fn new(seed: u64) -> Self {
        println!("chaos seed {seed} (set CENTILE_FAULT_SEED={seed} to replay)");
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub fn pause(&mut self, min: Duration, max: Duration) -> Duration {
        let span = max.saturating_sub(min).as_millis() as u64;
        min + Duration::from_millis(self.rng.random_range(0..=span))
    }

    pub fn coin(&mut self) -> bool {
        self.rng.random_bool(0.5)
    }
}

/// A service that is killed and restarted under the same identity.
pub struct Restartable {
    pub bin: &'static str,
    pub extra: Vec<(String, String)>,
    pub service: Service,
    pub kills: usize,
    pub stops: usize,
}

impl Restartable {
    pub fn start(env: &TestEnv, bin: &'static str, extra: Vec<(String, String)>) -> Self {
        let service = env.spawn_with(bin, &[], &extra);
        Self {
            bin,
            extra,
            service,
            kills: 0,
            stops: 0,
        }
    }

    /// SIGKILL, then a fresh process with the same identity.
    pub fn kill_and_restart(&mut self, env: &TestEnv) {
        self.service.kill();
        self.kills += 1;
        self.service = env.spawn_with(self.bin, &[], &self.extra);
    }

    /// Waits until the process is doing its job: the aggregator owns
    /// partitions, the sink has consumed something (or had nothing to
    /// consume for a while). Faults are then injected into a working
    /// service, not into one still joining its group.
    pub async fn wait_active(&self) {
        let started = std::time::Instant::now();
        eventually(
            &format!("{} to become active", self.bin),
            Duration::from_secs(120),
            || async {
                let scrape = self.service.metrics_if_up().await?;
                let active = match self.bin {
                    // The series exist at zero from start: active means at
                    // least one partition was actually assigned.
                    "centile-aggregator" => {
                        metric_sum(&scrape, "centile_aggregator_partitions_assigned_total", &[])
                            .is_some_and(|n| n > 0.0)
                    }
                    _ => {
                        ["latency", "usage", "rollups"].iter().any(|role| {
                            metric_value(
                                &scrape,
                                &format!("centile_sink_messages_total{{role=\"{role}\"}}"),
                            )
                            .is_some_and(|n| n > 0.0)
                        }) || started.elapsed() > Duration::from_secs(20)
                    }
                };
                active.then_some(())
            },
        )
        .await;
    }

    /// SIGTERM (graceful), then a fresh process with the same identity.
    pub fn stop(&mut self) {
        let status = self.service.terminate(Duration::from_secs(60));
        assert!(
            status.success(),
            "{} exit: {status:?}\n{}",
            self.bin,
            self.service.log()
        );
        self.stops += 1;
    }

    pub fn restart(&mut self, env: &TestEnv) {
        self.service = env.spawn_with(self.bin, &[], &self.extra);
    }
}

/// Waits for every event to be accounted for, then checks every view row
/// exactly, the percentiles, and the raw tables' exactly-once.
pub async fn assert_pipeline_exact(
    env: &TestEnv,
    truth: &Truth,
    timeout: Duration,
) -> PercentileReport {
    wait_until_complete(env, truth, timeout).await;
    let client = env.clickhouse();
    assert_exact_aggregates(&client, truth).await;
    let report = assert_percentiles(&client, truth).await;
    assert_raw_exactly_once(env, truth).await;
    // Nothing trickles in afterwards to be counted twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_exact_aggregates(&client, truth).await;
    report
}

/// The dead letters of `env`, as (reason kind, reason) pairs.
pub fn dead_letter_reasons(env: &TestEnv) -> Vec<(String, String)> {
    use rdkafka::{message::Headers, Message};
    env.read_topic(&env.config.topics.dlq, Duration::from_secs(5))
        .iter()
        .map(|m| {
            let header = |name: &str| {
                m.headers()
                    .and_then(|h| h.iter().find(|h| h.key == name))
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            (
                header("centile.dlq.reason_kind"),
                header("centile.dlq.reason"),
            )
        })
        .collect()
}

/// Waits until the aggregator reports having read every partition to `ends`.
pub async fn wait_for_position(aggregator: &Service, topic: &str, ends: &[(i32, i64)]) {
    eventually("the aggregator to read everything", Duration::from_secs(120), || async {
        let scrape = aggregator.metrics_if_up().await?;
        ends.iter()
            .all(|(partition, end)| {
                metric_value(
                    &scrape,
                    &format!(
                        "centile_aggregator_position_offset{{partition=\"{partition}\",topic=\"{topic}\"}}"
                    ),
                )
                .is_some_and(|p| p as i64 >= *end)
            })
            .then_some(())
    })
    .await;
}
