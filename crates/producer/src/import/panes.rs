//! Minute panes of one input, built by the aggregator's own pure engine.
//!
//! The input is one source partition, `import:<digest>` partition 0, read at
//! offsets 0, 1, 2... (the row index). Pane ids and versions therefore
//! depend only on the input's bytes and the engine settings, so a re-run
//! of the same input publishes the very same panes, which ClickHouse
//! collapses. Flushes happen at points that also depend only on the input
//! (every [`FLUSH_EVERY_ROWS`] rows; segments are cut when more than
//! [`MAX_OPEN_PANES`] panes are open), which bounds memory whatever the
//! input's order.

use centile_aggregator::engine::{Engine, EngineConfig, SourcePos};
use centile_events::{Decoded, Event};

/// Changed panes are handed out this often (in rows).
pub const FLUSH_EVERY_ROWS: u64 = 100_000;
/// Above this many open panes every segment is cut and its panes released.
pub const MAX_OPEN_PANES: usize = 50_000;

/// The source topic panes of an input name.
pub fn source_topic(digest: &str) -> String {
    format!("import:{digest}")
}

/// Feeds an input's events to the engine and hands out its panes.
#[derive(Debug)]
pub struct PaneBuilder {
    engine: Engine,
    topic: String,
    flush_every: u64,
    max_open: usize,
    since_flush: u64,
}

impl PaneBuilder {
    pub fn new(config: EngineConfig, digest: &str) -> Self {
        Self::with_limits(config, digest, FLUSH_EVERY_ROWS, MAX_OPEN_PANES)
    }

    /// With other flush limits (tests use small ones).
    pub fn with_limits(
        config: EngineConfig,
        digest: &str,
        flush_every: u64,
        max_open: usize,
    ) -> Self {
        Self {
            engine: Engine::new(config),
            topic: source_topic(digest),
            flush_every: flush_every.max(1),
            max_open: max_open.max(1),
            since_flush: 0,
        }
    }

    /// Adds the event of row `index`; returns panes to publish when this row
    /// completes a flush interval or the open panes exceed the limit.
    pub fn add(&mut self, index: u64, event: &Event) -> Vec<Decoded> {
        let pos = SourcePos {
            topic: &self.topic,
            partition: 0,
            offset: i64::try_from(index).unwrap_or(i64::MAX),
        };
        self.engine.ingest(pos, event);
        self.since_flush += 1;
        if self.engine.open_panes() > self.max_open {
            self.engine.close_all_segments();
            return self.flush();
        }
        if self.since_flush >= self.flush_every {
            return self.flush();
        }
        Vec::new()
    }

    fn flush(&mut self) -> Vec<Decoded> {
        self.since_flush = 0;
        let flush = self.engine.flush();
        flush.closed.into_iter().chain(flush.live).collect()
    }

    /// Cuts every segment and returns the remaining panes, all final.
    pub fn finish(mut self) -> Vec<Decoded> {
        self.engine.close_all_segments();
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use centile_events::{Granularity, LatencyEvent, LatencyPane};

    use super::*;

    const DAY: i64 = 86_400_000;
    const NOW: i64 = 1_800_000_000_000;

    /// Rows spread over two years, in no particular order.
    fn events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| {
                let age = (i as i64 * 7_919 % 730) * DAY + (i as i64 * 104_729 % DAY);
                Event::Latency(LatencyEvent {
                    event_id: format!("e{i}"),
                    occurred_at: NOW - age,
                    tenant_id: "acme".into(),
                    model_id: format!("m{}", i % 3),
                    provider: "p".into(),
                    tool: "chat".into(),
                    parameters: BTreeMap::new(),
                    response_time_ms: (i % 997) as f64,
                    success: i % 5 != 0,
                    error_type: None,
                    input_tokens: Some(i as i64 % 100),
                    output_tokens: None,
                    session_id: None,
                })
            })
            .collect()
    }

    fn build(events: &[Event], flush_every: u64, max_open: usize) -> Vec<Decoded> {
        let mut builder = PaneBuilder::with_limits(
            EngineConfig::default(),
            "0123456789abcdef",
            flush_every,
            max_open,
        );
        let mut panes = Vec::new();
        for (i, event) in events.iter().enumerate() {
            panes.extend(builder.add(i as u64, event));
        }
        panes.extend(builder.finish());
        panes
    }

    /// The highest version of each pane id, as ClickHouse keeps it.
    fn collapsed(panes: &[Decoded]) -> HashMap<String, LatencyPane> {
        let mut kept: HashMap<String, LatencyPane> = HashMap::new();
        for pane in panes {
            let Decoded::LatencyPane(p) = pane else {
                panic!("a latency input makes latency panes")
            };
            if kept.get(&p.pane_id).is_none_or(|k| k.version < p.version) {
                kept.insert(p.pane_id.clone(), p.clone());
            }
        }
        kept
    }

    #[test]
    fn the_same_input_makes_identical_panes() {
        let events = events(5_000);
        let first = build(&events, 1_000, 300);
        let second = build(&events, 1_000, 300);
        assert!(!first.is_empty());
        assert_eq!(
            first, second,
            "same ids, versions and contents, in the same order"
        );
    }

    #[test]
    fn panes_over_two_years_count_every_row_once_in_its_minute() {
        let events = events(5_000);
        let panes = collapsed(&build(&events, 1_000, 300));
        let mut calls_by_minute: BTreeMap<i64, i64> = BTreeMap::new();
        for pane in panes.values() {
            assert_eq!(pane.granularity, Granularity::Minute);
            assert_eq!(pane.source.topic, "import:0123456789abcdef");
            *calls_by_minute.entry(pane.window_start).or_default() += pane.calls;
        }
        let mut expected: BTreeMap<i64, i64> = BTreeMap::new();
        for event in &events {
            *expected
                .entry(Granularity::Minute.window_start(event.occurred_at()))
                .or_default() += 1;
        }
        assert_eq!(calls_by_minute, expected);
        let span = expected.keys().last().unwrap() - expected.keys().next().unwrap();
        assert!(span > 700 * DAY, "the rows span two years");
    }

    #[test]
    fn open_panes_stay_bounded_and_cuts_do_not_change_the_counts() {
        let events = events(3_000);
        let small = collapsed(&build(&events, 500, 50));
        let large = collapsed(&build(&events, 1_000_000, 1_000_000));
        let total =
            |panes: &HashMap<String, LatencyPane>| -> i64 { panes.values().map(|p| p.calls).sum() };
        assert_eq!(total(&small), 3_000);
        assert_eq!(total(&large), 3_000);
        assert!(small.len() >= large.len());
    }
}
