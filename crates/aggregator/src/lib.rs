//! The Centile stream aggregator.
//!
//! [`engine`] is pure windowing logic (events in, panes out), [`merge`]
//! combines panes as the ClickHouse views do, and [`runner`] drives the
//! engine from Kafka: it publishes panes and commits input offsets only once
//! the broker has acknowledged the panes that contain them.

mod checkpoints;
pub mod engine;
mod error;
pub mod merge;
pub mod metrics;
mod rebalance;
pub mod runner;

pub use error::AggregatorError;
