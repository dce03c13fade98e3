//! Centile's wire contract: event and rollup-pane types, their Avro schemas,
//! the framings a Kafka message value may use, validation with field-level
//! errors, and the dimension keys (including the parameter hash) that the
//! aggregator groups by.
//!
//! Everything here is pure: no I/O, so codecs can be fuzzed, property-tested
//! and benchmarked in isolation.

mod admission;
mod codec;
mod dimensions;
mod error;
mod granularity;
mod model;
mod pane;
pub mod pricing;
mod schema;
pub mod sketch;
mod validate;
mod value;

pub use admission::Admission;
pub use codec::{
    confluent_schema_id, decode, decode_message, encode, encode_with, Decoded, DecodedMessage,
    Framing, LegacyFingerprint,
};
pub use dimensions::{ParameterHasher, ParameterSet, DEFAULT_PERFORMANCE_PARAMETERS};
pub use error::{DecodeError, FieldError};
pub use granularity::Granularity;
pub use model::{Event, LatencyEvent, UsageEvent};
pub use pane::{Centroid, LatencyPane, PaneSource, Unpriced, UsagePane, Watermark};
pub use pricing::{PriceBook, PriceBookError, PriceVersion, TokenPrices, TokenSums};
pub use schema::{SchemaKind, Schemas};
pub use sketch::Sketch;

/// Kafka header naming where a raw event came from. The history import
/// (`centile-producer import`) sets it to [`ORIGIN_IMPORT`]: it publishes the
/// rollups of its events itself, so the aggregator must not count them.
pub const ORIGIN_HEADER: &str = "centile.origin";
/// [`ORIGIN_HEADER`]'s value on imported raw events.
pub const ORIGIN_IMPORT: &str = "import";
pub use validate::{Limits, Validate};
