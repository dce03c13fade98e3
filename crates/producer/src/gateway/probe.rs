//! Broker health for readiness: requests are refused with 503 while the
//! broker does not answer, rather than queued for a broker that is gone.

use std::{sync::Arc, time::Duration};

use rdkafka::producer::Producer;
use tokio_util::sync::CancellationToken;

use super::Gateway;

const PROBE_INTERVAL: Duration = Duration::from_millis(500);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Asks the broker for the latency topic's metadata every half second.
pub async fn watch_broker(gateway: Arc<Gateway>, stop: CancellationToken) {
    let topic = gateway.publisher.latency_topic().to_owned();
    loop {
        let probe = gateway.clone();
        let topic = topic.clone();
        let up = tokio::task::spawn_blocking(move || {
            probe
                .publisher
                .producer()
                .client()
                .fetch_metadata(Some(&topic), PROBE_TIMEOUT)
                .map(|metadata| {
                    metadata
                        .topics()
                        .iter()
                        .all(|t| t.error().is_none() && !t.partitions().is_empty())
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if gateway.readiness.is_ready() != up {
            if up {
                tracing::info!("broker reachable: accepting events");
            } else {
                tracing::warn!("broker unreachable: answering 503");
            }
        }
        gateway.readiness.set("kafka", up);
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
