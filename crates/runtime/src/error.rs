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
    #[error("kafka authentication failed at {brokers} (SASL {mechanism} as user {username:?}): {reason}; check kafka.sasl_username, kafka.sasl_password and kafka.sasl_mechanism")]
    KafkaAuthentication {
        brokers: String,
        mechanism: String,
        username: String,
        reason: String,
    },
    #[error("kafka TLS with {brokers} failed: {reason}; {hint}")]
    KafkaTls {
        brokers: String,
        reason: String,
        /// Which settings to look at.
        hint: &'static str,
    },
    #[error("kafka brokers {brokers} did not answer within {waited:?} (kafka.connect_timeout): {reason}")]
    KafkaUnreachable {
        brokers: String,
        waited: std::time::Duration,
        reason: String,
    },
    #[error("clickhouse TLS handshake with {url} failed: {reason}; check clickhouse.ca_file (the CA that signed the server's certificate) and that the url names a host the certificate is for")]
    ClickHouseTls { url: String, reason: String },
    #[error("clickhouse at {url} refused the credentials{user}: {reason}; check clickhouse.user and clickhouse.password")]
    ClickHouseAuthentication {
        url: String,
        user: String,
        reason: String,
    },
    #[error("clickhouse at {url} is unreachable: {reason}")]
    ClickHouseUnreachable { url: String, reason: String },
}
