//! One source partition's watermark, position, segment and panes.
//!
//! Input is cut into segments at positions every replay finds again: each
//! time the watermark crosses a minute boundary (a function of the input
//! alone), when an idle partition's windows are released, and at shutdown.
//! At a cut every open pane is emitted and dropped, and a [`Checkpoint`] of
//! the watermark state is taken. Replaying from a checkpoint therefore
//! rebuilds exactly the panes, ids and versions the first run built after it,
//! whether or not the first run published them.

use std::collections::{BTreeMap, HashSet};

use centile_events::{Decoded, Event, Granularity, PaneSource};

use super::{
    checkpoint::Checkpoint,
    latency::{LatencyAgg, LatencyKey},
    usage::{UsageAgg, UsageKey},
    EngineConfig, Flush, Ingested, Progress,
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

/// The open panes of the current segment, by key. Ordered maps keep
/// emission order deterministic.
#[derive(Debug)]
pub(crate) struct Panes<A: Aggregate> {
    open: BTreeMap<A::Key, A>,
}

impl<A: Aggregate> Default for Panes<A> {
    fn default() -> Self {
        Self {
            open: BTreeMap::new(),
        }
    }
}

impl<A: Aggregate> Panes<A> {
    pub fn entry(&mut self, key: A::Key, create: impl FnOnce() -> A) -> &mut A {
        self.open.entry(key).or_insert_with(create)
    }

    /// Ends the segment: panes of windows that are final are emitted final;
    /// the others are emitted if they changed since the last flush.
    fn close(&mut self, ctx: &EmitContext<'_>, sealed_until: i64, out: &mut Vec<Decoded>) {
        for (key, mut agg) in std::mem::take(&mut self.open) {
            let is_final = key.window_end() <= sealed_until;
            if agg.take_dirty() || is_final {
                out.push(agg.to_pane(&key, ctx, is_final));
            }
        }
    }

    fn flush(&mut self, ctx: &EmitContext<'_>, out: &mut Vec<Decoded>) {
        for (key, agg) in &mut self.open {
            if agg.take_dirty() {
                out.push(agg.to_pane(key, ctx, false));
            }
        }
    }

    fn len(&self) -> usize {
        self.open.len()
    }
}

/// Moves `record`'s reach up to `next` (panes up to there are about to be
/// published); true when it moved, so the record must be persisted first.
fn extend_reach(record: &mut Option<Checkpoint>, next: Option<i64>) -> bool {
    match (record, next) {
        (Some(record), Some(next)) if record.published_until.is_none_or(|p| p < next) => {
            record.published_until = Some(next);
            true
        }
        _ => false,
    }
}

#[derive(Debug)]
pub(crate) struct PartitionState {
    topic: String,
    partition: i32,
    max_event_time: Option<i64>,
    released_until: Option<i64>,
    /// Minute windows ending at or before this are final.
    sealed_until: i64,
    next_offset: Option<i64>,
    latency: Panes<LatencyAgg>,
    usage: Panes<UsageAgg>,
    /// Panes of segments closed since the last flush.
    closed: Vec<Decoded>,
    /// Where the current segment starts (once the position is known), and
    /// how far panes of it, or of segments a replay from the last persisted
    /// checkpoint cuts on the way, may have been published.
    segment: Option<Checkpoint>,
    /// `segment` changed since it was last handed out to be persisted.
    segment_unsaved: bool,
    /// The checkpoint a restart would resume from: the last one handed out
    /// to be persisted, else where this owner started.
    origin: Option<Checkpoint>,
    progressed: bool,
    /// Event ids seen in the current segment: a producer's retry of an event
    /// it already published is counted once. Scoped to the segment, so a
    /// replay rebuilds exactly the same set.
    seen: HashSet<Box<str>>,
}

impl PartitionState {
    /// A partition read from `next_offset` (if known) with no history.
    pub fn new(topic: &str, partition: i32, next_offset: Option<i64>) -> Self {
        let start = next_offset.map(|offset| Checkpoint::fresh(topic, partition, offset));
        Self {
            topic: topic.to_owned(),
            partition,
            max_event_time: None,
            released_until: None,
            sealed_until: i64::MIN,
            next_offset,
            latency: Panes::default(),
            usage: Panes::default(),
            closed: Vec::new(),
            segment: start.clone(),
            segment_unsaved: false,
            origin: start,
            progressed: false,
            seen: HashSet::new(),
        }
    }

    /// A partition resumed exactly where a checkpoint left it.
    pub fn restore(checkpoint: &Checkpoint) -> Self {
        Self {
            max_event_time: checkpoint.max_event_time,
            released_until: checkpoint.released_until,
            sealed_until: checkpoint.sealed_until,
            segment: Some(checkpoint.clone()),
            origin: Some(checkpoint.clone()),
            ..Self::new(
                &checkpoint.topic,
                checkpoint.partition,
                Some(checkpoint.next_offset),
            )
        }
    }

    pub fn watermark(&self, lateness_ms: i64) -> Option<i64> {
        let by_events = self.max_event_time.map(|t| t.saturating_sub(lateness_ms));
        by_events.max(self.released_until)
    }

    pub fn ingest(&mut self, config: &EngineConfig, offset: i64, event: &Event) -> Ingested {
        if self.next_offset.is_some_and(|next| offset < next) {
            return Ingested {
                already_seen: true,
                ..Ingested::default()
            };
        }
        self.skip(offset);
        if !self.seen.insert(event.event_id().into()) {
            return Ingested {
                duplicate: true,
                ..Ingested::default()
            };
        }
        let watermark = self
            .watermark(config.allowed_lateness_ms)
            .unwrap_or(i64::MIN);
        let time = event.occurred_at();
        let granularity = Granularity::Minute;
        let window_start = granularity.window_start(time);
        let late = window_start + granularity.millis() <= watermark;
        match event {
            Event::Latency(e) => {
                let params = config.parameters.select(&e.parameters);
                let key = LatencyKey::new(granularity, window_start, e, &params.hash);
                self.latency
                    .entry(key, || LatencyAgg::new(offset, params.parameters.clone()))
                    .add(offset, e);
            }
            Event::Usage(e) => {
                let key = UsageKey::new(granularity, window_start, e);
                self.usage
                    .entry(key, || UsageAgg::new(offset))
                    .add(offset, e);
            }
        }
        if self.max_event_time.is_none_or(|max| time > max) {
            self.max_event_time = Some(time);
            if self.advance_seal(config.allowed_lateness_ms) {
                self.close_segment(config);
            }
        }
        Ingested {
            late,
            ..Ingested::default()
        }
    }

    pub fn skip(&mut self, offset: i64) {
        if self.segment.is_none() {
            // The first input of a partition whose start was not given.
            self.segment = Some(Checkpoint::fresh(&self.topic, self.partition, offset));
            self.origin.clone_from(&self.segment);
        }
        if self.next_offset.is_none_or(|next| offset >= next) {
            self.next_offset = Some(offset + 1);
            self.progressed = true;
        }
    }

    /// Lets the watermark follow the wall clock. Only a release that makes a
    /// window final changes any state, and it always cuts a segment, so the
    /// checkpoint records it for replays.
    pub fn release_until(&mut self, config: &EngineConfig, watermark: i64) -> bool {
        let boundary = Granularity::Minute.window_start(watermark);
        if boundary <= self.sealed_until || self.next_offset.is_none() || self.behind_published() {
            return false;
        }
        self.released_until = Some(watermark.max(self.released_until.unwrap_or(i64::MIN)));
        self.advance_seal(config.allowed_lateness_ms);
        self.close_segment(config);
        true
    }

    /// Moves `sealed_until` to the watermark's minute boundary; true when
    /// that made a window final. The first watermark ever seen finalises
    /// nothing: no pane can be older than the event that set it.
    fn advance_seal(&mut self, lateness_ms: i64) -> bool {
        let Some(watermark) = self.watermark(lateness_ms) else {
            return false;
        };
        let boundary = Granularity::Minute.window_start(watermark);
        if boundary <= self.sealed_until {
            return false;
        }
        let first = self.sealed_until == i64::MIN;
        self.sealed_until = boundary;
        self.progressed = true;
        !first
    }

    fn emit_context(topic: &str, partition: i32, watermark: Option<i64>) -> EmitContext<'_> {
        EmitContext {
            topic,
            partition,
            watermark: watermark.unwrap_or(i64::MIN),
        }
    }

    /// Whether this owner has not yet read as far as panes of the current
    /// segment were published (by a previous owner): a cut here would
    /// split input those panes already hold.
    pub fn behind_published(&self) -> bool {
        match (&self.segment, self.next_offset) {
            (Some(segment), Some(next)) => segment.published_until.is_some_and(|p| next < p),
            _ => false,
        }
    }

    /// Ends the current segment where it stands, unless that would cut it
    /// short of what was already published (see
    /// [`PartitionState::behind_published`]); false then, and the next
    /// owner replays the segment from its start.
    pub fn close_segment_at_rest(&mut self, config: &EngineConfig) -> bool {
        if self.behind_published() {
            return false;
        }
        self.close_segment(config);
        true
    }

    /// Ends the current segment at the current position.
    fn close_segment(&mut self, config: &EngineConfig) {
        let Some(next_offset) = self.next_offset else {
            return;
        };
        let watermark = self.watermark(config.allowed_lateness_ms);
        let ctx = Self::emit_context(&self.topic, self.partition, watermark);
        self.latency
            .close(&ctx, self.sealed_until, &mut self.closed);
        self.usage.close(&ctx, self.sealed_until, &mut self.closed);
        self.seen.clear();
        // A cut short of the published reach is one a replay finds again
        // (the others wait for the reach), so the reach carries over.
        let reach = self
            .segment
            .as_ref()
            .and_then(|s| s.published_until)
            .filter(|p| *p > next_offset);
        self.segment = Some(Checkpoint {
            topic: self.topic.clone(),
            partition: self.partition,
            next_offset,
            max_event_time: self.max_event_time,
            released_until: self.released_until,
            sealed_until: self.sealed_until,
            published_until: reach,
        });
        self.segment_unsaved = true;
    }

    /// Hands out, in publishing order: the resume point's reach, when
    /// closed panes go further than it says; the closed panes; the current
    /// segment's checkpoint, when a segment was cut or live panes go further
    /// than it says; the live panes. Each record is persisted before the
    /// panes it covers, so a resume point always knows how far panes built
    /// from it were published.
    pub fn flush(&mut self, config: &EngineConfig, flush: &mut Flush) {
        if !self.closed.is_empty() && extend_reach(&mut self.origin, self.next_offset) {
            flush.reach.extend(self.origin.clone());
        }
        flush.closed.append(&mut self.closed);
        let watermark = self.watermark(config.allowed_lateness_ms);
        let ctx = Self::emit_context(&self.topic, self.partition, watermark);
        let live_before = flush.live.len();
        self.latency.flush(&ctx, &mut flush.live);
        self.usage.flush(&ctx, &mut flush.live);
        if flush.live.len() > live_before && extend_reach(&mut self.segment, self.next_offset) {
            self.segment_unsaved = true;
        }
        if std::mem::take(&mut self.segment_unsaved) {
            flush.checkpoints.extend(self.segment.clone());
            self.origin.clone_from(&self.segment);
        }
        if std::mem::take(&mut self.progressed) {
            if let Some(next_offset) = self.next_offset {
                flush.progress.push(self.progress(next_offset));
            }
        }
    }

    fn progress(&self, next_offset: i64) -> Progress {
        Progress {
            topic: self.topic.clone(),
            partition: self.partition,
            next_offset,
            sealed_until: (self.sealed_until > i64::MIN).then_some(self.sealed_until),
        }
    }

    /// The current progress, whether or not it moved.
    pub fn current_progress(&self) -> Option<Progress> {
        self.next_offset.map(|next| self.progress(next))
    }

    pub fn open_panes(&self) -> usize {
        self.latency.len() + self.usage.len()
    }
}
