-- Raw, per-event tables. Column order is the RowBinary insert order used by
-- the Rust writer: do not reorder, only append.
--
-- ReplacingMergeTree (no version column): Kafka redeliveries carry identical
-- values, so collapsing rows with the same sorting key (which ends in
-- event_id) is a pure dedup. Query through the *_dedup views (0003), which
-- use FINAL so results are exact even before background merges.

CREATE TABLE IF NOT EXISTS ${database}.latency_events
(
    event_id          String,
    occurred_at       DateTime('UTC'),
    occurred_at_ms    Int64,
    tenant_id         String,
    model_id          String,
    provider          String,
    tool              String,
    parameters        String,
    parameter_hash    String,
    response_time_ms  Float64,
    success           UInt8,
    error_type        Nullable(String),
    input_tokens      Nullable(Int64),
    output_tokens     Nullable(Int64),
    source_partition  Int32,
    source_offset     Int64,
    ingested_at       DateTime('UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(occurred_at)
ORDER BY (tenant_id, model_id, occurred_at, event_id);

CREATE TABLE IF NOT EXISTS ${database}.usage_events
(
    event_id          String,
    occurred_at       DateTime('UTC'),
    occurred_at_ms    Int64,
    tenant_id         String,
    user_id           Nullable(String),
    model_id          String,
    provider          String,
    feature           String,
    input_tokens      Int64,
    output_tokens     Int64,
    cost_usd_nanos    Int64,
    source_partition  Int32,
    source_offset     Int64,
    ingested_at       DateTime('UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(occurred_at)
ORDER BY (tenant_id, model_id, occurred_at, event_id);
