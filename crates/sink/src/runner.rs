//! Drives the sink: consume, batch, write, then commit.
//!
//! Offsets are committed only after ClickHouse acknowledged every row of the
//! batch and the broker acknowledged every dead letter. While ClickHouse is
//! down the batch is retried with backoff and nothing more is consumed, so
//! memory stays bounded and nothing is dropped.

use std::{
    collections::HashSet,
    sync::Mutex,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use centile_events::{
    Admission, DecodeError, Decoded, DecodedMessage, LegacyFingerprint, Limits, ParameterHasher,
    Validate,
};
use centile_runtime::{
    kafka::{
        attach_inputs, close_consumer, consumer_config, ensure_centile_topics, producer_config,
        send_all,
    },
    kafka_health::{
        start_up, BrokerWatch, ConsumerLag, COMMIT_CHECK, KAFKA_CHECK, PROBE_INTERVAL,
        PRODUCE_CHECK,
    },
    registry::SchemaResolver,
    retry::{with_backoff, Backoff},
    telemetry::Readiness,
    Config, RuntimeError,
};
use rdkafka::{
    consumer::{CommitMode, Consumer, StreamConsumer},
    message::BorrowedMessage,
    producer::FutureProducer,
    Message, Offset, TopicPartitionList,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{
    batch::Batch,
    client::{check_connection, database_client},
    dlq::{dead_letter, Origin},
    metrics::SinkMetrics,
    migrate::migrate,
    prices::Prices,
    rows::{LatencyEventRow, LatencyPaneRow, UsageEventRow, UsagePaneRow, WatermarkRow},
    writer::Writer,
    SinkError,
};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

struct Sink<'a> {
    config: &'a Config,
    metrics: &'a SinkMetrics,
    readiness: Readiness,
    resolver: SchemaResolver,
    limits: Limits,
    admission: Admission,
    hasher: ParameterHasher,
    writer: Writer,
    producer: FutureProducer,
    /// Writer fingerprints already warned about for the deprecated reversed
    /// byte order; only known writer schemas match, so this stays small.
    legacy_warned: Mutex<HashSet<[u8; 8]>>,
}

/// Runs until `shutdown` is cancelled, then writes and commits what it
/// holds, retrying until `deadline` at most.
pub async fn run(
    config: &Config,
    metrics: &SinkMetrics,
    readiness: Readiness,
    shutdown: CancellationToken,
    deadline: CancellationToken,
) -> Result<(), SinkError> {
    // An untrusted certificate or refused credentials will not heal by
    // retrying: stop now with the reason. An unreachable server is waited
    // for, as before.
    readiness.fail(
        CLICKHOUSE_CHECK,
        "starting: connecting to clickhouse and migrating",
    );
    match check_connection(&config.clickhouse).await {
        Ok(version) => tracing::info!(server = %version, "clickhouse answers"),
        Err(
            e
            @ (RuntimeError::ClickHouseTls { .. } | RuntimeError::ClickHouseAuthentication { .. }),
        ) => return Err(e.into()),
        Err(e) => tracing::warn!(error = %e, "clickhouse does not answer yet; retrying"),
    }
    if config.sink.auto_migrate {
        let report = with_backoff(
            backoff(config),
            &shutdown,
            "migrations",
            |_| {},
            || migrate(config),
        )
        .await?;
        tracing::info!(applied = ?report.applied, deferred = ?report.deferred, server = %report.server_version, "schema up to date");
    }
    readiness.pass(CLICKHOUSE_CHECK);
    readiness.pass(INSERT_CHECK);
    metrics.clickhouse_up.set(1);
    let topics = &config.topics;
    let inputs = [
        topics.latency.as_str(),
        topics.usage.as_str(),
        topics.rollups.as_str(),
    ];
    let setup = || async {
        ensure_centile_topics(config).await?;
        let lag = ConsumerLag::new(&config.sink.group_id, metrics.consumer.clone());
        let consumer: StreamConsumer<ConsumerLag> =
            consumer_config(&config.kafka, &config.sink.group_id).create_with_context(lag)?;
        // Resume where the group last committed, joined or not.
        attach_inputs(&consumer, config.kafka.assignment, &inputs, |_| true)?;
        Ok::<_, SinkError>(consumer)
    };
    let started = start_up(
        &config.kafka,
        &readiness,
        &shutdown,
        &[COMMIT_CHECK, PRODUCE_CHECK],
        setup,
    )
    .await?;
    let Some(consumer) = started else {
        return Ok(());
    };
    let producer: FutureProducer = producer_config(&config.kafka).create()?;
    let broker_watch = BrokerWatch::start(&producer, &inputs, &readiness);
    let watch_stop = CancellationToken::new();
    let clickhouse_watch = tokio::spawn(watch_clickhouse(
        config.clickhouse.clone(),
        readiness.clone(),
        watch_stop.clone(),
    ));

    let sink = Sink {
        config,
        metrics,
        readiness: readiness.clone(),
        resolver: SchemaResolver::new(&config.schema_registry)?,
        limits: Limits::default(),
        admission: config.admission.admission(),
        hasher: ParameterHasher::new(config.aggregator.performance_parameters.iter().cloned()),
        writer: Writer::new(
            database_client(&config.clickhouse),
            &config.clickhouse.database,
            Prices::load(config.pricing.book.as_deref())?,
            metrics.clone(),
        ),
        producer,
        legacy_warned: Mutex::default(),
    };
    let retention = tokio::spawn(crate::retention::run_periodically(
        database_client(&config.clickhouse),
        config.clickhouse.database.clone(),
        config.retention.clone(),
        sink.writer.lock(),
        metrics.clone(),
        shutdown.clone(),
    ));
    let result = sink.consume(&consumer, &shutdown, &deadline).await;
    retention.abort();
    watch_stop.cancel();
    let _ = tokio::join!(broker_watch.stop(), clickhouse_watch);
    readiness.fail(KAFKA_CHECK, "stopping");
    close_consumer(consumer, Duration::from_secs(5));
    result
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The readiness check that ClickHouse answers a query (probed every 5 s).
const CLICKHOUSE_CHECK: &str = "clickhouse";
/// The readiness check that the last insert into ClickHouse succeeded.
const INSERT_CHECK: &str = "clickhouse_insert";

/// Asks ClickHouse for its version every [`PROBE_INTERVAL`], so that an
/// outage turns readiness red even while no batch is being written.
async fn watch_clickhouse(
    clickhouse: centile_runtime::config::ClickHouseConfig,
    readiness: Readiness,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(PROBE_INTERVAL) => {}
        }
        match check_connection(&clickhouse).await {
            Ok(_) => readiness.pass(CLICKHOUSE_CHECK),
            Err(e) => readiness.fail(CLICKHOUSE_CHECK, e.to_string()),
        }
    }
}

fn backoff(config: &Config) -> Backoff {
    Backoff {
        initial: config.sink.retry_initial_backoff,
        max: config.sink.retry_max_backoff,
    }
}

impl Sink<'_> {
    async fn consume(
        &self,
        consumer: &StreamConsumer<ConsumerLag>,
        shutdown: &CancellationToken,
        final_deadline: &CancellationToken,
    ) -> Result<(), SinkError> {
        let settings = &self.config.sink;
        let mut batch = Batch::default();
        loop {
            let deadline = batch.deadline(settings.batch_max_wait);
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = sleep_until(deadline) => {
                    batch = self.flush(consumer, batch, shutdown).await?;
                }
                message = consumer.recv() => match message {
                    Ok(message) => {
                        let decoded = self.resolver.decode(message.payload().unwrap_or_default()).await;
                        self.add(&message, decoded, &mut batch);
                        if batch.is_full(settings.batch_max_rows) {
                            batch = self.flush(consumer, batch, shutdown).await?;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "kafka consumer error"),
                },
            }
        }
        tracing::info!(
            messages = batch.messages(),
            "writing the open batch before exit"
        );
        self.flush(consumer, batch, final_deadline).await.map(drop)
    }

    /// Counts a message framed with the deprecated reversed fingerprint
    /// order, and warns once per writer schema.
    fn note_legacy(
        &self,
        legacy: LegacyFingerprint,
        message: &BorrowedMessage<'_>,
        batch: &mut Batch,
    ) {
        batch.tally.legacy(legacy.kind);
        let first = self
            .legacy_warned
            .lock()
            .expect("legacy warnings lock")
            .insert(legacy.fingerprint);
        if first {
            tracing::warn!(
                kind = legacy.kind.label(),
                topic = message.topic(),
                partition = message.partition(),
                offset = message.offset(),
                "{legacy}"
            );
        }
    }

    fn add(
        &self,
        message: &BorrowedMessage<'_>,
        decoded: Result<DecodedMessage, DecodeError>,
        batch: &mut Batch,
    ) {
        let topics = &self.config.topics;
        let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
        batch.track(topic, partition, offset);
        let role = if topic == topics.rollups {
            "rollups"
        } else if topic == topics.latency {
            "latency"
        } else {
            "usage"
        };
        batch.tally.message(role);
        let now = now_ms();
        let decoded = decoded.map(|d| {
            if let Some(legacy) = d.legacy_fingerprint {
                self.note_legacy(legacy, message, batch);
            }
            d.message
        });
        let outcome = decoded.and_then(|decoded| match (role, decoded) {
            ("rollups", Decoded::LatencyPane(p)) => {
                batch.push_latency_pane(LatencyPaneRow::new(p, now));
                Ok(())
            }
            ("rollups", Decoded::UsagePane(p)) => {
                batch.push_usage_pane(UsagePaneRow::new(p, now));
                Ok(())
            }
            ("rollups", Decoded::Watermark(w)) => {
                batch.push_watermark(WatermarkRow::new(w, partition));
                Ok(())
            }
            ("rollups", other) => Err(DecodeError::WrongTopic {
                found: other.kind().name(),
                expected: "rollup panes",
            }),
            (_, Decoded::Latency(e)) => self.admit(&e, e.occurred_at, message).map(|()| {
                batch.latency_events.push(LatencyEventRow::new(
                    e,
                    &self.hasher,
                    partition,
                    offset,
                    now,
                ));
            }),
            (_, Decoded::Usage(e)) => self.admit(&e, e.occurred_at, message).map(|()| {
                batch
                    .usage_events
                    .push(UsageEventRow::new(e, partition, offset, now));
            }),
            (_, other) => Err(DecodeError::WrongTopic {
                found: other.kind().name(),
                expected: "raw events",
            }),
        });
        if let Err(error) = outcome {
            let kind = if role == "rollups" { "rollup" } else { role };
            batch
                .tally
                .dead_lettered(kind, (topic, partition, offset), &error);
            let origin = Origin {
                topic,
                partition,
                offset,
                key: message.key(),
            };
            batch.dead_letters.push(dead_letter(
                &topics.dlq,
                &self.config.sink.group_id,
                origin,
                message.payload().unwrap_or_default(),
                &error,
                now,
            ));
        }
    }

    /// Validates a raw event, then judges its time against the record's
    /// publication time exactly as the aggregator does.
    fn admit(
        &self,
        event: &impl Validate,
        occurred_at: i64,
        message: &BorrowedMessage<'_>,
    ) -> Result<(), DecodeError> {
        event.validate(&self.limits)?;
        self.admission
            .check(occurred_at, message.timestamp().to_millis())
    }

    /// Writes the batch, retrying until it is durable or `stop` fires, then
    /// commits its offsets. Returns a fresh batch.
    async fn flush(
        &self,
        consumer: &StreamConsumer<ConsumerLag>,
        mut batch: Batch,
        stop: &CancellationToken,
    ) -> Result<Batch, SinkError> {
        if batch.is_empty() {
            return Ok(batch);
        }
        let started = Instant::now();
        if !batch.dead_letters.is_empty() {
            with_backoff(
                backoff(self.config),
                stop,
                "publishing dead letters",
                |e| {
                    self.readiness
                        .fail(PRODUCE_CHECK, format!("publishing dead letters: {e}"))
                },
                || send_all(&self.producer, &batch.dead_letters),
            )
            .await?;
            self.readiness.pass(PRODUCE_CHECK);
        }
        let written = with_backoff(
            backoff(self.config),
            stop,
            "clickhouse insert",
            |_| {},
            || async {
                let result = self.writer.write(&batch).await;
                self.metrics.clickhouse_up.set(i64::from(result.is_ok()));
                match &result {
                    Ok(()) => self.readiness.pass(INSERT_CHECK),
                    Err(e) => self
                        .readiness
                        .fail(INSERT_CHECK, format!("insert failed: {e}")),
                }
                result
            },
        )
        .await;
        written.map_err(SinkError::Unwritten)?;
        batch.tally.add_to(self.metrics);

        let mut list = TopicPartitionList::new();
        for (topic, partition, next) in batch.next_offsets() {
            list.add_partition_offset(topic, partition, Offset::Offset(next))?;
        }
        match consumer.commit(&list, CommitMode::Sync) {
            Ok(()) => {
                self.readiness.pass(COMMIT_CHECK);
                for (topic, partition, next) in batch.next_offsets() {
                    self.metrics
                        .committed_offset
                        .with_label_values(&[topic, &partition.to_string()])
                        .set(next);
                }
            }
            // Rows are durable and idempotent; uncommitted input is simply read again.
            Err(e) => {
                tracing::warn!(error = %e, "offset commit failed");
                self.readiness
                    .fail(COMMIT_CHECK, format!("offset commit failed: {e}"));
            }
        }
        self.metrics.batch_messages.observe(batch.messages() as f64);
        self.metrics
            .flush_duration
            .observe(started.elapsed().as_secs_f64());
        Ok(Batch::default())
    }
}
