-- Analyst-facing views. None of them needs FINAL from the caller and none
-- exposes panes.
--
-- Pane views read `<panes> FINAL`, which keeps only the highest version of
-- each pane_id and is exact even before background merges, then SUM the
-- surviving panes of the same window + dimensions (they cover disjoint
-- inputs). Percentiles merge every pane's t-digest centroids with their
-- weights via quantilesExactWeightedArray (the -Array combinator over the two
-- parallel arrays); all three levels share one aggregate state.
--
-- Output aliases never equal a source column used inside an aggregate
-- (calls -> call_count, rt_min -> min_response_time, ...), except
-- any(parameters) AS parameters, which is the only use of that column.
-- Rates/averages divide by greatest(count, 1) so an all-zero group yields 0.
-- Cost: Int64 nanos -> Decimal(18, 9) dollars exactly (no float):
--     toDecimal64(sum(nanos), 0) * toDecimal64('0.000000001', 9)

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

CREATE VIEW IF NOT EXISTS ${database}.latency_minute AS
SELECT
    window_start,
    tenant_id,
    model_id,
    provider,
    tool,
    parameter_hash,
    any(parameters) AS parameters,
    sum(calls) AS call_count,
    sum(successes) AS success_count,
    sum(errors) AS error_count,
    sum(successes) / greatest(sum(calls), 1) AS success_rate,
    sum(rt_sum) / greatest(sum(calls), 1) AS avg_response_time,
    min(rt_min) AS min_response_time,
    max(rt_max) AS max_response_time,
    arrayElement(quantilesExactWeightedArray(0.5, 0.95, 0.99)(centroid_means, centroid_weights), 1) AS p50_response_time,
    arrayElement(quantilesExactWeightedArray(0.5, 0.95, 0.99)(centroid_means, centroid_weights), 2) AS p95_response_time,
    arrayElement(quantilesExactWeightedArray(0.5, 0.95, 0.99)(centroid_means, centroid_weights), 3) AS p99_response_time,
    sum(input_tokens_sum) / greatest(sum(input_tokens_count), 1) AS avg_input_tokens,
    sum(output_tokens_sum) / greatest(sum(output_tokens_count), 1) AS avg_output_tokens,
    sum(input_tokens_sum) AS total_input_tokens,
    sum(output_tokens_sum) AS total_output_tokens
FROM ${database}.latency_panes FINAL
WHERE granularity = 'minute'
GROUP BY window_start, tenant_id, model_id, provider, tool, parameter_hash;

CREATE VIEW IF NOT EXISTS ${database}.latency_hourly AS
SELECT
    window_start,
    tenant_id,
    model_id,
    provider,
    tool,
    parameter_hash,
    any(parameters) AS parameters,
    sum(calls) AS call_count,
    sum(successes) AS success_count,
    sum(errors) AS error_count,
    sum(successes) / greatest(sum(calls), 1) AS success_rate,
    sum(rt_sum) / greatest(sum(calls), 1) AS avg_response_time,
    min(rt_min) AS min_response_time,
    max(rt_max) AS max_response_time,
    arrayElement(quantilesExactWeightedArray(0.5, 0.95, 0.99)(centroid_means, centroid_weights), 1) AS p50_response_time,
    arrayElement(quantilesExactWeightedArray(0.5, 0.95, 0.99)(centroid_means, centroid_weights), 2) AS p95_response_time,
    arrayElement(quantilesExactWeightedArray(0.5, 0.95, 0.99)(centroid_means, centroid_weights), 3) AS p99_response_time,
    sum(input_tokens_sum) / greatest(sum(input_tokens_count), 1) AS avg_input_tokens,
    sum(output_tokens_sum) / greatest(sum(output_tokens_count), 1) AS avg_output_tokens,
    sum(input_tokens_sum) AS total_input_tokens,
    sum(output_tokens_sum) AS total_output_tokens
FROM ${database}.latency_panes FINAL
WHERE granularity = 'hour'
GROUP BY window_start, tenant_id, model_id, provider, tool, parameter_hash;

CREATE VIEW IF NOT EXISTS ${database}.latency_daily AS
SELECT
    window_start,
    tenant_id,
    model_id,
    provider,
    tool,
    parameter_hash,
    any(parameters) AS parameters,
    sum(calls) AS call_count,
    sum(successes) AS success_count,
    sum(errors) AS error_count,
    sum(successes) / greatest(sum(calls), 1) AS success_rate,
    sum(rt_sum) / greatest(sum(calls), 1) AS avg_response_time,
    min(rt_min) AS min_response_time,
    max(rt_max) AS max_response_time,
    arrayElement(quantilesExactWeightedArray(0.5, 0.95, 0.99)(centroid_means, centroid_weights), 1) AS p50_response_time,
    arrayElement(quantilesExactWeightedArray(0.5, 0.95, 0.99)(centroid_means, centroid_weights), 2) AS p95_response_time,
    arrayElement(quantilesExactWeightedArray(0.5, 0.95, 0.99)(centroid_means, centroid_weights), 3) AS p99_response_time,
    sum(input_tokens_sum) / greatest(sum(input_tokens_count), 1) AS avg_input_tokens,
    sum(output_tokens_sum) / greatest(sum(output_tokens_count), 1) AS avg_output_tokens,
    sum(input_tokens_sum) AS total_input_tokens,
    sum(output_tokens_sum) AS total_output_tokens
FROM ${database}.latency_panes FINAL
WHERE granularity = 'day'
GROUP BY window_start, tenant_id, model_id, provider, tool, parameter_hash;

CREATE VIEW IF NOT EXISTS ${database}.usage_minute AS
SELECT
    window_start,
    tenant_id,
    model_id,
    provider,
    feature,
    sum(requests) AS request_count,
    sum(input_tokens_sum) AS total_input_tokens,
    sum(output_tokens_sum) AS total_output_tokens,
    toDecimal64(sum(cost_usd_nanos_sum), 0) * toDecimal64('0.000000001', 9) AS total_cost_usd
FROM ${database}.usage_panes FINAL
WHERE granularity = 'minute'
GROUP BY window_start, tenant_id, model_id, provider, feature;

CREATE VIEW IF NOT EXISTS ${database}.usage_hourly AS
SELECT
    window_start,
    tenant_id,
    model_id,
    provider,
    feature,
    sum(requests) AS request_count,
    sum(input_tokens_sum) AS total_input_tokens,
    sum(output_tokens_sum) AS total_output_tokens,
    toDecimal64(sum(cost_usd_nanos_sum), 0) * toDecimal64('0.000000001', 9) AS total_cost_usd
FROM ${database}.usage_panes FINAL
WHERE granularity = 'hour'
GROUP BY window_start, tenant_id, model_id, provider, feature;

CREATE VIEW IF NOT EXISTS ${database}.usage_daily AS
SELECT
    window_start,
    tenant_id,
    model_id,
    provider,
    feature,
    sum(requests) AS request_count,
    sum(input_tokens_sum) AS total_input_tokens,
    sum(output_tokens_sum) AS total_output_tokens,
    toDecimal64(sum(cost_usd_nanos_sum), 0) * toDecimal64('0.000000001', 9) AS total_cost_usd
FROM ${database}.usage_panes FINAL
WHERE granularity = 'day'
GROUP BY window_start, tenant_id, model_id, provider, feature;

-- Per day and model: latency merged across all tenants/tools/parameter sets,
-- usage/cost from the usage panes of the same day+model+provider (0 when
-- there are none). 18.16 needs explicit ANY/ALL strictness on JOIN (the
-- right side is already unique per key, so ANY == ALL here); modern servers
-- need an alias on each joined subquery (joined_subquery_requires_alias).
-- ifNull() keeps the column types non-Nullable and 0 for unmatched rows
-- whatever the caller's join_use_nulls setting is.
CREATE VIEW IF NOT EXISTS ${database}.top_models_daily AS
SELECT
    window_start,
    model_id,
    provider,
    call_count,
    error_rate,
    p50_response_time,
    p95_response_time,
    p99_response_time,
    ifNull(usg_cost_usd, toDecimal64(0, 9)) AS total_cost_usd,
    ifNull(usg_requests, toUInt64(0)) AS request_count
FROM
(
    SELECT
        window_start,
        model_id,
        provider,
        sum(calls) AS call_count,
        sum(errors) / greatest(sum(calls), 1) AS error_rate,
        arrayElement(quantilesExactWeightedArray(0.5, 0.95, 0.99)(centroid_means, centroid_weights), 1) AS p50_response_time,
        arrayElement(quantilesExactWeightedArray(0.5, 0.95, 0.99)(centroid_means, centroid_weights), 2) AS p95_response_time,
        arrayElement(quantilesExactWeightedArray(0.5, 0.95, 0.99)(centroid_means, centroid_weights), 3) AS p99_response_time
    FROM ${database}.latency_panes FINAL
    WHERE granularity = 'day'
    GROUP BY window_start, model_id, provider
) AS lat
ANY LEFT JOIN
(
    SELECT
        window_start,
        model_id,
        provider,
        sum(requests) AS usg_requests,
        toDecimal64(sum(cost_usd_nanos_sum), 0) * toDecimal64('0.000000001', 9) AS usg_cost_usd
    FROM ${database}.usage_panes FINAL
    WHERE granularity = 'day'
    GROUP BY window_start, model_id, provider
) AS usg
USING (window_start, model_id, provider);
