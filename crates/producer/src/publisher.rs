//! The typed publisher applications embed.

use centile_events::{encode_with, Decoded, Event, Framing, Limits, Schemas, Validate};
use centile_runtime::{
    config::{FramingChoice, KafkaConfig, TopicsConfig},
    kafka::{producer_config, send_all, OutMessage},
    registry::{value_subject, SchemaRegistry},
    Config,
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
    /// Set for the Confluent framing: ids are registered on first use.
    registry: Option<SchemaRegistry>,
}

impl std::fmt::Debug for EventPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPublisher")
            .field("latency_topic", &self.latency_topic)
            .field("usage_topic", &self.usage_topic)
            .field("confluent", &self.registry.is_some())
            .finish_non_exhaustive()
    }
}

impl EventPublisher {
    /// A publisher using Avro single-object framing, which needs no registry.
    pub fn new(kafka: &KafkaConfig, topics: &TopicsConfig) -> Result<Self, ProducerError> {
        Ok(Self {
            producer: producer_config(kafka).create()?,
            schemas: Schemas::new(),
            limits: Limits::default(),
            latency_topic: topics.latency.clone(),
            usage_topic: topics.usage.clone(),
            registry: None,
        })
    }

    /// A publisher framed as `config.producer.framing` says; the Confluent
    /// framing needs `schema_registry.url`.
    pub fn from_config(config: &Config) -> Result<Self, ProducerError> {
        let publisher = Self::new(&config.kafka, &config.topics)?;
        match config.producer.framing {
            FramingChoice::SingleObject => Ok(publisher),
            FramingChoice::Confluent => {
                let registry = SchemaRegistry::from_config(&config.schema_registry)?
                    .ok_or(ProducerError::NoRegistry)?;
                Ok(publisher.with_registry(registry))
            }
        }
    }

    /// Switches to the Confluent wire format with ids from `registry`.
    pub fn with_registry(mut self, registry: SchemaRegistry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The framing for `topic`, registering the schema on first use.
    async fn framing(&self, topic: &str, decoded: &Decoded) -> Result<Framing, ProducerError> {
        match &self.registry {
            None => Ok(Framing::SingleObject),
            Some(registry) => {
                let schema_id = registry
                    .register(&value_subject(topic), Schemas::source(decoded.kind()))
                    .await?;
                Ok(Framing::Confluent { schema_id })
            }
        }
    }

    /// Validates and frames events, failing on the first invalid one.
    pub async fn messages(&self, events: &[Event]) -> Result<Vec<OutMessage>, ProducerError> {
        let mut messages = Vec::with_capacity(events.len());
        for (index, event) in events.iter().enumerate() {
            messages.push(self.message(index, event).await?);
        }
        Ok(messages)
    }

    async fn message(&self, index: usize, event: &Event) -> Result<OutMessage, ProducerError> {
        let checked = match event {
            Event::Latency(e) => e.validate(&self.limits),
            Event::Usage(e) => e.validate(&self.limits),
        };
        checked.map_err(|error| ProducerError::Invalid { index, error })?;
        self.frame(event.clone()).await
    }

    /// Frames events the caller has already checked with the same value
    /// rules (the gateway does, to list every problem of a request).
    pub(crate) async fn frame_all(
        &self,
        events: Vec<Event>,
    ) -> Result<Vec<OutMessage>, ProducerError> {
        let mut messages = Vec::with_capacity(events.len());
        for event in events {
            messages.push(self.frame(event).await?);
        }
        Ok(messages)
    }

    async fn frame(&self, event: Event) -> Result<OutMessage, ProducerError> {
        let (topic, decoded) = match event {
            Event::Latency(e) => (&self.latency_topic, Decoded::Latency(e)),
            Event::Usage(e) => (&self.usage_topic, Decoded::Usage(e)),
        };
        let framing = self.framing(topic, &decoded).await?;
        Ok(OutMessage {
            topic: topic.clone(),
            partition: None,
            key: Some(decoded.partition_key()),
            payload: encode_with(&self.schemas, &decoded, framing),
            headers: Vec::new(),
        })
    }

    /// Publishes one event and waits for the broker's acknowledgement.
    pub async fn send(&self, event: impl Into<Event>) -> Result<Delivery, ProducerError> {
        let message = self.message(0, &event.into()).await?;
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
        let messages = self.messages(events).await?;
        self.send_messages(&messages).await
    }

    /// Publishes messages made by [`EventPublisher::messages`] and waits for
    /// every acknowledgement.
    pub async fn send_messages(&self, messages: &[OutMessage]) -> Result<(), ProducerError> {
        send_all(&self.producer, messages).await?;
        Ok(())
    }

    pub fn latency_topic(&self) -> &str {
        &self.latency_topic
    }

    /// The underlying producer, for queue depth and broker health.
    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// Waits for anything still in flight.
    pub fn flush(&self, timeout: Duration) -> Result<(), ProducerError> {
        self.producer.flush(timeout)?;
        Ok(())
    }
}
