-- centile:min-server-version 19.6
-- Table TTL (and ALTER ... MODIFY TTL) first shipped in ClickHouse 19.6.2.11
-- (PR #4212); older servers (e.g. 18.16) skip this file and keep raw events
-- forever. Re-running MODIFY TTL with the same expression is harmless
-- (idempotent), but on 20.x+ it also schedules a TTL materialization unless
-- the session sets materialize_ttl_after_modify = 0.

ALTER TABLE ${database}.latency_events MODIFY TTL occurred_at + toIntervalDay(${raw_retention_days});

ALTER TABLE ${database}.usage_events MODIFY TTL occurred_at + toIntervalDay(${raw_retention_days});
