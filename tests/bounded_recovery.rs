//! Bounded recovery: after a SIGKILL at minute 50 of an hour, the restarted
//! aggregator re-reads only the input of its last segment (about the last
//! minute window plus the allowed lateness), never the hour or the day, and
//! the views stay exact.

mod faults;

use std::time::Duration;

use centile::{
    testkit::{metric_value, now_ms, TestEnv},
    truth::{assert_exact_aggregates, wait_until_complete, Truth},
};
use centile_events::Event;
use centile_producer::generator::{Generator, GeneratorConfig};
use faults::{single_instance, wait_for_position, Restartable, HOUR_MS};
use rdkafka::consumer::{BaseConsumer, Consumer};

const MINUTE_MS: i64 = 60_000;
const JITTER_MS: i64 = 1_500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_at_minute_50_replays_about_a_minute_of_input() {
    let mut env = TestEnv::new("recovery");
    // No idle release before the kill: measure the worst case, where the
    // last segment is still open.
    env.config.aggregator.idle_timeout = Duration::from_secs(600);
    env.set("CENTILE_AGGREGATOR_IDLE_TIMEOUT", "600s");
    let lateness_ms = env.config.aggregator.allowed_lateness.as_millis() as i64;

    // 50 minutes of an hour in the past, 1,200 calls a minute, slightly out
    // of order.
    let hour = (now_ms() / HOUR_MS - 2) * HOUR_MS;
    let per_minute = 1_200;
    let mut generator = Generator::new(GeneratorConfig {
        seed: 50,
        ..GeneratorConfig::default()
    });
    let events: Vec<Event> = (0..50 * per_minute)
        .flat_map(|i| {
            let at = hour + i * MINUTE_MS / per_minute - (i * 7919 % JITTER_MS);
            generator.next_events(at.max(hour))
        })
        .collect();
    let mut truth = Truth::default();
    events.iter().for_each(|e| truth.add(e));

    let _sink = Restartable::start(&env, "centile-sink", single_instance());
    let mut aggregator = Restartable::start(&env, "centile-aggregator", single_instance());
    env.publisher()
        .await
        .send_batch(&events)
        .await
        .expect("publish");

    let reader: BaseConsumer = centile_runtime::kafka::client_config(&env.config.kafka)
        .create()
        .expect("reader");
    let partitions = env.config.topics.partitions;
    let mut ends = Vec::new();
    for topic in [&env.config.topics.latency, &env.config.topics.usage] {
        let topic_ends: Vec<(i32, i64)> = (0..partitions)
            .map(|p| {
                let (_, high) = reader
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .expect("watermarks");
                (p, high)
            })
            .collect();
        wait_for_position(&aggregator.service, topic, &topic_ends).await;
        ends.push((topic.clone(), topic_ends));
    }

    aggregator.kill_and_restart(&env);
    let mut replayed = 0i64;
    for (topic, topic_ends) in &ends {
        wait_for_position(&aggregator.service, topic, topic_ends).await;
        let scrape = aggregator.service.metrics().await;
        for (partition, end) in topic_ends {
            let resumed = metric_value(
                &scrape,
                &format!(
                    "centile_aggregator_resumed_offset{{partition=\"{partition}\",topic=\"{topic}\"}}"
                ),
            )
            .expect("resumed offset") as i64;
            assert!(resumed <= *end);
            replayed += end - resumed;
        }
    }

    // The bound: events of the last minute window plus the lateness (and
    // the out-of-order jitter that let them arrive after the cut).
    let newest = events.iter().map(Event::occurred_at).max().expect("events");
    let last_cut = newest - lateness_ms - MINUTE_MS - JITTER_MS;
    let bound = events
        .iter()
        .filter(|e| e.occurred_at() >= last_cut)
        .count() as i64;
    println!(
        "killed at minute 50: replayed {replayed} of {} events ({:.2}%); bound (last minute + lateness) {bound}",
        events.len(),
        replayed as f64 * 100.0 / events.len() as f64
    );
    assert!(replayed > 0, "the kill hit an open segment");
    assert!(
        replayed <= bound,
        "replayed {replayed} events, more than the last minute plus lateness ({bound})"
    );

    wait_until_complete(&env, &truth, Duration::from_secs(180)).await;
    truth.seal();
    assert_exact_aggregates(&env.clickhouse(), &truth).await;
}
