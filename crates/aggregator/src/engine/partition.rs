//! One source partition's watermark, position and panes.

use std::collections::BTreeMap;

use centile_events::{Decoded, Event, Granularity, PaneSource};

use super::{
    latency::{LatencyAgg, LatencyKey},
    usage::{UsageAgg, UsageKey},
    EngineConfig, Flush, Ingested, Position,
};

/// Where and when a pane is emitted.
#[derive(Debug)]
pub(crate) struct EmitContext<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub watermark: i64,
}

impl EmitContext<'_> {
    /// The deterministic id of a pane: its kind and key parts, then where
    /// its input starts.
    pub fn pane_id(&self, key_parts: &[&str], first_offset: i64) -> String {
        let partition = self.partition.to_string();
        let first_offset = first_offset.to_string();
        let mut parts = key_parts.to_vec();
        parts.extend([self.topic, &partition, &first_offset]);
        super::pane_id::pane_id(&parts)
    }

    pub fn source(&self, first_offset: i64, last_offset: i64) -> PaneSource {
        PaneSource {
            topic: self.topic.to_owned(),
            partition: self.partition,
            first_offset,
            last_offset,
        }
    }
}

/// A pane's key knows its window; its aggregate knows how to become a pane.
pub(crate) trait PaneKey: Ord + Clone {
    fn granularity(&self) -> Granularity;
    fn window_start(&self) -> i64;
    fn window_end(&self) -> i64 {
        self.window_start() + self.granularity().millis()
    }
}

pub(crate) trait Aggregate {
    type Key: PaneKey;
    fn to_pane(&self, key: &Self::Key, ctx: &EmitContext<'_>, is_final: bool) -> Decoded;
    fn take_dirty(&mut self) -> bool;
}

/// Open panes by key, plus panes sealed since the last flush. Ordered maps
/// keep emission order deterministic.
#[derive(Debug)]
pub(crate) struct Panes<A: Aggregate> {
    open: BTreeMap<A::Key, A>,
    sealed: Vec<(A::Key, A)>,
}

impl<A: Aggregate> Default for Panes<A> {
    fn default() -> Self {
        Self {
            open: BTreeMap::new(),
            sealed: Vec::new(),
        }
    }
}

impl<A: Aggregate> Panes<A> {
    pub fn entry(&mut self, key: A::Key, create: impl FnOnce() -> A) -> &mut A {
        self.open.entry(key).or_insert_with(create)
    }

    fn seal(&mut self, watermark: i64) {
        let done: Vec<A::Key> = self
            .open
            .keys()
            .filter(|k| k.window_end() <= watermark)
            .cloned()
            .collect();
        for key in done {
            let agg = self.open.remove(&key).expect("key just listed");
            self.sealed.push((key, agg));
        }
    }

    fn flush(&mut self, ctx: &EmitContext<'_>, out: &mut Vec<Decoded>) {
        for (key, agg) in &mut self.open {
            if agg.take_dirty() {
                out.push(agg.to_pane(key, ctx, false));
            }
        }
        for (key, agg) in self.sealed.drain(..) {
            out.push(agg.to_pane(&key, ctx, true));
        }
    }

    fn len(&self) -> usize {
        self.open.len() + self.sealed.len()
    }
}

#[derive(Debug)]
pub(crate) struct PartitionState {
    topic: String,
    partition: i32,
    max_event_time: Option<i64>,
    released_until: Option<i64>,
    /// Windows ending at or before this are sealed.
    sealed_until: i64,
    next_offset: Option<i64>,
    position_moved: bool,
    latency: Panes<LatencyAgg>,
    usage: Panes<UsageAgg>,
}

impl PartitionState {
    pub fn new(topic: &str, partition: i32) -> Self {
        Self {
            topic: topic.to_owned(),
            partition,
            max_event_time: None,
            released_until: None,
            sealed_until: i64::MIN,
            next_offset: None,
            position_moved: false,
            latency: Panes::default(),
            usage: Panes::default(),
        }
    }

    pub fn watermark(&self, lateness_ms: i64) -> Option<i64> {
        let by_events = self.max_event_time.map(|t| t.saturating_sub(lateness_ms));
        by_events.max(self.released_until)
    }

    pub fn ingest(&mut self, config: &EngineConfig, offset: i64, event: &Event) -> Ingested {
        self.skip(offset);
        let watermark = self
            .watermark(config.allowed_lateness_ms)
            .unwrap_or(i64::MIN);
        let time = event.occurred_at();
        let windows = config
            .granularities
            .iter()
            .map(|&g| (g, g.window_start(time)));
        let late_windows = windows
            .clone()
            .filter(|(g, start)| start + g.millis() <= watermark)
            .count() as u32;
        match event {
            Event::Latency(e) => {
                let params = config.parameters.select(&e.parameters);
                for (granularity, window_start) in windows {
                    let key = LatencyKey::new(granularity, window_start, e, &params.hash);
                    let compression = config.tdigest_compression;
                    self.latency
                        .entry(key, || {
                            LatencyAgg::new(offset, params.parameters.clone(), compression)
                        })
                        .add(offset, e);
                }
            }
            Event::Usage(e) => {
                for (granularity, window_start) in windows {
                    let key = UsageKey::new(granularity, window_start, e);
                    self.usage
                        .entry(key, || UsageAgg::new(offset))
                        .add(offset, e);
                }
            }
        }
        if self.max_event_time.is_none_or(|max| time > max) {
            self.max_event_time = Some(time);
            self.seal(config.allowed_lateness_ms);
        }
        Ingested { late_windows }
    }

    pub fn skip(&mut self, offset: i64) {
        if self.next_offset.is_none_or(|next| offset >= next) {
            self.next_offset = Some(offset + 1);
            self.position_moved = true;
        }
    }

    pub fn release_until(&mut self, watermark: i64, lateness_ms: i64) {
        if self.released_until.is_none_or(|r| watermark > r) {
            self.released_until = Some(watermark);
            self.seal(lateness_ms);
        }
    }

    /// Seals panes whose window the watermark has passed. Windows end on
    /// minute boundaries, so the scan runs at most once per minute of event time.
    fn seal(&mut self, lateness_ms: i64) {
        let Some(watermark) = self.watermark(lateness_ms) else {
            return;
        };
        let boundary = Granularity::Minute.window_start(watermark);
        if boundary <= self.sealed_until {
            return;
        }
        self.sealed_until = boundary;
        self.latency.seal(boundary);
        self.usage.seal(boundary);
    }

    pub fn flush(&mut self, config: &EngineConfig, flush: &mut Flush) {
        let ctx = EmitContext {
            topic: &self.topic,
            partition: self.partition,
            watermark: self
                .watermark(config.allowed_lateness_ms)
                .unwrap_or(i64::MIN),
        };
        self.latency.flush(&ctx, &mut flush.panes);
        self.usage.flush(&ctx, &mut flush.panes);
        if std::mem::take(&mut self.position_moved) {
            if let Some(next_offset) = self.next_offset {
                flush.positions.push(Position {
                    topic: self.topic.clone(),
                    partition: self.partition,
                    next_offset,
                });
            }
        }
    }

    pub fn open_panes(&self) -> usize {
        self.latency.len() + self.usage.len()
    }
}
