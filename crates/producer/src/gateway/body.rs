//! Request bodies: one JSON object, a JSON array of objects, or NDJSON (one
//! object per line), told apart by the content type.

use serde_json::{Map, Value};

use super::problem::{Collected, Problem};

/// How the events in a body are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/json` (or no content type): an object or an array.
    Json,
    /// `application/x-ndjson`, `application/ndjson` or `application/jsonl`.
    Ndjson,
}

impl BodyFormat {
    /// The format of a `Content-Type` value, or `None` if unsupported.
    pub fn from_content_type(content_type: Option<&str>) -> Option<Self> {
        let Some(value) = content_type else {
            return Some(Self::Json);
        };
        let essence = value.split(';').next().unwrap_or_default().trim();
        match essence.to_ascii_lowercase().as_str() {
            "application/json" | "" => Some(Self::Json),
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines" => Some(Self::Ndjson),
            _ => None,
        }
    }
}

/// Why a body held no events to look at.
#[derive(Debug, PartialEq)]
pub enum BodyError {
    /// Not parseable at all, or not objects: the listed problems.
    Malformed(Vec<Problem>),
    /// More events than the batch limit.
    TooMany { count: usize, limit: usize },
}

/// Splits a body into event objects, every malformed one reported.
pub fn split(
    format: BodyFormat,
    body: &[u8],
    limit: usize,
) -> Result<Vec<Map<String, Value>>, BodyError> {
    let values = match format {
        BodyFormat::Json => match serde_json::from_slice::<Value>(body) {
            Ok(Value::Array(items)) => items,
            Ok(other) => vec![other],
            Err(e) => {
                return Err(BodyError::Malformed(vec![Problem::body(format!(
                    "invalid json: {e}"
                ))]))
            }
        },
        BodyFormat::Ndjson => {
            let lines: Vec<&[u8]> = body
                .split(|b| *b == b'\n')
                .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
                .collect();
            if lines.len() > limit {
                return Err(BodyError::TooMany {
                    count: lines.len(),
                    limit,
                });
            }
            let mut values = Vec::with_capacity(lines.len());
            let mut problems = Collected::default();
            for (index, line) in lines.into_iter().enumerate() {
                match serde_json::from_slice::<Value>(line) {
                    Ok(value) => values.push(value),
                    Err(e) => problems.push(Problem::new(index, "", format!("invalid json: {e}"))),
                }
            }
            if !problems.is_empty() {
                return Err(BodyError::Malformed(problems.into_vec()));
            }
            values
        }
    };
    if values.len() > limit {
        return Err(BodyError::TooMany {
            count: values.len(),
            limit,
        });
    }
    if values.is_empty() {
        return Err(BodyError::Malformed(vec![Problem::body(
            "the request holds no events",
        )]));
    }
    let mut objects = Vec::with_capacity(values.len());
    let mut problems = Collected::default();
    for (index, value) in values.into_iter().enumerate() {
        match value {
            Value::Object(map) => objects.push(map),
            other => problems.push(Problem::new(
                index,
                "",
                format!("expected an event object, got {}", type_name(&other)),
            )),
        }
    }
    if problems.is_empty() {
        Ok(objects)
    } else {
        Err(BodyError::Malformed(problems.into_vec()))
    }
}

/// A JSON value's type in prose, for error messages.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a fractional number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_arrays_and_ndjson_all_become_event_objects() {
        let one = split(BodyFormat::Json, br#"{"a":1}"#, 10).unwrap();
        assert_eq!(one.len(), 1);
        let two = split(BodyFormat::Json, br#"[{"a":1},{"a":2}]"#, 10).unwrap();
        assert_eq!(two[1]["a"], 2);
        let lines = split(
            BodyFormat::Ndjson,
            b"{\"a\":1}\n\n{\"a\":2}\r\n{\"a\":3}\n",
            10,
        )
        .unwrap();
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn every_malformed_line_is_listed_with_its_index() {
        let Err(BodyError::Malformed(problems)) =
            split(BodyFormat::Ndjson, b"{\"a\":1}\nnot json\n[1]\n{\"b\"", 10)
        else {
            panic!("expected problems");
        };
        let indexes: Vec<_> = problems.iter().map(|p| p.index).collect();
        assert_eq!(indexes, [Some(1), Some(3)]);
        let Err(BodyError::Malformed(problems)) = split(BodyFormat::Json, b"[1, {}]", 10) else {
            panic!("expected problems");
        };
        assert_eq!(
            problems[0].reason,
            "expected an event object, got an integer"
        );
    }

    #[test]
    fn the_batch_limit_and_empty_bodies_are_refused() {
        assert_eq!(
            split(BodyFormat::Json, b"[{},{},{}]", 2),
            Err(BodyError::TooMany { count: 3, limit: 2 })
        );
        assert!(matches!(
            split(BodyFormat::Json, b"[]", 2),
            Err(BodyError::Malformed(_))
        ));
    }

    #[test]
    fn content_types_choose_the_format() {
        assert_eq!(BodyFormat::from_content_type(None), Some(BodyFormat::Json));
        assert_eq!(
            BodyFormat::from_content_type(Some("application/json; charset=utf-8")),
            Some(BodyFormat::Json)
        );
        assert_eq!(
            BodyFormat::from_content_type(Some("application/x-ndjson")),
            Some(BodyFormat::Ndjson)
        );
        assert_eq!(BodyFormat::from_content_type(Some("text/csv")), None);
    }
}
