//! Batching: rows accumulate until the batch holds `max_rows` messages or
//! its first message has waited `max_wait`, whichever comes first. Pane
//! versions are collapsed to the newest per pane id, since the aggregator
//! re-emits open panes every interval and only the latest one counts.

use std::collections::{BTreeMap, HashMap};

use centile_runtime::kafka::OutMessage;
use tokio::time::{Duration, Instant};

use crate::metrics::BatchTally;
use crate::rows::{LatencyEventRow, LatencyPaneRow, UsageEventRow, UsagePaneRow, WatermarkRow};

#[derive(Debug, Default)]
pub struct Batch {
    pub latency_events: Vec<LatencyEventRow>,
    pub usage_events: Vec<UsageEventRow>,
    latency_panes: HashMap<String, LatencyPaneRow>,
    usage_panes: HashMap<String, UsagePaneRow>,
    /// The highest watermark per source and rollup partition.
    watermarks: HashMap<(String, i32, i32), WatermarkRow>,
    pub dead_letters: Vec<OutMessage>,
    /// By topic, then partition, so tracking a message allocates nothing.
    next_offsets: BTreeMap<String, BTreeMap<i32, i64>>,
    messages: usize,
    opened_at: Option<Instant>,
    /// What the batch's messages were, counted into the metrics once it
    /// is written.
    pub tally: BatchTally,
}

impl Batch {
    /// Records that the message at `offset` is part of this batch.
    pub fn track(&mut self, topic: &str, partition: i32, offset: i64) {
        self.opened_at.get_or_insert_with(Instant::now);
        self.messages += 1;
        if !self.next_offsets.contains_key(topic) {
            self.next_offsets.insert(topic.to_owned(), BTreeMap::new());
        }
        let partitions = self.next_offsets.get_mut(topic).expect("inserted above");
        let next = partitions.entry(partition).or_insert(0);
        *next = (*next).max(offset + 1);
    }

    pub fn push_latency_pane(&mut self, row: LatencyPaneRow) {
        match self.latency_panes.get(&row.pane_id) {
            Some(existing) if existing.version >= row.version => {}
            _ => {
                self.latency_panes.insert(row.pane_id.clone(), row);
            }
        }
    }

    pub fn push_usage_pane(&mut self, row: UsagePaneRow) {
        match self.usage_panes.get(&row.pane_id) {
            Some(existing) if existing.version >= row.version => {}
            _ => {
                self.usage_panes.insert(row.pane_id.clone(), row);
            }
        }
    }

    pub fn push_watermark(&mut self, row: WatermarkRow) {
        let key = (
            row.source_topic.clone(),
            row.source_partition,
            row.rollup_partition,
        );
        match self.watermarks.get(&key) {
            Some(existing) if existing.watermark >= row.watermark => {}
            _ => {
                self.watermarks.insert(key, row);
            }
        }
    }

    pub fn watermarks(&self) -> impl Iterator<Item = &WatermarkRow> {
        self.watermarks.values()
    }

    pub fn latency_panes(&self) -> impl Iterator<Item = &LatencyPaneRow> {
        self.latency_panes.values()
    }

    pub fn usage_panes(&self) -> impl Iterator<Item = &UsagePaneRow> {
        self.usage_panes.values()
    }

    /// The offsets to commit once everything in the batch is durable.
    pub fn next_offsets(&self) -> impl Iterator<Item = (&str, i32, i64)> {
        self.next_offsets.iter().flat_map(|(topic, partitions)| {
            partitions
                .iter()
                .map(move |(partition, next)| (topic.as_str(), *partition, *next))
        })
    }

    pub fn messages(&self) -> usize {
        self.messages
    }

    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    pub fn is_full(&self, max_rows: usize) -> bool {
        self.messages >= max_rows
    }

    /// When the batch must be written even if it is not full.
    pub fn deadline(&self, max_wait: Duration) -> Option<Instant> {
        self.opened_at.map(|opened| opened + max_wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pane(id: &str, version: u64, calls: u64) -> UsagePaneRow {
        UsagePaneRow {
            pane_id: id.into(),
            version,
            granularity: "hour".into(),
            window_start: 0,
            window_end: 3600,
            tenant_id: "t".into(),
            model_id: "m".into(),
            provider: "p".into(),
            feature: "chat".into(),
            source_topic: "u".into(),
            source_partition: 0,
            first_offset: 0,
            last_offset: 0,
            is_final: 0,
            watermark_ms: 0,
            requests: calls,
            input_tokens_sum: 0,
            output_tokens_sum: 0,
            cost_usd_nanos_sum: 0,
            emitted_at: 0,
            cache_read_input_tokens_sum: 0,
            cache_write_input_tokens_sum: 0,
            reasoning_output_tokens_sum: 0,
            unpriced_requests: 0,
            unpriced_input_tokens_sum: 0,
            unpriced_output_tokens_sum: 0,
            unpriced_cache_read_input_tokens_sum: 0,
            unpriced_cache_write_input_tokens_sum: 0,
            unpriced_reasoning_output_tokens_sum: 0,
        }
    }

    #[test]
    fn keeps_only_the_newest_version_of_each_pane() {
        let mut batch = Batch::default();
        batch.push_usage_pane(pane("a", 4, 2));
        batch.push_usage_pane(pane("a", 9, 5));
        batch.push_usage_pane(pane("a", 6, 3));
        batch.push_usage_pane(pane("b", 1, 1));
        let mut kept: Vec<_> = batch
            .usage_panes()
            .map(|p| (p.pane_id.as_str(), p.requests))
            .collect();
        kept.sort();
        assert_eq!(kept, [("a", 5), ("b", 1)]);
    }

    #[test]
    fn commits_one_past_the_highest_offset_per_partition() {
        let mut batch = Batch::default();
        batch.track("x", 0, 5);
        batch.track("x", 0, 3);
        batch.track("x", 1, 0);
        batch.track("y", 0, 41);
        assert_eq!(
            batch.next_offsets().collect::<Vec<_>>(),
            [("x", 0, 6), ("x", 1, 1), ("y", 0, 42)]
        );
        assert_eq!(batch.messages(), 4);
        assert!(batch.is_full(4));
        assert!(!batch.is_full(5));
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_runs_from_the_first_message() {
        let mut batch = Batch::default();
        assert_eq!(batch.deadline(Duration::from_secs(1)), None);
        let start = Instant::now();
        batch.track("x", 0, 0);
        tokio::time::advance(Duration::from_millis(700)).await;
        batch.track("x", 0, 1);
        assert_eq!(
            batch.deadline(Duration::from_secs(1)),
            Some(start + Duration::from_secs(1))
        );
    }
}
