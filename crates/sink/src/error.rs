//! The sink's error type.

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Runtime(#[from] centile_runtime::RuntimeError),
    #[error("invalid database name {0:?}: use letters, digits and underscores")]
    DatabaseName(String),
    #[error("migration {name} was changed after it was applied (recorded checksum {recorded}, file {current})")]
    MigrationChanged {
        name: String,
        recorded: String,
        current: String,
    },
    #[error("migration {name}: {source}")]
    Migration {
        name: String,
        source: clickhouse::error::Error,
    },
    #[error(transparent)]
    Prices(#[from] crate::prices::PricesError),
    #[error("shut down while clickhouse was unavailable; the batch was not committed and will be read again: {0}")]
    Unwritten(clickhouse::error::Error),
}
