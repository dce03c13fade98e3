//! Late and out-of-order events are never silently dropped:
//! - within the allowed lateness they join their window before it is final;
//! - after that, within the restatement horizon, they restate the minute,
//!   hour and day rows, whose `revision` goes up;
//! - beyond the horizon they go to the dead-letter topic as `too_late`, and
//!   events dated too far after their publication as `future`, both counted.
//!
//! Also completeness: `window_status` marks a window final once every source
//! partition's watermark has passed it, and idle (here: empty) partitions do
//! not hold windows open.

mod faults;

use std::{collections::HashMap, time::Duration};

use centile::testkit::{eventually, metric_sum, metric_value, now_ms, TestEnv};
use centile_events::{Event, LatencyEvent};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

fn call(id: &str, at: i64, rt: f64) -> Event {
    Event::Latency(LatencyEvent {
        event_id: id.to_owned(),
        occurred_at: at,
        tenant_id: "late-tenant".into(),
        model_id: "late-model".into(),
        provider: "p".into(),
        tool: "chat".into(),
        parameters: Default::default(),
        response_time_ms: rt,
        success: true,
        error_type: None,
        input_tokens: Some(1),
        output_tokens: Some(1),
        session_id: None,
    })
}

async fn row(env: &TestEnv, view: &str, start_s: i64) -> Option<(u64, u64)> {
    env.clickhouse()
        .query(&format!(
            "SELECT toUInt64(call_count), toUInt64(revision) FROM {view} \
             WHERE window_start = toDateTime({start_s}) AND tenant_id = 'late-tenant'"
        ))
        .fetch_one::<(u64, u64)>()
        .await
        .ok()
}

async fn window_final(env: &TestEnv, granularity: &str, start_s: i64) -> Option<u8> {
    env.clickhouse()
        .query(&format!(
            "SELECT is_final FROM window_status WHERE granularity = '{granularity}' \
             AND window_start = toDateTime({start_s})"
        ))
        .fetch_one::<u8>()
        .await
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_events_restate_too_late_ones_are_dead_lettered_and_windows_become_final() {
    let env = TestEnv::new("late");
    let aggregator = env.spawn("centile-aggregator", &[]);
    let sink = env.spawn("centile-sink", &[]);
    let publisher = env.publisher().await;
    let lateness = env.config.aggregator.allowed_lateness.as_millis() as i64;

    // One key, so one partition carries everything and the others stay empty.
    let t = (now_ms() / HOUR_MS - 1) * HOUR_MS + 10 * MINUTE_MS;
    let (minute, hour, day) = (
        t / 1000,
        (t / HOUR_MS * HOUR_MS) / 1000,
        (t / DAY_MS * DAY_MS) / 1000,
    );
    let mut batch: Vec<Event> = (0..10)
        .map(|i| {
            call(
                &format!("on-time-{i}"),
                t + 1_000 + i * 5_000,
                10.0 + i as f64,
            )
        })
        .collect();
    // Out of order but within the lateness: 3 s behind the newest event.
    batch.push(call("next-minute", t + MINUTE_MS + 1_000, 99.0));
    assert!(1_000 + 2_000 < lateness);
    batch.push(call("out-of-order", t + MINUTE_MS - 2_000, 7.0));
    // Event time moves on, so minute t becomes final.
    batch.push(call("later", t + 3 * MINUTE_MS, 50.0));
    publisher.send_batch(&batch).await.expect("publish");

    eventually(
        "minute t to be final with 11 calls",
        Duration::from_secs(60),
        || async {
            let (calls, _) = row(&env, "latency_minute", minute).await?;
            (calls == 11 && window_final(&env, "minute", minute).await? == 1).then_some(())
        },
    )
    .await;
    let scrape = aggregator.metrics().await;
    assert_eq!(
        metric_value(&scrape, "centile_aggregator_late_events_total"),
        Some(0.0),
        "the out-of-order event joined its window before it was final"
    );
    // Empty partitions are idle, so they do not hold the hour open.
    eventually("the hour to be final", Duration::from_secs(30), || async {
        (window_final(&env, "hour", hour).await? == 1).then_some(())
    })
    .await;

    let mut before = Vec::new();
    for (view, start) in [
        ("latency_minute", minute),
        ("latency_hourly", hour),
        ("latency_daily", day),
    ] {
        before.push(row(&env, view, start).await.expect("row"));
    }

    // After the window is final: a restatement.
    publisher
        .send(call("restating", t + 30_000, 12.5))
        .await
        .expect("publish late event");
    for ((view, start), (calls, revision)) in [
        ("latency_minute", minute),
        ("latency_hourly", hour),
        ("latency_daily", day),
    ]
    .iter()
    .zip(&before)
    {
        let (new_calls, new_revision) = eventually(
            &format!("{view} to be restated"),
            Duration::from_secs(60),
            || async {
                let now = row(&env, view, *start).await?;
                (now.0 == calls + 1).then_some(now)
            },
        )
        .await;
        assert_eq!(new_calls, calls + 1);
        assert!(
            new_revision > *revision,
            "{view} revision {revision} -> {new_revision}"
        );
    }
    assert_eq!(window_final(&env, "minute", minute).await, Some(1));
    let scrape = aggregator.metrics().await;
    assert_eq!(
        metric_value(&scrape, "centile_aggregator_late_events_total"),
        Some(1.0)
    );

    // Beyond the horizon, and from the future: dead letters with reasons.
    let now = now_ms();
    publisher
        .send_batch(&[
            call("too-late", now - 8 * DAY_MS, 1.0),
            call("future", now + HOUR_MS, 1.0),
        ])
        .await
        .expect("publish refused events");
    let scrape = eventually(
        "both to be dead-lettered",
        Duration::from_secs(60),
        || async {
            let scrape = sink.metrics().await;
            let too_late = metric_sum(
                &scrape,
                "centile_sink_refused_messages_total",
                &["reason=\"too_late\""],
            );
            let future = metric_sum(
                &scrape,
                "centile_sink_refused_messages_total",
                &["reason=\"future\""],
            );
            (too_late == Some(1.0) && future == Some(1.0)).then_some(scrape)
        },
    )
    .await;
    drop(scrape);
    let letters = faults::dead_letter_reasons(&env);
    let kinds: HashMap<String, String> = letters.iter().cloned().collect();
    assert_eq!(letters.len(), 2, "{kinds:?}");
    assert!(
        kinds["too_late"].contains("restatement horizon"),
        "{kinds:?}"
    );
    assert!(kinds["future"].contains("occurred_at"), "{kinds:?}");
    let scrape = aggregator.metrics().await;
    for reason in ["too_late", "future"] {
        assert_eq!(
            metric_sum(
                &scrape,
                "centile_aggregator_refused_messages_total",
                &[&format!("reason=\"{reason}\"")]
            ),
            Some(1.0),
            "{reason}"
        );
    }
    // Neither reached the views or the raw table.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        env.query_u64(
            "SELECT toUInt64(sum(call_count)) FROM latency_daily WHERE tenant_id = 'late-tenant'"
        )
        .await,
        Some(14)
    );
    assert_eq!(
        env.query_u64(
            "SELECT count() FROM latency_events_dedup WHERE event_id IN ('too-late', 'future')"
        )
        .await,
        Some(0)
    );
}
