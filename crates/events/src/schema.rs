//! The Avro schemas Centile writes and the writer schemas it can read,
//! indexed by their CRC-64-AVRO (Rabin) fingerprint.
//!
//! The single-object specification lays the fingerprint out as the 8
//! little-endian bytes of the 64-bit value. Centile releases before the fix
//! of issue 9 wrote (and only read) those bytes reversed; during a
//! deprecation window that legacy order is still read, reported as such, and
//! never allowed to shadow a fingerprint in the specification's order.

use std::collections::HashMap;

use apache_avro::{rabin::Rabin, Schema};
use sha2::Digest;

const LATENCY_EVENT: &str = include_str!("../../../schemas/avro/latency_event.avsc");
const USAGE_EVENT: &str = include_str!("../../../schemas/avro/usage_event.avsc");
const LATENCY_PANE: &str = include_str!("../../../schemas/avro/latency_pane.avsc");
const USAGE_PANE: &str = include_str!("../../../schemas/avro/usage_pane.avsc");
const WATERMARK: &str = include_str!("../../../schemas/avro/watermark.avsc");

/// Earlier versions of the schemas, still read: producers and aggregators
/// that have not been upgraded keep writing them, and Avro resolution fills
/// the fields added since with their defaults.
pub const HISTORY: [(SchemaKind, &str); 6] = [
    (
        SchemaKind::UsageEvent,
        include_str!("../../../schemas/avro/history/usage_event.v1.avsc"),
    ),
    (
        SchemaKind::UsagePane,
        include_str!("../../../schemas/avro/history/usage_pane.v1.avsc"),
    ),
    // v2: token classes; v3 made the cost optional and added the unpriced
    // sums to the pane.
    (
        SchemaKind::UsageEvent,
        include_str!("../../../schemas/avro/history/usage_event.v2.avsc"),
    ),
    (
        SchemaKind::UsagePane,
        include_str!("../../../schemas/avro/history/usage_pane.v2.avsc"),
    ),
    // Before `session_id` (OpenTelemetry `session.id`).
    (
        SchemaKind::UsageEvent,
        include_str!("../../../schemas/avro/history/usage_event.v3.avsc"),
    ),
    (
        SchemaKind::LatencyEvent,
        include_str!("../../../schemas/avro/history/latency_event.v1.avsc"),
    ),
];

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

    /// Every [`SchemaKind::label`], in the order of [`SchemaKind::ALL`].
    pub const LABELS: [&'static str; 5] = [
        "latency_event",
        "usage_event",
        "latency_pane",
        "usage_pane",
        "watermark",
    ];

    /// A short, bounded label for metrics (`latency_event`, `watermark`).
    pub fn label(self) -> &'static str {
        match self {
            Self::LatencyEvent => "latency_event",
            Self::UsageEvent => "usage_event",
            Self::LatencyPane => "latency_pane",
            Self::UsagePane => "usage_pane",
            Self::Watermark => "watermark",
        }
    }

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
    /// Reversed (legacy) header bytes -> the fingerprint in specification
    /// order; never holds a key that is also a key of `writers`.
    legacy: HashMap<[u8; 8], [u8; 8]>,
    confluent_ids: HashMap<u32, [u8; 8]>,
}

/// Which layout a single-object header's fingerprint was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FingerprintOrder {
    /// Little-endian bytes of the 64-bit value, as the specification says.
    Spec,
    /// The same bytes reversed, as Centile wrote them before issue 9.
    LegacyReversed,
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
            legacy: HashMap::new(),
            confluent_ids: HashMap::new(),
        };
        for kind in SchemaKind::ALL {
            let schema = Schema::parse_str(kind.source()).expect("bundled schema parses");
            let fingerprint = fingerprint(&schema);
            schemas.current.insert(kind, (schema.clone(), fingerprint));
            schemas.add_writer(fingerprint, WriterSchema { kind, schema });
        }
        for (kind, avsc) in HISTORY {
            schemas
                .register_writer(kind, avsc)
                .expect("bundled schema history parses");
        }
        schemas
    }

    /// Indexes a writer schema by its fingerprint, and by the reversed bytes
    /// of it for legacy headers unless those bytes are (or later become)
    /// some schema's fingerprint in specification order: the correct order
    /// always wins.
    fn add_writer(&mut self, fingerprint: [u8; 8], writer: WriterSchema) {
        self.legacy.remove(&fingerprint);
        self.writers.insert(fingerprint, writer);
        let reversed = reversed(fingerprint);
        if !self.writers.contains_key(&reversed) {
            self.legacy.insert(reversed, fingerprint);
        }
    }

    /// Accepts messages written with another version of `kind`'s schema.
    pub fn register_writer(
        &mut self,
        kind: SchemaKind,
        avsc: &str,
    ) -> Result<[u8; 8], apache_avro::Error> {
        let schema = Schema::parse_str(avsc)?;
        let fingerprint = fingerprint(&schema);
        self.add_writer(fingerprint, WriterSchema { kind, schema });
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

    /// The writer schema with this fingerprint in specification order.
    pub(crate) fn writer(&self, fingerprint: &[u8; 8]) -> Option<&WriterSchema> {
        self.writers.get(fingerprint)
    }

    /// The writer schema named by a single-object header's 8 fingerprint
    /// bytes, with the fingerprint in specification order and the order the
    /// header used. The specification's order is tried first.
    pub(crate) fn writer_for_header(
        &self,
        header: &[u8; 8],
    ) -> Option<(&WriterSchema, [u8; 8], FingerprintOrder)> {
        if let Some(writer) = self.writers.get(header) {
            return Some((writer, *header, FingerprintOrder::Spec));
        }
        let fingerprint = self.legacy.get(header)?;
        let writer = self.writers.get(fingerprint)?;
        Some((writer, *fingerprint, FingerprintOrder::LegacyReversed))
    }
}

fn reversed(mut bytes: [u8; 8]) -> [u8; 8] {
    bytes.reverse();
    bytes
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
/// specification lays it out and how Java's `BinaryMessageEncoder`, Python's
/// `avro` (`Schema.fingerprint("CRC-64-AVRO")`) and fastavro
/// (`bytes.fromhex(fingerprint(...))`) write it. apache-avro's digest already
/// yields exactly these bytes (`u64::to_le_bytes`).
fn fingerprint(schema: &Schema) -> [u8; 8] {
    // sha2 re-exports the `Digest` trait that apache-avro's Rabin implements.
    let digest = Rabin::digest(canonical_form(schema).as_bytes());
    digest
        .as_slice()
        .try_into()
        .expect("rabin fingerprints are 8 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_list_every_kind_in_order() {
        let labels: Vec<&str> = SchemaKind::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(labels, SchemaKind::LABELS);
    }

    fn writer(kind: SchemaKind) -> WriterSchema {
        WriterSchema {
            kind,
            schema: Schema::parse_str(kind.source()).unwrap(),
        }
    }

    const A: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
    const A_REVERSED: [u8; 8] = [8, 7, 6, 5, 4, 3, 2, 1];

    fn kind_and_order(
        schemas: &Schemas,
        header: [u8; 8],
    ) -> Option<(SchemaKind, FingerprintOrder)> {
        schemas
            .writer_for_header(&header)
            .map(|(writer, _, order)| (writer.kind, order))
    }

    #[test]
    fn a_reversed_header_finds_its_schema_as_legacy() {
        let mut schemas = Schemas::new();
        schemas.add_writer(A, writer(SchemaKind::UsagePane));
        assert_eq!(
            kind_and_order(&schemas, A),
            Some((SchemaKind::UsagePane, FingerprintOrder::Spec))
        );
        let (_, fingerprint, order) = schemas.writer_for_header(&A_REVERSED).unwrap();
        assert_eq!((fingerprint, order), (A, FingerprintOrder::LegacyReversed));
        for kind in SchemaKind::ALL {
            let spec = schemas.fingerprint(kind);
            assert_eq!(
                kind_and_order(&schemas, spec),
                Some((kind, FingerprintOrder::Spec))
            );
            assert_eq!(
                kind_and_order(&schemas, reversed(spec)),
                Some((kind, FingerprintOrder::LegacyReversed))
            );
        }
    }

    /// Whichever is registered first, a fingerprint in specification order
    /// is never shadowed by another schema's reversed fingerprint.
    #[test]
    fn a_correct_fingerprint_wins_over_a_colliding_reversed_one() {
        for a_first in [true, false] {
            let mut schemas = Schemas::new();
            let registrations = [
                (A, SchemaKind::LatencyPane),
                (A_REVERSED, SchemaKind::Watermark),
            ];
            let order: Vec<_> = if a_first {
                registrations.to_vec()
            } else {
                registrations.into_iter().rev().collect()
            };
            for (fingerprint, kind) in order {
                schemas.add_writer(fingerprint, writer(kind));
            }
            assert_eq!(
                kind_and_order(&schemas, A),
                Some((SchemaKind::LatencyPane, FingerprintOrder::Spec)),
                "a registered first: {a_first}"
            );
            assert_eq!(
                kind_and_order(&schemas, A_REVERSED),
                Some((SchemaKind::Watermark, FingerprintOrder::Spec)),
                "a registered first: {a_first}"
            );
            assert!(schemas
                .legacy
                .keys()
                .all(|k| !schemas.writers.contains_key(k)));
        }
    }

    #[test]
    fn a_palindromic_fingerprint_is_never_legacy() {
        let mut schemas = Schemas::new();
        let palindrome = [1, 2, 3, 4, 4, 3, 2, 1];
        schemas.add_writer(palindrome, writer(SchemaKind::UsageEvent));
        assert_eq!(
            kind_and_order(&schemas, palindrome),
            Some((SchemaKind::UsageEvent, FingerprintOrder::Spec))
        );
    }

    #[test]
    fn unknown_headers_find_nothing() {
        let schemas = Schemas::new();
        assert!(schemas.writer_for_header(&A).is_none());
        assert!(schemas.writer_for_header(&A_REVERSED).is_none());
    }
}
