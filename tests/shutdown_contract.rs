//! One shutdown contract for every service: after SIGTERM the final flush
//! retries only until `service.shutdown_grace`, so a broker that is down at
//! shutdown cannot keep the aggregator alive (it used to retry forever),
//! and a second signal exits at once with 128 + its number.

use std::{
    os::unix::process::ExitStatusExt,
    time::{Duration, Instant},
};

use centile::testkit::{eventually, PrivateBroker, Service, TestEnv};
use centile_producer::{Latency, Outcome};

/// `n` calls of one series, happening now.
fn latency_events(n: usize) -> Vec<centile_events::Event> {
    (0..n)
        .map(|_| {
            Latency {
                tenant_id: "t",
                model_id: "m",
                provider: "p",
                tool: "tool",
                response_time: Duration::from_millis(100),
                outcome: Outcome::Success,
            }
            .event()
            .into()
        })
        .collect()
}

/// An aggregator that holds open windows, on a broker that is then frozen.
async fn aggregator_with_frozen_broker(name: &str) -> (PrivateBroker, Service) {
    let broker = PrivateBroker::start(name);
    let mut env = TestEnv::new(name);
    env.config.kafka.brokers = broker.brokers();
    env.set("CENTILE_KAFKA_BROKERS", &broker.brokers());
    env.set("CENTILE_SERVICE_SHUTDOWN_GRACE", "3s");
    let publisher = env.publisher().await;
    let aggregator = env.spawn("centile-aggregator", &[]);
    publisher
        .send_batch(&latency_events(50))
        .await
        .expect("publish");
    eventually(
        "the aggregator to read the events",
        Duration::from_secs(60),
        || async {
            let scrape = aggregator.metrics_if_up().await?;
            let read = centile::testkit::metric_value(
                &scrape,
                "centile_aggregator_events_total{kind=\"latency\"}",
            )?;
            (read >= 50.0).then_some(())
        },
    )
    .await;
    broker.pause();
    (broker, aggregator)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_broker_cannot_hold_shutdown_past_the_grace() {
    let (broker, mut aggregator) = aggregator_with_frozen_broker("shutdown_grace").await;
    let started = Instant::now();
    aggregator.send_sigterm();
    let status = aggregator.wait_exit(Duration::from_secs(30));
    let took = started.elapsed();
    broker.resume();
    // 3 s of grace, then at most the backstop: the final publish failed,
    // so the exit is not clean, and nothing was committed that was not
    // published (a restart replays it).
    assert!(took < Duration::from_secs(15), "stopped after {took:?}");
    assert!(
        !status.success(),
        "a final flush that failed is not a clean exit: {status:?}"
    );
    assert!(
        aggregator.log().contains("shutdown_grace"),
        "{}",
        aggregator.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once() {
    let (broker, mut aggregator) = aggregator_with_frozen_broker("second_signal").await;
    aggregator.send_sigterm();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let pid = aggregator.pid().expect("running").to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    let status = aggregator.wait_exit(Duration::from_secs(10));
    broker.resume();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "exited after {:?}",
        started.elapsed()
    );
    assert_eq!(
        status.code(),
        Some(130),
        "128 + SIGINT: {status:?} (signal {:?})",
        status.signal()
    );
    assert!(
        aggregator.log().contains("second signal"),
        "{}",
        aggregator.log()
    );
}

/// The sink used to need SIGKILL while ClickHouse was down: it kept
/// retrying the insert in hand for about 50 s after SIGTERM (compose
/// allows 30 s). Now the final flush retries until the grace at most.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_stops_within_the_grace_while_clickhouse_is_down() {
    let mut env = TestEnv::new("shutdown_sink");
    let proxy = env.proxy_clickhouse().await;
    env.set("CENTILE_SERVICE_SHUTDOWN_GRACE", "3s");
    env.create_topics().await;
    let publisher = env.publisher().await;
    let mut sink = env.spawn("centile-sink", &[]);
    eventually("the sink to be ready", Duration::from_secs(60), || async {
        sink.metrics_if_up().await?;
        (sink.get("/readyz").await.0 == 200).then_some(())
    })
    .await;

    proxy.cut();
    publisher
        .send_batch(&latency_events(50))
        .await
        .expect("publish");
    eventually(
        "the sink to retry a failed insert",
        Duration::from_secs(60),
        || async {
            sink.log()
                .contains("clickhouse insert failed")
                .then_some(())
        },
    )
    .await;

    let started = Instant::now();
    sink.send_sigterm();
    let status = sink.wait_exit(Duration::from_secs(60));
    let took = started.elapsed();
    proxy.restore();
    assert!(
        took < Duration::from_secs(15),
        "stopped after {took:?}:\n{}",
        sink.log()
    );
    assert!(
        !status.success(),
        "a batch that was never written is not a clean exit: {status:?}"
    );
}
