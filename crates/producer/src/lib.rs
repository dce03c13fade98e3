//! Publishing Centile events from Rust applications, the HTTP ingest
//! gateway, and the load generator.
//!
//! - [`Latency`] and [`Usage`] build events whose required fields are
//!   checked at compile time.
//! - [`EventPublisher`] validates each event, frames it (Avro single-object
//!   encoding, or Confluent's wire format with ids from a schema registry),
//!   keys it by `tenant_id/model_id`, and returns only once the broker has
//!   acknowledged it (`acks=all`, idempotent producer).
//! - [`gateway`] is `centile-producer serve`: the HTTP door for applications
//!   that do not speak Kafka.
//! - [`generator`] makes realistic, seeded traffic for demos and tests.
//! - [`import`] is `centile-producer import`: history from NDJSON or CSV
//!   files, counted once however often it is re-run.

mod builder;
mod error;
pub mod gateway;
pub mod generator;
pub mod import;
pub mod load;
mod publisher;

pub use builder::{epoch_ms, new_event_id, Latency, LatencyBuilder, Outcome, Usage, UsageBuilder};
pub use error::ProducerError;
pub use publisher::{Delivery, EventPublisher};
