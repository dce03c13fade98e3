//! Publish latency and usage events from a Rust application.
//!
//! ```text
//! deploy/local/stack up
//! cargo run -p centile-producer --example publish
//! ```
//!
//! Settings come from the same layered config as the services
//! (`CENTILE_KAFKA_BROKERS`, `CENTILE_TOPIC_LATENCY`, ...).

use std::time::{Duration, SystemTime};

use centile_producer::{EventPublisher, Latency, Outcome, Usage};
use centile_runtime::{kafka::ensure_centile_topics, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::load(None)?;
    ensure_centile_topics(&config).await?;
    let publisher = EventPublisher::from_config(&config)?;

    // Required fields are a struct literal: leaving one out does not compile.
    let call = Latency {
        tenant_id: "acme",
        model_id: "gpt-4o",
        provider: "openai",
        tool: "chat",
        response_time: Duration::from_millis(840),
        outcome: Outcome::Success,
    }
    .event()
    .parameter("temperature", "0.2")
    .parameter("streaming", "true")
    .tokens(512, 128);
    // Returns once the broker has acknowledged the event (acks=all).
    let delivery = publisher.send(call).await?;
    println!(
        "latency event stored at partition {} offset {}",
        delivery.partition, delivery.offset
    );

    // Batches are validated first: one bad event publishes nothing.
    let started = SystemTime::now();
    let bills: Vec<_> = (0..100u32)
        .map(|i| {
            Usage {
                tenant_id: "acme",
                model_id: "gpt-4o",
                provider: "openai",
                feature: "summarise",
                input_tokens: 400 + i,
                output_tokens: 90,
                cost_usd_nanos: Some(1_250_000),
            }
            .event()
            .user(format!("user-{}", i % 7))
            .occurred_at(started)
            .into()
        })
        .collect();
    publisher.send_batch(&bills).await?;
    println!("100 usage events acknowledged");
    Ok(())
}
