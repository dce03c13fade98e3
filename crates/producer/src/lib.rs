//! Publishing Centile events from Rust applications, and the load generator.
//!
//! [`EventPublisher`] validates each event, frames it in Avro single-object
//! encoding, keys it by `tenant_id/model_id`, and returns only once the
//! broker has acknowledged it (`acks=all`, idempotent producer).
//! [`generator`] makes realistic, seeded traffic for demos and tests.

mod error;
pub mod generator;
mod publisher;

pub use error::ProducerError;
pub use publisher::{Delivery, EventPublisher};
