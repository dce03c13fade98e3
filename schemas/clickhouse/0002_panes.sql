-- Pre-aggregated rollup panes. A pane is a partial aggregate of one window
-- over a disjoint slice of the input (e.g. one Kafka partition). Rows with
-- the same pane_id are versions of the same pane: ReplacingMergeTree(version)
-- keeps the highest version. Different pane_ids of the same window and
-- dimensions are summed by the views in 0003.
--
-- pane_id is the last sorting-key column, so FINAL collapses exactly the
-- versions of one pane (its dimensions never change between versions).
-- centroid_means / centroid_weights are parallel arrays (same length per row).

CREATE TABLE IF NOT EXISTS ${database}.latency_panes
(
    pane_id              String,
    version              UInt64,
    granularity          String,
    window_start         DateTime('UTC'),
    window_end           DateTime('UTC'),
    tenant_id            String,
    model_id             String,
    provider             String,
    tool                 String,
    parameter_hash       String,
    parameters           String,
    source_topic         String,
    source_partition     Int32,
    first_offset         Int64,
    last_offset          Int64,
    is_final             UInt8,
    watermark_ms         Int64,
    calls                UInt64,
    successes            UInt64,
    errors               UInt64,
    rt_sum               Float64,
    rt_min               Float64,
    rt_max               Float64,
    input_tokens_sum     Int64,
    input_tokens_count   UInt64,
    output_tokens_sum    Int64,
    output_tokens_count  UInt64,
    centroid_means       Array(Float64),
    centroid_weights     Array(UInt64),
    emitted_at           DateTime('UTC')
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (granularity, window_start, tenant_id, model_id, provider, tool, parameter_hash, pane_id);

CREATE TABLE IF NOT EXISTS ${database}.usage_panes
(
    pane_id              String,
    version              UInt64,
    granularity          String,
    window_start         DateTime('UTC'),
    window_end           DateTime('UTC'),
    tenant_id            String,
    model_id             String,
    provider             String,
    feature              String,
    source_topic         String,
    source_partition     Int32,
    first_offset         Int64,
    last_offset          Int64,
    is_final             UInt8,
    watermark_ms         Int64,
    requests             UInt64,
    input_tokens_sum     Int64,
    output_tokens_sum    Int64,
    cost_usd_nanos_sum   Int64,
    emitted_at           DateTime('UTC')
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (granularity, window_start, tenant_id, model_id, provider, feature, pane_id);
