//! The sink's Prometheus metrics.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

#[derive(Debug, Clone)]
pub struct SinkMetrics {
    pub messages: IntCounterVec,
    pub rows_written: IntCounterVec,
    pub insert_failures: IntCounterVec,
    pub dead_letters: IntCounterVec,
    pub legacy_fingerprint_messages: IntCounterVec,
    pub flush_duration: Histogram,
    pub batch_messages: Histogram,
    pub clickhouse_up: IntGauge,
    pub committed_offset: IntGaugeVec,
    pub compactions: IntCounter,
    pub compaction_failures: IntCounter,
    pub compaction_seconds: Histogram,
    pub retention_dropped_partitions: IntCounterVec,
}

impl SinkMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self {
            messages: IntCounterVec::new(
                Opts::new(
                    "centile_sink_messages_total",
                    "Messages consumed, by topic role (latency, usage, rollups).",
                ),
                &["role"],
            )?,
            rows_written: IntCounterVec::new(
                Opts::new(
                    "centile_sink_rows_written_total",
                    "Rows inserted into ClickHouse, by table.",
                ),
                &["table"],
            )?,
            insert_failures: IntCounterVec::new(
                Opts::new(
                    "centile_sink_insert_failures_total",
                    "Failed ClickHouse inserts (retried), by table.",
                ),
                &["table"],
            )?,
            dead_letters: IntCounterVec::new(
                Opts::new(
                    "centile_sink_dead_letters_total",
                    "Messages sent to the dead-letter topic, by reason.",
                ),
                &["reason"],
            )?,
            legacy_fingerprint_messages: IntCounterVec::new(
                Opts::new(
                    "centile_sink_legacy_fingerprint_messages_total",
                    "Single-object messages whose header carries the schema fingerprint in the deprecated reversed byte order; still read during the deprecation window. By schema kind.",
                ),
                &["kind"],
            )?,
            flush_duration: Histogram::with_opts(HistogramOpts::new(
                "centile_sink_flush_duration_seconds",
                "Time to write a batch to ClickHouse and commit its offsets, retries included.",
            ))?,
            batch_messages: Histogram::with_opts(
                HistogramOpts::new("centile_sink_batch_messages", "Messages per written batch.")
                    .buckets(prometheus::exponential_buckets(1.0, 4.0, 10)?),
            )?,
            clickhouse_up: IntGauge::new(
                "centile_sink_clickhouse_up",
                "1 when the last ClickHouse write succeeded, 0 while writes are failing.",
            )?,
            committed_offset: IntGaugeVec::new(
                Opts::new(
                    "centile_sink_committed_offset",
                    "Next offset committed, per topic and partition.",
                ),
                &["topic", "partition"],
            )?,
            compactions: IntCounter::new(
                "centile_sink_compaction_statements_total",
                "Stored-tier recomputations run (one per kind and tier of a batch).",
            )?,
            compaction_failures: IntCounter::new(
                "centile_sink_compaction_failures_total",
                "Stored-tier recomputations that failed (the batch is retried).",
            )?,
            compaction_seconds: Histogram::with_opts(HistogramOpts::new(
                "centile_sink_compaction_duration_seconds",
                "Time to recompute the minute, hour, day and week rows a batch touched.",
            ))?,
            retention_dropped_partitions: IntCounterVec::new(
                Opts::new(
                    "centile_sink_retention_dropped_partitions_total",
                    "Expired partitions dropped by the retention job, by table.",
                ),
                &["table"],
            )?,
        };
        registry.register(Box::new(metrics.messages.clone()))?;
        registry.register(Box::new(metrics.rows_written.clone()))?;
        registry.register(Box::new(metrics.insert_failures.clone()))?;
        registry.register(Box::new(metrics.dead_letters.clone()))?;
        registry.register(Box::new(metrics.legacy_fingerprint_messages.clone()))?;
        registry.register(Box::new(metrics.flush_duration.clone()))?;
        registry.register(Box::new(metrics.batch_messages.clone()))?;
        registry.register(Box::new(metrics.clickhouse_up.clone()))?;
        registry.register(Box::new(metrics.committed_offset.clone()))?;
        registry.register(Box::new(metrics.compactions.clone()))?;
        registry.register(Box::new(metrics.compaction_failures.clone()))?;
        registry.register(Box::new(metrics.compaction_seconds.clone()))?;
        registry.register(Box::new(metrics.retention_dropped_partitions.clone()))?;
        Ok(metrics)
    }
}
