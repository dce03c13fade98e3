//! Rows to events, through the gateway's converter: a CSV row first becomes
//! the JSON object the gateway would have received, then every row goes
//! through [`fields::event`] with the same field, type and value rules.

use centile_events::{Admission, Event, Limits};
use serde_json::{Map, Number, Value};

use super::input::{Row, RowProblem};
use crate::gateway::{
    fields::{self, FieldType, Intake, Tenant},
    ids::IdSource,
    EventKind,
};

/// A CSV row as a JSON object: cells by the header's field names, typed as
/// the gateway's JSON fields are; an empty cell is an absent field. A cell
/// that does not parse as its field's type stays text, so the converter
/// reports the wrong type; a column no event has is passed on, and refused
/// as an unknown field.
pub fn csv_object(
    kind: EventKind,
    header: &[String],
    record: &csv::StringRecord,
) -> Result<Map<String, Value>, RowProblem> {
    if record.len() > header.len() {
        return Err(RowProblem::new(
            "",
            format!(
                "{} cells, but the header names {} fields",
                record.len(),
                header.len()
            ),
        ));
    }
    let mut object = Map::new();
    for (name, cell) in header.iter().zip(record.iter()) {
        if cell.is_empty() {
            continue;
        }
        let value = match kind.field_type(name) {
            Some(FieldType::Parameters) => match serde_json::from_str::<Value>(cell) {
                Ok(value) => value,
                Err(e) => {
                    return Err(RowProblem::new(
                        name.as_str(),
                        format!("not JSON text: {e}"),
                    ))
                }
            },
            Some(FieldType::Timestamp | FieldType::Integer) => integer(cell),
            Some(FieldType::Number) => number(cell),
            Some(FieldType::Boolean) => match cell.trim() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => text(cell),
            },
            Some(FieldType::Text) | None => text(cell),
        };
        object.insert(name.clone(), value);
    }
    Ok(object)
}

fn text(cell: &str) -> Value {
    Value::String(cell.to_owned())
}

/// An integer where the cell is one; a fractional number is kept as such
/// (and refused as "expected an integer, got a fractional number").
fn integer(cell: &str) -> Value {
    match cell.trim().parse::<i64>() {
        Ok(n) => Value::Number(n.into()),
        Err(_) => number(cell),
    }
}

fn number(cell: &str) -> Value {
    let trimmed = cell.trim();
    if let Ok(n) = trimmed.parse::<i64>() {
        return Value::Number(n.into());
    }
    trimmed
        .parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map_or_else(|| text(cell), Value::Number)
}

/// Converts rows of one input with the gateway's rules, except that every
/// row names its tenant and no restatement horizon applies: history of any
/// age is accepted (events from the future still are not).
#[derive(Debug)]
pub struct Converter {
    pub kind: EventKind,
    limits: Limits,
    admission: Admission,
    arrived_at: i64,
    ids: IdSource,
}

impl Converter {
    /// `now` (ms since the epoch) is what `occurred_at` is judged against;
    /// `digest` seeds the ids of rows without `event_id`.
    pub fn new(kind: EventKind, max_future_skew_ms: i64, now: i64, digest: Option<&str>) -> Self {
        Self {
            kind,
            limits: Limits::default(),
            admission: Admission {
                restatement_horizon_ms: i64::MAX,
                max_future_skew_ms,
            },
            arrived_at: now,
            ids: match digest {
                Some(digest) => IdSource::Idempotent(import_id_key(digest)),
                None => IdSource::Random,
            },
        }
    }

    /// The row's event, or every problem it has as (field, reason). A row
    /// without `event_id` gets a UUIDv7 dated `occurred_at` whose other bits
    /// come from SHA-256 of its tenant, the input's digest and its line.
    pub fn convert(&self, row: &Row) -> Result<Event, Vec<RowProblem>> {
        let object = row.object.as_ref().map_err(|p| vec![p.clone()])?;
        let intake = Intake {
            tenant: Tenant::Named,
            arrived_at: self.arrived_at,
            limits: &self.limits,
            admission: self.admission,
            ids: &self.ids,
        };
        let line = usize::try_from(row.line).unwrap_or(usize::MAX);
        fields::event(self.kind, line, object, &intake).map_err(|problems| {
            problems
                .into_iter()
                .map(|p| RowProblem::new(p.field, p.reason))
                .collect()
        })
    }
}

/// The idempotency key an input's generated ids derive from.
pub fn import_id_key(digest: &str) -> String {
    format!("import:{digest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn cells_take_their_fields_json_types_and_empty_cells_are_absent() {
        let header = header(&[
            "occurred_at",
            "tenant_id",
            "model_id",
            "parameters",
            "response_time_ms",
            "success",
            "error_type",
            "input_tokens",
        ]);
        let record = csv::StringRecord::from(vec![
            "1800000000000",
            "acme",
            "4711",
            r#"{"temperature": 0.2}"#,
            "812.5",
            "true",
            "",
            "12",
        ]);
        let object = csv_object(EventKind::Latency, &header, &record).unwrap();
        assert_eq!(
            Value::Object(object),
            serde_json::json!({
                "occurred_at": 1_800_000_000_000_i64, "tenant_id": "acme", "model_id": "4711",
                "parameters": {"temperature": 0.2}, "response_time_ms": 812.5,
                "success": true, "input_tokens": 12
            })
        );
    }

    #[test]
    fn unparseable_cells_stay_text_and_bad_parameters_are_named() {
        let header = header(&["response_time_ms", "success", "input_tokens", "occurred_at"]);
        let record = csv::StringRecord::from(vec!["fast", "yes", "1.5", "2027-01-15T08:00:00Z"]);
        let object = csv_object(EventKind::Latency, &header, &record).unwrap();
        assert_eq!(
            Value::Object(object),
            serde_json::json!({
                "response_time_ms": "fast", "success": "yes", "input_tokens": 1.5,
                "occurred_at": "2027-01-15T08:00:00Z"
            })
        );
        let header = self::header(&["parameters"]);
        let record = csv::StringRecord::from(vec!["{temperature"]);
        let problem = csv_object(EventKind::Latency, &header, &record).unwrap_err();
        assert_eq!(problem.field, "parameters");
        assert!(problem.reason.starts_with("not JSON text"), "{problem:?}");
    }
}
