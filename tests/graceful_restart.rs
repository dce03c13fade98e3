//! A service stopped with SIGTERM flushes its open windows or batch,
//! commits, and exits 0; restarting it neither loses nor double-counts
//! anything in the views, even while events keep arriving.

use std::time::Duration;

use centile::{
    testkit::{now_ms, TestEnv},
    truth::{assert_exact_aggregates, wait_until_complete, Truth},
};
use centile_events::Event;
use centile_producer::generator::{Generator, GeneratorConfig};

const TERM_TIMEOUT: Duration = Duration::from_secs(30);

fn batch(seed: u64, count: usize, start: i64, span: i64) -> Vec<Event> {
    let mut generator = Generator::new(GeneratorConfig {
        seed,
        tenants: 3,
        models: 4,
        tools: 2,
        parameter_sets: 2,
        usage_ratio: 0.25,
    });
    (0..count)
        .flat_map(|i| generator.next_events(start + span * i as i64 / count as i64))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_commits_and_restarts_without_loss_or_double_counting() {
    let env = TestEnv::new("restart");
    let publisher = env.publisher().await;
    let mut aggregator = env.spawn("centile-aggregator", &[]);
    let mut sink = env.spawn("centile-sink", &[]);

    let hour = 3_600_000;
    let now = now_ms();
    let first = batch(1, 15_000, now - 2 * hour, hour);
    // The second batch continues into the same hour and day windows.
    let second = batch(2, 15_000, now - hour, hour - 60_000);
    let mut truth = Truth::default();
    first.iter().chain(&second).for_each(|e| truth.add(e));

    let mut first_only = Truth::default();
    first.iter().for_each(|e| first_only.add(e));
    publisher
        .send_batch(&first)
        .await
        .expect("publish first batch");
    wait_until_complete(&env, &first_only, Duration::from_secs(180)).await;

    // Keep publishing while each service is stopped and started again.
    let feeder = {
        let publisher = env.publisher().await;
        let second = second.clone();
        tokio::spawn(async move {
            for chunk in second.chunks(1_000) {
                publisher
                    .send_batch(chunk)
                    .await
                    .expect("publish second batch");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let status = aggregator.terminate(TERM_TIMEOUT);
    assert!(
        status.success(),
        "aggregator exit: {status:?}\n{}",
        aggregator.log()
    );
    assert!(aggregator
        .log()
        .contains("cutting segments and publishing before exit"));
    aggregator = env.spawn("centile-aggregator", &[]);

    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let status = sink.terminate(TERM_TIMEOUT);
    assert!(status.success(), "sink exit: {status:?}\n{}", sink.log());
    assert!(sink.log().contains("writing the open batch before exit"));
    sink = env.spawn("centile-sink", &[]);
    feeder.await.expect("feeder");

    wait_until_complete(&env, &truth, Duration::from_secs(180)).await;
    truth.seal();
    let client = env.clickhouse();
    assert_exact_aggregates(&client, &truth).await;

    // The restarted aggregator resumed exactly where the stopped one cut
    // its segments: from checkpoints, replaying nothing.
    let scrape = aggregator.metrics().await;
    assert!(
        centile::testkit::metric_value(
            &scrape,
            "centile_aggregator_partitions_assigned_total{from_checkpoint=\"true\"}"
        )
        .is_some_and(|n| n > 0.0),
        "{scrape}"
    );

    // Nothing arrives late to be counted twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_exact_aggregates(&client, &truth).await;

    for service in [&mut aggregator, &mut sink] {
        let status = service.terminate(TERM_TIMEOUT);
        assert!(status.success(), "{} exit: {status:?}", service.name);
    }
}
