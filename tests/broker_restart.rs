//! The broker restarts (sqlite storage) while events are published and
//! rolled up: producers, the aggregator and the sink ride it out, and every
//! view row still equals the exact truth afterwards.
//!
//! The broker is the local stack's build (`deploy/local/tansu/build`): on
//! stock Tansu 0.6.0 the restart ended in a storage panic (lite.rs:503,
//! "more or less than one row", reached when the idempotent producers,
//! whose messages timed out during the outage, bumped their epochs), after
//! which every request failed. `CENTILE_TANSU_BIN` runs another build.

mod faults;

use std::time::Duration;

use centile::testkit::{PrivateBroker, TestEnv};
use faults::{assert_pipeline_exact, feed_retrying, Restartable, Workload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_loses_nothing() {
    let mut broker = PrivateBroker::start("restart");
    let mut env = TestEnv::new("broker");
    env.config.kafka.brokers = broker.brokers();
    env.config.kafka.delivery_timeout = Duration::from_secs(300);
    env.set("CENTILE_KAFKA_BROKERS", &broker.brokers());
    env.set("CENTILE_KAFKA_DELIVERY_TIMEOUT", "300s");
    let workload = Workload::new(17, 40_000, 1);

    let _aggregator = Restartable::start(&env, "centile-aggregator", Vec::new());
    let _sink = Restartable::start(&env, "centile-sink", Vec::new());
    let chunk = workload.events.len().div_ceil(40);
    let feeder = feed_retrying(
        &env,
        workload.events.clone(),
        chunk,
        Duration::from_millis(400),
    )
    .await;

    tokio::time::sleep(Duration::from_secs(6)).await;
    broker.stop();
    println!("broker stopped");
    tokio::time::sleep(Duration::from_secs(5)).await;
    broker.restart();
    println!("broker restarted");
    let retried = feeder.await.expect("feeder");
    println!("{retried} publications failed during the outage and were sent again");

    assert_pipeline_exact(&env, &workload.truth, Duration::from_secs(300)).await;
}
