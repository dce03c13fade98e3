//! Kafka health as operators see it: waiting for the brokers at start-up
//! (logged, retried, and named by `/readyz` meanwhile), the periodic probe
//! behind the `kafka` readiness check, and consumer lag per partition from
//! librdkafka's statistics.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use prometheus::{IntGaugeVec, Registry};
use rdkafka::{
    client::{Client, ClientContext},
    consumer::ConsumerContext,
    producer::{FutureProducer, Producer},
    statistics::Statistics,
};
use tokio_util::sync::CancellationToken;

use crate::{
    config::KafkaConfig,
    kafka::verify_connection,
    metrics::{Declare, Label},
    telemetry::Readiness,
    RuntimeError,
};

/// The readiness check that the brokers answer.
pub const KAFKA_CHECK: &str = "kafka";
/// The readiness check that the last offset commit succeeded.
pub const COMMIT_CHECK: &str = "kafka_commit";
/// The readiness check that the last publish was acknowledged.
pub const PRODUCE_CHECK: &str = "kafka_produce";
/// How often a running service asks the brokers for metadata.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// How long one probe may wait for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest wait between two start-up attempts.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);
/// One start-up attempt waits at most this long (or kafka.connect_timeout).
const ATTEMPT: Duration = Duration::from_secs(5);

/// Waits until the brokers answer, retrying with backoff and logging each
/// failed attempt with its reason, while the `kafka` readiness check says
/// what it waits for. Returns `Ok(false)` when `shutdown` comes first.
///
/// A refused password or certificate is not retried: it will not fix
/// itself, so it ends the service with an error that names the setting.
pub async fn wait_for_brokers(
    kafka: &KafkaConfig,
    readiness: &Readiness,
    shutdown: &CancellationToken,
) -> Result<bool, RuntimeError> {
    let mut attempt_config = kafka.clone();
    attempt_config.connect_timeout = kafka.connect_timeout.min(ATTEMPT);
    readiness.fail(
        KAFKA_CHECK,
        format!("starting: connecting to the brokers at {}", kafka.brokers),
    );
    let mut wait = Duration::from_secs(1);
    for attempt in 1u32.. {
        // A signal ends the wait at once, not after the attempt's timeout.
        let outcome = tokio::select! {
            () = shutdown.cancelled() => return Ok(false),
            outcome = verify_connection(&attempt_config) => outcome,
        };
        match outcome {
            Ok(()) => {
                if attempt > 1 {
                    tracing::info!(brokers = kafka.brokers, attempt, "kafka brokers answer");
                }
                readiness.pass(KAFKA_CHECK);
                return Ok(true);
            }
            Err(RuntimeError::KafkaUnreachable { reason, .. }) => {
                tracing::warn!(
                    brokers = kafka.brokers,
                    attempt,
                    %reason,
                    retry_in = ?wait,
                    "waiting for the kafka brokers"
                );
                readiness.fail(
                    KAFKA_CHECK,
                    format!(
                        "waiting for the brokers at {} (attempt {attempt}): {reason}",
                        kafka.brokers
                    ),
                );
            }
            Err(other) => {
                readiness.fail(KAFKA_CHECK, other.to_string());
                return Err(other);
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(false),
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(MAX_RETRY_WAIT);
    }
    unreachable!("the attempts never run out")
}

/// Runs a service's Kafka start-up (`setup`: topics, consumer, assignment)
/// once the brokers answer, and again after a failure: a broker that goes
/// away in the middle of start-up is waited for like one that was never
/// there, logged and named by `/readyz`, instead of ending the service.
/// The checks in `pending` fail ("starting") until `setup` succeeds, so the
/// service is not reported ready before it consumes. Returns `Ok(None)`
/// when `shutdown` comes first.
pub async fn start_up<T, E, F, Fut>(
    kafka: &KafkaConfig,
    readiness: &Readiness,
    shutdown: &CancellationToken,
    pending: &[&'static str],
    mut setup: F,
) -> Result<Option<T>, RuntimeError>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    for check in pending {
        readiness.fail(check, "starting: waiting for the kafka start-up");
    }
    let mut wait = Duration::from_secs(1);
    loop {
        if !wait_for_brokers(kafka, readiness, shutdown).await? {
            return Ok(None);
        }
        match setup().await {
            Ok(value) => {
                for check in pending {
                    readiness.pass(check);
                }
                return Ok(Some(value));
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?wait, "kafka start-up failed; retrying");
                readiness.fail(KAFKA_CHECK, format!("start-up failed: {e}"));
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(MAX_RETRY_WAIT);
    }
}

/// Whether the brokers answer a metadata request for `topics` with a
/// leader for every partition, through `client` (the service's own).
pub fn probe_topics_of<C: ClientContext>(
    client: &Client<C>,
    topics: &[String],
) -> Result<(), String> {
    for topic in topics {
        let metadata = client
            .fetch_metadata(Some(topic), PROBE_TIMEOUT)
            .map_err(|e| format!("no metadata for topic {topic}: {e}"))?;
        for t in metadata.topics() {
            if let Some(error) = t.error() {
                let code = rdkafka::types::RDKafkaErrorCode::from(error);
                return Err(format!("topic {topic}: {code}"));
            }
            if t.partitions().is_empty() {
                return Err(format!("topic {topic} has no partitions"));
            }
            if let Some(p) = t.partitions().iter().find(|p| p.leader() < 0) {
                return Err(format!("topic {topic} partition {} has no leader", p.id()));
            }
        }
    }
    Ok(())
}

/// Runs `probe` every [`PROBE_INTERVAL`] on a blocking thread until `stop`,
/// and keeps the `kafka` readiness check to its answer.
pub async fn watch_brokers<P>(probe: P, readiness: Readiness, stop: CancellationToken)
where
    P: Fn() -> Result<(), String> + Clone + Send + 'static,
{
    loop {
        let attempt = probe.clone();
        let outcome = tokio::task::spawn_blocking(attempt)
            .await
            .unwrap_or_else(|e| Err(format!("probe failed: {e}")));
        match outcome {
            Ok(()) => readiness.pass(KAFKA_CHECK),
            Err(reason) => readiness.fail(KAFKA_CHECK, reason),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(PROBE_INTERVAL) => {}
        }
    }
}

/// The `kafka` readiness probe of a consumer service, through its producer.
#[derive(Debug)]
pub struct BrokerWatch {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl BrokerWatch {
    /// Probes `topics` through `producer`'s client (see [`watch_brokers`]).
    pub fn start(producer: &FutureProducer, topics: &[&str], readiness: &Readiness) -> Self {
        let producer = producer.clone();
        let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
        let stop = CancellationToken::new();
        let task = tokio::spawn(watch_brokers(
            move || probe_topics_of(producer.client(), &topics),
            readiness.clone(),
            stop.clone(),
        ));
        Self { stop, task }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Log-end offsets, committed offsets and lag per input partition.
#[derive(Debug, Clone)]
pub struct ConsumerMetrics {
    pub log_end_offset: IntGaugeVec,
    pub committed_offset: IntGaugeVec,
    pub lag: IntGaugeVec,
}

const PARTITION_LABELS: [Label; 3] = [
    Label::Open("group"),
    Label::Open("topic"),
    Label::Open("partition"),
];

impl ConsumerMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let declare = Declare::new(registry, "aggregator, sink");
        Ok(Self {
            log_end_offset: declare.gauge_vec(
                "centile_consumer_log_end_offset",
                "Per assigned input partition, the offset the next message written to it will get (its high watermark), as the consumer last fetched it.",
                &PARTITION_LABELS,
            )?,
            committed_offset: declare.gauge_vec(
                "centile_consumer_committed_offset",
                "Per assigned input partition, the offset the consumer group last committed: where a restart resumes.",
                &PARTITION_LABELS,
            )?,
            lag: declare.gauge_vec(
                "centile_consumer_lag_messages",
                "Per assigned input partition, messages between the committed offset and the log end: input not yet made durable downstream. The aggregator commits the start of its current segment, so its lag holds about a minute of input even when caught up.",
                &PARTITION_LABELS,
            )?,
        })
    }
}

/// A consumer context that turns librdkafka's statistics (every
/// `statistics.interval.ms`) into [`ConsumerMetrics`]; partitions no longer
/// assigned lose their series.
#[derive(Debug, Clone)]
pub struct ConsumerLag {
    group: String,
    metrics: ConsumerMetrics,
    exported: Arc<Mutex<HashSet<(String, String)>>>,
}

impl ConsumerLag {
    pub fn new(group: &str, metrics: ConsumerMetrics) -> Self {
        Self {
            group: group.to_owned(),
            metrics,
            exported: Arc::default(),
        }
    }

    pub fn record(&self, stats: &Statistics) {
        let metrics = &self.metrics;
        let mut now = HashSet::new();
        for (topic, t) in &stats.topics {
            for (id, p) in &t.partitions {
                if *id < 0 || !p.desired {
                    continue;
                }
                let partition = id.to_string();
                let labels = [self.group.as_str(), topic.as_str(), partition.as_str()];
                let end = if p.ls_offset >= 0 {
                    p.ls_offset
                } else {
                    p.hi_offset
                };
                if end >= 0 {
                    metrics.log_end_offset.with_label_values(&labels).set(end);
                }
                if p.committed_offset >= 0 {
                    metrics
                        .committed_offset
                        .with_label_values(&labels)
                        .set(p.committed_offset);
                }
                // Nothing committed yet: everything from the log start waits.
                let from = if p.committed_offset >= 0 {
                    p.committed_offset
                } else {
                    p.lo_offset.max(0)
                };
                if end >= 0 {
                    metrics
                        .lag
                        .with_label_values(&labels)
                        .set((end - from).max(0));
                }
                now.insert((topic.clone(), partition));
            }
        }
        let mut exported = self.exported.lock().expect("lag lock");
        for (topic, partition) in exported.difference(&now) {
            let labels = [self.group.as_str(), topic.as_str(), partition.as_str()];
            let _ = metrics.log_end_offset.remove_label_values(&labels);
            let _ = metrics.committed_offset.remove_label_values(&labels);
            let _ = metrics.lag.remove_label_values(&labels);
        }
        *exported = now;
    }
}

impl ClientContext for ConsumerLag {
    fn stats(&self, statistics: Statistics) {
        self.record(&statistics);
    }
}

impl ConsumerContext for ConsumerLag {}
