//! Broker health for readiness: requests are refused with 503 while the
//! broker does not answer, rather than queued for a broker that is gone.

use std::{sync::Arc, time::Duration};

use rdkafka::producer::Producer;
use tokio_util::sync::CancellationToken;

use centile_runtime::kafka_health::{probe_topics_of, KAFKA_CHECK};

use super::Gateway;

const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// Asks the broker for the latency topic's metadata every half second.
pub async fn watch_broker(gateway: Arc<Gateway>, stop: CancellationToken) {
    let topic = gateway.publisher.latency_topic().to_owned();
    loop {
        let probe = gateway.clone();
        let topic = topic.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            probe_topics_of(probe.publisher.producer().client(), &[topic])
        })
        .await
        .unwrap_or_else(|e| Err(format!("probe failed: {e}")));
        let up = outcome.is_ok();
        // Readiness logs each change (a warning when the broker goes away).
        match outcome {
            Ok(()) => gateway.readiness.pass(KAFKA_CHECK),
            Err(reason) => gateway
                .readiness
                .fail(KAFKA_CHECK, format!("{reason}; answering 503")),
        }
        gateway.metrics.broker_up.set(i64::from(up));
        gateway
            .metrics
            .queue_messages
            .set(i64::from(gateway.publisher.producer().in_flight_count()));
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(PROBE_INTERVAL) => {}
        }
    }
}
