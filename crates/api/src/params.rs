//! Query parameters: each endpoint names the ones it takes, and any other,
//! repeated, malformed or out-of-range parameter is refused with a 400 that
//! names it, so a typo never silently widens a query.

use std::collections::BTreeMap;

use centile_sink::rollup::Tier;
use time::{format_description::well_known::Rfc3339, macros::format_description, OffsetDateTime};

use crate::ApiError;

/// Longest accepted text value (ids, names, search terms).
const MAX_TEXT: usize = 256;
/// 1970 to 2200: anything else is a mistake, not a time range.
const TIME_RANGE: std::ops::Range<i64> = 0..7_258_118_400;

/// The parameters of one request.
#[derive(Debug, Default, Clone)]
pub struct Params {
    values: BTreeMap<String, String>,
}

impl Params {
    /// Checks that every parameter is one of `allowed` and given once.
    pub fn new(pairs: Vec<(String, String)>, allowed: &[&str]) -> Result<Self, ApiError> {
        let mut values = BTreeMap::new();
        for (name, value) in pairs {
            if !allowed.contains(&name.as_str()) {
                let name = truncate(&name);
                return Err(ApiError::bad(
                    &name,
                    format!(
                        "unknown parameter; this endpoint takes {}",
                        if allowed.is_empty() {
                            "none".to_owned()
                        } else {
                            allowed.join(", ")
                        }
                    ),
                ));
            }
            if values.insert(name.clone(), value).is_some() {
                return Err(ApiError::bad(&name, "given more than once"));
            }
        }
        Ok(Self { values })
    }

    /// Builds parameters from pairs already known to be allowed (the CLI).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<String>)>) -> Self {
        Self {
            values: pairs
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
                .collect(),
        }
    }

    /// The parameters as given, for cache keys and forwarding.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// A text filter: non-empty, at most 256 characters, no control
    /// characters. An empty value is as if the parameter were absent.
    pub fn text(&self, name: &str) -> Result<Option<String>, ApiError> {
        let Some(value) = self.values.get(name) else {
            return Ok(None);
        };
        if value.is_empty() {
            return Ok(None);
        }
        if value.chars().count() > MAX_TEXT {
            return Err(ApiError::bad(
                name,
                format!("longer than {MAX_TEXT} characters"),
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(ApiError::bad(name, "contains control characters"));
        }
        Ok(Some(value.clone()))
    }

    /// A whole number in `min..=max`.
    pub fn number(&self, name: &str, min: u64, max: u64) -> Result<Option<u64>, ApiError> {
        let Some(value) = self.values.get(name) else {
            return Ok(None);
        };
        let n: u64 = value.parse().map_err(|_| {
            ApiError::bad(
                name,
                format!("expected a whole number, got {:?}", truncate(value)),
            )
        })?;
        if !(min..=max).contains(&n) {
            return Err(ApiError::bad(
                name,
                format!("must be between {min} and {max}, got {n}"),
            ));
        }
        Ok(Some(n))
    }

    /// One of `choices`.
    pub fn choice(
        &self,
        name: &str,
        choices: &[&'static str],
    ) -> Result<Option<&'static str>, ApiError> {
        let Some(value) = self.values.get(name) else {
            return Ok(None);
        };
        choices
            .iter()
            .copied()
            .find(|c| c == value)
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad(
                    name,
                    format!(
                        "expected one of {}, got {:?}",
                        choices.join(", "),
                        truncate(value)
                    ),
                )
            })
    }

    /// A granularity: `minute`, `hour`, `day` or `week`.
    pub fn tier(&self, name: &str) -> Result<Option<Tier>, ApiError> {
        let names = Tier::ALL.map(Tier::name);
        Ok(self
            .choice(name, &names)?
            .and_then(|n| Tier::ALL.into_iter().find(|t| t.name() == n)))
    }

    /// A time as Unix seconds: RFC 3339, a UTC date, or Unix seconds.
    pub fn time(&self, name: &str) -> Result<Option<i64>, ApiError> {
        let Some(value) = self.values.get(name) else {
            return Ok(None);
        };
        parse_time(value)
            .map(Some)
            .map_err(|reason| ApiError::bad(name, reason))
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Parses RFC 3339 (`2026-11-30T10:00:00Z`), a date (`2026-11-30`, its UTC
/// midnight) or Unix seconds.
pub fn parse_time(value: &str) -> Result<i64, String> {
    let seconds = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        value.parse::<i64>().map_err(|_| "too large".to_owned())?
    } else if let Ok(t) = OffsetDateTime::parse(value, &Rfc3339) {
        t.unix_timestamp()
    } else if let Ok(d) = time::Date::parse(value, format_description!("[year]-[month]-[day]")) {
        d.midnight().assume_utc().unix_timestamp()
    } else {
        return Err(format!(
            "expected an RFC 3339 time (2026-11-30T10:00:00Z), a date (2026-11-30) or Unix seconds, got {:?}",
            truncate(value)
        ));
    };
    if !TIME_RANGE.contains(&seconds) {
        return Err("must be between 1970 and 2200".into());
    }
    Ok(seconds)
}

/// Unix seconds as RFC 3339 UTC, `2026-11-30T10:00:00Z`.
pub fn format_time(seconds: i64) -> String {
    OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Unix seconds as a UTC date, `2026-11-30`.
pub fn format_date(seconds: i64) -> String {
    format_time(seconds).chars().take(10).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)], allowed: &[&str]) -> Result<Params, ApiError> {
        Params::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            allowed,
        )
    }

    #[test]
    fn times_in_three_spellings() {
        assert_eq!(parse_time("2026-11-30T10:00:00Z"), Ok(1_796_032_800));
        assert_eq!(parse_time("2026-11-30T11:00:00+01:00"), Ok(1_796_032_800));
        assert_eq!(parse_time("2026-11-30"), Ok(1_795_996_800));
        assert_eq!(parse_time("1796032800"), Ok(1_796_032_800));
        assert!(parse_time("yesterday").unwrap_err().contains("RFC 3339"));
        assert!(parse_time("99999999999").unwrap_err().contains("2200"));
        assert_eq!(format_time(1_796_032_800), "2026-11-30T10:00:00Z");
        assert_eq!(format_date(1_796_032_800), "2026-11-30");
    }

    #[test]
    fn refusals_name_the_parameter() {
        let err = params(&[("modle_id", "x")], &["model_id"]).unwrap_err();
        assert!(
            matches!(&err, ApiError::BadParameter { parameter, .. } if parameter == "modle_id")
        );
        let err = params(&[("limit", "1"), ("limit", "2")], &["limit"]).unwrap_err();
        assert_eq!(err.to_string(), "limit: given more than once");
        let p = params(
            &[("limit", "0"), ("g", "year"), ("t", "x\u{1}")],
            &["limit", "g", "t"],
        )
        .unwrap();
        assert_eq!(
            p.number("limit", 1, 100).unwrap_err().to_string(),
            "limit: must be between 1 and 100, got 0"
        );
        assert!(p
            .tier("g")
            .unwrap_err()
            .to_string()
            .starts_with("g: expected one of minute, hour, day, week"));
        assert!(p.text("t").is_err());
        assert_eq!(p.text("absent").unwrap(), None);
    }
}
