//! Usage panes: request counts, token sums and exact cost sums, with the
//! tokens of requests that carried no cost apart, for the price book.

use centile_events::{Decoded, Granularity, Unpriced, UsageEvent, UsagePane};

use super::{
    pane_id::version,
    partition::{Aggregate, EmitContext, PaneKey},
};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct UsageKey {
    granularity: Granularity,
    window_start: i64,
    tenant_id: String,
    model_id: String,
    provider: String,
    feature: String,
}

impl UsageKey {
    pub fn new(granularity: Granularity, window_start: i64, e: &UsageEvent) -> Self {
        Self {
            granularity,
            window_start,
            tenant_id: e.tenant_id.clone(),
            model_id: e.model_id.clone(),
            provider: e.provider.clone(),
            feature: e.feature.clone(),
        }
    }
}

impl PaneKey for UsageKey {
    fn granularity(&self) -> Granularity {
        self.granularity
    }

    fn window_start(&self) -> i64 {
        self.window_start
    }
}

#[derive(Debug)]
pub(crate) struct UsageAgg {
    first_offset: i64,
    last_offset: i64,
    requests: i64,
    input_tokens_sum: i64,
    output_tokens_sum: i64,
    cost_usd_nanos_sum: i64,
    cache_read_input_tokens_sum: i64,
    cache_write_input_tokens_sum: i64,
    reasoning_output_tokens_sum: i64,
    unpriced: Unpriced,
    dirty: bool,
}

impl UsageAgg {
    pub fn new(first_offset: i64) -> Self {
        Self {
            first_offset,
            last_offset: first_offset,
            requests: 0,
            input_tokens_sum: 0,
            output_tokens_sum: 0,
            cost_usd_nanos_sum: 0,
            cache_read_input_tokens_sum: 0,
            cache_write_input_tokens_sum: 0,
            reasoning_output_tokens_sum: 0,
            unpriced: Unpriced::default(),
            dirty: false,
        }
    }

    pub fn add(&mut self, offset: i64, e: &UsageEvent) {
        self.last_offset = self.last_offset.max(offset);
        self.requests += 1;
        self.input_tokens_sum += e.input_tokens;
        self.output_tokens_sum += e.output_tokens;
        match e.cost_usd_nanos {
            Some(cost) => self.cost_usd_nanos_sum += cost,
            None => self.unpriced.add(e),
        }
        self.cache_read_input_tokens_sum += e.cache_read_input_tokens.unwrap_or(0);
        self.cache_write_input_tokens_sum += e.cache_write_input_tokens.unwrap_or(0);
        self.reasoning_output_tokens_sum += e.reasoning_output_tokens.unwrap_or(0);
        self.dirty = true;
    }
}

impl Aggregate for UsageAgg {
    type Key = UsageKey;

    fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    fn to_pane(&self, key: &UsageKey, ctx: &EmitContext<'_>, is_final: bool) -> Decoded {
        let window_start = key.window_start.to_string();
        let pane_id = ctx.pane_id(
            &[
                "usage",
                key.granularity.as_str(),
                &window_start,
                &key.tenant_id,
                &key.model_id,
                &key.provider,
                &key.feature,
            ],
            self.first_offset,
        );
        Decoded::UsagePane(UsagePane {
            pane_id,
            version: version(self.last_offset, is_final),
            granularity: key.granularity,
            window_start: key.window_start,
            window_end: key.window_end(),
            tenant_id: key.tenant_id.clone(),
            model_id: key.model_id.clone(),
            provider: key.provider.clone(),
            feature: key.feature.clone(),
            source: ctx.source(self.first_offset, self.last_offset),
            is_final,
            watermark: ctx.watermark,
            requests: self.requests,
            input_tokens_sum: self.input_tokens_sum,
            output_tokens_sum: self.output_tokens_sum,
            cost_usd_nanos_sum: self.cost_usd_nanos_sum,
            cache_read_input_tokens_sum: self.cache_read_input_tokens_sum,
            cache_write_input_tokens_sum: self.cache_write_input_tokens_sum,
            reasoning_output_tokens_sum: self.reasoning_output_tokens_sum,
            unpriced: self.unpriced,
        })
    }
}
