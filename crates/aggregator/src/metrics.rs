//! The aggregator's Prometheus metrics. Labels are bounded: kinds, reasons,
//! and the topic/partition pairs this instance is assigned.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

#[derive(Debug, Clone)]
pub struct AggregatorMetrics {
    pub events: IntCounterVec,
    pub rejected: IntCounterVec,
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
    pub segments_resumed: IntCounterVec,
    pub flush_duration: Histogram,
    pub publish_retries: IntCounter,
}

impl AggregatorMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self {
            events: IntCounterVec::new(
                Opts::new("centile_aggregator_events_total", "Valid raw events aggregated, by kind."),
                &["kind"],
            )?,
            rejected: IntCounterVec::new(
                Opts::new(
                    "centile_aggregator_rejected_messages_total",
                    "Raw messages skipped because they could not be decoded, validated or admitted (too_late, future); the sink dead-letters them. By reason.",
                ),
                &["reason"],
            )?,
            imported_skipped: IntCounter::new(
                "centile_aggregator_imported_events_skipped_total",
                "Raw events from the history import, which publishes their panes itself; not aggregated again.",
            )?,
            legacy_fingerprint_messages: IntCounterVec::new(
                Opts::new(
                    "centile_aggregator_legacy_fingerprint_messages_total",
                    "Single-object messages whose header carries the schema fingerprint in the deprecated reversed byte order; still read during the deprecation window. By schema kind.",
                ),
                &["kind"],
            )?,
            late_events: IntCounter::new(
                "centile_aggregator_late_events_total",
                "Events that arrived after at least one of their windows was final; they form new panes.",
            )?,
            duplicates: IntCounter::new(
                "centile_aggregator_duplicate_events_total",
                "Events whose id was already counted in the same segment (producer retries); counted once.",
            )?,
            panes_emitted: IntCounterVec::new(
                Opts::new("centile_aggregator_panes_emitted_total", "Rollup panes published, by kind and finality."),
                &["kind", "final"],
            )?,
            open_panes: IntGauge::new("centile_aggregator_open_panes", "Panes held in memory.")?,
            watermark: IntGaugeVec::new(
                Opts::new(
                    "centile_aggregator_watermark_seconds",
                    "Per source partition, the instant (Unix seconds) up to which minute windows are final and published: the sealed-until watermark.",
                ),
                &["topic", "partition"],
            )?,
            committed_offset: IntGaugeVec::new(
                Opts::new(
                    "centile_aggregator_committed_offset",
                    "Next input offset committed per source partition: the start of its current segment.",
                ),
                &["topic", "partition"],
            )?,
            position: IntGaugeVec::new(
                Opts::new(
                    "centile_aggregator_position_offset",
                    "Next input offset to read per source partition.",
                ),
                &["topic", "partition"],
            )?,
            resumed_offset: IntGaugeVec::new(
                Opts::new(
                    "centile_aggregator_resumed_offset",
                    "Offset a source partition was last resumed from when it was assigned.",
                ),
                &["topic", "partition"],
            )?,
            checkpoints_written: IntCounter::new(
                "centile_aggregator_checkpoints_written_total",
                "Segment checkpoints persisted.",
            )?,
            segments_resumed: IntCounterVec::new(
                Opts::new(
                    "centile_aggregator_partitions_assigned_total",
                    "Partitions taken on, by whether a checkpoint was found.",
                ),
                &["from_checkpoint"],
            )?,
            flush_duration: Histogram::with_opts(HistogramOpts::new(
                "centile_aggregator_flush_duration_seconds",
                "Time to publish a flush's panes and commit its offsets.",
            ))?,
            publish_retries: IntCounter::new(
                "centile_aggregator_publish_retries_total",
                "Times a flush was re-published after the broker failed to acknowledge it.",
            )?,
        };
        registry.register(Box::new(metrics.events.clone()))?;
        registry.register(Box::new(metrics.rejected.clone()))?;
        registry.register(Box::new(metrics.imported_skipped.clone()))?;
        registry.register(Box::new(metrics.legacy_fingerprint_messages.clone()))?;
        registry.register(Box::new(metrics.late_events.clone()))?;
        registry.register(Box::new(metrics.duplicates.clone()))?;
        registry.register(Box::new(metrics.panes_emitted.clone()))?;
        registry.register(Box::new(metrics.open_panes.clone()))?;
        registry.register(Box::new(metrics.watermark.clone()))?;
        registry.register(Box::new(metrics.committed_offset.clone()))?;
        registry.register(Box::new(metrics.position.clone()))?;
        registry.register(Box::new(metrics.resumed_offset.clone()))?;
        registry.register(Box::new(metrics.checkpoints_written.clone()))?;
        registry.register(Box::new(metrics.segments_resumed.clone()))?;
        registry.register(Box::new(metrics.flush_duration.clone()))?;
        registry.register(Box::new(metrics.publish_retries.clone()))?;
        Ok(metrics)
    }
}
