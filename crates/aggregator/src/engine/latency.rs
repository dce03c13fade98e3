//! Latency panes: counts, response-time extremes and sums, token sums, and a
//! log-bucketed sketch of response times (`centile_events::sketch`) whose
//! buckets travel with the pane as centroids.

use std::collections::BTreeMap;

use centile_events::{Centroid, Decoded, Granularity, LatencyEvent, LatencyPane, Sketch};

use super::{
    pane_id::version,
    partition::{Aggregate, EmitContext, PaneKey},
};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct LatencyKey {
    granularity: Granularity,
    window_start: i64,
    tenant_id: String,
    model_id: String,
    provider: String,
    tool: String,
    parameter_hash: String,
}

impl LatencyKey {
    pub fn new(
        granularity: Granularity,
        window_start: i64,
        e: &LatencyEvent,
        parameter_hash: &str,
    ) -> Self {
        Self {
            granularity,
            window_start,
            tenant_id: e.tenant_id.clone(),
            model_id: e.model_id.clone(),
            provider: e.provider.clone(),
            tool: e.tool.clone(),
            parameter_hash: parameter_hash.to_owned(),
        }
    }
}

impl PaneKey for LatencyKey {
    fn granularity(&self) -> Granularity {
        self.granularity
    }

    fn window_start(&self) -> i64 {
        self.window_start
    }
}

#[derive(Debug)]
pub(crate) struct LatencyAgg {
    first_offset: i64,
    last_offset: i64,
    parameters: BTreeMap<String, String>,
    calls: i64,
    successes: i64,
    rt_sum: f64,
    rt_min: f64,
    rt_max: f64,
    input_tokens_sum: i64,
    input_tokens_count: i64,
    output_tokens_sum: i64,
    output_tokens_count: i64,
    /// Bounded by the spread of the values, not their count; the same input
    /// always yields the same buckets.
    sketch: Sketch,
    dirty: bool,
}

impl LatencyAgg {
    pub fn new(first_offset: i64, parameters: BTreeMap<String, String>) -> Self {
        Self {
            first_offset,
            last_offset: first_offset,
            parameters,
            calls: 0,
            successes: 0,
            rt_sum: 0.0,
            rt_min: f64::INFINITY,
            rt_max: f64::NEG_INFINITY,
            input_tokens_sum: 0,
            input_tokens_count: 0,
            output_tokens_sum: 0,
            output_tokens_count: 0,
            sketch: Sketch::new(),
            dirty: false,
        }
    }

    pub fn add(&mut self, offset: i64, e: &LatencyEvent) {
        self.last_offset = self.last_offset.max(offset);
        self.calls += 1;
        self.successes += i64::from(e.success);
        self.rt_sum += e.response_time_ms;
        self.rt_min = self.rt_min.min(e.response_time_ms);
        self.rt_max = self.rt_max.max(e.response_time_ms);
        if let Some(tokens) = e.input_tokens {
            self.input_tokens_sum += tokens;
            self.input_tokens_count += 1;
        }
        if let Some(tokens) = e.output_tokens {
            self.output_tokens_sum += tokens;
            self.output_tokens_count += 1;
        }
        self.sketch.add(e.response_time_ms);
        self.dirty = true;
    }

    fn centroids(&self) -> Vec<Centroid> {
        self.sketch.centroids()
    }
}

impl Aggregate for LatencyAgg {
    type Key = LatencyKey;

    fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    fn to_pane(&self, key: &LatencyKey, ctx: &EmitContext<'_>, is_final: bool) -> Decoded {
        let window_start = key.window_start.to_string();
        let pane_id = ctx.pane_id(
            &[
                "latency",
                key.granularity.as_str(),
                &window_start,
                &key.tenant_id,
                &key.model_id,
                &key.provider,
                &key.tool,
                &key.parameter_hash,
            ],
            self.first_offset,
        );
        Decoded::LatencyPane(LatencyPane {
            pane_id,
            version: version(self.last_offset, is_final),
            granularity: key.granularity,
            window_start: key.window_start,
            window_end: key.window_end(),
            tenant_id: key.tenant_id.clone(),
            model_id: key.model_id.clone(),
            provider: key.provider.clone(),
            tool: key.tool.clone(),
            parameter_hash: key.parameter_hash.clone(),
            parameters: self.parameters.clone(),
            source: ctx.source(self.first_offset, self.last_offset),
            is_final,
            watermark: ctx.watermark,
            calls: self.calls,
            successes: self.successes,
            errors: self.calls - self.successes,
            rt_sum: self.rt_sum,
            rt_min: self.rt_min,
            rt_max: self.rt_max,
            input_tokens_sum: self.input_tokens_sum,
            input_tokens_count: self.input_tokens_count,
            output_tokens_sum: self.output_tokens_sum,
            output_tokens_count: self.output_tokens_count,
            centroids: self.centroids(),
        })
    }
}
