//! Unit tests of the engine's windowing, sealing and emission.

use std::collections::BTreeMap;

use centile_events::{
    Decoded, Event, Granularity, LatencyEvent, LatencyPane, UsageEvent, UsagePane,
};

use super::*;

const HOUR: i64 = 3_600_000;
/// 2024-03-10T00:00:00Z, a day edge.
const DAY0: i64 = 1_710_028_800_000;

fn latency(id: u32, at: i64, rt: f64, success: bool) -> Event {
    Event::Latency(LatencyEvent {
        event_id: format!("e{id}"),
        occurred_at: at,
        tenant_id: "t".into(),
        model_id: "m".into(),
        provider: "p".into(),
        tool: "chat".into(),
        parameters: BTreeMap::from([
            ("streaming".into(), "true".into()),
            ("trace_id".into(), format!("{id}")),
        ]),
        response_time_ms: rt,
        success,
        error_type: (!success).then(|| "timeout".into()),
        input_tokens: Some(10),
        output_tokens: None,
    })
}

fn usage(at: i64, cost: i64) -> Event {
    Event::Usage(UsageEvent {
        event_id: format!("u{at}"),
        occurred_at: at,
        tenant_id: "t".into(),
        user_id: None,
        model_id: "m".into(),
        provider: "p".into(),
        feature: "chat".into(),
        input_tokens: 3,
        output_tokens: 4,
        cost_usd_nanos: cost,
    })
}

fn pos(offset: i64) -> SourcePos<'static> {
    SourcePos {
        topic: "lat",
        partition: 0,
        offset,
    }
}

fn latency_panes(flush: &Flush) -> Vec<&LatencyPane> {
    flush
        .panes
        .iter()
        .filter_map(|p| match p {
            Decoded::LatencyPane(p) => Some(p),
            _ => None,
        })
        .collect()
}

fn usage_panes(flush: &Flush) -> Vec<&UsagePane> {
    flush
        .panes
        .iter()
        .filter_map(|p| match p {
            Decoded::UsagePane(p) => Some(p),
            _ => None,
        })
        .collect()
}

fn find<'a>(panes: &[&'a LatencyPane], g: Granularity, start: i64) -> Vec<&'a LatencyPane> {
    panes
        .iter()
        .copied()
        .filter(|p| p.granularity == g && p.window_start == start)
        .collect()
}

#[test]
fn events_on_an_edge_open_the_next_window() {
    let mut engine = Engine::new(EngineConfig::default());
    engine.ingest(pos(0), &latency(1, DAY0 - 1, 5.0, true));
    engine.ingest(pos(1), &latency(2, DAY0, 7.0, false));
    let flush = engine.flush();
    let panes = latency_panes(&flush);
    assert_eq!(panes.len(), 6);
    for (g, before, after) in [
        (Granularity::Minute, DAY0 - 60_000, DAY0),
        (Granularity::Hour, DAY0 - HOUR, DAY0),
        (Granularity::Day, DAY0 - 24 * HOUR, DAY0),
    ] {
        let old = find(&panes, g, before);
        let new = find(&panes, g, after);
        assert_eq!((old.len(), new.len()), (1, 1), "{g:?}");
        assert_eq!((old[0].calls, old[0].successes), (1, 1));
        assert_eq!((new[0].calls, new[0].errors), (1, 1));
        assert_eq!(new[0].window_end - new[0].window_start, g.millis());
    }
}

#[test]
fn panes_carry_exact_aggregates_and_only_performance_parameters() {
    let mut engine = Engine::new(EngineConfig::default());
    for (i, rt) in [12.0, 3.5, 40.25].into_iter().enumerate() {
        engine.ingest(
            pos(i as i64 + 100),
            &latency(i as u32, DAY0 + 1000, rt, i != 1),
        );
    }
    let flush = engine.flush();
    let hour = find(&latency_panes(&flush), Granularity::Hour, DAY0)[0].clone();
    assert_eq!((hour.calls, hour.successes, hour.errors), (3, 2, 1));
    assert_eq!((hour.rt_min, hour.rt_max, hour.rt_sum), (3.5, 40.25, 55.75));
    assert_eq!((hour.input_tokens_sum, hour.input_tokens_count), (30, 3));
    assert_eq!((hour.output_tokens_sum, hour.output_tokens_count), (0, 0));
    assert_eq!(
        hour.parameters,
        BTreeMap::from([("streaming".into(), "true".into())])
    );
    assert_eq!(
        (hour.source.first_offset, hour.source.last_offset),
        (100, 102)
    );
    assert_eq!(hour.version, 204);
    assert!(!hour.is_final);
    let weights: u64 = hour.centroids.iter().map(|c| c.weight).sum();
    assert_eq!(weights, 3);
    assert_eq!(
        flush.positions,
        vec![Position {
            topic: "lat".into(),
            partition: 0,
            next_offset: 103
        }]
    );
}

#[test]
fn unchanged_panes_are_not_emitted_again() {
    let mut engine = Engine::new(EngineConfig::default());
    engine.ingest(pos(0), &latency(1, DAY0, 1.0, true));
    assert_eq!(engine.flush().panes.len(), 3);
    let again = engine.flush();
    assert!(again.panes.is_empty());
    assert!(again.positions.is_empty());
}

#[test]
fn watermark_seals_windows_and_late_events_open_new_final_panes() {
    let config = EngineConfig {
        allowed_lateness_ms: 5_000,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(config);
    engine.ingest(pos(0), &latency(1, DAY0 + 10_000, 1.0, true));
    let first = engine.flush();
    let minute_id = find(&latency_panes(&first), Granularity::Minute, DAY0)[0]
        .pane_id
        .clone();

    // Event time 2 minutes later: watermark = +2m05s - 5s, so minute 0 is final.
    engine.ingest(pos(1), &latency(2, DAY0 + 125_000, 2.0, true));
    assert_eq!(engine.watermark("lat", 0), Some(DAY0 + 120_000));
    let second = engine.flush();
    let sealed = find(&latency_panes(&second), Granularity::Minute, DAY0);
    assert_eq!(sealed.len(), 1);
    assert!(sealed[0].is_final);
    assert_eq!(sealed[0].pane_id, minute_id);
    assert_eq!(sealed[0].version, 1, "final emission outranks the open one");

    // A late event for minute 0 joins a fresh pane, final at the next seal.
    let ingested = engine.ingest(pos(2), &latency(3, DAY0 + 30_000, 3.0, true));
    assert_eq!(ingested.late_windows, 1);
    engine.ingest(pos(3), &latency(4, DAY0 + 190_000, 4.0, true));
    let third = engine.flush();
    let late = find(&latency_panes(&third), Granularity::Minute, DAY0);
    assert_eq!(late.len(), 1);
    assert_ne!(late[0].pane_id, minute_id);
    assert!(late[0].is_final);
    assert_eq!((late[0].calls, late[0].source.first_offset), (1, 2));
    // The hour pane stayed open and absorbed all four events.
    let hour = find(&latency_panes(&third), Granularity::Hour, DAY0);
    assert_eq!((hour[0].calls, hour[0].is_final), (4, false));
}

#[test]
fn idle_partitions_release_windows_by_wall_clock() {
    let mut engine = Engine::new(EngineConfig::default());
    engine.ingest(pos(0), &usage(DAY0 + 1, 5));
    engine.flush();
    assert_eq!(engine.open_panes(), 3);
    engine.mark_idle("lat", 0, DAY0 + 2 * HOUR);
    let flush = engine.flush();
    let finals: Vec<_> = usage_panes(&flush)
        .into_iter()
        .filter(|p| p.is_final)
        .collect();
    assert_eq!(finals.len(), 2, "minute and hour are final, the day is not");
    assert_eq!(engine.open_panes(), 1);
    // Idle on a partition never seen is a no-op.
    engine.mark_idle("other", 9, DAY0);
}

#[test]
fn usage_cost_sums_are_exact() {
    let mut engine = Engine::new(EngineConfig::default());
    let costs = [1_000_000_007, 3, 999_999_999_999];
    for (i, cost) in costs.iter().enumerate() {
        engine.ingest(pos(i as i64), &usage(DAY0 + i as i64, *cost));
    }
    let flush = engine.flush();
    for pane in usage_panes(&flush) {
        assert_eq!(pane.cost_usd_nanos_sum, costs.iter().sum::<i64>());
        assert_eq!(
            (pane.requests, pane.input_tokens_sum, pane.output_tokens_sum),
            (3, 9, 12)
        );
    }
}

#[test]
fn replaying_the_same_input_reproduces_the_same_panes() {
    let run = || {
        let mut engine = Engine::new(EngineConfig::default());
        let mut out = Vec::new();
        for i in 0..5_000i64 {
            let at = DAY0 + i * 997;
            engine.ingest(
                pos(i),
                &latency(i as u32, at, (i % 97) as f64 + 0.5, i % 13 != 0),
            );
            if i % 1_000 == 0 {
                out.extend(engine.flush().panes);
            }
        }
        out.extend(engine.flush().panes);
        out
    };
    assert_eq!(run(), run());
}

#[test]
fn revoked_partitions_are_forgotten() {
    let mut engine = Engine::new(EngineConfig::default());
    engine.ingest(pos(0), &latency(1, DAY0, 1.0, true));
    engine.revoke("lat", 0);
    assert_eq!(engine.open_panes(), 0);
    assert!(engine.flush().panes.is_empty());
}
