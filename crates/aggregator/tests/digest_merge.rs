//! Property: panes built from any split of the input (as across Kafka
//! partitions) merge to the same counts, sums, min and max as the whole,
//! and to percentiles within tolerance of it, with sketches large
//! enough that buckets pool many values.

use std::collections::BTreeMap;

use centile_aggregator::{
    engine::{Engine, EngineConfig, SourcePos},
    merge::{nearest_rank, LatencySummary},
};
use centile_events::{Decoded, Event, Granularity, LatencyEvent, LatencyPane};
use proptest::prelude::*;

const T0: i64 = 1_710_028_800_000;

fn event(i: usize, rt: f64) -> Event {
    Event::Latency(LatencyEvent {
        event_id: format!("e{i}"),
        // All in one minute, so a pane holds thousands of values and the
        // sketch's buckets really pool them.
        occurred_at: T0 + (i as i64 % 3_000) * 20,
        tenant_id: "t".into(),
        model_id: "m".into(),
        provider: "p".into(),
        tool: "x".into(),
        parameters: BTreeMap::new(),
        response_time_ms: rt,
        success: !i.is_multiple_of(7),
        error_type: None,
        input_tokens: Some(i as i64 % 50),
        output_tokens: Some(3),
        session_id: None,
    })
}

/// Runs the engine with each event sent to the partition `route` picks,
/// returning every pane it emits (each pane id once: nothing is flushed
/// before the end).
fn all_panes(values: &[f64], route: impl Fn(usize) -> i32) -> Vec<LatencyPane> {
    let mut engine = Engine::new(EngineConfig::default());
    for (i, rt) in values.iter().enumerate() {
        let pos = SourcePos {
            topic: "lat",
            partition: route(i),
            offset: i as i64,
        };
        engine.ingest(pos, &event(i, *rt));
    }
    let flush = engine.flush();
    let panes: Vec<LatencyPane> = flush
        .panes()
        .filter_map(|p| match p {
            Decoded::LatencyPane(p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    assert!(panes.iter().all(|p| p.granularity == Granularity::Minute));
    for pane in panes.iter().filter(|p| p.calls > 2_000) {
        assert!(
            (pane.centroids.len() as i64) < pane.calls,
            "a pane of {} values keeps {} centroids",
            pane.calls,
            pane.centroids.len()
        );
    }
    panes
}

/// The fraction of values below and at-or-below `v`.
fn rank_span(sorted: &[f64], v: f64) -> (f64, f64) {
    let n = sorted.len() as f64;
    let below = sorted.partition_point(|x| *x < v) as f64;
    let at_or_below = sorted.partition_point(|x| *x <= v) as f64;
    (below / n, at_or_below / n)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn split_digests_merge_like_one(
        // Integral milliseconds keep float sums exact in any order.
        values in proptest::collection::vec((1u32..20_000).prop_map(f64::from), 1..6_000),
        partitions in 1i32..6,
        salt in 0usize..1_000,
    ) {
        let whole = LatencySummary::merge(&all_panes(&values, |_| 0));
        let split_panes = all_panes(&values, |i| ((i * 7919 + salt) % partitions as usize) as i32);
        let split = LatencySummary::merge(&split_panes);

        prop_assert_eq!(split.calls, whole.calls);
        prop_assert_eq!(split.calls, values.len() as i64);
        prop_assert_eq!(split.successes, whole.successes);
        prop_assert_eq!(split.errors, whole.errors);
        prop_assert_eq!(split.rt_sum, whole.rt_sum);
        prop_assert_eq!(split.rt_min, whole.rt_min);
        prop_assert_eq!(split.rt_max, whole.rt_max);
        prop_assert_eq!(split.input_tokens_sum, whole.input_tokens_sum);
        prop_assert_eq!(split.output_tokens_sum, whole.output_tokens_sum);

        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        for q in [0.5, 0.95, 0.99] {
            for (name, summary) in [("whole", &whole), ("split", &split)] {
                let estimate = summary.quantile(q).unwrap();
                let (lo, hi) = rank_span(&sorted, estimate);
                prop_assert!(
                    lo <= q + 0.01 && hi >= q - 0.01,
                    "{} p{}: estimate {} has rank {}..{} (exact {:?})",
                    name, q * 100.0, estimate, lo, hi, nearest_rank(&sorted, q)
                );
            }
        }
    }
}
