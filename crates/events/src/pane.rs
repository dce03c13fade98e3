//! Rollup panes: mergeable partial aggregates emitted by the aggregator.
//!
//! A pane covers one window and one dimension set, fed by one contiguous run
//! of one source partition. Its id is deterministic, and its version grows
//! with the input position, so the highest version of a pane id is its latest
//! state, and distinct panes of a window are summed by the ClickHouse views.

use std::collections::BTreeMap;

use crate::Granularity;

/// A t-digest centroid: the mean of `weight` samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Centroid {
    pub mean: f64,
    pub weight: u64,
}

/// Where a pane's input came from and how far it reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaneSource {
    pub topic: String,
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// A partial latency aggregate (`centile.v1.LatencyPane`).
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyPane {
    pub pane_id: String,
    pub version: i64,
    pub granularity: Granularity,
    pub window_start: i64,
    pub window_end: i64,
    pub tenant_id: String,
    pub model_id: String,
    pub provider: String,
    pub tool: String,
    pub parameter_hash: String,
    pub parameters: BTreeMap<String, String>,
    pub source: PaneSource,
    pub is_final: bool,
    pub watermark: i64,
    pub calls: i64,
    pub successes: i64,
    pub errors: i64,
    pub rt_sum: f64,
    pub rt_min: f64,
    pub rt_max: f64,
    pub input_tokens_sum: i64,
    pub input_tokens_count: i64,
    pub output_tokens_sum: i64,
    pub output_tokens_count: i64,
    pub centroids: Vec<Centroid>,
}

/// A partial usage aggregate (`centile.v1.UsagePane`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsagePane {
    pub pane_id: String,
    pub version: i64,
    pub granularity: Granularity,
    pub window_start: i64,
    pub window_end: i64,
    pub tenant_id: String,
    pub model_id: String,
    pub provider: String,
    pub feature: String,
    pub source: PaneSource,
    pub is_final: bool,
    pub watermark: i64,
    pub requests: i64,
    pub input_tokens_sum: i64,
    pub output_tokens_sum: i64,
    pub cost_usd_nanos_sum: i64,
    pub cache_read_input_tokens_sum: i64,
    pub cache_write_input_tokens_sum: i64,
    pub reasoning_output_tokens_sum: i64,
    /// The requests without a reported cost, and their tokens by class:
    /// what the price book prices.
    pub unpriced: Unpriced,
}

/// Requests that carried no cost and their token sums by class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unpriced {
    pub requests: i64,
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    pub cache_write: i64,
    pub reasoning: i64,
}

impl Unpriced {
    /// Counts one event that carried no cost.
    pub fn add(&mut self, e: &crate::UsageEvent) {
        self.requests += 1;
        self.input += e.input_tokens;
        self.output += e.output_tokens;
        self.cache_read += e.cache_read_input_tokens.unwrap_or(0);
        self.cache_write += e.cache_write_input_tokens.unwrap_or(0);
        self.reasoning += e.reasoning_output_tokens.unwrap_or(0);
    }

    /// The token sums the price book prices.
    pub fn tokens(&self) -> crate::TokenSums {
        crate::TokenSums {
            input: self.input,
            output: self.output,
            cache_read: self.cache_read,
            cache_write: self.cache_write,
            reasoning: self.reasoning,
        }
    }
}

/// How far one source partition has been rolled up (`centile.v1.Watermark`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watermark {
    pub source_topic: String,
    pub source_partition: i32,
    /// Minute windows ending at or before this instant (ms) are final.
    pub watermark: i64,
    pub next_offset: i64,
    pub emitted_at: i64,
}
