//! End to end on the real broker and ClickHouse: 100k latency and ~21k usage
//! events over the four past hours flow through the aggregator and the
//! sink, and every view row must match the raw events exactly (counts, sums,
//! min, max, cost) with percentiles within the promised error. A poison
//! message goes to the dead-letter topic without stopping the flow.

use std::time::Duration;

use centile::{
    testkit::{metric_value, now_ms, TestEnv},
    truth::{assert_exact_aggregates, assert_percentiles, wait_until_complete, Truth},
};
use centile_events::Event;
use centile_producer::generator::{Generator, GeneratorConfig};
use centile_runtime::kafka::{producer_config, send_all, OutMessage};
use rdkafka::{message::Headers, Message};

const LATENCY_EVENTS: usize = 100_000;
const HOUR_MS: i64 = 3_600_000;
const POISON: &[u8] = b"{\"not\": \"avro\"}";

/// Two traffic shapes: a heavy one whose hourly windows exceed 10k events,
/// and a varied one with many tenants, models, tools and parameter sets.
fn events() -> Vec<Event> {
    let mut heavy = Generator::new(GeneratorConfig {
        seed: 7,
        tenants: 1,
        models: 2,
        tools: 1,
        parameter_sets: 1,
        usage_ratio: 0.21,
    });
    let mut varied = Generator::new(GeneratorConfig {
        seed: 11,
        tenants: 4,
        models: 6,
        tools: 3,
        parameter_sets: 3,
        usage_ratio: 0.21,
    });
    // The four whole hours before the current one, so every run sees the same windows.
    let start = (now_ms() / HOUR_MS - 4) * HOUR_MS + 60_000;
    let span = 4 * HOUR_MS - 120_000;
    (0..LATENCY_EVENTS)
        .flat_map(|i| {
            // Slightly out of order, as real traffic is; well within the lateness bound.
            let at = start + span * i as i64 / LATENCY_EVENTS as i64 - (i as i64 * 7919 % 1_500);
            if i % 10 < 7 {
                heavy.next_events(at)
            } else {
                varied.next_events(at)
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_lands_exact_rollups_and_accurate_percentiles() {
    let env = TestEnv::new("e2e");
    let publisher = env.publisher().await;
    let aggregator = env.spawn("centile-aggregator", &[]);
    let sink = env.spawn("centile-sink", &[]);

    let events = events();
    let mut truth = Truth::default();
    events.iter().for_each(|e| truth.add(e));
    truth.seal();
    assert!(
        truth.usage_events >= 20_000,
        "{} usage events",
        truth.usage_events
    );

    let producer = producer_config(&env.config.kafka)
        .create()
        .expect("producer");
    for (i, chunk) in events.chunks(5_000).enumerate() {
        publisher.send_batch(chunk).await.expect("publish");
        if i == 10 {
            let poison = OutMessage {
                topic: env.config.topics.latency.clone(),
                partition: None,
                key: Some("poison".into()),
                payload: POISON.to_vec(),
                headers: Vec::new(),
            };
            send_all(&producer, &[poison])
                .await
                .expect("publish poison");
        }
    }

    wait_until_complete(&env, &truth, Duration::from_secs(300)).await;
    let client = env.clickhouse();
    assert_exact_aggregates(&client, &truth).await;

    // Percentiles: within 1% of the exact nearest-rank value for windows of
    // at least 10k events, and between the exact values at ranks q±0.005 for
    // windows of at least 1k events.
    let report = assert_percentiles(&client, &truth).await;
    assert!(
        report.large >= 12,
        "only {} percentile checks on windows of 10k+ events",
        report.large
    );
    assert!(report.medium > report.large, "{report:?}");
    println!(
        "percentiles: {} checks on 10k+ windows, {} on 1k+ windows, worst relative error {:.4}% (1k+: {:.4}%)",
        report.large,
        report.medium,
        report.worst_large * 100.0,
        report.worst_medium * 100.0
    );

    // The poison message is dead-lettered with its reason and origin, once.
    let dead = env.read_topic(&env.config.topics.dlq, Duration::from_secs(5));
    assert_eq!(dead.len(), 1, "exactly one dead letter");
    let letter = &dead[0];
    assert_eq!(letter.payload(), Some(POISON));
    let headers: std::collections::HashMap<String, String> = letter
        .headers()
        .expect("dead letters carry headers")
        .iter()
        .map(|h| {
            (
                h.key.to_owned(),
                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
            )
        })
        .collect();
    assert_eq!(headers["centile.dlq.reason_kind"], "unknown_framing");
    assert!(
        headers["centile.dlq.reason"].contains("7b22"),
        "{}",
        headers["centile.dlq.reason"]
    );
    assert_eq!(
        headers["centile.dlq.source_topic"],
        env.config.topics.latency
    );
    assert!(headers["centile.dlq.source_offset"].parse::<i64>().is_ok());

    // The services' metrics agree.
    let scrape = sink.metrics().await;
    assert_eq!(
        metric_value(
            &scrape,
            "centile_sink_refused_messages_total{kind=\"latency\",reason=\"unknown_framing\"}"
        ),
        Some(1.0)
    );
    let scrape = aggregator.metrics().await;
    assert_eq!(
        metric_value(&scrape, "centile_aggregator_events_total{kind=\"latency\"}"),
        Some(LATENCY_EVENTS as f64)
    );
    assert_eq!(
        metric_value(
            &scrape,
            "centile_aggregator_refused_messages_total{kind=\"latency\",reason=\"unknown_framing\"}"
        ),
        Some(1.0)
    );
    drop((aggregator, sink));
}
