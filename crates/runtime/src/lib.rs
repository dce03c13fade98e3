//! What every Centile service shares: layered configuration (defaults, then
//! a TOML file, then `CENTILE_*` environment variables), tracing setup, the
//! Prometheus registry with its `/metrics`, `/healthz` and `/readyz` server
//! and the one way to declare metrics (`metrics`),
//! cooperative shutdown, and Kafka client and topic setup.

pub mod config;
mod error;
pub mod kafka;
pub mod kafka_health;
pub mod listener;
pub mod metrics;
pub mod registry;
pub mod retry;
pub mod secret;
pub mod security;
pub mod service;
pub mod shutdown;
pub mod telemetry;
pub mod tls;

pub use config::{Assignment, Config};
pub use error::RuntimeError;
pub use secret::Secret;
