//! ClickHouse goes away for 60 seconds under load: the sink retries with
//! backoff and stops consuming, so its memory stays bounded; it never exits
//! or drops anything, reports itself unready, and lands every event exactly
//! once when ClickHouse returns, backlog included. Also: services create
//! missing topics with the configured partition count.

use std::time::Duration;

use centile::{
    testkit::{eventually, metric_sum, metric_value, now_ms, TestEnv},
    truth::{assert_exact_aggregates, wait_until_complete, Truth},
};
use centile_events::Event;
use centile_producer::generator::{Generator, GeneratorConfig};
use rdkafka::{consumer::BaseConsumer, consumer::Consumer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_survives_a_clickhouse_outage_without_loss() {
    let mut env = TestEnv::new("outage");
    let proxy = env.proxy_clickhouse().await;
    env.set("CENTILE_TOPIC_PARTITIONS", "2");
    env.set("CENTILE_SINK_RETRY_MAX_BACKOFF", "1s");
    let mut sink = env.spawn("centile-sink", &[]);
    let aggregator = env.spawn("centile-aggregator", &[]);

    // The services created the topics, with the configured partition count.
    let reader: BaseConsumer = centile_runtime::kafka::client_config(&env.config.kafka)
        .create()
        .expect("metadata client");
    for topic in [
        &env.config.topics.latency,
        &env.config.topics.usage,
        &env.config.topics.rollups,
        &env.config.topics.dlq,
    ] {
        let partitions = eventually(
            "services to create their topics",
            Duration::from_secs(60),
            || async {
                let metadata = reader
                    .fetch_metadata(Some(topic), Duration::from_secs(5))
                    .ok()?;
                let t = &metadata.topics()[0];
                (t.error().is_none() && !t.partitions().is_empty()).then(|| t.partitions().len())
            },
        )
        .await;
        assert_eq!(partitions, 2, "{topic}");
    }

    let mut generator = Generator::new(GeneratorConfig {
        seed: 5,
        ..GeneratorConfig::default()
    });
    let start = now_ms() - 3_600_000;
    let events: Vec<Event> = (0..40_000)
        .flat_map(|i| generator.next_events(start + i * 80))
        .collect();
    let (before, during) = events.split_at(events.len() / 5);
    let publisher = env.publisher().await;
    let mut first = Truth::default();
    before.iter().for_each(|e| first.add(e));
    publisher.send_batch(before).await.expect("publish");
    wait_until_complete(&env, &first, Duration::from_secs(120)).await;
    assert_eq!(sink.get("/readyz").await.0, 200);

    proxy.cut();
    let outage_started = std::time::Instant::now();
    let feeder = {
        let during = during.to_vec();
        tokio::spawn(async move {
            // Load keeps arriving for the whole outage.
            for chunk in during.chunks(during.len() / 50 + 1) {
                publisher
                    .send_batch(chunk)
                    .await
                    .expect("publish during the outage");
                tokio::time::sleep(Duration::from_millis(1_100)).await;
            }
        })
    };
    let scrape = eventually(
        "the sink to notice the outage",
        Duration::from_secs(30),
        || async {
            let scrape = sink.metrics().await;
            (metric_value(&scrape, "centile_sink_clickhouse_up") == Some(0.0)).then_some(scrape)
        },
    )
    .await;
    assert!(metric_value(
        &scrape,
        "centile_sink_rows_written_total{table=\"latency_events\"}"
    )
    .is_some());
    let (status, body) = sink.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).expect("readyz json");
    assert!(
        answer["failing"]["clickhouse_insert"]
            .as_str()
            .is_some_and(|reason| reason.contains("insert failed")),
        "/readyz names the failing insert: {body}"
    );
    // The probe names the unreachable server too, writes or not.
    eventually(
        "the clickhouse probe to fail",
        Duration::from_secs(20),
        || async {
            let (_, body) = sink.get("/readyz").await;
            let answer: serde_json::Value = serde_json::from_str(&body).ok()?;
            answer["failing"]["clickhouse"].as_str().map(drop)
        },
    )
    .await;
    let scrape = sink.metrics().await;
    assert_eq!(
        metric_value(&scrape, "centile_readiness_check_up{check=\"clickhouse\"}"),
        Some(0.0)
    );
    assert!(
        metric_sum(&scrape, "centile_sink_insert_failures_total", &[]).unwrap_or(0.0) > 0.0,
        "failed inserts are counted"
    );
    // Consumption pauses: after the batch in hand, nothing more is read, so
    // memory stays flat while the backlog waits in the broker.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let consumed = |scrape: &str| -> f64 {
        ["latency", "usage", "rollups"]
            .iter()
            .filter_map(|role| {
                metric_value(
                    scrape,
                    &format!("centile_sink_messages_total{{role=\"{role}\"}}"),
                )
            })
            .sum()
    };
    let consumed_early = consumed(&sink.metrics().await);
    let rss_early = sink.rss_bytes().expect("sink rss");
    let mut rss_peak = rss_early;
    while outage_started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_peak = rss_peak.max(sink.rss_bytes().expect("sink rss"));
    }
    let consumed_late = consumed(&sink.metrics().await);
    println!(
        "during the 60 s outage: {} messages consumed after the first 10 s, sink RSS {} -> peak {} MiB",
        consumed_late - consumed_early,
        rss_early >> 20,
        rss_peak >> 20
    );
    assert!(
        consumed_late - consumed_early <= env.config.sink.batch_max_rows as f64,
        "the sink kept consuming during the outage: {consumed_early} -> {consumed_late}"
    );
    assert!(
        rss_peak < rss_early + (64 << 20),
        "sink memory grew from {rss_early} to {rss_peak} bytes during the outage"
    );
    assert!(
        sink.is_running(),
        "the sink must wait out the outage, not exit:\n{}",
        sink.log()
    );
    let landed = env
        .query_u64("SELECT count() FROM latency_events_dedup")
        .await;
    assert_eq!(
        landed,
        Some(first.latency_events),
        "nothing lands while ClickHouse is unreachable"
    );
    assert!(sink.log().contains("clickhouse insert failed, retrying"));

    proxy.restore();
    feeder.await.expect("feeder");
    let mut truth = Truth::default();
    events.iter().for_each(|e| truth.add(e));
    wait_until_complete(&env, &truth, Duration::from_secs(120)).await;
    truth.seal();
    assert_exact_aggregates(&env.clickhouse(), &truth).await;
    assert_eq!(sink.get("/readyz").await.0, 200);
    assert_eq!(
        metric_value(&sink.metrics().await, "centile_sink_clickhouse_up"),
        Some(1.0)
    );
    drop(aggregator);
}
