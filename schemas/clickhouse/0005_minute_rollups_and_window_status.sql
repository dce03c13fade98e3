-- Rollups for exactly-once recovery (issue 3).
--
-- The aggregator now emits minute panes only: a pane never stays open for
-- longer than a minute plus the allowed lateness, so a restart replays at
-- most that much input. Hour and day rows are merged here from the minute
-- panes, exactly as minute rows are: `FINAL` keeps each pane's highest
-- version, distinct panes of a bucket are summed, and the t-digest
-- centroids of all of them feed one quantilesExactWeightedArray. A late
-- event adds a pane to its minute and so restates the minute, the hour and
-- the day at once.
--
-- `revision` is the sum of the versions of a row's panes: it grows whenever
-- any pane of the row changes or a restating pane arrives. `updated_at` is
-- when the newest of them was written.
--
-- Views are replaced wholesale (DROP + CREATE): they hold no data.

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

DROP TABLE IF EXISTS ${database}.latency_minute;

DROP TABLE IF EXISTS ${database}.latency_hourly;

DROP TABLE IF EXISTS ${database}.latency_daily;

DROP TABLE IF EXISTS ${database}.usage_minute;

DROP TABLE IF EXISTS ${database}.usage_hourly;

DROP TABLE IF EXISTS ${database}.usage_daily;

DROP TABLE IF EXISTS ${database}.top_models_daily;

CREATE VIEW ${database}.latency_minute AS
SELECT
    bucket AS window_start,
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
    sum(output_tokens_sum) AS total_output_tokens,
    sum(version) AS revision,
    max(emitted_at) AS updated_at
FROM
(
    SELECT window_start AS bucket, tenant_id, model_id, provider, tool, parameter_hash, parameters, calls, successes, errors, rt_sum, rt_min, rt_max, input_tokens_sum, input_tokens_count, output_tokens_sum, output_tokens_count, centroid_means, centroid_weights, version, emitted_at
    FROM ${database}.latency_panes FINAL
    WHERE granularity = 'minute'
)
GROUP BY bucket, tenant_id, model_id, provider, tool, parameter_hash;

CREATE VIEW ${database}.latency_hourly AS
SELECT
    bucket AS window_start,
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
    sum(output_tokens_sum) AS total_output_tokens,
    sum(version) AS revision,
    max(emitted_at) AS updated_at
FROM
(
    SELECT toStartOfHour(window_start) AS bucket, tenant_id, model_id, provider, tool, parameter_hash, parameters, calls, successes, errors, rt_sum, rt_min, rt_max, input_tokens_sum, input_tokens_count, output_tokens_sum, output_tokens_count, centroid_means, centroid_weights, version, emitted_at
    FROM ${database}.latency_panes FINAL
    WHERE granularity = 'minute'
)
GROUP BY bucket, tenant_id, model_id, provider, tool, parameter_hash;

CREATE VIEW ${database}.latency_daily AS
SELECT
    bucket AS window_start,
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
    sum(output_tokens_sum) AS total_output_tokens,
    sum(version) AS revision,
    max(emitted_at) AS updated_at
FROM
(
    SELECT toStartOfDay(window_start) AS bucket, tenant_id, model_id, provider, tool, parameter_hash, parameters, calls, successes, errors, rt_sum, rt_min, rt_max, input_tokens_sum, input_tokens_count, output_tokens_sum, output_tokens_count, centroid_means, centroid_weights, version, emitted_at
    FROM ${database}.latency_panes FINAL
    WHERE granularity = 'minute'
)
GROUP BY bucket, tenant_id, model_id, provider, tool, parameter_hash;

CREATE VIEW ${database}.usage_minute AS
SELECT
    bucket AS window_start,
    tenant_id,
    model_id,
    provider,
    feature,
    sum(requests) AS request_count,
    sum(input_tokens_sum) AS total_input_tokens,
    sum(output_tokens_sum) AS total_output_tokens,
    toDecimal64(sum(cost_usd_nanos_sum), 0) * toDecimal64('0.000000001', 9) AS total_cost_usd,
    sum(version) AS revision,
    max(emitted_at) AS updated_at
FROM
(
    SELECT window_start AS bucket, tenant_id, model_id, provider, feature, requests, input_tokens_sum, output_tokens_sum, cost_usd_nanos_sum, version, emitted_at
    FROM ${database}.usage_panes FINAL
    WHERE granularity = 'minute'
)
GROUP BY bucket, tenant_id, model_id, provider, feature;

CREATE VIEW ${database}.usage_hourly AS
SELECT
    bucket AS window_start,
    tenant_id,
    model_id,
    provider,
    feature,
    sum(requests) AS request_count,
    sum(input_tokens_sum) AS total_input_tokens,
    sum(output_tokens_sum) AS total_output_tokens,
    toDecimal64(sum(cost_usd_nanos_sum), 0) * toDecimal64('0.000000001', 9) AS total_cost_usd,
    sum(version) AS revision,
    max(emitted_at) AS updated_at
FROM
(
    SELECT toStartOfHour(window_start) AS bucket, tenant_id, model_id, provider, feature, requests, input_tokens_sum, output_tokens_sum, cost_usd_nanos_sum, version, emitted_at
    FROM ${database}.usage_panes FINAL
    WHERE granularity = 'minute'
)
GROUP BY bucket, tenant_id, model_id, provider, feature;

CREATE VIEW ${database}.usage_daily AS
SELECT
    bucket AS window_start,
    tenant_id,
    model_id,
    provider,
    feature,
    sum(requests) AS request_count,
    sum(input_tokens_sum) AS total_input_tokens,
    sum(output_tokens_sum) AS total_output_tokens,
    toDecimal64(sum(cost_usd_nanos_sum), 0) * toDecimal64('0.000000001', 9) AS total_cost_usd,
    sum(version) AS revision,
    max(emitted_at) AS updated_at
FROM
(
    SELECT toStartOfDay(window_start) AS bucket, tenant_id, model_id, provider, feature, requests, input_tokens_sum, output_tokens_sum, cost_usd_nanos_sum, version, emitted_at
    FROM ${database}.usage_panes FINAL
    WHERE granularity = 'minute'
)
GROUP BY bucket, tenant_id, model_id, provider, feature;

-- Per day and model: latency merged across all tenants, tools and parameter
-- sets, usage and cost from the usage panes of the same day, model and
-- provider (0 when there are none). 18.16 needs explicit ANY/ALL strictness
-- on JOIN (the right side is unique per key, so ANY == ALL here); modern
-- servers need an alias on each joined subquery. ifNull() keeps the columns
-- non-Nullable whatever the caller's join_use_nulls setting is.
CREATE VIEW ${database}.top_models_daily AS
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
        bucket AS window_start,
        model_id,
        provider,
        sum(calls) AS call_count,
        sum(errors) / greatest(sum(calls), 1) AS error_rate,
        arrayElement(quantilesExactWeightedArray(0.5, 0.95, 0.99)(centroid_means, centroid_weights), 1) AS p50_response_time,
        arrayElement(quantilesExactWeightedArray(0.5, 0.95, 0.99)(centroid_means, centroid_weights), 2) AS p95_response_time,
        arrayElement(quantilesExactWeightedArray(0.5, 0.95, 0.99)(centroid_means, centroid_weights), 3) AS p99_response_time
    FROM
    (
        SELECT toStartOfDay(window_start) AS bucket, model_id, provider, calls, errors, centroid_means, centroid_weights
        FROM ${database}.latency_panes FINAL
        WHERE granularity = 'minute'
    )
    GROUP BY bucket, model_id, provider
) AS lat
ANY LEFT JOIN
(
    SELECT
        bucket AS window_start,
        model_id,
        provider,
        sum(requests) AS usg_requests,
        toDecimal64(sum(cost_usd_nanos_sum), 0) * toDecimal64('0.000000001', 9) AS usg_cost_usd
    FROM
    (
        SELECT toStartOfDay(window_start) AS bucket, model_id, provider, requests, cost_usd_nanos_sum
        FROM ${database}.usage_panes FINAL
        WHERE granularity = 'minute'
    )
    GROUP BY bucket, model_id, provider
) AS usg
USING (window_start, model_id, provider);

-- The literal granularity is aliased `window_granularity` inside: an alias
-- named like a column would shadow that column in the branch's WHERE.
--
-- Completeness, per granularity and window: final once the watermark has
-- passed the window's end on every source partition, as seen on every
-- rollup partition (a watermark record follows the panes it covers on each
-- rollup partition, so a final window's panes are all in). The aggregator
-- advances the watermark of idle partitions by the wall clock, so no window
-- stays open forever. Late events can still restate a final window within
-- the restatement horizon; `revision` in the rollup views shows it.
CREATE VIEW IF NOT EXISTS ${database}.window_status AS
SELECT
    granularity,
    window_start,
    window_end,
    panes,
    low_watermark,
    toUInt8(window_end <= low_watermark) AS is_final
FROM
(
    SELECT window_granularity AS granularity, window_start, window_end, sum(pane_count) AS panes
    FROM
    (
        SELECT 'minute' AS window_granularity, window_start, window_end, count() AS pane_count
        FROM ${database}.latency_panes FINAL WHERE granularity = 'minute'
        GROUP BY window_start, window_end
        UNION ALL
        SELECT 'minute' AS window_granularity, window_start, window_end, count() AS pane_count
        FROM ${database}.usage_panes FINAL WHERE granularity = 'minute'
        GROUP BY window_start, window_end
        UNION ALL
        SELECT 'hour' AS window_granularity, toStartOfHour(window_start) AS bucket, bucket + 3600 AS bucket_end, count() AS pane_count
        FROM ${database}.latency_panes FINAL WHERE granularity = 'minute'
        GROUP BY bucket, bucket_end
        UNION ALL
        SELECT 'hour' AS window_granularity, toStartOfHour(window_start) AS bucket, bucket + 3600 AS bucket_end, count() AS pane_count
        FROM ${database}.usage_panes FINAL WHERE granularity = 'minute'
        GROUP BY bucket, bucket_end
        UNION ALL
        SELECT 'day' AS window_granularity, toStartOfDay(window_start) AS bucket, bucket + 86400 AS bucket_end, count() AS pane_count
        FROM ${database}.latency_panes FINAL WHERE granularity = 'minute'
        GROUP BY bucket, bucket_end
        UNION ALL
        SELECT 'day' AS window_granularity, toStartOfDay(window_start) AS bucket, bucket + 86400 AS bucket_end, count() AS pane_count
        FROM ${database}.usage_panes FINAL WHERE granularity = 'minute'
        GROUP BY bucket, bucket_end
    )
    GROUP BY granularity, window_start, window_end
) AS windows
CROSS JOIN
(
    SELECT min(source_watermark) AS low_watermark
    FROM
    (
        SELECT source_topic, source_partition, min(watermark) AS source_watermark
        FROM ${database}.source_watermarks FINAL
        GROUP BY source_topic, source_partition
    )
) AS progress;
