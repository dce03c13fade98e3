-- Raw-event views: each event exactly once (FINAL keeps one row per
-- event_id).
--
-- Superseded: this migration also created the rollup views, merging minute
-- panes at query time. Since 0006 they read stored tiers and are generated
-- from one template per kind and tier (crates/sink/src/rollup/sql.rs); their
-- old text is gone from here. Servers that applied the full file keep its
-- recorded checksum, which the migrator still accepts.

CREATE VIEW IF NOT EXISTS ${database}.latency_events_dedup AS
SELECT
    event_id, occurred_at, occurred_at_ms, tenant_id, model_id, provider, tool,
    parameters, parameter_hash, response_time_ms, success, error_type,
    input_tokens, output_tokens, source_partition, source_offset, ingested_at
FROM ${database}.latency_events FINAL;

CREATE VIEW IF NOT EXISTS ${database}.usage_events_dedup AS
SELECT
    event_id, occurred_at, occurred_at_ms, tenant_id, user_id, model_id, provider,
    feature, input_tokens, output_tokens, cost_usd_nanos, source_partition,
    source_offset, ingested_at
FROM ${database}.usage_events FINAL;
