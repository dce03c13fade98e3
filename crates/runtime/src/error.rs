//! The runtime crate's error type.

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot read config file {path}: {source}")]
    ConfigFile {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config: {0}")]
    Config(String),
    #[error("environment variable {var}: {reason}")]
    Env { var: String, reason: String },
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("cannot create topic {topic}: {reason}")]
    CreateTopic { topic: String, reason: String },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}
