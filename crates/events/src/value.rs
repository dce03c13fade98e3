//! Conversions between Centile's types and Avro `Value`s.
//!
//! Decoding reads a record by field name and collects every problem instead
//! of stopping at the first, so a refused message names all its bad fields.
//! Fields the writer schema lacks are treated as absent: optional ones take
//! their default, required ones are reported as missing.

use std::collections::{BTreeMap, HashMap};

use apache_avro::types::Value;

use crate::{
    Centroid, DecodeError, FieldError, Granularity, LatencyEvent, LatencyPane, PaneSource,
    UsageEvent, UsagePane, Watermark,
};

pub(crate) struct RecordReader {
    fields: HashMap<String, Value>,
    errors: Vec<FieldError>,
}

impl RecordReader {
    pub fn new(value: Value) -> Result<Self, DecodeError> {
        match value {
            Value::Record(fields) => Ok(Self {
                fields: fields.into_iter().collect(),
                errors: Vec::new(),
            }),
            other => Err(DecodeError::Datum(format!(
                "expected a record, found {other:?}"
            ))),
        }
    }

    pub fn finish<T>(self, value: T) -> Result<T, DecodeError> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(DecodeError::Invalid(self.errors))
        }
    }

    fn take(&mut self, name: &str) -> Option<Value> {
        match self.fields.remove(name) {
            Some(Value::Union(_, inner)) => Some(*inner),
            other => other,
        }
    }

    fn fail(&mut self, name: &str, reason: impl Into<String>) {
        self.errors.push(FieldError::new(name, reason));
    }

    fn required<T>(&mut self, name: &str, convert: fn(Value) -> Option<T>, ty: &str) -> Option<T> {
        match self.take(name) {
            None | Some(Value::Null) => {
                self.fail(name, "missing required field");
                None
            }
            Some(value) => {
                let shown = short(&value);
                let converted = convert(value);
                if converted.is_none() {
                    self.fail(name, format!("expected {ty}, found {shown}"));
                }
                converted
            }
        }
    }

    fn optional<T>(&mut self, name: &str, convert: fn(Value) -> Option<T>, ty: &str) -> Option<T> {
        match self.take(name) {
            None | Some(Value::Null) => None,
            Some(value) => {
                let shown = short(&value);
                let converted = convert(value);
                if converted.is_none() {
                    self.fail(name, format!("expected {ty} or null, found {shown}"));
                }
                converted
            }
        }
    }

    pub fn string(&mut self, name: &str) -> String {
        self.required(name, as_string, "string").unwrap_or_default()
    }

    pub fn opt_string(&mut self, name: &str) -> Option<String> {
        self.optional(name, as_string, "string")
    }

    pub fn long(&mut self, name: &str) -> i64 {
        self.required(name, as_long, "long").unwrap_or_default()
    }

    pub fn opt_long(&mut self, name: &str) -> Option<i64> {
        self.optional(name, as_long, "long")
    }

    pub fn int(&mut self, name: &str) -> i32 {
        self.required(name, as_int, "int").unwrap_or_default()
    }

    pub fn double(&mut self, name: &str) -> f64 {
        self.required(name, as_double, "double").unwrap_or_default()
    }

    pub fn boolean(&mut self, name: &str) -> bool {
        self.required(name, as_bool, "boolean").unwrap_or_default()
    }

    pub fn string_map(&mut self, name: &str) -> BTreeMap<String, String> {
        self.optional(name, as_string_map, "map of strings")
            .unwrap_or_default()
    }

    pub fn granularity(&mut self, name: &str) -> Granularity {
        self.required(name, as_granularity, "granularity symbol")
            .unwrap_or(Granularity::Minute)
    }

    pub fn centroids(&mut self, name: &str) -> Vec<Centroid> {
        self.required(name, as_centroids, "array of centroids")
            .unwrap_or_default()
    }
}

fn short(value: &Value) -> String {
    let text = format!("{value:?}");
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn as_string(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        _ => None,
    }
}

fn as_long(value: Value) -> Option<i64> {
    match value {
        Value::Long(v) | Value::TimestampMillis(v) => Some(v),
        Value::Int(v) => Some(v.into()),
        _ => None,
    }
}

fn as_int(value: Value) -> Option<i32> {
    match value {
        Value::Int(v) => Some(v),
        _ => None,
    }
}

fn as_double(value: Value) -> Option<f64> {
    match value {
        Value::Double(v) => Some(v),
        Value::Float(v) => Some(v.into()),
        Value::Long(v) => Some(v as f64),
        Value::Int(v) => Some(v.into()),
        _ => None,
    }
}

fn as_bool(value: Value) -> Option<bool> {
    match value {
        Value::Boolean(v) => Some(v),
        _ => None,
    }
}

fn as_string_map(value: Value) -> Option<BTreeMap<String, String>> {
    match value {
        Value::Map(map) => map
            .into_iter()
            .map(|(k, v)| as_string(v).map(|v| (k, v)))
            .collect(),
        _ => None,
    }
}

fn as_granularity(value: Value) -> Option<Granularity> {
    match value {
        Value::Enum(_, symbol) | Value::String(symbol) => Granularity::parse(&symbol),
        _ => None,
    }
}

fn as_centroids(value: Value) -> Option<Vec<Centroid>> {
    let Value::Array(items) = value else {
        return None;
    };
    items
        .into_iter()
        .map(|item| {
            let Value::Record(fields) = item else {
                return None;
            };
            let mut mean = None;
            let mut weight = None;
            for (name, value) in fields {
                match name.as_str() {
                    "mean" => mean = as_double(value),
                    "weight" => weight = as_long(value).and_then(|w| u64::try_from(w).ok()),
                    _ => {}
                }
            }
            Some(Centroid {
                mean: mean?,
                weight: weight?,
            })
        })
        .collect()
}

fn string_map(map: &BTreeMap<String, String>) -> Value {
    Value::Map(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

fn nullable(index_if_some: Option<Value>) -> Value {
    match index_if_some {
        Some(v) => Value::Union(1, Box::new(v)),
        None => Value::Union(0, Box::new(Value::Null)),
    }
}

fn granularity(g: Granularity) -> Value {
    Value::Enum(g.index() as u32, g.as_str().to_owned())
}

fn record(fields: Vec<(&str, Value)>) -> Value {
    Value::Record(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

pub(crate) fn latency_event_to_value(e: &LatencyEvent) -> Value {
    record(vec![
        ("event_id", Value::String(e.event_id.clone())),
        ("occurred_at", Value::TimestampMillis(e.occurred_at)),
        ("tenant_id", Value::String(e.tenant_id.clone())),
        ("model_id", Value::String(e.model_id.clone())),
        ("provider", Value::String(e.provider.clone())),
        ("tool", Value::String(e.tool.clone())),
        ("parameters", string_map(&e.parameters)),
        ("response_time_ms", Value::Double(e.response_time_ms)),
        ("success", Value::Boolean(e.success)),
        (
            "error_type",
            nullable(e.error_type.clone().map(Value::String)),
        ),
        ("input_tokens", nullable(e.input_tokens.map(Value::Long))),
        ("output_tokens", nullable(e.output_tokens.map(Value::Long))),
        (
            "session_id",
            nullable(e.session_id.clone().map(Value::String)),
        ),
    ])
}

pub(crate) fn latency_event_from_value(value: Value) -> Result<LatencyEvent, DecodeError> {
    let mut r = RecordReader::new(value)?;
    let event = LatencyEvent {
        event_id: r.string("event_id"),
        occurred_at: r.long("occurred_at"),
        tenant_id: r.string("tenant_id"),
        model_id: r.string("model_id"),
        provider: r.string("provider"),
        tool: r.string("tool"),
        parameters: r.string_map("parameters"),
        response_time_ms: r.double("response_time_ms"),
        success: r.boolean("success"),
        error_type: r.opt_string("error_type"),
        input_tokens: r.opt_long("input_tokens"),
        output_tokens: r.opt_long("output_tokens"),
        session_id: r.opt_string("session_id"),
    };
    r.finish(event)
}

pub(crate) fn usage_event_to_value(e: &UsageEvent) -> Value {
    record(vec![
        ("event_id", Value::String(e.event_id.clone())),
        ("occurred_at", Value::TimestampMillis(e.occurred_at)),
        ("tenant_id", Value::String(e.tenant_id.clone())),
        ("user_id", nullable(e.user_id.clone().map(Value::String))),
        ("model_id", Value::String(e.model_id.clone())),
        ("provider", Value::String(e.provider.clone())),
        ("feature", Value::String(e.feature.clone())),
        ("input_tokens", Value::Long(e.input_tokens)),
        ("output_tokens", Value::Long(e.output_tokens)),
        (
            "cost_usd_nanos",
            nullable(e.cost_usd_nanos.map(Value::Long)),
        ),
        (
            "cache_read_input_tokens",
            nullable(e.cache_read_input_tokens.map(Value::Long)),
        ),
        (
            "cache_write_input_tokens",
            nullable(e.cache_write_input_tokens.map(Value::Long)),
        ),
        (
            "reasoning_output_tokens",
            nullable(e.reasoning_output_tokens.map(Value::Long)),
        ),
        (
            "session_id",
            nullable(e.session_id.clone().map(Value::String)),
        ),
    ])
}

pub(crate) fn usage_event_from_value(value: Value) -> Result<UsageEvent, DecodeError> {
    let mut r = RecordReader::new(value)?;
    let event = UsageEvent {
        event_id: r.string("event_id"),
        occurred_at: r.long("occurred_at"),
        tenant_id: r.string("tenant_id"),
        user_id: r.opt_string("user_id"),
        model_id: r.string("model_id"),
        provider: r.string("provider"),
        feature: r.string("feature"),
        input_tokens: r.long("input_tokens"),
        output_tokens: r.long("output_tokens"),
        cost_usd_nanos: r.opt_long("cost_usd_nanos"),
        cache_read_input_tokens: r.opt_long("cache_read_input_tokens"),
        cache_write_input_tokens: r.opt_long("cache_write_input_tokens"),
        reasoning_output_tokens: r.opt_long("reasoning_output_tokens"),
        session_id: r.opt_string("session_id"),
    };
    r.finish(event)
}

fn source_fields(s: &PaneSource) -> [(&'static str, Value); 4] {
    [
        ("source_topic", Value::String(s.topic.clone())),
        ("source_partition", Value::Int(s.partition)),
        ("first_offset", Value::Long(s.first_offset)),
        ("last_offset", Value::Long(s.last_offset)),
    ]
}

fn read_source(r: &mut RecordReader) -> PaneSource {
    PaneSource {
        topic: r.string("source_topic"),
        partition: r.int("source_partition"),
        first_offset: r.long("first_offset"),
        last_offset: r.long("last_offset"),
    }
}

pub(crate) fn latency_pane_to_value(p: &LatencyPane) -> Value {
    let mut fields = vec![
        ("pane_id", Value::String(p.pane_id.clone())),
        ("version", Value::Long(p.version)),
        ("granularity", granularity(p.granularity)),
        ("window_start", Value::TimestampMillis(p.window_start)),
        ("window_end", Value::TimestampMillis(p.window_end)),
        ("tenant_id", Value::String(p.tenant_id.clone())),
        ("model_id", Value::String(p.model_id.clone())),
        ("provider", Value::String(p.provider.clone())),
        ("tool", Value::String(p.tool.clone())),
        ("parameter_hash", Value::String(p.parameter_hash.clone())),
        ("parameters", string_map(&p.parameters)),
    ];
    fields.extend(source_fields(&p.source));
    fields.extend([
        ("is_final", Value::Boolean(p.is_final)),
        ("watermark", Value::TimestampMillis(p.watermark)),
        ("calls", Value::Long(p.calls)),
        ("successes", Value::Long(p.successes)),
        ("errors", Value::Long(p.errors)),
        ("rt_sum", Value::Double(p.rt_sum)),
        ("rt_min", Value::Double(p.rt_min)),
        ("rt_max", Value::Double(p.rt_max)),
        ("input_tokens_sum", Value::Long(p.input_tokens_sum)),
        ("input_tokens_count", Value::Long(p.input_tokens_count)),
        ("output_tokens_sum", Value::Long(p.output_tokens_sum)),
        ("output_tokens_count", Value::Long(p.output_tokens_count)),
        (
            "centroids",
            Value::Array(
                p.centroids
                    .iter()
                    .map(|c| {
                        record(vec![
                            ("mean", Value::Double(c.mean)),
                            ("weight", Value::Long(c.weight as i64)),
                        ])
                    })
                    .collect(),
            ),
        ),
    ]);
    record(fields)
}

pub(crate) fn latency_pane_from_value(value: Value) -> Result<LatencyPane, DecodeError> {
    let mut r = RecordReader::new(value)?;
    let pane = LatencyPane {
        pane_id: r.string("pane_id"),
        version: r.long("version"),
        granularity: r.granularity("granularity"),
        window_start: r.long("window_start"),
        window_end: r.long("window_end"),
        tenant_id: r.string("tenant_id"),
        model_id: r.string("model_id"),
        provider: r.string("provider"),
        tool: r.string("tool"),
        parameter_hash: r.string("parameter_hash"),
        parameters: r.string_map("parameters"),
        source: read_source(&mut r),
        is_final: r.boolean("is_final"),
        watermark: r.long("watermark"),
        calls: r.long("calls"),
        successes: r.long("successes"),
        errors: r.long("errors"),
        rt_sum: r.double("rt_sum"),
        rt_min: r.double("rt_min"),
        rt_max: r.double("rt_max"),
        input_tokens_sum: r.long("input_tokens_sum"),
        input_tokens_count: r.long("input_tokens_count"),
        output_tokens_sum: r.long("output_tokens_sum"),
        output_tokens_count: r.long("output_tokens_count"),
        centroids: r.centroids("centroids"),
    };
    r.finish(pane)
}

pub(crate) fn usage_pane_to_value(p: &UsagePane) -> Value {
    let mut fields = vec![
        ("pane_id", Value::String(p.pane_id.clone())),
        ("version", Value::Long(p.version)),
        ("granularity", granularity(p.granularity)),
        ("window_start", Value::TimestampMillis(p.window_start)),
        ("window_end", Value::TimestampMillis(p.window_end)),
        ("tenant_id", Value::String(p.tenant_id.clone())),
        ("model_id", Value::String(p.model_id.clone())),
        ("provider", Value::String(p.provider.clone())),
        ("feature", Value::String(p.feature.clone())),
    ];
    fields.extend(source_fields(&p.source));
    fields.extend([
        ("is_final", Value::Boolean(p.is_final)),
        ("watermark", Value::TimestampMillis(p.watermark)),
        ("requests", Value::Long(p.requests)),
        ("input_tokens_sum", Value::Long(p.input_tokens_sum)),
        ("output_tokens_sum", Value::Long(p.output_tokens_sum)),
        ("cost_usd_nanos_sum", Value::Long(p.cost_usd_nanos_sum)),
        (
            "cache_read_input_tokens_sum",
            Value::Long(p.cache_read_input_tokens_sum),
        ),
        (
            "cache_write_input_tokens_sum",
            Value::Long(p.cache_write_input_tokens_sum),
        ),
        (
            "reasoning_output_tokens_sum",
            Value::Long(p.reasoning_output_tokens_sum),
        ),
        ("unpriced_requests", Value::Long(p.unpriced.requests)),
        ("unpriced_input_tokens_sum", Value::Long(p.unpriced.input)),
        ("unpriced_output_tokens_sum", Value::Long(p.unpriced.output)),
        (
            "unpriced_cache_read_input_tokens_sum",
            Value::Long(p.unpriced.cache_read),
        ),
        (
            "unpriced_cache_write_input_tokens_sum",
            Value::Long(p.unpriced.cache_write),
        ),
        (
            "unpriced_reasoning_output_tokens_sum",
            Value::Long(p.unpriced.reasoning),
        ),
    ]);
    record(fields)
}

pub(crate) fn usage_pane_from_value(value: Value) -> Result<UsagePane, DecodeError> {
    let mut r = RecordReader::new(value)?;
    let pane = UsagePane {
        pane_id: r.string("pane_id"),
        version: r.long("version"),
        granularity: r.granularity("granularity"),
        window_start: r.long("window_start"),
        window_end: r.long("window_end"),
        tenant_id: r.string("tenant_id"),
        model_id: r.string("model_id"),
        provider: r.string("provider"),
        feature: r.string("feature"),
        source: read_source(&mut r),
        is_final: r.boolean("is_final"),
        watermark: r.long("watermark"),
        requests: r.long("requests"),
        input_tokens_sum: r.long("input_tokens_sum"),
        output_tokens_sum: r.long("output_tokens_sum"),
        cost_usd_nanos_sum: r.long("cost_usd_nanos_sum"),
        cache_read_input_tokens_sum: r.long("cache_read_input_tokens_sum"),
        cache_write_input_tokens_sum: r.long("cache_write_input_tokens_sum"),
        reasoning_output_tokens_sum: r.long("reasoning_output_tokens_sum"),
        unpriced: crate::Unpriced {
            requests: r.long("unpriced_requests"),
            input: r.long("unpriced_input_tokens_sum"),
            output: r.long("unpriced_output_tokens_sum"),
            cache_read: r.long("unpriced_cache_read_input_tokens_sum"),
            cache_write: r.long("unpriced_cache_write_input_tokens_sum"),
            reasoning: r.long("unpriced_reasoning_output_tokens_sum"),
        },
    };
    r.finish(pane)
}

pub(crate) fn watermark_to_value(w: &Watermark) -> Value {
    record(vec![
        ("source_topic", Value::String(w.source_topic.clone())),
        ("source_partition", Value::Int(w.source_partition)),
        ("watermark", Value::TimestampMillis(w.watermark)),
        ("next_offset", Value::Long(w.next_offset)),
        ("emitted_at", Value::TimestampMillis(w.emitted_at)),
    ])
}

pub(crate) fn watermark_from_value(value: Value) -> Result<Watermark, DecodeError> {
    let mut r = RecordReader::new(value)?;
    let watermark = Watermark {
        source_topic: r.string("source_topic"),
        source_partition: r.int("source_partition"),
        watermark: r.long("watermark"),
        next_offset: r.long("next_offset"),
        emitted_at: r.long("emitted_at"),
    };
    r.finish(watermark)
}
