//! Unit tests of the engine's windowing, segments, checkpoints and replay.

use std::collections::{BTreeMap, HashMap};

use centile_events::{Decoded, Event, Granularity, LatencyEvent, LatencyPane, UsageEvent};
use proptest::prelude::*;

use super::*;

const MINUTE: i64 = 60_000;
/// 2024-03-10T00:00:00Z, a day edge.
const DAY0: i64 = 1_710_028_800_000;

fn latency_for(tenant: &str, id: u32, at: i64, rt: f64, success: bool) -> Event {
    Event::Latency(LatencyEvent {
        event_id: format!("e{id}"),
        occurred_at: at,
        tenant_id: tenant.into(),
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
        session_id: None,
    })
}

fn latency(id: u32, at: i64, rt: f64, success: bool) -> Event {
    latency_for("t", id, at, rt, success)
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
        cost_usd_nanos: Some(cost),
        cache_read_input_tokens: None,
        cache_write_input_tokens: None,
        reasoning_output_tokens: None,
        session_id: None,
    })
}

fn pos(offset: i64) -> SourcePos<'static> {
    SourcePos {
        topic: "lat",
        partition: 0,
        offset,
    }
}

fn latency_panes<'a>(panes: impl IntoIterator<Item = &'a Decoded>) -> Vec<&'a LatencyPane> {
    panes
        .into_iter()
        .filter_map(|p| match p {
            Decoded::LatencyPane(p) => Some(p),
            _ => None,
        })
        .collect()
}

fn in_window<'a>(panes: &[&'a LatencyPane], start: i64) -> Vec<&'a LatencyPane> {
    panes
        .iter()
        .copied()
        .filter(|p| p.window_start == start)
        .collect()
}

#[test]
fn events_on_an_edge_open_the_next_minute() {
    let mut engine = Engine::new(EngineConfig::default());
    engine.ingest(pos(0), &latency(1, DAY0 - 1, 5.0, true));
    engine.ingest(pos(1), &latency(2, DAY0, 7.0, false));
    let flush = engine.flush();
    let panes = latency_panes(&flush.live);
    assert_eq!(panes.len(), 2);
    let old = in_window(&panes, DAY0 - MINUTE);
    let new = in_window(&panes, DAY0);
    assert_eq!((old[0].calls, old[0].successes), (1, 1));
    assert_eq!((new[0].calls, new[0].errors), (1, 1));
    assert_eq!(new[0].granularity, Granularity::Minute);
    assert_eq!(new[0].window_end - new[0].window_start, MINUTE);
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
    let pane = latency_panes(&flush.live)[0].clone();
    assert_eq!((pane.calls, pane.successes, pane.errors), (3, 2, 1));
    assert_eq!((pane.rt_min, pane.rt_max, pane.rt_sum), (3.5, 40.25, 55.75));
    assert_eq!((pane.input_tokens_sum, pane.input_tokens_count), (30, 3));
    assert_eq!((pane.output_tokens_sum, pane.output_tokens_count), (0, 0));
    assert_eq!(
        pane.parameters,
        BTreeMap::from([("streaming".into(), "true".into())])
    );
    assert_eq!(
        (pane.source.first_offset, pane.source.last_offset),
        (100, 102)
    );
    assert_eq!(pane.version, 204);
    assert!(!pane.is_final);
    assert_eq!(pane.centroids.iter().map(|c| c.weight).sum::<u64>(), 3);
    assert_eq!(
        flush.progress,
        vec![Progress {
            topic: "lat".into(),
            partition: 0,
            next_offset: 103,
            sealed_until: Some(DAY0 - MINUTE),
        }]
    );
}

#[test]
fn unchanged_panes_are_not_emitted_again() {
    let mut engine = Engine::new(EngineConfig::default());
    engine.ingest(pos(0), &latency(1, DAY0, 1.0, true));
    assert_eq!(engine.flush().live.len(), 1);
    let again = engine.flush();
    assert!(again.panes().next().is_none());
    assert!(again.progress.is_empty());
}

#[test]
fn crossing_a_minute_cuts_a_segment_and_late_events_restate_in_a_new_pane() {
    let config = EngineConfig {
        allowed_lateness_ms: 5_000,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(config);
    engine.ingest(pos(0), &latency(1, DAY0 + 10_000, 1.0, true));
    let first = engine.flush();
    let open_id = latency_panes(&first.live)[0].pane_id.clone();
    // Before the live pane goes out, the start is recorded as published to
    // offset 1, so no later owner cuts this segment short of it.
    let start = Checkpoint {
        published_until: Some(1),
        ..Checkpoint::fresh("lat", 0, 0)
    };
    assert_eq!(first.checkpoints, vec![start.clone()]);
    assert!(first.reach.is_empty());

    // Within the lateness: minute 0 is not final yet, the event joins it.
    engine.ingest(pos(1), &latency(2, DAY0 + 63_000, 2.0, true));
    let joined = engine.ingest(pos(2), &latency(3, DAY0 + 59_000, 3.0, true));
    assert!(!joined.late);

    // Event time 2m05s: watermark 2m00s, so minute 0 and minute 1 are final.
    engine.ingest(pos(3), &latency(4, DAY0 + 125_000, 4.0, true));
    assert_eq!(engine.watermark("lat", 0), Some(DAY0 + 120_000));
    let second = engine.flush();
    let closed = latency_panes(&second.closed);
    let minute0 = in_window(&closed, DAY0);
    assert_eq!(minute0.len(), 1);
    assert!(minute0[0].is_final);
    assert_eq!(minute0[0].pane_id, open_id);
    assert_eq!(minute0[0].calls, 2);
    assert_eq!(
        minute0[0].version,
        2 * 2 + 1,
        "final outranks the open version"
    );
    assert!(in_window(&closed, DAY0 + MINUTE)[0].is_final);
    // The event that crossed the boundary belongs to the closed segment.
    assert!(in_window(&closed, DAY0 + 2 * MINUTE)[0].calls == 1);
    assert_eq!(
        second.checkpoints,
        vec![Checkpoint {
            topic: "lat".into(),
            partition: 0,
            next_offset: 4,
            max_event_time: Some(DAY0 + 125_000),
            released_until: None,
            sealed_until: DAY0 + 120_000,
            published_until: None,
        }]
    );
    assert_eq!(
        second.reach,
        vec![Checkpoint {
            published_until: Some(4),
            ..start
        }],
        "the closed panes reach offset 4: recorded on the resume point before they go out"
    );
    assert_eq!(second.progress[0].sealed_until, Some(DAY0 + 120_000));

    // After the window is final, a late event restates it with a new pane,
    // final at the next cut.
    let late = engine.ingest(pos(4), &latency(5, DAY0 + 30_000, 5.0, true));
    assert!(late.late);
    let third = engine.flush();
    let restated = in_window(&latency_panes(&third.live), DAY0);
    assert_eq!(restated.len(), 1);
    assert_ne!(restated[0].pane_id, open_id);
    assert_eq!((restated[0].calls, restated[0].source.first_offset), (1, 4));
    engine.ingest(pos(5), &latency(6, DAY0 + 190_000, 6.0, true));
    let fourth = engine.flush();
    let finals = in_window(&latency_panes(&fourth.closed), DAY0);
    assert!(finals[0].is_final && finals[0].pane_id == restated[0].pane_id);
}

#[test]
fn idle_partitions_release_windows_by_wall_clock_and_checkpoint_it() {
    let mut engine = Engine::new(EngineConfig::default());
    engine.ingest(pos(0), &usage(DAY0 + 1, 5));
    engine.flush();
    assert_eq!(engine.open_panes(), 1);
    assert!(
        !engine.mark_idle("lat", 0, DAY0 + 5_000),
        "nothing to release yet"
    );
    assert!(engine.mark_idle("lat", 0, DAY0 + 2 * MINUTE));
    let flush = engine.flush();
    assert_eq!(flush.closed.len(), 1);
    assert!(matches!(&flush.closed[0], Decoded::UsagePane(p) if p.is_final));
    assert_eq!(flush.checkpoints[0].next_offset, 1);
    assert_eq!(
        flush.checkpoints[0].released_until,
        Some(DAY0 + 2 * MINUTE - 10_000)
    );
    assert_eq!(engine.open_panes(), 0);
    assert!(
        !engine.mark_idle("other", 9, DAY0),
        "unknown partitions are left alone"
    );
}

#[test]
fn usage_cost_sums_are_exact() {
    let mut engine = Engine::new(EngineConfig::default());
    let costs = [1_000_000_007, 3, 999_999_999_999];
    for (i, cost) in costs.iter().enumerate() {
        engine.ingest(pos(i as i64), &usage(DAY0 + i as i64, *cost));
    }
    let flush = engine.flush();
    let Decoded::UsagePane(pane) = &flush.live[0] else {
        panic!("usage pane expected");
    };
    assert_eq!(pane.cost_usd_nanos_sum, costs.iter().sum::<i64>());
    assert_eq!(
        (pane.requests, pane.input_tokens_sum, pane.output_tokens_sum),
        (3, 9, 12)
    );
}

#[test]
fn events_without_a_cost_are_summed_apart_for_the_price_book() {
    let mut engine = Engine::new(EngineConfig::default());
    engine.ingest(pos(0), &usage(DAY0, 5));
    let mut unpriced = usage(DAY0 + 1, 0);
    if let Event::Usage(e) = &mut unpriced {
        e.cost_usd_nanos = None;
        e.cache_read_input_tokens = Some(2);
        e.reasoning_output_tokens = Some(1);
    }
    engine.ingest(pos(1), &unpriced);
    let flush = engine.flush();
    let Decoded::UsagePane(pane) = &flush.live[0] else {
        panic!("usage pane expected");
    };
    assert_eq!((pane.requests, pane.cost_usd_nanos_sum), (2, 5));
    assert_eq!(
        pane.unpriced,
        centile_events::Unpriced {
            requests: 1,
            input: 3,
            output: 4,
            cache_read: 2,
            cache_write: 0,
            reasoning: 1,
        },
        "only the event without a cost, with its token classes"
    );
}

#[test]
fn offsets_before_the_position_are_ignored() {
    let mut engine = Engine::new(EngineConfig::default());
    engine.assign("lat", 0, None, Some(10));
    assert!(
        engine
            .ingest(pos(9), &latency(1, DAY0, 1.0, true))
            .already_seen
    );
    assert!(
        !engine
            .ingest(pos(10), &latency(2, DAY0, 1.0, true))
            .already_seen
    );
    assert!(
        engine
            .ingest(pos(10), &latency(2, DAY0, 1.0, true))
            .already_seen
    );
    assert_eq!(latency_panes(&engine.flush().live)[0].calls, 1);
}

#[test]
fn a_retried_event_is_counted_once_within_a_segment() {
    let mut engine = Engine::new(EngineConfig::default());
    assert!(
        !engine
            .ingest(pos(0), &latency(1, DAY0, 1.0, true))
            .duplicate
    );
    assert!(
        engine
            .ingest(pos(1), &latency(1, DAY0, 1.0, true))
            .duplicate
    );
    assert!(
        !engine
            .ingest(pos(2), &latency(2, DAY0, 1.0, true))
            .duplicate
    );
    let pane = latency_panes(&engine.flush().live)[0].clone();
    assert_eq!((pane.calls, pane.source.last_offset), (2, 2));
}

#[test]
fn a_restored_partition_keeps_its_watermark() {
    let mut engine = Engine::new(EngineConfig::default());
    let checkpoint = Checkpoint {
        topic: "lat".into(),
        partition: 0,
        next_offset: 50,
        max_event_time: Some(DAY0 + 10 * MINUTE),
        released_until: None,
        sealed_until: DAY0 + 9 * MINUTE,
        published_until: None,
    };
    engine.assign("lat", 0, Some(&checkpoint), Some(50));
    assert!(engine.ingest(pos(50), &latency(1, DAY0, 1.0, true)).late);
    engine.revoke("lat", 0);
    assert!(!engine.owns("lat", 0));
    assert!(engine.flush().panes().next().is_none());
}

/// Collapses published panes as ClickHouse does (highest version per id),
/// then sums calls and response times per tenant and minute window.
fn collapse(published: &[Decoded]) -> BTreeMap<(String, i64), (i64, i64, f64, f64)> {
    let mut latest: HashMap<&str, &LatencyPane> = HashMap::new();
    for pane in latency_panes(published) {
        let keep = latest
            .get(pane.pane_id.as_str())
            .is_none_or(|old| old.version < pane.version);
        if keep {
            latest.insert(&pane.pane_id, pane);
        }
    }
    let mut totals = BTreeMap::new();
    for pane in latest.values() {
        let entry = totals
            .entry((pane.tenant_id.clone(), pane.window_start))
            .or_insert((0, 0, f64::INFINITY, f64::NEG_INFINITY));
        entry.0 += pane.calls;
        entry.1 += pane.rt_sum as i64;
        entry.2 = entry.2.min(pane.rt_min);
        entry.3 = entry.3.max(pane.rt_max);
    }
    totals
}

fn truth(events: &[Event]) -> BTreeMap<(String, i64), (i64, i64, f64, f64)> {
    let mut totals = BTreeMap::new();
    for event in events {
        let Event::Latency(e) = event else { continue };
        let entry = totals
            .entry((
                e.tenant_id.clone(),
                Granularity::Minute.window_start(e.occurred_at),
            ))
            .or_insert((0, 0, f64::INFINITY, f64::NEG_INFINITY));
        entry.0 += 1;
        entry.1 += e.response_time_ms as i64;
        entry.2 = entry.2.min(e.response_time_ms);
        entry.3 = entry.3.max(e.response_time_ms);
    }
    totals
}

/// A checkpoint as the next owner reads it back: through its JSON record.
fn persisted(checkpoint: Checkpoint) -> Checkpoint {
    let json = serde_json::to_string(&checkpoint).expect("checkpoints serialize");
    serde_json::from_str(&json).expect("checkpoints deserialize")
}

/// What the runner does with a flush, cut short by a crash after `steps`
/// of its four publishing steps (reach, closed panes, checkpoints, live
/// panes).
fn publish(
    flush: Flush,
    steps: usize,
    published: &mut Vec<Decoded>,
    saved: &mut Option<Checkpoint>,
) {
    if steps >= 1 {
        if let Some(last) = flush.reach.into_iter().last() {
            *saved = Some(persisted(last));
        }
    }
    if steps >= 2 {
        published.extend(flush.closed);
    }
    if steps >= 3 {
        if let Some(last) = flush.checkpoints.into_iter().last() {
            *saved = Some(persisted(last));
        }
    }
    if steps >= 4 {
        published.extend(flush.live);
    }
}

prop_compose! {
    /// Up to 3,000 events over about 12 minutes, out of order by up to 20
    /// s, across 3 tenants; integral response times keep sums exact.
    fn workload()(spec in proptest::collection::vec((0i64..720_000, 0i64..20_000, 0usize..3, 1u32..5_000), 50..3_000)) -> Vec<Event> {
        let mut spec = spec;
        spec.sort_by_key(|(at, ..)| *at);
        spec.into_iter()
            .enumerate()
            .map(|(i, (at, jitter, tenant, rt))| {
                latency_for(&format!("t{tenant}"), i as u32, DAY0 + at - jitter, f64::from(rt), i % 5 != 0)
            })
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Crash anywhere (between any two publishing steps), restart from the
    /// last saved checkpoint, replay: the collapsed panes hold every event
    /// exactly once, like an uninterrupted run. Idle releases happen as the
    /// runner does them: at an emit, right before its flush.
    #[test]
    fn crash_and_replay_counts_every_event_exactly_once(
        events in workload(),
        flush_every in 1usize..400,
        crash_at in 0.0f64..1.0,
        crash_step in 0usize..4,
        idle_at in proptest::option::of(0.0f64..1.0),
        idle_before_crash in any::<bool>(),
        replay_flush_every in 1usize..400,
    ) {
        let config = EngineConfig::default();
        let crash_index = (events.len() as f64 * crash_at) as usize;
        let idle_index = idle_at.map(|f| (events.len() as f64 * f) as usize);
        let mut published = Vec::new();
        let mut saved: Option<Checkpoint> = None;

        let mut engine = Engine::new(config.clone());
        engine.assign("lat", 0, None, Some(0));
        for (i, event) in events.iter().enumerate().take(crash_index) {
            engine.ingest(pos(i as i64), event);
            if idle_index == Some(i) {
                // The wall clock runs ahead of event time while input pauses.
                engine.mark_idle("lat", 0, event.occurred_at() + 5 * MINUTE);
                publish(engine.flush(), 4, &mut published, &mut saved);
            }
            if (i + 1) % flush_every == 0 {
                publish(engine.flush(), 4, &mut published, &mut saved);
            }
        }
        if idle_before_crash && crash_index > 0 {
            engine.mark_idle("lat", 0, events[crash_index - 1].occurred_at() + 5 * MINUTE);
        }
        publish(engine.flush(), crash_step, &mut published, &mut saved);
        drop(engine);

        let mut engine = Engine::new(config);
        let start = saved.as_ref().map_or(0, |c| c.next_offset);
        engine.assign("lat", 0, saved.as_ref(), Some(start));
        for (i, event) in events.iter().enumerate().skip(start as usize) {
            engine.ingest(pos(i as i64), event);
            if (i + 1) % replay_flush_every == 0 {
                publish(engine.flush(), 4, &mut published, &mut saved);
            }
        }
        engine.close_all_segments();
        publish(engine.flush(), 4, &mut published, &mut saved);

        prop_assert_eq!(collapse(&published), truth(&events));
    }
}

/// How one owner of the partition stops.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// Killed after `0..4` of its last flush's publishing steps.
    Crash(usize),
    /// Revoked in a rebalance: state dropped, nothing more published.
    Revoked,
    /// SIGTERM: every segment cut where it stands, all published.
    Graceful,
}

fn ending() -> impl Strategy<Value = Ending> {
    prop_oneof![
        (0usize..4).prop_map(Ending::Crash),
        Just(Ending::Revoked),
        Just(Ending::Graceful),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The partition moves between owners again and again: each resumes
    /// from the last durable checkpoint, reads for a while (an owner may
    /// stop before it even reaches where the previous one had published
    /// to) and then crashes, is revoked or shuts down gracefully. The
    /// collapsed panes still hold every event exactly once.
    #[test]
    fn owners_handing_over_at_any_point_count_every_event_exactly_once(
        events in workload(),
        owners in proptest::collection::vec((0.0f64..1.0, 1usize..300, ending(), proptest::option::of(0.0f64..1.0)), 1..6),
    ) {
        let config = EngineConfig::default();
        let mut published = Vec::new();
        let mut saved: Option<Checkpoint> = None;
        for (reach, flush_every, ending, idle_at) in owners.iter().copied().chain([(1.0, 100, Ending::Graceful, None)]) {
            let mut engine = Engine::new(config.clone());
            let start = saved.as_ref().map_or(0, |c| c.next_offset) as usize;
            engine.assign("lat", 0, saved.as_ref(), Some(start as i64));
            let stop = start + ((events.len() - start) as f64 * reach) as usize;
            let idle_index = idle_at.map(|f| start + ((stop - start) as f64 * f) as usize);
            for (i, event) in events.iter().enumerate().take(stop).skip(start) {
                engine.ingest(pos(i as i64), event);
                if idle_index == Some(i) {
                    engine.mark_idle("lat", 0, event.occurred_at() + 5 * MINUTE);
                    publish(engine.flush(), 4, &mut published, &mut saved);
                } else if (i + 1) % flush_every == 0 {
                    publish(engine.flush(), 4, &mut published, &mut saved);
                }
            }
            match ending {
                Ending::Crash(steps) => publish(engine.flush(), steps, &mut published, &mut saved),
                Ending::Revoked => engine.revoke("lat", 0),
                Ending::Graceful => {
                    engine.close_all_segments();
                    publish(engine.flush(), 4, &mut published, &mut saved);
                }
            }
        }
        prop_assert_eq!(collapse(&published), truth(&events));
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
                out.extend(engine.flush().panes().cloned().collect::<Vec<_>>());
            }
        }
        out.extend(engine.flush().panes().cloned().collect::<Vec<_>>());
        out
    };
    assert_eq!(run(), run());
}

#[test]
fn an_owner_short_of_the_published_reach_does_not_cut() {
    let config = EngineConfig::default();
    let mut first = Engine::new(config.clone());
    first.assign("lat", 0, None, Some(0));
    for i in 0..10 {
        first.ingest(pos(i), &latency(i as u32, DAY0 + i * 1_000, 1.0, true));
    }
    let flush = first.flush();
    assert_eq!(latency_panes(&flush.live)[0].source.last_offset, 9);
    let resume = flush.checkpoints.last().cloned().expect("a resume point");
    assert_eq!(resume.published_until, Some(10));

    // The next owner stops after 5 of those 10 events.
    let mut next = Engine::new(config);
    next.assign("lat", 0, Some(&resume), Some(resume.next_offset));
    for i in 0..5 {
        next.ingest(pos(i), &latency(i as u32, DAY0 + i * 1_000, 1.0, true));
    }
    assert!(
        !next.mark_idle("lat", 0, DAY0 + 10 * MINUTE),
        "no idle release short of the reach"
    );
    assert_eq!(next.close_all_segments(), vec![("lat".to_owned(), 0)]);
    let stopped = next.flush();
    assert!(
        stopped.closed.is_empty() && stopped.checkpoints.is_empty() && stopped.reach.is_empty()
    );

    // Once it has read as far, it cuts.
    for i in 5..10 {
        next.ingest(pos(i), &latency(i as u32, DAY0 + i * 1_000, 1.0, true));
    }
    assert!(next.close_all_segments().is_empty());
    let cut = next.flush();
    assert_eq!(cut.checkpoints[0].next_offset, 10);
    assert_eq!(latency_panes(&cut.closed)[0].calls, 10);
}
