//! Drives the engine from Kafka.
//!
//! One loop owns the engine: it reads raw events, and every emit interval
//! publishes the changed panes, waits for the broker to acknowledge all of
//! them, and only then commits the input offsets they cover. A crash
//! therefore never commits input whose effect is not in the rollup topic.
//! On shutdown it flushes once more and commits before returning.

use std::{
    collections::HashMap,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use centile_events::{decode, encode, Decoded, Limits, ParameterHasher, Schemas};
use centile_runtime::{
    kafka::{
        close_consumer, consumer_config, ensure_centile_topics, producer_config, send_all,
        OutMessage,
    },
    retry::{with_backoff, Backoff},
    telemetry::Readiness,
    Config,
};
use rdkafka::{
    consumer::{CommitMode, Consumer, StreamConsumer},
    producer::FutureProducer,
    Message, Offset, TopicPartitionList,
};
use tokio_util::sync::CancellationToken;

use crate::{
    engine::{Engine, EngineConfig, Flush, SourcePos},
    metrics::AggregatorMetrics,
    rebalance::RebalanceTracker,
    AggregatorError,
};

/// Builds the pure engine's settings from the service config.
pub fn engine_config(config: &Config) -> EngineConfig {
    EngineConfig {
        allowed_lateness_ms: config.aggregator.allowed_lateness.as_millis() as i64,
        tdigest_compression: config.aggregator.tdigest_compression.max(10),
        parameters: ParameterHasher::new(config.aggregator.performance_parameters.iter().cloned()),
        ..EngineConfig::default()
    }
}

const PUBLISH_BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(200),
    max: Duration::from_secs(10),
};

struct Runner<'a> {
    config: &'a Config,
    metrics: &'a AggregatorMetrics,
    schemas: Schemas,
    limits: Limits,
    engine: Engine,
    producer: FutureProducer,
    tracker: RebalanceTracker,
    /// When each partition last delivered input, by topic then partition.
    last_input: HashMap<String, HashMap<i32, Instant>>,
}

/// Runs until `shutdown` is cancelled, then flushes and commits.
pub async fn run(
    config: &Config,
    metrics: &AggregatorMetrics,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> Result<(), AggregatorError> {
    let topics = &config.topics;
    ensure_centile_topics(config).await?;
    let tracker = RebalanceTracker::default();
    let consumer: StreamConsumer<RebalanceTracker> =
        consumer_config(&config.kafka, &config.aggregator.group_id)
            .create_with_context(tracker.clone())?;
    consumer.subscribe(&[&topics.latency, &topics.usage])?;
    let producer: FutureProducer = producer_config(&config.kafka).create()?;
    readiness.set("kafka", true);

    let mut runner = Runner {
        config,
        metrics,
        schemas: Schemas::new(),
        limits: Limits::default(),
        engine: Engine::new(engine_config(config)),
        producer,
        tracker,
        last_input: HashMap::new(),
    };
    let result = runner.consume(&consumer, &shutdown).await;
    readiness.set("kafka", false);
    close_consumer(consumer, Duration::from_secs(5));
    result
}

impl Runner<'_> {
    async fn consume(
        &mut self,
        consumer: &StreamConsumer<RebalanceTracker>,
        shutdown: &CancellationToken,
    ) -> Result<(), AggregatorError> {
        let mut tick = tokio::time::interval(self.config.aggregator.emit_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                _ = tick.tick() => self.emit(consumer, shutdown).await?,
                message = consumer.recv() => match message {
                    Ok(message) => self.ingest(&message),
                    Err(e) => tracing::warn!(error = %e, "kafka consumer error"),
                },
            }
        }
        tracing::info!("flushing open windows before exit");
        self.emit(consumer, &CancellationToken::new()).await
    }
}

impl Runner<'_> {
    fn ingest(&mut self, message: &rdkafka::message::BorrowedMessage<'_>) {
        let pos = SourcePos {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
        };
        let now = Instant::now();
        match self.last_input.get_mut(pos.topic) {
            Some(partitions) => {
                partitions.insert(pos.partition, now);
            }
            None => {
                self.last_input
                    .insert(pos.topic.to_owned(), HashMap::from([(pos.partition, now)]));
            }
        }
        let payload = message.payload().unwrap_or_default();
        match decode(&self.schemas, payload).and_then(|d| d.into_event(&self.limits)) {
            Ok(event) => {
                let kind = match event {
                    centile_events::Event::Latency(_) => "latency",
                    centile_events::Event::Usage(_) => "usage",
                };
                self.metrics.events.with_label_values(&[kind]).inc();
                if self.engine.ingest(pos, &event).late_windows > 0 {
                    self.metrics.late_events.inc();
                }
            }
            Err(e) => {
                self.engine.skip(pos);
                self.metrics.rejected.with_label_values(&[e.kind()]).inc();
                tracing::debug!(topic = pos.topic, partition = pos.partition, offset = pos.offset, error = %e, "skipping undecodable message");
            }
        }
    }

    /// Publishes changed panes, then commits the offsets they cover.
    async fn emit(
        &mut self,
        consumer: &StreamConsumer<RebalanceTracker>,
        shutdown: &CancellationToken,
    ) -> Result<(), AggregatorError> {
        for (topic, partition) in self.tracker.take_revoked() {
            self.engine.revoke(&topic, partition);
            if let Some(partitions) = self.last_input.get_mut(&topic) {
                partitions.remove(&partition);
            }
        }
        let idle_after = self.config.aggregator.idle_timeout;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        for (topic, partitions) in &self.last_input {
            for (partition, seen) in partitions {
                if seen.elapsed() >= idle_after {
                    self.engine.mark_idle(topic, *partition, now_ms);
                }
            }
        }

        let started = Instant::now();
        let flush = self.engine.flush();
        self.publish(&flush, shutdown).await?;
        self.commit(consumer, &flush);
        self.metrics.open_panes.set(self.engine.open_panes() as i64);
        self.metrics
            .flush_duration
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    async fn publish(
        &self,
        flush: &Flush,
        shutdown: &CancellationToken,
    ) -> Result<(), AggregatorError> {
        if flush.panes.is_empty() {
            return Ok(());
        }
        let rollups = &self.config.topics.rollups;
        let messages: Vec<OutMessage> = flush
            .panes
            .iter()
            .map(|pane| OutMessage {
                topic: rollups.clone(),
                key: Some(pane.partition_key()),
                payload: encode(&self.schemas, pane),
                headers: Vec::new(),
            })
            .collect();
        // Re-sending is safe: a pane id and version always carry the same content.
        with_backoff(
            PUBLISH_BACKOFF,
            shutdown,
            "publishing panes",
            |_| self.metrics.publish_retries.inc(),
            || send_all(&self.producer, &messages),
        )
        .await
        .map_err(AggregatorError::Unpublished)?;
        for pane in &flush.panes {
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
        Ok(())
    }

    fn commit(&self, consumer: &StreamConsumer<RebalanceTracker>, flush: &Flush) {
        if flush.positions.is_empty() {
            return;
        }
        let mut list = TopicPartitionList::new();
        for p in &flush.positions {
            if let Err(e) =
                list.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next_offset))
            {
                tracing::warn!(error = %e, "cannot build commit list");
                return;
            }
        }
        match consumer.commit(&list, CommitMode::Sync) {
            Ok(()) => {
                for p in &flush.positions {
                    let partition = p.partition.to_string();
                    self.metrics
                        .committed_offset
                        .with_label_values(&[&p.topic, &partition])
                        .set(p.next_offset);
                    if let Some(watermark) = self.engine.watermark(&p.topic, p.partition) {
                        self.metrics
                            .watermark
                            .with_label_values(&[&p.topic, &partition])
                            .set(watermark.div_euclid(1000));
                    }
                }
            }
            // The panes are published; uncommitted input is read again by
            // whoever owns the partition next (at least once).
            Err(e) => tracing::warn!(error = %e, "offset commit failed"),
        }
    }
}
