//! The aggregator's Prometheus metrics, each declared and registered in one
//! statement. Labels are bounded: kinds, reasons (all created at zero), and
//! the topic/partition pairs this instance is assigned.

use centile_events::{DecodeError, SchemaKind};

use crate::engine::SourcePos;
use centile_runtime::{
    kafka_health::ConsumerMetrics,
    metrics::{Declare, Label, Pending, DURATION_BUCKETS},
};
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};

/// The input kinds, by topic role.
pub const KINDS: [&str; 2] = ["latency", "usage"];

#[derive(Debug, Clone)]
pub struct AggregatorMetrics {
    pub events: IntCounterVec,
    pub refused: IntCounterVec,
    pub legacy_fingerprint_messages: IntCounterVec,
    pub late_events: IntCounter,
    pub duplicates: IntCounter,
    pub imported_skipped: IntCounter,
    pub panes_emitted: IntCounterVec,
    pub open_panes: IntGauge,
    pub watermark: IntGaugeVec,
    pub committed_offset: IntGaugeVec,
    pub position: IntGaugeVec,
    pub resumed_offset: IntGaugeVec,
    pub checkpoints_written: IntCounter,
    pub partitions_assigned: IntCounterVec,
    pub flush_duration: Histogram,
    pub publish_retries: IntCounter,
    /// Log-end offsets and lag of the input partitions.
    pub consumer: ConsumerMetrics,
}

const PARTITION: [Label; 2] = [Label::Open("topic"), Label::Open("partition")];

impl AggregatorMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let d = Declare::new(registry, "aggregator");
        Ok(Self {
            events: d.counter_vec(
                "centile_aggregator_events_total",
                "Valid raw events aggregated, by kind.",
                &[Label::Known("kind", &KINDS)],
            )?,
            refused: d.counter_vec(
                "centile_aggregator_refused_messages_total",
                "Raw messages skipped because they could not be decoded, validated or admitted (too_late, future), by kind (the topic's) and reason; the sink dead-letters the same messages.",
                &[
                    Label::Known("kind", &KINDS),
                    Label::Known("reason", &DecodeError::KINDS),
                ],
            )?,
            imported_skipped: d.counter(
                "centile_aggregator_imported_events_skipped_total",
                "Raw events from the history import, which publishes their panes itself; not aggregated again.",
            )?,
            legacy_fingerprint_messages: d.counter_vec(
                "centile_aggregator_legacy_fingerprint_messages_total",
                "Single-object messages whose header carries the schema fingerprint in the deprecated reversed byte order; still read during the deprecation window. By schema kind.",
                &[Label::Known("kind", &SchemaKind::LABELS)],
            )?,
            late_events: d.counter(
                "centile_aggregator_late_events_total",
                "Events that arrived after at least one of their windows was final; they form new panes.",
            )?,
            duplicates: d.counter(
                "centile_aggregator_duplicate_events_total",
                "Events whose id was already counted in the same segment (producer retries); counted once.",
            )?,
            panes_emitted: d.counter_vec(
                "centile_aggregator_panes_emitted_total",
                "Rollup panes published, by kind and finality.",
                &[
                    Label::Known("kind", &KINDS),
                    Label::Known("final", &["true", "false"]),
                ],
            )?,
            open_panes: d.gauge("centile_aggregator_open_panes", "Panes held in memory.")?,
            watermark: d.gauge_vec(
                "centile_aggregator_watermark_timestamp_seconds",
                "Per source partition, the instant (Unix seconds) up to which minute windows are final and published: the sealed-until watermark.",
                &PARTITION,
            )?,
            committed_offset: d.gauge_vec(
                "centile_aggregator_committed_offset",
                "Next input offset committed per source partition: the start of its current segment.",
                &PARTITION,
            )?,
            position: d.gauge_vec(
                "centile_aggregator_position_offset",
                "Next input offset to read per source partition.",
                &PARTITION,
            )?,
            resumed_offset: d.gauge_vec(
                "centile_aggregator_resumed_offset",
                "Offset a source partition was last resumed from when it was assigned.",
                &PARTITION,
            )?,
            checkpoints_written: d.counter(
                "centile_aggregator_checkpoints_written_total",
                "Checkpoint records persisted: segment starts and how far their panes reach.",
            )?,
            partitions_assigned: d.counter_vec(
                "centile_aggregator_partitions_assigned_total",
                "Partitions taken on, by whether a checkpoint was found.",
                &[Label::Known("from_checkpoint", &["true", "false"])],
            )?,
            flush_duration: d.histogram(
                "centile_aggregator_flush_duration_seconds",
                "Time to publish a flush's panes and commit its offsets.",
                &DURATION_BUCKETS,
            )?,
            publish_retries: d.counter(
                "centile_aggregator_publish_retries_total",
                "Times a flush was re-published after the broker failed to acknowledge it.",
            )?,
            consumer: ConsumerMetrics::register(registry)?,
        })
    }
}

/// Counts of the per-message outcomes, kept in plain integers by the hot
/// loop and added to the metrics once per flush.
#[derive(Debug, Default)]
pub struct Tally {
    events: Pending<1>,
    refused: Pending<2>,
    legacy: Pending<1>,
    late: u64,
    duplicates: u64,
    imported_skipped: u64,
}

impl Tally {
    pub fn event(&mut self, kind: &'static str) {
        self.events.add([kind]);
    }

    /// An internal event: logs a skipped message (at debug: the sink
    /// dead-letters the same message and warns about it) and counts it.
    pub fn refused(&mut self, kind: &'static str, pos: &SourcePos<'_>, error: &DecodeError) {
        tracing::debug!(topic = pos.topic, partition = pos.partition, offset = pos.offset, %error, "skipping a refused message");
        self.refused.add([kind, error.kind()]);
    }

    pub fn legacy(&mut self, kind: SchemaKind) {
        self.legacy.add([kind.label()]);
    }

    pub fn late(&mut self) {
        self.late += 1;
    }

    pub fn duplicate(&mut self) {
        self.duplicates += 1;
    }

    pub fn imported_skipped(&mut self) {
        self.imported_skipped += 1;
    }

    /// Adds the counts to `metrics` and starts over.
    pub fn flush(&mut self, metrics: &AggregatorMetrics) {
        self.events.flush_into(&metrics.events);
        self.refused.flush_into(&metrics.refused);
        self.legacy.flush_into(&metrics.legacy_fingerprint_messages);
        metrics.late_events.inc_by(std::mem::take(&mut self.late));
        metrics
            .duplicates
            .inc_by(std::mem::take(&mut self.duplicates));
        metrics
            .imported_skipped
            .inc_by(std::mem::take(&mut self.imported_skipped));
    }
}
