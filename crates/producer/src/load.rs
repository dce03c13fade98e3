//! Paced load: events at a target rate for a count or a duration, with
//! event times that sweep from `spread` in the past up to now, so past
//! windows close while the run goes on.

use std::time::Duration;

use centile_events::Event;
use centile_runtime::metrics::{Declare, Label, DURATION_BUCKETS};
use rand::{rngs::StdRng, Rng, SeedableRng};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{
    generator::{Generator, GeneratorConfig},
    EventPublisher, ProducerError,
};

#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// Latency events per second; 0 means as fast as the broker takes them.
    pub rate: f64,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub spread: Duration,
    /// Events arrive up to this much out of order.
    pub jitter: Duration,
}

/// What the load generator reports to Prometheus.
#[derive(Debug, Clone)]
pub struct LoadMetrics {
    pub events: prometheus::IntCounterVec,
    pub batch_ack_duration: prometheus::Histogram,
}

impl LoadMetrics {
    pub fn register(registry: &prometheus::Registry) -> prometheus::Result<Self> {
        let d = Declare::new(registry, "producer (load generator)");
        Ok(Self {
            events: d.counter_vec(
                "centile_producer_events_total",
                "Events published and acknowledged by the broker, by kind.",
                &[Label::Known("kind", &["latency", "usage"])],
            )?,
            batch_ack_duration: d.histogram(
                "centile_producer_batch_ack_duration_seconds",
                "Time from publishing a batch to the broker's acknowledgement of all of it.",
                &DURATION_BUCKETS,
            )?,
        })
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct LoadReport {
    pub latency: u64,
    pub usage: u64,
    pub elapsed: Duration,
}

const MAX_CHUNK: u64 = 5_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub async fn run(
    publisher: &EventPublisher,
    generator: GeneratorConfig,
    plan: &LoadPlan,
    metrics: &LoadMetrics,
    shutdown: &CancellationToken,
) -> Result<LoadReport, ProducerError> {
    let mut jitter_rng = StdRng::seed_from_u64(generator.seed ^ 0x5eed);
    let mut generator = Generator::new(generator);
    let started = Instant::now();
    let mut report = LoadReport::default();
    let spread_ms = plan.spread.as_millis() as i64;
    let jitter_ms = plan.jitter.as_millis() as i64;
    loop {
        let elapsed = started.elapsed();
        let progress = match (plan.count, plan.duration) {
            (Some(count), _) => report.latency as f64 / count.max(1) as f64,
            (None, Some(duration)) => elapsed.as_secs_f64() / duration.as_secs_f64().max(1e-9),
            (None, None) => 0.0,
        };
        let done = plan.count.is_some_and(|c| report.latency >= c)
            || plan.duration.is_some_and(|d| elapsed >= d);
        if done || shutdown.is_cancelled() {
            break;
        }
        let due = if plan.rate > 0.0 {
            (plan.rate * elapsed.as_secs_f64()) as u64
        } else {
            report.latency + MAX_CHUNK
        };
        let mut chunk = due.saturating_sub(report.latency).min(MAX_CHUNK);
        if let Some(count) = plan.count {
            chunk = chunk.min(count - report.latency);
        }
        if chunk == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        let base = now_ms() - (spread_ms as f64 * (1.0 - progress.min(1.0))) as i64;
        let mut events: Vec<Event> = Vec::with_capacity(chunk as usize * 2);
        for _ in 0..chunk {
            let jitter = if jitter_ms > 0 {
                jitter_rng.random_range(0..=jitter_ms)
            } else {
                0
            };
            events.extend(generator.next_events(base - jitter));
        }
        let sent = Instant::now();
        publisher.send_batch(&events).await?;
        metrics
            .batch_ack_duration
            .observe(sent.elapsed().as_secs_f64());
        let usage = events
            .iter()
            .filter(|e| matches!(e, Event::Usage(_)))
            .count() as u64;
        let latency = events.len() as u64 - usage;
        metrics.events.with_label_values(&["usage"]).inc_by(usage);
        metrics
            .events
            .with_label_values(&["latency"])
            .inc_by(latency);
        report.usage += usage;
        report.latency += latency;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}
