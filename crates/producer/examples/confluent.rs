//! Publish in Confluent's wire format, with schema ids from a
//! Confluent-compatible schema registry (Confluent, Karapace, Redpanda).
//! The schema is registered under `<topic>-value` on first use and the id is
//! cached; Centile's aggregator and sink read both framings on one topic.
//!
//! ```text
//! CENTILE_SCHEMA_REGISTRY_URL=http://127.0.0.1:8081 \
//!   cargo run -p centile-producer --example confluent
//! ```

use std::time::Duration;

use centile_producer::{EventPublisher, Latency, Outcome};
use centile_runtime::{config::FramingChoice, kafka::ensure_centile_topics, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config = Config::load(None)?;
    config.producer.framing = FramingChoice::Confluent;
    // Fails with "the confluent framing needs schema_registry.url" without one.
    let publisher = EventPublisher::from_config(&config)?;
    ensure_centile_topics(&config).await?;
    let call = Latency {
        tenant_id: "acme",
        model_id: "claude-sonnet",
        provider: "anthropic",
        tool: "search",
        response_time: Duration::from_millis(1_930),
        outcome: Outcome::Error("timeout"),
    }
    .event();
    let delivery = publisher.send(call).await?;
    println!(
        "confluent-framed event at partition {} offset {}",
        delivery.partition, delivery.offset
    );
    Ok(())
}
