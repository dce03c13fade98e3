//! The aggregator's error type.

#[derive(Debug, thiserror::Error)]
pub enum AggregatorError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Runtime(#[from] centile_runtime::RuntimeError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot take on partitions: {0}")]
    Assignment(String),
    #[error("shut down before panes could be published: {0}")]
    Unpublished(rdkafka::error::KafkaError),
}
