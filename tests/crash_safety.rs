//! Crash safety: while a workload of 200k latency events plus usage events
//! over three hours of event time is published, the aggregator and the sink
//! are killed with SIGKILL at random moments, at least ten times in all, and
//! restarted each time. Every view row must still equal the exact truth,
//! percentiles must stay within the promised error, and the raw tables must
//! hold each event once.

mod faults;

use std::time::Duration;

use centile::testkit::{metric_value, TestEnv};
use faults::{
    assert_pipeline_exact, feed_slowly, scale, seed, single_instance, Chaos, Restartable, Workload,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    let env = TestEnv::new("crash");
    let seed = seed();
    let mut chaos = Chaos::new(seed);
    let workload = Workload::new(seed, scale(), 3);
    println!(
        "workload: {} latency + {} usage events",
        workload.truth.latency_events, workload.truth.usage_events
    );

    let mut aggregator = Restartable::start(&env, "centile-aggregator", single_instance());
    let mut sink = Restartable::start(&env, "centile-sink", single_instance());
    let feeder = feed_slowly(&env, &workload).await;

    // At least ten kills, both services at least four times each, at random
    // moments while the workload is published and while it is caught up on.
    while aggregator.kills + sink.kills < 10 || aggregator.kills < 4 || sink.kills < 4 {
        let victim = if chaos.coin() {
            &mut aggregator
        } else {
            &mut sink
        };
        victim.wait_active().await;
        tokio::time::sleep(chaos.pause(Duration::from_millis(200), Duration::from_secs(4))).await;
        victim.kill_and_restart(&env);
        println!("killed {} ({} kills so far)", victim.bin, victim.kills);
    }
    feeder.await.expect("feeder");

    let report = assert_pipeline_exact(&env, &workload.truth, Duration::from_secs(600)).await;
    println!(
        "after {} aggregator and {} sink kills: every view row exact; percentiles: {} checks on 10k+ windows (worst {:.4}%), {} on 1k+ windows (worst {:.4}%)",
        aggregator.kills,
        sink.kills,
        report.large,
        report.worst_large * 100.0,
        report.medium,
        report.worst_medium * 100.0
    );
    let scrape = aggregator.service.metrics().await;
    assert!(
        metric_value(
            &scrape,
            "centile_aggregator_partitions_assigned_total{from_checkpoint=\"true\"}"
        )
        .is_some_and(|n| n > 0.0),
        "the last aggregator resumed from checkpoints"
    );
}
