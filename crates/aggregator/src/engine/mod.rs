//! The windowing engine: raw events in, rollup panes out. No I/O and no
//! clock of its own; the caller supplies offsets and, for idle partitions,
//! the wall-clock time. Given the same input sequence it emits the same
//! panes, which is what makes replays idempotent downstream.
//!
//! State is kept per source partition: each partition has its own watermark
//! (the maximum event time it has seen, minus the allowed lateness) and its
//! own panes. A pane is final once the watermark passes its window's end;
//! it is then emitted one last time and dropped. An event for a window that
//! is already final opens a fresh pane, emitted final at the next flush, so
//! late data is added to the views, never dropped.

mod latency;
mod pane_id;
mod partition;
mod usage;

use std::collections::BTreeMap;

use centile_events::{Decoded, Event, Granularity, ParameterHasher};

use partition::PartitionState;

/// Settings of the pure engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub allowed_lateness_ms: i64,
    pub tdigest_compression: usize,
    pub parameters: ParameterHasher,
    pub granularities: Vec<Granularity>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            allowed_lateness_ms: 10_000,
            tdigest_compression: 1000,
            parameters: ParameterHasher::default(),
            granularities: Granularity::ALL.to_vec(),
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
    /// Windows the event joined after they were already final.
    pub late_windows: u32,
}

/// The input position up to which a partition's effects are in emitted panes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub topic: String,
    pub partition: i32,
    /// The next offset to read.
    pub next_offset: i64,
}

/// Panes to publish, and the positions to commit once they are acknowledged.
#[derive(Debug, Default)]
pub struct Flush {
    pub panes: Vec<Decoded>,
    pub positions: Vec<Position>,
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
            .or_insert_with(|| PartitionState::new(topic, partition))
    }

    fn existing(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        self.partitions.get(topic)?.get(&partition)
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
    /// dead-lettered), so it is committed with the rest.
    pub fn skip(&mut self, pos: SourcePos<'_>) {
        Self::partition(&mut self.partitions, pos.topic, pos.partition).skip(pos.offset);
    }

    /// Lets an idle partition's watermark follow the wall clock, so its
    /// windows become final even when no more events arrive.
    pub fn mark_idle(&mut self, topic: &str, partition: i32, now_ms: i64) {
        let lateness = self.config.allowed_lateness_ms;
        let state = self
            .partitions
            .get_mut(topic)
            .and_then(|p| p.get_mut(&partition));
        if let Some(state) = state {
            state.release_until(now_ms - lateness, lateness);
        }
    }

    /// Emits every pane changed since the last flush, and every pane that
    /// became final; final panes are dropped from memory.
    pub fn flush(&mut self) -> Flush {
        let mut flush = Flush::default();
        for state in self.partitions.values_mut().flat_map(BTreeMap::values_mut) {
            state.flush(&self.config, &mut flush);
        }
        flush
    }

    /// Forgets a partition that was taken away in a rebalance.
    pub fn revoke(&mut self, topic: &str, partition: i32) {
        if let Some(partitions) = self.partitions.get_mut(topic) {
            partitions.remove(&partition);
        }
    }

    pub fn watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        self.existing(topic, partition)
            .and_then(|s| s.watermark(self.config.allowed_lateness_ms))
    }

    /// Panes held in memory, open or awaiting their final emission.
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
