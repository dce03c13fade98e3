//! The Avro schemas Centile writes and the writer schemas it can read,
//! indexed by their CRC-64-AVRO (Rabin) fingerprint.

use std::collections::HashMap;

use apache_avro::{rabin::Rabin, Schema};
use sha2::Digest;

const LATENCY_EVENT: &str = include_str!("../../../schemas/avro/latency_event.avsc");
const USAGE_EVENT: &str = include_str!("../../../schemas/avro/usage_event.avsc");
const LATENCY_PANE: &str = include_str!("../../../schemas/avro/latency_pane.avsc");
const USAGE_PANE: &str = include_str!("../../../schemas/avro/usage_pane.avsc");
const WATERMARK: &str = include_str!("../../../schemas/avro/watermark.avsc");

/// Which record a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaKind {
    LatencyEvent,
    UsageEvent,
    LatencyPane,
    UsagePane,
    Watermark,
}

impl SchemaKind {
    pub const ALL: [SchemaKind; 5] = [
        SchemaKind::LatencyEvent,
        SchemaKind::UsageEvent,
        SchemaKind::LatencyPane,
        SchemaKind::UsagePane,
        SchemaKind::Watermark,
    ];

    /// The record's name in lowercase prose.
    pub fn name(self) -> &'static str {
        match self {
            Self::LatencyEvent => "latency event",
            Self::UsageEvent => "usage event",
            Self::LatencyPane => "latency pane",
            Self::UsagePane => "usage pane",
            Self::Watermark => "watermark",
        }
    }

    fn source(self) -> &'static str {
        match self {
            Self::LatencyEvent => LATENCY_EVENT,
            Self::UsageEvent => USAGE_EVENT,
            Self::LatencyPane => LATENCY_PANE,
            Self::UsagePane => USAGE_PANE,
            Self::Watermark => WATERMARK,
        }
    }
}

#[derive(Debug)]
pub(crate) struct WriterSchema {
    pub kind: SchemaKind,
    pub schema: Schema,
}

/// Current (reader) schemas plus every known writer schema by fingerprint.
///
/// Writer schemas of other versions can be registered so that producers on
/// an older or newer schema keep flowing; Avro schema resolution maps them
/// onto the current reader schema.
#[derive(Debug)]
pub struct Schemas {
    current: HashMap<SchemaKind, (Schema, [u8; 8])>,
    writers: HashMap<[u8; 8], WriterSchema>,
    confluent_ids: HashMap<u32, [u8; 8]>,
}

impl Default for Schemas {
    fn default() -> Self {
        Self::new()
    }
}

impl Schemas {
    pub fn new() -> Self {
        let mut schemas = Self {
            current: HashMap::new(),
            writers: HashMap::new(),
            confluent_ids: HashMap::new(),
        };
        for kind in SchemaKind::ALL {
            let schema = Schema::parse_str(kind.source()).expect("bundled schema parses");
            let fingerprint = fingerprint(&schema);
            schemas.current.insert(kind, (schema.clone(), fingerprint));
            schemas
                .writers
                .insert(fingerprint, WriterSchema { kind, schema });
        }
        schemas
    }

    /// Accepts messages written with another version of `kind`'s schema.
    pub fn register_writer(
        &mut self,
        kind: SchemaKind,
        avsc: &str,
    ) -> Result<[u8; 8], apache_avro::Error> {
        let schema = Schema::parse_str(avsc)?;
        let fingerprint = fingerprint(&schema);
        self.writers
            .insert(fingerprint, WriterSchema { kind, schema });
        Ok(fingerprint)
    }

    /// Maps a Confluent schema-registry id to a writer schema of `kind`.
    pub fn register_confluent_id(
        &mut self,
        schema_id: u32,
        kind: SchemaKind,
        avsc: &str,
    ) -> Result<(), apache_avro::Error> {
        let fingerprint = self.register_writer(kind, avsc)?;
        self.confluent_ids.insert(schema_id, fingerprint);
        Ok(())
    }

    /// Whether messages framed with this registry id can be decoded.
    pub fn knows_confluent_id(&self, schema_id: u32) -> bool {
        self.confluent_ids.contains_key(&schema_id)
    }

    /// Which record a writer schema describes, judged by its full name
    /// (`centile.v1.LatencyEvent`), as a registry returns it.
    pub fn kind_of(&self, avsc: &str) -> Result<SchemaKind, String> {
        let schema = Schema::parse_str(avsc).map_err(|e| format!("unparsable schema: {e}"))?;
        let name = record_name(&schema).ok_or("not an avro record schema")?;
        SchemaKind::ALL
            .into_iter()
            .find(|kind| record_name(self.current(*kind)).as_deref() == Some(name.as_str()))
            .ok_or_else(|| format!("record `{name}` is not a centile schema"))
    }

    pub(crate) fn confluent_fingerprint(&self, schema_id: u32) -> Option<[u8; 8]> {
        self.confluent_ids.get(&schema_id).copied()
    }

    /// The bundled `.avsc` text of the current schema.
    pub fn source(kind: SchemaKind) -> &'static str {
        kind.source()
    }

    pub fn current(&self, kind: SchemaKind) -> &Schema {
        &self.current[&kind].0
    }

    /// The 8-byte little-endian CRC-64-AVRO fingerprint of the current schema.
    pub fn fingerprint(&self, kind: SchemaKind) -> [u8; 8] {
        self.current[&kind].1
    }

    /// The schema's Parsing Canonical Form, as other languages compute it.
    pub fn canonical_form(&self, kind: SchemaKind) -> String {
        canonical_form(self.current(kind))
    }

    pub(crate) fn writer(&self, fingerprint: &[u8; 8]) -> Option<&WriterSchema> {
        self.writers.get(fingerprint)
    }
}

fn record_name(schema: &Schema) -> Option<String> {
    match schema {
        Schema::Record(record) => Some(record.name.fullname(None)),
        _ => None,
    }
}

/// apache-avro writes a primitive carrying a logical type as
/// `{"type":"long"}`, but the specification (and Java, Python, C#) reduce
/// every primitive to its bare name, `"long"`. Fingerprints must match what
/// other languages compute, so the form is normalised here.
fn canonical_form(schema: &Schema) -> String {
    let mut form = schema.canonical_form();
    for primitive in [
        "null", "boolean", "int", "long", "float", "double", "bytes", "string",
    ] {
        form = form.replace(
            &format!(r#"{{"type":"{primitive}"}}"#),
            &format!(r#""{primitive}""#),
        );
    }
    form
}

/// The CRC-64-AVRO (Rabin) fingerprint of the canonical form, as the 8
/// little-endian bytes of the 64-bit value, which is how the single-object
/// specification, Java and fastavro lay it out. apache-avro's digest yields
/// the bytes the other way round.
fn fingerprint(schema: &Schema) -> [u8; 8] {
    // sha2 re-exports the `Digest` trait that apache-avro's Rabin implements.
    let digest = Rabin::digest(canonical_form(schema).as_bytes());
    let mut bytes: [u8; 8] = digest
        .as_slice()
        .try_into()
        .expect("rabin fingerprints are 8 bytes");
    bytes.reverse();
    bytes
}
