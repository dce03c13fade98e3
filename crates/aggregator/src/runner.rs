//! Drives the engine from Kafka.
//!
//! One loop owns the engine. It reads raw events and, every emit interval,
//! publishes in an order that keeps every crash recoverable:
//! 1. when panes of segments that ended reach further than the partition's
//!    resume point says, that resume point again with the further reach,
//!    then waits for its acknowledgement;
//! 2. panes of segments that ended, acknowledged in turn;
//! 3. the checkpoints where those segments end, or the current segment's
//!    start with the reach of the live panes below, and commits moved
//!    offsets to the group;
//! 4. the changed panes of the current segments;
//! 5. watermark records to every rollup partition.
//!
//! The reach is what keeps a hand-over exact: an owner that resumes a
//! partition never cuts a segment short of input whose panes were already
//! published (see `Checkpoint::published_until`).
//!
//! A restart resumes each partition at its last checkpoint and rebuilds the
//! same panes with the same ids and versions, so whatever was published
//! twice collapses in ClickHouse. On shutdown every segment is cut where it
//! stands, so a graceful restart replays nothing.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use centile_events::{
    encode, Admission, DecodeError, Decoded, DecodedMessage, LegacyFingerprint, Limits,
    ParameterHasher, Watermark,
};
use centile_runtime::{
    kafka::{
        attach_inputs, close_consumer, consumer_config, ensure_centile_topics, producer_config,
        send_all, OutMessage,
    },
    kafka_health::{start_up, BrokerWatch, ConsumerLag, COMMIT_CHECK, KAFKA_CHECK, PRODUCE_CHECK},
    registry::SchemaResolver,
    retry::{with_backoff, Backoff},
    telemetry::Readiness,
    Config,
};
use rdkafka::{
    consumer::{CommitMode, Consumer, StreamConsumer},
    producer::{FutureProducer, Producer},
    Message, Offset, TopicPartitionList,
};
use tokio_util::sync::CancellationToken;

use crate::{
    checkpoints::CheckpointStore,
    engine::{Checkpoint, Engine, EngineConfig, Progress, SourcePos},
    metrics::{AggregatorMetrics, Tally},
    rebalance::{Assignments, Change},
    AggregatorError,
};

/// Whether a raw event came from the history import, which rolls its events
/// up itself (see [`centile_events::ORIGIN_HEADER`]).
fn is_imported(message: &rdkafka::message::BorrowedMessage<'_>) -> bool {
    use rdkafka::message::{Headers, Message};
    message.headers().is_some_and(|headers| {
        headers.iter().any(|h| {
            h.key == centile_events::ORIGIN_HEADER
                && h.value == Some(centile_events::ORIGIN_IMPORT.as_bytes())
        })
    })
}

/// Builds the pure engine's settings from the service config.
pub fn engine_config(config: &Config) -> EngineConfig {
    EngineConfig {
        allowed_lateness_ms: config.aggregator.allowed_lateness.as_millis() as i64,
        parameters: ParameterHasher::new(config.aggregator.performance_parameters.iter().cloned()),
    }
}

const PUBLISH_BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(200),
    max: Duration::from_secs(10),
};

type Partitioned<T> = HashMap<(String, i32), T>;

struct Runner<'a> {
    config: &'a Config,
    metrics: &'a AggregatorMetrics,
    /// Decodes input (both framings) and encodes output panes.
    resolver: SchemaResolver,
    limits: Limits,
    admission: Admission,
    engine: Engine,
    producer: FutureProducer,
    assignments: Assignments,
    store: Arc<CheckpointStore>,
    rollup_partitions: i32,
    /// When each owned partition last delivered input (or was assigned), by
    /// topic then partition, so the per-message update allocates nothing.
    last_input: HashMap<String, HashMap<i32, Instant>>,
    /// The checkpoint each owned partition would resume from now.
    resume_from: Partitioned<Checkpoint>,
    /// The offset this instance last committed to the group per owned
    /// partition, so unmoved offsets are not committed again every emit.
    committed: Partitioned<i64>,
    /// The watermark last published per owned partition.
    published_watermark: Partitioned<i64>,
    checkpoints_refreshed: Instant,
    watermarks_refreshed: Instant,
    /// Writer fingerprints already warned about for the deprecated reversed
    /// byte order; only known writer schemas match, so this stays small.
    legacy_warned: HashSet<[u8; 8]>,
    /// Per-message outcomes, added to the metrics once per flush.
    tally: Tally,
    readiness: Readiness,
}

/// Runs until `shutdown` is cancelled, then cuts, publishes and commits,
/// retrying the final publish until `deadline` at most.
pub async fn run(
    config: &Config,
    metrics: &AggregatorMetrics,
    readiness: Readiness,
    shutdown: CancellationToken,
    deadline: CancellationToken,
) -> Result<(), AggregatorError> {
    let topics = &config.topics;
    let inputs = [topics.latency.as_str(), topics.usage.as_str()];
    let setup = || async {
        ensure_centile_topics(config).await?;
        let store = Arc::new(CheckpointStore::new(config)?);
        let lag = ConsumerLag::new(&config.aggregator.group_id, metrics.consumer.clone());
        let assignments = Assignments::new(store.clone(), lag);
        let consumer: StreamConsumer<Assignments> =
            consumer_config(&config.kafka, &config.aggregator.group_id)
                .create_with_context(assignments.clone())?;
        // In group mode the rebalance callback positions each partition from
        // its checkpoint; in `all` mode it is done here, once.
        attach_inputs(&consumer, config.kafka.assignment, &inputs, |tpl| {
            assignments.position(tpl)
        })?;
        let producer: FutureProducer = producer_config(&config.kafka).create()?;
        let rollup_partitions = partition_count(&producer, &topics.rollups)?;
        Ok::<_, AggregatorError>((store, assignments, consumer, producer, rollup_partitions))
    };
    let started = start_up(
        &config.kafka,
        &readiness,
        &shutdown,
        &[COMMIT_CHECK, PRODUCE_CHECK],
        setup,
    )
    .await?;
    let Some((store, assignments, consumer, producer, rollup_partitions)) = started else {
        return Ok(());
    };
    let watch = BrokerWatch::start(&producer, &inputs, &readiness);

    let mut runner = Runner {
        config,
        metrics,
        resolver: SchemaResolver::new(&config.schema_registry)?,
        limits: Limits::default(),
        admission: config.admission.admission(),
        engine: Engine::new(engine_config(config)),
        producer,
        assignments,
        store,
        rollup_partitions,
        last_input: HashMap::new(),
        resume_from: HashMap::new(),
        committed: HashMap::new(),
        published_watermark: HashMap::new(),
        checkpoints_refreshed: Instant::now(),
        watermarks_refreshed: Instant::now(),
        legacy_warned: HashSet::new(),
        tally: Tally::default(),
        readiness: readiness.clone(),
    };
    let result = runner.consume(&consumer, &shutdown, &deadline).await;
    watch.stop().await;
    readiness.fail(KAFKA_CHECK, "stopping");
    close_consumer(consumer, Duration::from_secs(5));
    result
}

fn partition_count(producer: &FutureProducer, topic: &str) -> Result<i32, AggregatorError> {
    let metadata = producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let count = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len() as i32);
    if count == 0 {
        return Err(AggregatorError::Assignment(format!(
            "rollup topic {topic} has no partitions"
        )));
    }
    Ok(count)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Runner<'_> {
    async fn consume(
        &mut self,
        consumer: &StreamConsumer<Assignments>,
        shutdown: &CancellationToken,
        deadline: &CancellationToken,
    ) -> Result<(), AggregatorError> {
        let mut tick = tokio::time::interval(self.config.aggregator.emit_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                _ = tick.tick() => self.emit(consumer, shutdown, false).await?,
                message = consumer.recv() => match message {
                    Ok(message) => {
                        self.apply_changes()?;
                        let decoded = self.resolver.decode(message.payload().unwrap_or_default()).await;
                        self.ingest(&message, decoded);
                    }
                    Err(e) => tracing::warn!(error = %e, "kafka consumer error"),
                },
            }
        }
        tracing::info!("cutting segments and publishing before exit");
        self.emit(consumer, deadline, true).await
    }

    /// Counts a message framed with the deprecated reversed fingerprint
    /// order, and warns once per writer schema.
    fn note_legacy(&mut self, legacy: LegacyFingerprint, pos: &SourcePos<'_>) {
        self.tally.legacy(legacy.kind);
        if self.legacy_warned.insert(legacy.fingerprint) {
            tracing::warn!(
                kind = legacy.kind.label(),
                topic = pos.topic,
                partition = pos.partition,
                offset = pos.offset,
                "{legacy}"
            );
        }
    }

    /// Applies assignments and revocations in the order they happened.
    fn apply_changes(&mut self) -> Result<(), AggregatorError> {
        for change in self.assignments.take_changes() {
            match change {
                Change::Assigned {
                    topic,
                    partition,
                    checkpoint,
                    offset,
                } => {
                    let label = partition.to_string();
                    self.metrics
                        .resumed_offset
                        .with_label_values(&[&topic, &label])
                        .set(offset);
                    self.metrics
                        .partitions_assigned
                        .with_label_values(&[if checkpoint.is_some() {
                            "true"
                        } else {
                            "false"
                        }])
                        .inc();
                    self.engine
                        .assign(&topic, partition, checkpoint.as_ref(), Some(offset));
                    let key = (topic, partition);
                    self.last_input
                        .entry(key.0.clone())
                        .or_default()
                        .insert(key.1, Instant::now());
                    self.published_watermark.remove(&key);
                    self.committed.remove(&key);
                    match checkpoint {
                        Some(c) => self.resume_from.insert(key, c),
                        None => self.resume_from.remove(&key),
                    };
                }
                Change::Revoked { topic, partition } => {
                    self.engine.revoke(&topic, partition);
                    // Another instance reports this partition now.
                    let label = partition.to_string();
                    for gauge in [
                        &self.metrics.watermark,
                        &self.metrics.position,
                        &self.metrics.committed_offset,
                        &self.metrics.resumed_offset,
                    ] {
                        let _ = gauge.remove_label_values(&[&topic, &label]);
                    }
                    let key = (topic, partition);
                    if let Some(partitions) = self.last_input.get_mut(&key.0) {
                        partitions.remove(&key.1);
                    }
                    self.resume_from.remove(&key);
                    self.published_watermark.remove(&key);
                    self.committed.remove(&key);
                }
                Change::Failed(reason) => return Err(AggregatorError::Assignment(reason)),
            }
        }
        Ok(())
    }

    fn ingest(
        &mut self,
        message: &rdkafka::message::BorrowedMessage<'_>,
        decoded: Result<DecodedMessage, DecodeError>,
    ) {
        let pos = SourcePos {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
        };
        if !self.engine.owns(pos.topic, pos.partition) {
            tracing::debug!(
                topic = pos.topic,
                partition = pos.partition,
                "ignoring input of a partition not owned"
            );
            return;
        }
        if let Some(seen) = self
            .last_input
            .get_mut(pos.topic)
            .and_then(|partitions| partitions.get_mut(&pos.partition))
        {
            *seen = Instant::now();
        }
        if is_imported(message) {
            // The import published this event's panes itself.
            self.engine.skip(pos);
            self.tally.imported_skipped();
            return;
        }
        let published_at = message.timestamp().to_millis();
        let decoded = decoded.map(|d| {
            if let Some(legacy) = d.legacy_fingerprint {
                self.note_legacy(legacy, &pos);
            }
            d.message
        });
        let admitted = decoded
            .and_then(|d| d.into_event(&self.limits))
            .and_then(|event| {
                self.admission
                    .check(event.occurred_at(), published_at)
                    .map(|()| event)
            });
        match admitted {
            Ok(event) => {
                let kind = match event {
                    centile_events::Event::Latency(_) => "latency",
                    centile_events::Event::Usage(_) => "usage",
                };
                let ingested = self.engine.ingest(pos, &event);
                if ingested.duplicate {
                    self.tally.duplicate();
                } else if !ingested.already_seen {
                    self.tally.event(kind);
                }
                if ingested.late {
                    self.tally.late();
                }
            }
            Err(e) => {
                self.engine.skip(pos);
                let kind = if pos.topic == self.config.topics.usage {
                    "usage"
                } else {
                    "latency"
                };
                self.tally.refused(kind, &pos, &e);
            }
        }
    }

    /// Publishes in the crash-safe order described in the module docs.
    async fn emit(
        &mut self,
        consumer: &StreamConsumer<Assignments>,
        shutdown: &CancellationToken,
        last: bool,
    ) -> Result<(), AggregatorError> {
        self.apply_changes()?;
        if last {
            for (topic, partition) in self.engine.close_all_segments() {
                tracing::info!(
                    topic,
                    partition,
                    "stopping without a cut: still short of what the previous owner published; the next owner replays the segment"
                );
            }
        } else {
            self.release_idle_partitions();
        }
        let started = Instant::now();
        let mut flush = self.engine.flush();

        self.persist("checkpoint reach", &flush.reach, shutdown)
            .await?;
        self.publish("closed panes", self.pane_messages(&flush.closed), shutdown)
            .await?;
        let mut checkpoints = std::mem::take(&mut flush.checkpoints);
        if self.checkpoints_refreshed.elapsed() >= self.config.aggregator.checkpoint_refresh {
            self.checkpoints_refreshed = Instant::now();
            for resume in self.resume_from.values() {
                if !checkpoints
                    .iter()
                    .any(|c| c.topic == resume.topic && c.partition == resume.partition)
                {
                    checkpoints.push(resume.clone());
                }
            }
        }
        self.persist("checkpoints", &checkpoints, shutdown).await?;
        self.commit(consumer, &checkpoints);
        self.publish("live panes", self.pane_messages(&flush.live), shutdown)
            .await?;
        self.count_panes(flush.panes());
        let watermarks = self.watermark_messages(std::mem::take(&mut flush.progress));
        self.publish("watermarks", watermarks, shutdown).await?;

        self.metrics.open_panes.set(self.engine.open_panes() as i64);
        self.tally.flush(self.metrics);
        self.metrics
            .flush_duration
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Publishes checkpoint records and, once the broker has acknowledged
    /// them, makes them the partitions' resume points.
    async fn persist(
        &mut self,
        what: &str,
        checkpoints: &[Checkpoint],
        shutdown: &CancellationToken,
    ) -> Result<(), AggregatorError> {
        self.publish(what, self.store.messages(checkpoints), shutdown)
            .await?;
        self.metrics
            .checkpoints_written
            .inc_by(checkpoints.len() as u64);
        for c in checkpoints {
            self.resume_from
                .insert((c.topic.clone(), c.partition), c.clone());
        }
        Ok(())
    }

    fn release_idle_partitions(&mut self) {
        let idle_after = self.config.aggregator.idle_timeout;
        let now = now_ms();
        for (topic, partitions) in &self.last_input {
            for (partition, seen) in partitions {
                if seen.elapsed() >= idle_after && self.engine.mark_idle(topic, *partition, now) {
                    tracing::debug!(topic, partition, "idle partition released its windows");
                }
            }
        }
    }

    fn pane_messages<'p>(&self, panes: impl IntoIterator<Item = &'p Decoded>) -> Vec<OutMessage> {
        self.resolver.with_schemas(|schemas| {
            panes
                .into_iter()
                .map(|pane| OutMessage {
                    topic: self.config.topics.rollups.clone(),
                    partition: None,
                    key: Some(pane.partition_key()),
                    payload: encode(schemas, pane),
                    headers: Vec::new(),
                })
                .collect()
        })
    }

    /// One record per moved partition for every rollup partition, so each
    /// reader of a rollup partition learns the watermark after the panes
    /// it covers.
    fn watermark_messages(&mut self, moved: Vec<Progress>) -> Vec<OutMessage> {
        let refresh =
            self.watermarks_refreshed.elapsed() >= self.config.aggregator.watermark_refresh;
        let progress = if refresh {
            self.watermarks_refreshed = Instant::now();
            self.engine.progress()
        } else {
            moved
        };
        let emitted_at = now_ms();
        let mut messages = Vec::new();
        for p in progress {
            let label = p.partition.to_string();
            self.metrics
                .position
                .with_label_values(&[&p.topic, &label])
                .set(p.next_offset);
            let Some(watermark) = p.sealed_until else {
                continue;
            };
            self.metrics
                .watermark
                .with_label_values(&[&p.topic, &label])
                .set(watermark.div_euclid(1000));
            let key = (p.topic.clone(), p.partition);
            if !refresh && self.published_watermark.get(&key) == Some(&watermark) {
                continue;
            }
            self.published_watermark.insert(key, watermark);
            let record = Decoded::Watermark(Watermark {
                source_topic: p.topic.clone(),
                source_partition: p.partition,
                watermark,
                next_offset: p.next_offset,
                emitted_at,
            });
            let payload = self
                .resolver
                .with_schemas(|schemas| encode(schemas, &record));
            for partition in 0..self.rollup_partitions {
                messages.push(OutMessage {
                    topic: self.config.topics.rollups.clone(),
                    partition: Some(partition),
                    key: Some(record.partition_key()),
                    payload: payload.clone(),
                    headers: Vec::new(),
                });
            }
        }
        messages
    }

    async fn publish(
        &self,
        what: &str,
        messages: Vec<OutMessage>,
        shutdown: &CancellationToken,
    ) -> Result<(), AggregatorError> {
        if messages.is_empty() {
            return Ok(());
        }
        // Re-sending is safe: a pane id and version always carry the same
        // content, and a checkpoint the same state.
        let published = with_backoff(
            PUBLISH_BACKOFF,
            shutdown,
            &format!("publishing {what}"),
            |e| {
                self.metrics.publish_retries.inc();
                self.readiness
                    .fail(PRODUCE_CHECK, format!("publishing {what}: {e}"));
            },
            || send_all(&self.producer, &messages),
        )
        .await;
        if published.is_ok() {
            self.readiness.pass(PRODUCE_CHECK);
        }
        published.map_err(AggregatorError::Unpublished)
    }

    fn count_panes<'p>(&self, panes: impl Iterator<Item = &'p Decoded>) {
        for pane in panes {
            let (kind, is_final) = match pane {
                Decoded::LatencyPane(p) => ("latency", p.is_final),
                Decoded::UsagePane(p) => ("usage", p.is_final),
                _ => continue,
            };
            self.metrics
                .panes_emitted
                .with_label_values(&[kind, if is_final { "true" } else { "false" }])
                .inc();
        }
    }

    /// Mirrors the checkpoints into the group's committed offsets, which
    /// lag tools read. Resuming never depends on them while a checkpoint
    /// exists. An offset this instance has committed already is not sent
    /// again; one whose commit failed is, with the next record.
    fn commit(&mut self, consumer: &StreamConsumer<Assignments>, checkpoints: &[Checkpoint]) {
        let mut list = TopicPartitionList::new();
        let mut sent = Vec::new();
        for c in checkpoints {
            let key = (c.topic.clone(), c.partition);
            if self.committed.get(&key) == Some(&c.next_offset)
                || !self.engine.owns(&c.topic, c.partition)
            {
                continue;
            }
            if let Err(e) =
                list.add_partition_offset(&c.topic, c.partition, Offset::Offset(c.next_offset))
            {
                tracing::warn!(error = %e, "cannot build commit list");
                return;
            }
            sent.push((key, c.next_offset));
        }
        if sent.is_empty() {
            return;
        }
        match consumer.commit(&list, CommitMode::Sync) {
            Ok(()) => {
                for ((topic, partition), offset) in sent {
                    self.metrics
                        .committed_offset
                        .with_label_values(&[&topic, &partition.to_string()])
                        .set(offset);
                    self.committed.insert((topic, partition), offset);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "offset commit failed");
                self.readiness
                    .fail(COMMIT_CHECK, format!("offset commit failed: {e}"));
                return;
            }
        }
        self.readiness.pass(COMMIT_CHECK);
    }
}
