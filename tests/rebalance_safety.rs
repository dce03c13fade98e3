//! Rebalance safety: two aggregator instances share one consumer group
//! while a 200k-event workload is published; one of them is stopped and
//! started again and again, so partitions move back and forth between the
//! two. Every view row must still equal the exact truth.

mod faults;

use std::time::Duration;

use centile::testkit::{metric_value, TestEnv};
use faults::{
    assert_pipeline_exact, feed_slowly, scale, seed, single_instance, Chaos, Restartable, Workload,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_moving_between_instances_lose_and_duplicate_nothing() {
    let mut env = TestEnv::new("rebalance");
    // Group mode is what this test is about, whatever the run exports.
    env.config.kafka.assignment = centile_runtime::Assignment::Group;
    // Six partitions per topic, so both instances always own some.
    env.config.topics.partitions = 6;
    env.set("CENTILE_TOPICS_PARTITIONS", "6");
    let seed = seed();
    let mut chaos = Chaos::new(seed);
    let workload = Workload::new(seed, scale(), 3);

    let sink = Restartable::start(&env, "centile-sink", single_instance());
    let steady = Restartable::start(&env, "centile-aggregator", Vec::new());
    steady.wait_active().await;
    let mut moving = Restartable::start(&env, "centile-aggregator", Vec::new());
    let feeder = feed_slowly(&env, &workload).await;

    for _ in 0..5 {
        moving.wait_active().await;
        tokio::time::sleep(chaos.pause(Duration::from_millis(500), Duration::from_secs(4))).await;
        moving.stop();
        tokio::time::sleep(chaos.pause(Duration::from_millis(200), Duration::from_secs(3))).await;
        moving.restart(&env);
        println!(
            "stopped and restarted the second aggregator ({} times)",
            moving.stops
        );
    }
    moving.wait_active().await;
    feeder.await.expect("feeder");

    let report = assert_pipeline_exact(&env, &workload.truth, Duration::from_secs(600)).await;
    println!(
        "after {} rebalances: every view row exact; percentiles: {} checks on 10k+ windows (worst {:.4}%), {} on 1k+ windows",
        moving.stops * 2,
        report.large,
        report.worst_large * 100.0,
        report.medium
    );
    let revoked = steady.service.log().matches("partition revoked").count();
    assert!(
        revoked >= 5,
        "the steady instance gave partitions away {revoked} times"
    );
    let scrape = moving.service.metrics().await;
    assert!(
        metric_value(
            &scrape,
            "centile_aggregator_partitions_assigned_total{from_checkpoint=\"true\"}"
        )
        .is_some_and(|n| n > 0.0),
        "partitions moved with their checkpoints"
    );
    drop(sink);
}
