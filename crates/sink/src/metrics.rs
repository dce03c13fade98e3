//! The sink's Prometheus metrics, each declared and registered in one
//! statement. Every known label value (roles, kinds, reasons, tables) is
//! created at zero, so the first failure of a kind shows in `rate()`.

use centile_events::{DecodeError, SchemaKind};
use centile_runtime::{
    kafka_health::ConsumerMetrics,
    metrics::{Declare, Label, Pending, DURATION_BUCKETS},
};
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};

use crate::writer::{LATENCY_EVENTS, LATENCY_PANES, SOURCE_WATERMARKS, USAGE_EVENTS, USAGE_PANES};

/// The topic roles the sink reads.
pub const ROLES: [&str; 3] = ["latency", "usage", "rollups"];
/// The kinds of refused messages: the raw kinds, and rollup panes.
pub const KINDS: [&str; 3] = ["latency", "usage", "rollup"];
/// The tables every batch may insert into.
pub const TABLES: [&str; 5] = [
    LATENCY_EVENTS,
    USAGE_EVENTS,
    LATENCY_PANES,
    USAGE_PANES,
    SOURCE_WATERMARKS,
];

#[derive(Debug, Clone)]
pub struct SinkMetrics {
    pub messages: IntCounterVec,
    pub rows_written: IntCounterVec,
    pub insert_failures: IntCounterVec,
    pub refused: IntCounterVec,
    pub legacy_fingerprint_messages: IntCounterVec,
    pub flush_duration: Histogram,
    pub batch_messages: Histogram,
    pub clickhouse_up: IntGauge,
    pub committed_offset: IntGaugeVec,
    pub compactions: IntCounter,
    pub compaction_failures: IntCounter,
    pub compaction_seconds: Histogram,
    pub retention_dropped_partitions: IntCounterVec,
    pub price_book_reloads: IntCounterVec,
    pub price_book_versions: IntGauge,
    /// Log-end offsets and lag of the input partitions.
    pub consumer: ConsumerMetrics,
}

impl SinkMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let d = Declare::new(registry, "sink");
        Ok(Self {
            messages: d.counter_vec(
                "centile_sink_messages_total",
                "Messages consumed, by topic role (latency, usage, rollups); counted per written batch.",
                &[Label::Known("role", &ROLES)],
            )?,
            rows_written: d.counter_vec(
                "centile_sink_rows_written_total",
                "Rows inserted into ClickHouse, by table.",
                &[Label::Known("table", &TABLES)],
            )?,
            insert_failures: d.counter_vec(
                "centile_sink_insert_failures_total",
                "Failed ClickHouse inserts (retried), by table.",
                &[Label::Known("table", &TABLES)],
            )?,
            refused: d.counter_vec(
                "centile_sink_refused_messages_total",
                "Messages refused (undecodable, invalid, or outside the admission limits) and sent to the dead-letter topic, by kind (the topic's: latency, usage, rollup) and reason.",
                &[
                    Label::Known("kind", &KINDS),
                    Label::Known("reason", &DecodeError::KINDS),
                ],
            )?,
            legacy_fingerprint_messages: d.counter_vec(
                "centile_sink_legacy_fingerprint_messages_total",
                "Single-object messages whose header carries the schema fingerprint in the deprecated reversed byte order; still read during the deprecation window. By schema kind.",
                &[Label::Known("kind", &SchemaKind::LABELS)],
            )?,
            flush_duration: d.histogram(
                "centile_sink_flush_duration_seconds",
                "Time to write a batch to ClickHouse and commit its offsets, retries included.",
                &DURATION_BUCKETS,
            )?,
            batch_messages: d.histogram(
                "centile_sink_batch_messages",
                "Messages per written batch.",
                &prometheus::exponential_buckets(1.0, 4.0, 10)?,
            )?,
            clickhouse_up: d.gauge(
                "centile_sink_clickhouse_up",
                "1 when the last ClickHouse write succeeded (and after start-up migrations), 0 while writes are failing.",
            )?,
            committed_offset: d.gauge_vec(
                "centile_sink_committed_offset",
                "Next offset committed, per topic and partition.",
                &[Label::Open("topic"), Label::Open("partition")],
            )?,
            compactions: d.counter(
                "centile_sink_compaction_statements_total",
                "Stored-tier recomputations run (one per kind and tier of a batch).",
            )?,
            compaction_failures: d.counter(
                "centile_sink_compaction_failures_total",
                "Stored-tier recomputations that failed (the batch is retried).",
            )?,
            compaction_seconds: d.histogram(
                "centile_sink_compaction_duration_seconds",
                "Time to recompute the minute, hour, day and week rows a batch touched.",
                &DURATION_BUCKETS,
            )?,
            retention_dropped_partitions: d.counter_vec(
                "centile_sink_retention_dropped_partitions_total",
                "Expired partitions dropped by the retention job, by table.",
                &[Label::Open("table")],
            )?,
            price_book_reloads: d.counter_vec(
                "centile_sink_price_book_reloads_total",
                "Times the price book file changed and was read again, by outcome: loaded, or refused (it could not be used; the last good book stays and the log names the entry and field).",
                &[Label::Known("outcome", &["loaded", "refused"])],
            )?,
            price_book_versions: d.gauge(
                "centile_sink_price_book_versions",
                "Price versions in the book the sink prices with.",
            )?,
            consumer: ConsumerMetrics::register(registry)?,
        })
    }
}

/// Per-message counts of one batch, added to the metrics when it is written.
#[derive(Debug, Default)]
pub struct BatchTally {
    messages: Pending<1>,
    refused: Pending<2>,
    legacy: Pending<1>,
}

impl BatchTally {
    pub fn message(&mut self, role: &'static str) {
        self.messages.add([role]);
    }

    /// An internal event: logs a refused message and counts it, in one
    /// call. The count reaches the metrics when the batch, with its dead
    /// letter, is written.
    pub fn dead_lettered(&mut self, kind: &'static str, at: (&str, i32, i64), error: &DecodeError) {
        let (topic, partition, offset) = at;
        tracing::warn!(topic, partition, offset, reason = %error, "dead-lettering message");
        self.refused.add([kind, error.kind()]);
    }

    pub fn legacy(&mut self, kind: SchemaKind) {
        self.legacy.add([kind.label()]);
    }

    pub fn add_to(&mut self, metrics: &SinkMetrics) {
        self.messages.flush_into(&metrics.messages);
        self.refused.flush_into(&metrics.refused);
        self.legacy.flush_into(&metrics.legacy_fingerprint_messages);
    }
}
