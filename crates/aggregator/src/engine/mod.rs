//! The windowing engine: raw events in, minute rollup panes out. No I/O and
//! no clock of its own; the caller supplies offsets and, for idle
//! partitions, the wall-clock time. Given the same input sequence and the
//! same starting [`Checkpoint`] it emits the same panes, which is what makes
//! replays idempotent downstream.
//!
//! State is kept per source partition: each partition has its own watermark
//! (the maximum event time it has seen, minus the allowed lateness) and its
//! own panes. A minute window is final once the watermark passes its end.
//! An event for a window that is already final joins a new pane of the
//! current segment, so late data restates the views and is never dropped.
//! Hour and day rows are merged from minute panes by the ClickHouse views,
//! so no pane ever stays open longer than a minute plus the lateness, and a
//! restart replays at most that much input.

mod checkpoint;
mod latency;
mod pane_id;
mod partition;
mod usage;

use std::collections::BTreeMap;

use centile_events::{Decoded, Event, ParameterHasher};

pub use checkpoint::Checkpoint;
use partition::PartitionState;

/// Settings of the pure engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub allowed_lateness_ms: i64,
    pub parameters: ParameterHasher,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            allowed_lateness_ms: 10_000,
            parameters: ParameterHasher::default(),
        }
    }
}

/// A position in a source topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourcePos<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// What happened to one ingested event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ingested {
    /// The event's window was already final: it restates the window.
    pub late: bool,
    /// The offset lies before the partition's position, so it was ignored.
    pub already_seen: bool,
    /// Its event id was already counted in this segment (a producer retry).
    pub duplicate: bool,
}

/// How far a partition has been read and rolled up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub topic: String,
    pub partition: i32,
    /// The next offset to read.
    pub next_offset: i64,
    /// Minute windows ending at or before this are final and published.
    pub sealed_until: Option<i64>,
}

/// What to publish, in this order: each step only after the broker has
/// acknowledged the previous one.
#[derive(Debug, Default)]
pub struct Flush {
    /// Resume points re-recorded with a further reach, because the closed
    /// panes below go further than they said (see
    /// [`Checkpoint::published_until`]).
    pub reach: Vec<Checkpoint>,
    /// Panes of segments that ended.
    pub closed: Vec<Decoded>,
    /// Where the current segments start and how far their panes reach,
    /// for partitions that cut a segment or whose live panes below reach
    /// further than their last checkpoint said. Persisting one makes its
    /// segment boundary durable and covers the live panes published next.
    pub checkpoints: Vec<Checkpoint>,
    /// The changed panes of the current segments.
    pub live: Vec<Decoded>,
    /// Partitions whose position or watermark moved.
    pub progress: Vec<Progress>,
}

impl Flush {
    pub fn panes(&self) -> impl Iterator<Item = &Decoded> {
        self.closed.iter().chain(&self.live)
    }
}

#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    /// By topic, then partition: lookups borrow the topic name, so the
    /// per-event path allocates nothing to find its partition.
    partitions: BTreeMap<String, BTreeMap<i32, PartitionState>>,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Self {
        Self {
            config,
            partitions: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    fn partition<'a>(
        partitions: &'a mut BTreeMap<String, BTreeMap<i32, PartitionState>>,
        topic: &str,
        partition: i32,
    ) -> &'a mut PartitionState {
        if !partitions.contains_key(topic) {
            partitions.insert(topic.to_owned(), BTreeMap::new());
        }
        partitions
            .get_mut(topic)
            .expect("inserted above")
            .entry(partition)
            .or_insert_with(|| PartitionState::new(topic, partition, None))
    }

    fn existing(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        self.partitions.get(topic)?.get(&partition)
    }

    fn existing_mut(&mut self, topic: &str, partition: i32) -> Option<&mut PartitionState> {
        self.partitions.get_mut(topic)?.get_mut(&partition)
    }

    /// Takes on a partition, resuming from its checkpoint when there is one,
    /// else reading it from `start_offset` with no history.
    pub fn assign(
        &mut self,
        topic: &str,
        partition: i32,
        checkpoint: Option<&Checkpoint>,
        start_offset: Option<i64>,
    ) {
        let state = match checkpoint {
            Some(c) => PartitionState::restore(c),
            None => PartitionState::new(topic, partition, start_offset),
        };
        self.partitions
            .entry(topic.to_owned())
            .or_default()
            .insert(partition, state);
    }

    pub fn owns(&self, topic: &str, partition: i32) -> bool {
        self.existing(topic, partition).is_some()
    }

    /// Adds one valid event read at `pos`.
    pub fn ingest(&mut self, pos: SourcePos<'_>, event: &Event) -> Ingested {
        Self::partition(&mut self.partitions, pos.topic, pos.partition).ingest(
            &self.config,
            pos.offset,
            event,
        )
    }

    /// Advances the position past a message that produced no event (it was
    /// refused), so it is committed with the rest.
    pub fn skip(&mut self, pos: SourcePos<'_>) {
        Self::partition(&mut self.partitions, pos.topic, pos.partition).skip(pos.offset);
    }

    /// Lets an idle partition's watermark follow the wall clock, so its
    /// windows become final even when no more events arrive. True when it
    /// moved the watermark (and so cut a segment).
    ///
    /// Unlike a cut made by event time, this cut is not found again by a
    /// replay, so the caller must flush right after it and persist the
    /// checkpoint before ingesting more input.
    pub fn mark_idle(&mut self, topic: &str, partition: i32, now_ms: i64) -> bool {
        let lateness = self.config.allowed_lateness_ms;
        let config = self.config.clone();
        self.existing_mut(topic, partition)
            .is_some_and(|state| state.release_until(&config, now_ms - lateness))
    }

    /// Cuts every partition's segment where it stands, so that a restart
    /// resumes exactly here; used on shutdown. As with [`Engine::mark_idle`],
    /// flush and persist before ingesting more.
    ///
    /// A partition still short of where its segment's panes were published
    /// (by a previous owner) is not cut: its next owner replays the segment
    /// from the start. Those partitions are returned.
    pub fn close_all_segments(&mut self) -> Vec<(String, i32)> {
        let mut uncut = Vec::new();
        for (topic, partitions) in &mut self.partitions {
            for (partition, state) in partitions {
                if !state.close_segment_at_rest(&self.config) {
                    uncut.push((topic.clone(), *partition));
                }
            }
        }
        uncut
    }

    /// Collects what changed since the last flush; closed panes are dropped
    /// from memory.
    pub fn flush(&mut self) -> Flush {
        let mut flush = Flush::default();
        for state in self.partitions.values_mut().flat_map(BTreeMap::values_mut) {
            state.flush(&self.config, &mut flush);
        }
        flush
    }

    /// Forgets a partition that was taken away in a rebalance; its new owner
    /// rebuilds the same panes from the last checkpoint.
    pub fn revoke(&mut self, topic: &str, partition: i32) {
        if let Some(partitions) = self.partitions.get_mut(topic) {
            partitions.remove(&partition);
        }
    }

    pub fn watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        self.existing(topic, partition)
            .and_then(|s| s.watermark(self.config.allowed_lateness_ms))
    }

    /// Every owned partition's progress, moved or not.
    pub fn progress(&self) -> Vec<Progress> {
        self.partitions
            .values()
            .flat_map(BTreeMap::values)
            .filter_map(PartitionState::current_progress)
            .collect()
    }

    /// Panes held in memory.
    pub fn open_panes(&self) -> usize {
        self.partitions
            .values()
            .flat_map(BTreeMap::values)
            .map(PartitionState::open_panes)
            .sum()
    }
}

#[cfg(test)]
mod tests;
