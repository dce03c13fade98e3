//! Reading OTLP attribute values the way instrumentations actually send
//! them: a token count may be an `intValue`, an integral `doubleValue` or a
//! numeric string, and a name may sit on the span or on its resource.

use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};

/// A span's attributes, then its resource's: the first holder of a key wins.
#[derive(Debug, Clone, Copy)]
pub struct Attributes<'a> {
    pub span: &'a [KeyValue],
    pub resource: &'a [KeyValue],
}

impl<'a> Attributes<'a> {
    /// The value of `key` on the span, else on the resource.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        find(self.span, key).or_else(|| find(self.resource, key))
    }

    /// The first of `keys` present, as text, with the key that held it.
    pub fn first_text<'k>(&self, keys: &'k [String]) -> Option<(&'k str, String)> {
        keys.iter().find_map(|key| {
            self.get(key)
                .and_then(scalar_text)
                .filter(|text| !text.is_empty())
                .map(|text| (key.as_str(), text))
        })
    }

    /// Whether the span itself carries any `gen_ai.*` attribute.
    pub fn has_gen_ai(&self) -> bool {
        self.span.iter().any(|kv| kv.key.starts_with("gen_ai."))
    }

    /// A count attribute of the span: absent, or a non-negative integer.
    pub fn count(&self, key: &str) -> Result<Option<i64>, String> {
        match find(self.span, key) {
            None => Ok(None),
            Some(value) => integer(value).map(Some),
        }
    }

    /// The first of `keys` the span has, as a count.
    pub fn first_count(&self, keys: &[&str]) -> Result<Option<(String, i64)>, String> {
        for key in keys {
            if let Some(n) = self
                .count(key)
                .map_err(|reason| format!("{key}: {reason}"))?
            {
                return Ok(Some(((*key).to_owned(), n)));
            }
        }
        Ok(None)
    }
}

fn find<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
}

/// A scalar as text: strings as they are, booleans and numbers in their
/// shortest form. Arrays, maps and bytes have no text form here.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::StringValue(s) => Some(s.clone()),
        Value::BoolValue(b) => Some(b.to_string()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::DoubleValue(d) if d.is_finite() => Some(d.to_string()),
        _ => None,
    }
}

/// A non-negative integer: OTLP/JSON sends `intValue` as a string, some
/// instrumentations report counts as doubles or as numeric strings.
pub fn integer(value: &Value) -> Result<i64, String> {
    let n = match value {
        Value::IntValue(i) => *i,
        Value::DoubleValue(d) if d.is_finite() && d.fract() == 0.0 && d.abs() < 9.0e15 => *d as i64,
        Value::DoubleValue(d) => return Err(format!("must be a whole number, got {d}")),
        Value::StringValue(s) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("must be an integer, got the string {s:?}"))?,
        _ => return Err("must be an integer".into()),
    };
    if n < 0 {
        return Err(format!("must not be negative, got {n}"));
    }
    Ok(n)
}

/// A finite number (a cost in US dollars, say).
pub fn number(value: &Value) -> Result<f64, String> {
    let n = match value {
        Value::IntValue(i) => *i as f64,
        Value::DoubleValue(d) => *d,
        Value::StringValue(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("must be a number, got the string {s:?}"))?,
        _ => return Err("must be a number".into()),
    };
    if !n.is_finite() || n < 0.0 {
        return Err(format!("must be a finite, non-negative number, got {n}"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    #[test]
    fn counts_come_as_ints_doubles_or_strings() {
        assert_eq!(integer(&Value::IntValue(7)), Ok(7));
        assert_eq!(integer(&Value::DoubleValue(7.0)), Ok(7));
        assert_eq!(integer(&Value::StringValue(" 12 ".into())), Ok(12));
        assert!(integer(&Value::DoubleValue(7.5))
            .unwrap_err()
            .contains("whole"));
        assert!(integer(&Value::IntValue(-1))
            .unwrap_err()
            .contains("negative"));
        assert!(integer(&Value::BoolValue(true)).is_err());
    }

    #[test]
    fn the_span_wins_over_its_resource() {
        let span = [kv("service.name", Value::StringValue("span".into()))];
        let resource = [
            kv("service.name", Value::StringValue("resource".into())),
            kv("deployment", Value::StringValue("eu".into())),
        ];
        let attributes = Attributes {
            span: &span,
            resource: &resource,
        };
        let keys = ["missing".to_owned(), "service.name".to_owned()];
        assert_eq!(
            attributes.first_text(&keys),
            Some(("service.name", "span".to_owned()))
        );
        assert_eq!(
            attributes.first_text(&["deployment".to_owned()]),
            Some(("deployment", "eu".to_owned()))
        );
        assert!(!attributes.has_gen_ai());
    }
}
