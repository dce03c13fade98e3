-- Watermarks: per source partition and rollup partition, the time up to
-- which minute windows are final (window_status reads them).
--
-- Superseded: this migration also replaced the rollup views and created
-- window_status, still merging minute panes at query time. Since 0006 the
-- views read stored tiers, generated from one template per kind and tier
-- (crates/sink/src/rollup/sql.rs). Servers that applied the full file keep
-- its recorded checksum, which the migrator still accepts.

CREATE TABLE IF NOT EXISTS ${database}.source_watermarks
(
    source_topic      String,
    source_partition  Int32,
    rollup_partition  Int32,
    watermark         DateTime('UTC'),
    next_offset       Int64,
    emitted_at        DateTime('UTC')
)
ENGINE = ReplacingMergeTree(watermark)
ORDER BY (source_topic, source_partition, rollup_partition);
