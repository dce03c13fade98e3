//! Message framings and the encode/decode entry points.
//!
//! Two framings share a topic and are told apart by their leading bytes:
//! - Avro single-object encoding: `C3 01`, the 8-byte little-endian
//!   CRC-64-AVRO fingerprint of the writer schema, then the Avro datum.
//!   Headers with the fingerprint's bytes reversed (what Centile wrote
//!   before issue 9) are still read during a deprecation window, and
//!   [`decode_message`] reports them so services can count and warn.
//! - Confluent wire format: `00`, a 4-byte big-endian schema-registry id,
//!   then the Avro datum.

use std::io::Read;

use apache_avro::{from_avro_datum, to_avro_datum, types::Value};

use crate::{
    schema::{FingerprintOrder, SchemaKind},
    value, DecodeError, Event, LatencyEvent, LatencyPane, Limits, Schemas, UsageEvent, UsagePane,
    Validate, Watermark,
};

const SINGLE_OBJECT_MAGIC: [u8; 2] = [0xC3, 0x01];
const SINGLE_OBJECT_HEADER: usize = 10;
const CONFLUENT_MAGIC: u8 = 0x00;
const CONFLUENT_HEADER: usize = 5;

/// How a message value is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Avro single-object encoding; needs no registry.
    SingleObject,
    /// Confluent schema-registry wire format with the given schema id.
    Confluent { schema_id: u32 },
}

/// Anything Centile puts on a topic.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Latency(LatencyEvent),
    Usage(UsageEvent),
    LatencyPane(LatencyPane),
    UsagePane(UsagePane),
    Watermark(Watermark),
}

impl Decoded {
    pub fn kind(&self) -> SchemaKind {
        match self {
            Self::Latency(_) => SchemaKind::LatencyEvent,
            Self::Usage(_) => SchemaKind::UsageEvent,
            Self::LatencyPane(_) => SchemaKind::LatencyPane,
            Self::UsagePane(_) => SchemaKind::UsagePane,
            Self::Watermark(_) => SchemaKind::Watermark,
        }
    }

    /// The raw event inside, validated; panes are refused.
    pub fn into_event(self, limits: &Limits) -> Result<Event, DecodeError> {
        match self {
            Self::Latency(e) => e.validate(limits).map(|()| Event::Latency(e)),
            Self::Usage(e) => e.validate(limits).map(|()| Event::Usage(e)),
            other => Err(DecodeError::WrongTopic {
                found: other.kind().name(),
                expected: "raw events",
            }),
        }
    }

    /// The Kafka message key: messages of one tenant and model share a
    /// partition. Watermarks are sent to every partition explicitly and are
    /// keyed by their source partition.
    pub fn partition_key(&self) -> String {
        let (tenant, model) = match self {
            Self::Latency(e) => (&e.tenant_id, &e.model_id),
            Self::Usage(e) => (&e.tenant_id, &e.model_id),
            Self::LatencyPane(p) => (&p.tenant_id, &p.model_id),
            Self::UsagePane(p) => (&p.tenant_id, &p.model_id),
            Self::Watermark(w) => return format!("{}/{}", w.source_topic, w.source_partition),
        };
        format!("{tenant}/{model}")
    }

    fn to_value(&self) -> Value {
        match self {
            Self::Latency(e) => value::latency_event_to_value(e),
            Self::Usage(e) => value::usage_event_to_value(e),
            Self::LatencyPane(p) => value::latency_pane_to_value(p),
            Self::UsagePane(p) => value::usage_pane_to_value(p),
            Self::Watermark(w) => value::watermark_to_value(w),
        }
    }
}

/// A decoded message and whether its header used the legacy fingerprint
/// byte order.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedMessage {
    pub message: Decoded,
    /// Set when the single-object header carried the writer schema's
    /// fingerprint with its bytes reversed (deprecated; still read).
    pub legacy_fingerprint: Option<LegacyFingerprint>,
}

impl From<Decoded> for DecodedMessage {
    /// A message read in the specification's framing.
    fn from(message: Decoded) -> Self {
        Self {
            message,
            legacy_fingerprint: None,
        }
    }
}

/// A single-object header written in the deprecated, reversed fingerprint
/// byte order. Displays as an explanation for the operator, fix included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LegacyFingerprint {
    /// Which record the writer schema describes.
    pub kind: SchemaKind,
    /// The 8 fingerprint bytes as the producer wrote them.
    pub written: [u8; 8],
    /// The writer schema's fingerprint in the specification's order: what
    /// the producer should write instead.
    pub fingerprint: [u8; 8],
}

impl std::fmt::Display for LegacyFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a producer of {kind} messages uses the deprecated reversed fingerprint byte order in its \
             Avro single-object header (wrote c301{written}, the specification's layout is c301{fingerprint}); \
             it is still read during a deprecation window and will then be refused as an unknown \
             fingerprint. Fix the producer: write C3 01, then the CRC-64-AVRO fingerprint of the \
             schema's Parsing Canonical Form as the 8 little-endian bytes of the 64-bit value, \
             as Java's BinaryMessageEncoder, Python avro's schema.fingerprint(\"CRC-64-AVRO\") and \
             fastavro's bytes.fromhex(fingerprint(canonical_form, \"CRC-64-AVRO\")) do, or upgrade \
             its Centile SDK",
            kind = self.kind.name(),
            written = hex::encode(self.written),
            fingerprint = hex::encode(self.fingerprint),
        )
    }
}

/// Encodes with Avro single-object encoding.
pub fn encode(schemas: &Schemas, message: &Decoded) -> Vec<u8> {
    encode_with(schemas, message, Framing::SingleObject)
}

/// Encodes with the chosen framing.
pub fn encode_with(schemas: &Schemas, message: &Decoded, framing: Framing) -> Vec<u8> {
    let kind = message.kind();
    let datum = to_avro_datum(schemas.current(kind), message.to_value())
        .expect("values built from typed structs always match their schema");
    let mut out = Vec::with_capacity(SINGLE_OBJECT_HEADER + datum.len());
    match framing {
        Framing::SingleObject => {
            out.extend_from_slice(&SINGLE_OBJECT_MAGIC);
            out.extend_from_slice(&schemas.fingerprint(kind));
        }
        Framing::Confluent { schema_id } => {
            out.push(CONFLUENT_MAGIC);
            out.extend_from_slice(&schema_id.to_be_bytes());
        }
    }
    out.extend_from_slice(&datum);
    out
}

/// Decodes either framing into a typed message. Structural only: call
/// [`crate::Validate::validate`] on events to enforce value rules.
///
/// Legacy (reversed) fingerprints are accepted silently; services use
/// [`decode_message`] to learn about them.
pub fn decode(schemas: &Schemas, bytes: &[u8]) -> Result<Decoded, DecodeError> {
    decode_message(schemas, bytes).map(|decoded| decoded.message)
}

/// Decodes either framing, and reports a single-object header that names
/// its writer schema by the reversed (legacy) fingerprint byte order.
pub fn decode_message(schemas: &Schemas, bytes: &[u8]) -> Result<DecodedMessage, DecodeError> {
    let (header, datum) = split_header(bytes)?;
    let (writer, legacy_fingerprint) = match header {
        Header::SingleObject(written) => {
            let (writer, fingerprint, order) = schemas
                .writer_for_header(&written)
                .ok_or_else(|| DecodeError::UnknownFingerprint(hex::encode(written)))?;
            let legacy = (order == FingerprintOrder::LegacyReversed).then_some(LegacyFingerprint {
                kind: writer.kind,
                written,
                fingerprint,
            });
            (writer, legacy)
        }
        Header::Confluent(id) => {
            let fingerprint = schemas
                .confluent_fingerprint(id)
                .ok_or(DecodeError::UnknownSchemaId(id))?;
            let writer = schemas
                .writer(&fingerprint)
                .ok_or_else(|| DecodeError::UnknownFingerprint(hex::encode(fingerprint)))?;
            (writer, None)
        }
    };
    let mut input = EofGuard {
        rest: datum,
        read_past_end: false,
    };
    let value = from_avro_datum(&writer.schema, &mut input, None)
        .map_err(|e| DecodeError::Datum(lowercase_first(&e.to_string())))?;
    if input.read_past_end {
        return Err(DecodeError::Datum("datum is truncated".into()));
    }
    if !input.rest.is_empty() {
        return Err(DecodeError::TrailingBytes(input.rest.len()));
    }
    let message = match writer.kind {
        SchemaKind::LatencyEvent => Decoded::Latency(value::latency_event_from_value(value)?),
        SchemaKind::UsageEvent => Decoded::Usage(value::usage_event_from_value(value)?),
        SchemaKind::LatencyPane => Decoded::LatencyPane(value::latency_pane_from_value(value)?),
        SchemaKind::UsagePane => Decoded::UsagePane(value::usage_pane_from_value(value)?),
        SchemaKind::Watermark => Decoded::Watermark(value::watermark_from_value(value)?),
    };
    Ok(DecodedMessage {
        message,
        legacy_fingerprint,
    })
}

/// The registry schema id of a Confluent-framed message, read without
/// decoding it; `None` for any other framing.
pub fn confluent_schema_id(bytes: &[u8]) -> Option<u32> {
    match bytes {
        [CONFLUENT_MAGIC, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// What a message's header names its writer schema by.
enum Header {
    /// The 8 fingerprint bytes, in whatever order the producer wrote them.
    SingleObject([u8; 8]),
    /// A Confluent schema-registry id.
    Confluent(u32),
}

fn split_header(bytes: &[u8]) -> Result<(Header, &[u8]), DecodeError> {
    match bytes {
        [] => Err(DecodeError::Empty),
        [0xC3, 0x01, ..] | [0xC3] => {
            if bytes.len() < SINGLE_OBJECT_HEADER {
                return Err(DecodeError::TruncatedHeader {
                    framing: "avro single-object",
                    len: bytes.len(),
                    need: SINGLE_OBJECT_HEADER,
                });
            }
            let fingerprint = bytes[2..SINGLE_OBJECT_HEADER].try_into().expect("8 bytes");
            Ok((
                Header::SingleObject(fingerprint),
                &bytes[SINGLE_OBJECT_HEADER..],
            ))
        }
        [CONFLUENT_MAGIC, ..] => {
            if bytes.len() < CONFLUENT_HEADER {
                return Err(DecodeError::TruncatedHeader {
                    framing: "confluent",
                    len: bytes.len(),
                    need: CONFLUENT_HEADER,
                });
            }
            let id = u32::from_be_bytes(bytes[1..CONFLUENT_HEADER].try_into().expect("4 bytes"));
            Ok((Header::Confluent(id), &bytes[CONFLUENT_HEADER..]))
        }
        _ => Err(DecodeError::UnknownFraming(hex::encode(
            &bytes[..bytes.len().min(2)],
        ))),
    }
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// apache-avro reads a union index at end of input as `null`, which would
/// turn a truncated message into a valid-looking one; a complete datum never
/// asks for bytes past its end, so any such request marks truncation.
struct EofGuard<'a> {
    rest: &'a [u8],
    read_past_end: bool,
}

impl Read for EofGuard<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.rest.is_empty() && !buf.is_empty() {
            self.read_past_end = true;
        }
        self.rest.read(buf)
    }
}
