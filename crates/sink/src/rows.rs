//! Encoding: decoded messages become ClickHouse rows. Field order and names
//! are the column lists of `schemas/clickhouse`; RowBinary depends on both.

use std::collections::BTreeMap;

use centile_events::{
    LatencyEvent, LatencyPane, ParameterHasher, UsageEvent, UsagePane, Watermark,
};
use clickhouse::Row;
use serde::Serialize;

/// Seconds for a ClickHouse `DateTime`; events are validated to fit.
fn seconds(ms: i64) -> u32 {
    u32::try_from(ms.div_euclid(1000)).unwrap_or(if ms < 0 { 0 } else { u32::MAX })
}

fn json(map: &BTreeMap<String, String>) -> String {
    serde_json::to_string(map).expect("string maps always serialize")
}

#[derive(Debug, Clone, PartialEq, Row, Serialize)]
pub struct LatencyEventRow {
    pub event_id: String,
    pub occurred_at: u32,
    pub occurred_at_ms: i64,
    pub tenant_id: String,
    pub model_id: String,
    pub provider: String,
    pub tool: String,
    pub parameters: String,
    pub parameter_hash: String,
    pub response_time_ms: f64,
    pub success: u8,
    pub error_type: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub source_partition: i32,
    pub source_offset: i64,
    pub ingested_at: u32,
    pub session_id: Option<String>,
}

impl LatencyEventRow {
    pub fn new(
        e: LatencyEvent,
        hasher: &ParameterHasher,
        partition: i32,
        offset: i64,
        now_ms: i64,
    ) -> Self {
        let parameter_hash = hasher.select(&e.parameters).hash;
        Self {
            occurred_at: seconds(e.occurred_at),
            occurred_at_ms: e.occurred_at,
            parameters: json(&e.parameters),
            parameter_hash,
            success: u8::from(e.success),
            event_id: e.event_id,
            tenant_id: e.tenant_id,
            model_id: e.model_id,
            provider: e.provider,
            tool: e.tool,
            response_time_ms: e.response_time_ms,
            error_type: e.error_type,
            input_tokens: e.input_tokens,
            output_tokens: e.output_tokens,
            source_partition: partition,
            source_offset: offset,
            ingested_at: seconds(now_ms),
            session_id: e.session_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize)]
pub struct UsageEventRow {
    pub event_id: String,
    pub occurred_at: u32,
    pub occurred_at_ms: i64,
    pub tenant_id: String,
    pub user_id: Option<String>,
    pub model_id: String,
    pub provider: String,
    pub feature: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd_nanos: i64,
    pub source_partition: i32,
    pub source_offset: i64,
    pub ingested_at: u32,
    pub cache_read_input_tokens: Option<i64>,
    pub cache_write_input_tokens: Option<i64>,
    pub reasoning_output_tokens: Option<i64>,
    /// 0: the event carried no cost (`cost_usd_nanos` is 0 and the price
    /// book prices it in the rollups).
    pub cost_reported: u8,
    pub session_id: Option<String>,
}

impl UsageEventRow {
    pub fn new(e: UsageEvent, partition: i32, offset: i64, now_ms: i64) -> Self {
        Self {
            occurred_at: seconds(e.occurred_at),
            occurred_at_ms: e.occurred_at,
            event_id: e.event_id,
            tenant_id: e.tenant_id,
            user_id: e.user_id,
            model_id: e.model_id,
            provider: e.provider,
            feature: e.feature,
            input_tokens: e.input_tokens,
            output_tokens: e.output_tokens,
            cost_usd_nanos: e.cost_usd_nanos.unwrap_or(0),
            cost_reported: u8::from(e.cost_usd_nanos.is_some()),
            source_partition: partition,
            source_offset: offset,
            ingested_at: seconds(now_ms),
            cache_read_input_tokens: e.cache_read_input_tokens,
            cache_write_input_tokens: e.cache_write_input_tokens,
            reasoning_output_tokens: e.reasoning_output_tokens,
            session_id: e.session_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Row, Serialize)]
pub struct LatencyPaneRow {
    pub pane_id: String,
    pub version: u64,
    pub granularity: String,
    pub window_start: u32,
    pub window_end: u32,
    pub tenant_id: String,
    pub model_id: String,
    pub provider: String,
    pub tool: String,
    pub parameter_hash: String,
    pub parameters: String,
    pub source_topic: String,
    pub source_partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub is_final: u8,
    pub watermark_ms: i64,
    pub calls: u64,
    pub successes: u64,
    pub errors: u64,
    pub rt_sum: f64,
    pub rt_min: f64,
    pub rt_max: f64,
    pub input_tokens_sum: i64,
    pub input_tokens_count: u64,
    pub output_tokens_sum: i64,
    pub output_tokens_count: u64,
    pub centroid_means: Vec<f64>,
    pub centroid_weights: Vec<u64>,
    pub emitted_at: u32,
}

fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl LatencyPaneRow {
    pub fn new(p: LatencyPane, now_ms: i64) -> Self {
        let (centroid_means, centroid_weights) =
            p.centroids.iter().map(|c| (c.mean, c.weight)).unzip();
        Self {
            version: unsigned(p.version),
            granularity: p.granularity.as_str().to_owned(),
            window_start: seconds(p.window_start),
            window_end: seconds(p.window_end),
            parameters: json(&p.parameters),
            source_topic: p.source.topic,
            source_partition: p.source.partition,
            first_offset: p.source.first_offset,
            last_offset: p.source.last_offset,
            is_final: u8::from(p.is_final),
            watermark_ms: p.watermark,
            calls: unsigned(p.calls),
            successes: unsigned(p.successes),
            errors: unsigned(p.errors),
            input_tokens_count: unsigned(p.input_tokens_count),
            output_tokens_count: unsigned(p.output_tokens_count),
            pane_id: p.pane_id,
            tenant_id: p.tenant_id,
            model_id: p.model_id,
            provider: p.provider,
            tool: p.tool,
            parameter_hash: p.parameter_hash,
            rt_sum: p.rt_sum,
            rt_min: p.rt_min,
            rt_max: p.rt_max,
            input_tokens_sum: p.input_tokens_sum,
            output_tokens_sum: p.output_tokens_sum,
            centroid_means,
            centroid_weights,
            emitted_at: seconds(now_ms),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize)]
pub struct UsagePaneRow {
    pub pane_id: String,
    pub version: u64,
    pub granularity: String,
    pub window_start: u32,
    pub window_end: u32,
    pub tenant_id: String,
    pub model_id: String,
    pub provider: String,
    pub feature: String,
    pub source_topic: String,
    pub source_partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub is_final: u8,
    pub watermark_ms: i64,
    pub requests: u64,
    pub input_tokens_sum: i64,
    pub output_tokens_sum: i64,
    pub cost_usd_nanos_sum: i64,
    pub emitted_at: u32,
    pub cache_read_input_tokens_sum: i64,
    pub cache_write_input_tokens_sum: i64,
    pub reasoning_output_tokens_sum: i64,
    pub unpriced_requests: i64,
    pub unpriced_input_tokens_sum: i64,
    pub unpriced_output_tokens_sum: i64,
    pub unpriced_cache_read_input_tokens_sum: i64,
    pub unpriced_cache_write_input_tokens_sum: i64,
    pub unpriced_reasoning_output_tokens_sum: i64,
}

impl UsagePaneRow {
    pub fn new(p: UsagePane, now_ms: i64) -> Self {
        Self {
            version: unsigned(p.version),
            granularity: p.granularity.as_str().to_owned(),
            window_start: seconds(p.window_start),
            window_end: seconds(p.window_end),
            source_topic: p.source.topic,
            source_partition: p.source.partition,
            first_offset: p.source.first_offset,
            last_offset: p.source.last_offset,
            is_final: u8::from(p.is_final),
            watermark_ms: p.watermark,
            requests: unsigned(p.requests),
            pane_id: p.pane_id,
            tenant_id: p.tenant_id,
            model_id: p.model_id,
            provider: p.provider,
            feature: p.feature,
            input_tokens_sum: p.input_tokens_sum,
            output_tokens_sum: p.output_tokens_sum,
            cost_usd_nanos_sum: p.cost_usd_nanos_sum,
            emitted_at: seconds(now_ms),
            cache_read_input_tokens_sum: p.cache_read_input_tokens_sum,
            cache_write_input_tokens_sum: p.cache_write_input_tokens_sum,
            reasoning_output_tokens_sum: p.reasoning_output_tokens_sum,
            unpriced_requests: p.unpriced.requests,
            unpriced_input_tokens_sum: p.unpriced.input,
            unpriced_output_tokens_sum: p.unpriced.output,
            unpriced_cache_read_input_tokens_sum: p.unpriced.cache_read,
            unpriced_cache_write_input_tokens_sum: p.unpriced.cache_write,
            unpriced_reasoning_output_tokens_sum: p.unpriced.reasoning,
        }
    }
}

/// One source partition's watermark as seen on one rollup partition.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize)]
pub struct WatermarkRow {
    pub source_topic: String,
    pub source_partition: i32,
    pub rollup_partition: i32,
    pub watermark: u32,
    pub next_offset: i64,
    pub emitted_at: u32,
}

impl WatermarkRow {
    pub fn new(w: Watermark, rollup_partition: i32) -> Self {
        Self {
            source_topic: w.source_topic,
            source_partition: w.source_partition,
            rollup_partition,
            watermark: seconds(w.watermark),
            next_offset: w.next_offset,
            emitted_at: seconds(w.emitted_at),
        }
    }
}
