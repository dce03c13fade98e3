//! The producer's error type.

#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    #[error("event {index} refused: {error}")]
    Invalid {
        index: usize,
        error: centile_events::DecodeError,
    },
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Registry(#[from] centile_runtime::registry::RegistryError),
    #[error("the confluent framing needs schema_registry.url")]
    NoRegistry,
    #[error(transparent)]
    Runtime(#[from] centile_runtime::RuntimeError),
    #[error("{path}: {source}")]
    Input {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} changed while it was being imported; import it again")]
    Changed(String),
    #[error("publishing stopped: {0}")]
    Interrupted(String),
}
