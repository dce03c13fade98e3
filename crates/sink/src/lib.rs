//! The Centile sink: lands raw events and rollup panes in ClickHouse.
//!
//! Split by role: [`rows`] encodes messages as table rows, [`batch`] groups
//! them by size or age, [`writer`] inserts them, [`migrate`] owns the
//! schema (with [`raw_schema`] for the raw tables' later columns), [`rollup`] makes the stored hour, day and week tiers,
//! [`prices`] keeps the price book current, [`retention`] expires them, [`dlq`] shapes dead letters, and [`runner`] ties them to Kafka.

pub mod batch;
pub mod client;
pub mod dlq;
mod error;
pub mod metrics;
pub mod migrate;
pub mod prices;
pub mod raw_schema;
pub mod retention;
pub mod rollup;
pub mod rows;
pub mod runner;
pub mod writer;

pub use error::SinkError;
