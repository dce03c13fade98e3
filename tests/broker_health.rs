//! The local stack's broker health check (`deploy/local/broker_probe.py`,
//! behind `deploy/local/stack status`) tells a broker that answers from one
//! that only listens: a frozen broker (SIGSTOP, as a wedged one looks from
//! outside) keeps its port open but fails the probe within its timeout,
//! and passes again once it thaws.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use centile::testkit::{free_port, workspace_root, PrivateBroker};

fn probe(port: u16, timeout_s: &str) -> (bool, String, Duration) {
    let started = Instant::now();
    let output = Command::new("python3")
        .arg(workspace_root().join("deploy/local/broker_probe.py"))
        .args(["127.0.0.1", &port.to_string(), timeout_s])
        .output()
        .expect("python3 runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn the_probe_tells_a_frozen_broker_from_a_healthy_one() {
    let broker = PrivateBroker::start("probe");

    let (ok, err, _) = probe(broker.port, "5");
    assert!(ok, "a healthy broker answers the metadata probe: {err}");

    broker.pause();
    // The port still accepts connections: only a real request tells.
    assert!(std::net::TcpStream::connect(("127.0.0.1", broker.port)).is_ok());
    let (ok, err, took) = probe(broker.port, "2");
    assert!(!ok, "a frozen broker must fail the probe");
    assert!(err.contains("no metadata answer within 2s"), "{err}");
    assert!(
        took < Duration::from_secs(10),
        "the probe is bounded: {took:?}"
    );

    broker.resume();
    let (ok, err, _) = probe(broker.port, "10");
    assert!(ok, "a thawed broker answers again: {err}");
}

#[test]
fn the_probe_fails_clearly_when_nothing_listens() {
    let (ok, err, _) = probe(free_port(), "2");
    assert!(!ok);
    assert!(err.contains("bad metadata answer"), "{err}");
}

/// Deleting a topic while an idempotent producer writes to it must neither
/// take the broker down nor touch any other topic. Stock Tansu 0.6.0 on
/// sqlite deleted every topic of the cluster (`topic_delete_by.sql`) and
/// then panicked its storage task on the next produce (`lite.rs:503`); the
/// local stack's build carries fixes for both (deploy/local/tansu/patches).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_topic_under_idempotent_produce_touches_nothing_else() {
    use centile_runtime::kafka::{ensure_topics, producer_config, send_all, OutMessage};
    use rdkafka::{
        admin::{AdminClient, AdminOptions},
        client::DefaultClientContext,
        consumer::{BaseConsumer, Consumer},
        producer::FutureProducer,
    };

    let broker = PrivateBroker::start("delete");
    let mut kafka = centile_runtime::config::KafkaConfig {
        brokers: broker.brokers(),
        ..Default::default()
    };
    kafka.delivery_timeout = Duration::from_secs(5);
    ensure_topics(&kafka, &["keep", "doomed"], 3, 1, &[])
        .await
        .expect("topics");
    let producer: FutureProducer = producer_config(&kafka).create().expect("producer");
    let batch = |topic: &str, n: usize, tag: &str| -> Vec<OutMessage> {
        (0..n)
            .map(|i| OutMessage {
                topic: topic.to_owned(),
                partition: None,
                key: Some(format!("{tag}-{i}")),
                payload: vec![b'x'; 200],
                headers: Vec::new(),
            })
            .collect()
    };
    send_all(&producer, &batch("keep", 3000, "before"))
        .await
        .expect("keep acknowledged");
    send_all(&producer, &batch("doomed", 3000, "first"))
        .await
        .expect("doomed acknowledged");

    // The same idempotent producer keeps writing to the doomed topic while
    // it is deleted: its next batches race the deletion, the ones after it
    // time out, and librdkafka then bumps the producer's epoch on its own.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let racing = {
        let producer = producer.clone();
        let stop = stop.clone();
        let chunk = batch("doomed", 200, "racing");
        tokio::spawn(async move {
            let (mut acked, mut failed) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match send_all(&producer, &chunk).await {
                    Ok(()) => acked += 1,
                    Err(_) => failed += 1,
                }
            }
            (acked, failed)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let admin: AdminClient<DefaultClientContext> = centile_runtime::kafka::client_config(&kafka)
        .create()
        .expect("admin");
    let deleted = admin
        .delete_topics(&["doomed"], &AdminOptions::new())
        .await
        .expect("delete request answered");
    assert!(deleted.iter().all(|r| r.is_ok()), "{deleted:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (acked, failed) = racing.await.expect("racing producer");
    println!("racing chunks: {acked} acknowledged before the deletion, {failed} failed after it");
    assert!(
        acked > 0 && failed > 0,
        "the writes really raced the deletion"
    );

    let (ok, err, _) = probe(broker.port, "5");
    assert!(ok, "the broker still answers after the deletion: {err}");
    assert!(
        !broker.log().contains("panicked"),
        "the broker's storage panicked:\n{}",
        broker.log()
    );

    // The other topic is whole: metadata, offsets and every record.
    let consumer: BaseConsumer = centile_runtime::kafka::consumer_config(&kafka, "delete-check")
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some("keep"), Duration::from_secs(10))
        .expect("metadata");
    assert_eq!(metadata.topics()[0].partitions().len(), 3, "keep survives");
    let log_end = || -> i64 {
        (0..3)
            .map(|p| {
                consumer
                    .fetch_watermarks("keep", p, Duration::from_secs(10))
                    .expect("watermarks")
                    .1
            })
            .sum()
    };
    assert_eq!(
        log_end(),
        3000,
        "every record of the kept topic is still there"
    );

    // And the broker keeps taking writes, from the same producer too (in
    // its bumped epoch) and every one of them lands.
    send_all(&producer, &batch("keep", 100, "after"))
        .await
        .expect("a write after the deletion is acknowledged");
    assert_eq!(log_end(), 3100);
}
