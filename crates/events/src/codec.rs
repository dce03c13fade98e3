//! Message framings and the encode/decode entry points.
//!
//! Two framings share a topic and are told apart by their leading bytes:
//! - Avro single-object encoding: `C3 01`, the 8-byte little-endian
//!   CRC-64-AVRO fingerprint of the writer schema, then the Avro datum.
//! - Confluent wire format: `00`, a 4-byte big-endian schema-registry id,
//!   then the Avro datum.

use std::io::Read;

use apache_avro::{from_avro_datum, to_avro_datum, types::Value};

use crate::{
    schema::SchemaKind, value, DecodeError, Event, LatencyEvent, LatencyPane, Limits, Schemas,
    UsageEvent, UsagePane, Validate, Watermark,
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
pub fn decode(schemas: &Schemas, bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let (fingerprint, datum) = split_header(schemas, bytes)?;
    let writer = schemas
        .writer(&fingerprint)
        .ok_or_else(|| DecodeError::UnknownFingerprint(hex::encode(fingerprint)))?;
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
    Ok(match writer.kind {
        SchemaKind::LatencyEvent => Decoded::Latency(value::latency_event_from_value(value)?),
        SchemaKind::UsageEvent => Decoded::Usage(value::usage_event_from_value(value)?),
        SchemaKind::LatencyPane => Decoded::LatencyPane(value::latency_pane_from_value(value)?),
        SchemaKind::UsagePane => Decoded::UsagePane(value::usage_pane_from_value(value)?),
        SchemaKind::Watermark => Decoded::Watermark(value::watermark_from_value(value)?),
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

fn split_header<'a>(
    schemas: &Schemas,
    bytes: &'a [u8],
) -> Result<([u8; 8], &'a [u8]), DecodeError> {
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
            Ok((fingerprint, &bytes[SINGLE_OBJECT_HEADER..]))
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
            let fingerprint = schemas
                .confluent_fingerprint(id)
                .ok_or(DecodeError::UnknownSchemaId(id))?;
            Ok((fingerprint, &bytes[CONFLUENT_HEADER..]))
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
