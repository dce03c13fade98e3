//! SIGTERM stops the gateway in order: it stops accepting connections,
//! lets the request in flight finish (here: one waiting on a frozen broker,
//! answered 202 once the broker thaws), flushes the producer and exits 0.

use std::time::Duration;

use centile::{
    gateway_kit::TestGateway,
    testkit::{now_ms, PrivateBroker, TestEnv},
};
use serde_json::json;

const KEY: &str = "ck_shutdown_test_key";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_then_exits_cleanly() {
    let broker = PrivateBroker::start("gw_shutdown");
    let mut env = TestEnv::new("gw_shutdown");
    env.config.kafka.brokers = broker.brokers();
    env.create_topics().await;
    let mut gateway = TestGateway::start(
        &env,
        &[(KEY, "acme")],
        &[("CENTILE_GATEWAY_ACK_TIMEOUT", "20s")],
    )
    .await;
    let events = json!([{
        "event_id": "in-flight-at-shutdown",
        "occurred_at": now_ms(),
        "model_id": "m", "provider": "p", "tool": "t",
        "response_time_ms": 5, "success": true
    }]);

    broker.pause();
    let in_flight = {
        let url = format!("{}/v1/events/latency", gateway.url);
        let http = gateway.http.clone();
        let body = events.to_string();
        tokio::spawn(async move {
            http.post(url)
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {KEY}"))
                .body(body)
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !in_flight.is_finished(),
        "the request waits for the frozen broker"
    );

    gateway.service.send_sigterm();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let refused = gateway
        .http
        .get(format!("{}/healthz", gateway.url))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "no new connections after SIGTERM: {refused:?}"
    );
    assert!(
        !in_flight.is_finished(),
        "the in-flight request is still being served"
    );

    broker.resume();
    let answer = in_flight
        .await
        .expect("task")
        .expect("the in-flight request is answered");
    assert_eq!(answer.status(), 202);
    let status = tokio::task::block_in_place(|| gateway.service.wait_exit(Duration::from_secs(30)));
    assert!(status.success(), "the gateway exits 0: {status:?}");

    let published = env.read_topic(&env.config.topics.latency, Duration::from_secs(3));
    assert_eq!(published.len(), 1, "the accepted event is on the topic");
}
