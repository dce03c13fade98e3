//! The typed publisher applications embed.

use centile_events::{encode, Decoded, Event, Limits, Schemas, Validate};
use centile_runtime::{
    config::{KafkaConfig, TopicsConfig},
    kafka::{producer_config, send_all, OutMessage},
};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::time::Duration;

use crate::ProducerError;

/// Where the broker stored an acknowledged event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub partition: i32,
    pub offset: i64,
}

/// Publishes validated events; every send returns after the broker's ack.
pub struct EventPublisher {
    producer: FutureProducer,
    schemas: Schemas,
    limits: Limits,
    latency_topic: String,
    usage_topic: String,
}

impl std::fmt::Debug for EventPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPublisher")
            .field("latency_topic", &self.latency_topic)
            .field("usage_topic", &self.usage_topic)
            .finish_non_exhaustive()
    }
}

impl EventPublisher {
    pub fn new(kafka: &KafkaConfig, topics: &TopicsConfig) -> Result<Self, ProducerError> {
        Ok(Self {
            producer: producer_config(kafka).create()?,
            schemas: Schemas::new(),
            limits: Limits::default(),
            latency_topic: topics.latency.clone(),
            usage_topic: topics.usage.clone(),
        })
    }

    fn message(&self, index: usize, event: &Event) -> Result<OutMessage, ProducerError> {
        let (topic, decoded) = match event {
            Event::Latency(e) => {
                e.validate(&self.limits)
                    .map_err(|error| ProducerError::Invalid { index, error })?;
                (&self.latency_topic, Decoded::Latency(e.clone()))
            }
            Event::Usage(e) => {
                e.validate(&self.limits)
                    .map_err(|error| ProducerError::Invalid { index, error })?;
                (&self.usage_topic, Decoded::Usage(e.clone()))
            }
        };
        Ok(OutMessage {
            topic: topic.clone(),
            partition: None,
            key: Some(decoded.partition_key()),
            payload: encode(&self.schemas, &decoded),
            headers: Vec::new(),
        })
    }

    /// Publishes one event and waits for the broker's acknowledgement.
    pub async fn send(&self, event: &Event) -> Result<Delivery, ProducerError> {
        let message = self.message(0, event)?;
        let record = FutureRecord::to(&message.topic)
            .key(message.key.as_deref().unwrap_or_default())
            .payload(&message.payload);
        let delivery = self
            .producer
            .send(record, rdkafka::util::Timeout::Never)
            .await
            .map_err(|(e, _)| ProducerError::Kafka(e))?;
        Ok(Delivery {
            partition: delivery.partition,
            offset: delivery.offset,
        })
    }

    /// Validates every event first, so an invalid one publishes nothing;
    /// then publishes all and waits for every acknowledgement.
    pub async fn send_batch(&self, events: &[Event]) -> Result<(), ProducerError> {
        let messages = events
            .iter()
            .enumerate()
            .map(|(i, e)| self.message(i, e))
            .collect::<Result<Vec<_>, _>>()?;
        send_all(&self.producer, &messages).await?;
        Ok(())
    }

    /// Waits for anything still in flight.
    pub fn flush(&self, timeout: Duration) -> Result<(), ProducerError> {
        self.producer.flush(timeout)?;
        Ok(())
    }
}
