//! The price book: what a model's tokens cost, by token class, and since
//! when. Pure: parsing, lookup and the cost arithmetic, which the sink's
//! SQL repeats exactly (`centile_sink::rollup::pricing`).
//!
//! Prices are US dollars per million tokens with at most six decimals, so
//! each is a whole number of pico-dollars (10⁻¹² USD) per token and nothing
//! is ever a float. A version takes effect at 00:00 UTC of its
//! `effective_from` date: prices change by the day, as providers announce
//! them, so every minute, hour and day row lies within one version.
//!
//! Token classes are parts of the input and output totals, never added on
//! top. A row's cost prices fresh input (input less cache read and cache
//! write), cache read, cache write, plain output (output less reasoning)
//! and reasoning tokens each at their own rate, and is rounded half-up to
//! the nano-dollar once per row.

use std::collections::BTreeMap;

use serde::Deserialize;
use sha2::Digest;

/// Seconds in a day.
const DAY: i64 = 86_400;

/// Prices above this (USD 10,000 per million tokens) are refused: they are
/// typos, and the bound keeps the integer arithmetic far from overflow.
const MAX_PICOS_PER_TOKEN: i64 = 10_000_000_000;

/// A price book that could not be read, naming the entry and field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PriceBookError {
    #[error("price book is not valid TOML: {0}")]
    Syntax(String),
    #[error("price entry {index} ({model}/{provider}): field `{field}`: {reason}")]
    Field {
        index: usize,
        model: String,
        provider: String,
        field: String,
        reason: String,
    },
    #[error("price entries {first} and {second} both give {model}/{provider} from {date}")]
    Duplicate {
        first: usize,
        second: usize,
        model: String,
        provider: String,
        date: String,
    },
}

/// Pico-dollars per token of each class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenPrices {
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    pub cache_write: i64,
    pub reasoning: i64,
}

/// Token sums of events that carried no cost, by class as the events report
/// them (the cache and reasoning classes are parts of input and output).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenSums {
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    pub cache_write: i64,
    pub reasoning: i64,
}

impl TokenSums {
    /// The tokens billed at each rate, in [`TokenPrices::rates`] order:
    /// fresh input, cache read, cache write, plain output, reasoning.
    pub fn billed(&self) -> [i64; 5] {
        [
            (self.input - self.cache_read - self.cache_write).max(0),
            self.cache_read.max(0),
            self.cache_write.max(0),
            (self.output - self.reasoning).max(0),
            self.reasoning.max(0),
        ]
    }
}

impl TokenPrices {
    /// The rates in [`TokenSums::billed`] order.
    pub fn rates(&self) -> [i64; 5] {
        [
            self.input,
            self.cache_read,
            self.cache_write,
            self.output,
            self.reasoning,
        ]
    }

    /// The cost of `sums` in nano-dollars, rounded half-up once. Tokens are
    /// split into thousands and a remainder so the products stay far inside
    /// 64 bits; the sink's SQL does the same arithmetic.
    pub fn cost_nanos(&self, sums: &TokenSums) -> i64 {
        let mut whole = 0i64;
        let mut rest = 0i64;
        for (tokens, rate) in sums.billed().into_iter().zip(self.rates()) {
            whole += tokens / 1_000 * rate;
            rest += tokens % 1_000 * rate;
        }
        whole + (rest + 500) / 1_000
    }
}

/// One price version of one model and provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceVersion {
    pub model_id: String,
    pub provider: String,
    /// `YYYY-MM-DD`: the version holds from 00:00 UTC that day.
    pub effective_from: String,
    /// The same instant in Unix seconds.
    pub effective_from_secs: i64,
    pub prices: TokenPrices,
}

impl PriceVersion {
    /// The version's identity as rows record it: the date and a digest of
    /// the prices, so a corrected price is a different version even though
    /// its date is the same (`2026-11-01:3f2a9c1b`).
    pub fn id(&self) -> String {
        let p = &self.prices;
        let text = format!(
            "{}|{}|{}|{}|{}|{}|{}|{}",
            self.model_id,
            self.provider,
            self.effective_from,
            p.input,
            p.output,
            p.cache_read,
            p.cache_write,
            p.reasoning
        );
        let digest = sha2::Sha256::digest(text.as_bytes());
        format!("{}:{}", self.effective_from, hex::encode(&digest[..4]))
    }
}

/// Every price version, by model and provider, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriceBook {
    versions: BTreeMap<(String, String), Vec<PriceVersion>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BookFile {
    #[serde(default)]
    prices: Vec<toml::Table>,
}

/// The fields of one `[[prices]]` entry.
const FIELDS: [&str; 8] = [
    "model",
    "provider",
    "effective_from",
    "input",
    "output",
    "cache_read",
    "cache_write",
    "reasoning",
];

impl PriceBook {
    /// Reads a book: `[[prices]]` entries with `model`, `provider`,
    /// `effective_from` (a date), and `input` and `output` prices in USD
    /// per million tokens; `cache_read` and `cache_write` default to
    /// `input`, `reasoning` to `output`. Prices are strings (`"2.50"`),
    /// integers or decimals, with at most six decimals.
    pub fn parse(text: &str) -> Result<Self, PriceBookError> {
        let file: BookFile =
            toml::from_str(text).map_err(|e| PriceBookError::Syntax(e.to_string()))?;
        let mut versions: BTreeMap<(String, String), Vec<(usize, PriceVersion)>> = BTreeMap::new();
        for (index, entry) in file.prices.iter().enumerate() {
            let index = index + 1;
            let name = |field: &str| {
                entry
                    .get(field)
                    .and_then(|v| v.as_str())
                    .unwrap_or("?")
                    .to_owned()
            };
            let fail = |field: &'static str, reason: String| PriceBookError::Field {
                index,
                model: name("model"),
                provider: name("provider"),
                field: field.to_owned(),
                reason,
            };
            if let Some(unknown) = entry.keys().find(|k| !FIELDS.contains(&k.as_str())) {
                return Err(PriceBookError::Field {
                    index,
                    model: name("model"),
                    provider: name("provider"),
                    field: unknown.clone(),
                    reason: format!("unknown field (expected one of {})", FIELDS.join(", ")),
                });
            }
            let text_field = |field: &'static str| -> Result<String, PriceBookError> {
                match entry.get(field) {
                    Some(toml::Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
                    Some(_) => Err(fail(field, "expected a non-empty string".into())),
                    None => Err(fail(field, "missing required field".into())),
                }
            };
            let model_id = text_field("model")?;
            let provider = text_field("provider")?;
            let date = match entry.get("effective_from") {
                Some(toml::Value::Datetime(d)) => d.to_string(),
                Some(toml::Value::String(s)) => s.trim().to_owned(),
                Some(_) => return Err(fail("effective_from", "expected a date".into())),
                None => return Err(fail("effective_from", "missing required field".into())),
            };
            let effective_from_secs = parse_date(&date).ok_or_else(|| {
                fail(
                    "effective_from",
                    format!("`{date}` is not a date (YYYY-MM-DD; prices change at 00:00 UTC)"),
                )
            })?;
            let price = |field: &'static str| -> Result<Option<i64>, PriceBookError> {
                entry
                    .get(field)
                    .map(|v| parse_price(v).map_err(|reason| fail(field, reason)))
                    .transpose()
            };
            let input =
                price("input")?.ok_or_else(|| fail("input", "missing required field".into()))?;
            let output =
                price("output")?.ok_or_else(|| fail("output", "missing required field".into()))?;
            let version = PriceVersion {
                model_id: model_id.clone(),
                provider: provider.clone(),
                effective_from: date,
                effective_from_secs,
                prices: TokenPrices {
                    input,
                    output,
                    cache_read: price("cache_read")?.unwrap_or(input),
                    cache_write: price("cache_write")?.unwrap_or(input),
                    reasoning: price("reasoning")?.unwrap_or(output),
                },
            };
            let list = versions.entry((model_id, provider)).or_default();
            if let Some((first, other)) = list
                .iter()
                .find(|(_, v)| v.effective_from_secs == effective_from_secs)
            {
                return Err(PriceBookError::Duplicate {
                    first: *first,
                    second: index,
                    model: other.model_id.clone(),
                    provider: other.provider.clone(),
                    date: other.effective_from.clone(),
                });
            }
            list.push((index, version));
        }
        Ok(Self {
            versions: versions
                .into_iter()
                .map(|(key, mut list)| {
                    list.sort_by_key(|(_, v)| v.effective_from_secs);
                    (key, list.into_iter().map(|(_, v)| v).collect())
                })
                .collect(),
        })
    }

    /// The version in effect for `model_id` and `provider` at `at` (Unix
    /// seconds): the latest whose date has begun.
    pub fn version_at(&self, model_id: &str, provider: &str, at: i64) -> Option<&PriceVersion> {
        self.versions
            .get(&(model_id.to_owned(), provider.to_owned()))?
            .iter()
            .rev()
            .find(|v| v.effective_from_secs <= at)
    }

    /// Every version, by model and provider, oldest first.
    pub fn versions(&self) -> impl Iterator<Item = &PriceVersion> {
        self.versions.values().flatten()
    }

    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    pub fn len(&self) -> usize {
        self.versions.values().map(Vec::len).sum()
    }

    /// A digest of every version: equal books, equal digests.
    pub fn digest(&self) -> String {
        let ids: Vec<String> = self.versions().map(PriceVersion::id).collect();
        hex::encode(&sha2::Sha256::digest(ids.join("\n").as_bytes())[..8])
    }
}

/// `YYYY-MM-DD` as Unix seconds at 00:00 UTC.
fn parse_date(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d) * DAY)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// USD per million tokens, exactly, as pico-dollars per token.
fn parse_price(value: &toml::Value) -> Result<i64, String> {
    let text = match value {
        toml::Value::String(s) => s.trim().to_owned(),
        toml::Value::Integer(i) => i.to_string(),
        // The shortest text that reads back as the same float: `2.5` for 2.5.
        toml::Value::Float(f) if f.is_finite() => format!("{f}"),
        _ => return Err("expected USD per million tokens, such as \"2.50\"".into()),
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !(fraction.is_empty() || digits(fraction)) {
        return Err(format!(
            "`{text}` is not a non-negative decimal number of USD per million tokens"
        ));
    }
    if fraction.len() > 6 {
        return Err(format!(
            "`{text}` has more than six decimals (a millionth of a dollar per million tokens is the smallest step)"
        ));
    }
    let whole: i64 = whole
        .parse()
        .ok()
        .filter(|w| *w <= MAX_PICOS_PER_TOKEN / 1_000_000)
        .ok_or_else(|| format!("`{text}` is above USD 10,000 per million tokens"))?;
    let fraction: i64 = format!("{fraction:0<6}").parse().unwrap_or(0);
    let picos = whole * 1_000_000 + fraction;
    if picos > MAX_PICOS_PER_TOKEN {
        return Err(format!("`{text}` is above USD 10,000 per million tokens"));
    }
    Ok(picos)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOK: &str = r#"
[[prices]]
model = "gpt-4o"
provider = "openai"
effective_from = 2026-01-01
input = "2.50"
output = "10.00"
cache_read = "1.25"

[[prices]]
model = "gpt-4o"
provider = "openai"
effective_from = "2026-11-15"
input = 2
output = 8
reasoning = 0.075
"#;

    #[test]
    fn reads_prices_exactly_with_defaults_by_class() {
        let book = PriceBook::parse(BOOK).unwrap();
        assert_eq!(book.len(), 2);
        let first = book.version_at("gpt-4o", "openai", 1_767_225_600).unwrap();
        assert_eq!(first.effective_from, "2026-01-01");
        assert_eq!(
            first.prices,
            TokenPrices {
                input: 2_500_000,
                output: 10_000_000,
                cache_read: 1_250_000,
                cache_write: 2_500_000,
                reasoning: 10_000_000,
            }
        );
        let second = book.version_at("gpt-4o", "openai", 1_794_700_800).unwrap();
        assert_eq!(second.prices.reasoning, 75_000);
        assert_eq!(second.prices.cache_write, 2_000_000);
        // The second before 2026-11-15 is still the first version.
        assert_eq!(
            book.version_at("gpt-4o", "openai", 1_794_700_799)
                .unwrap()
                .effective_from,
            "2026-01-01"
        );
        assert!(book.version_at("gpt-4o", "openai", 1_767_225_599).is_none());
        assert!(book.version_at("gpt-4o", "azure", 1_794_700_800).is_none());
    }

    #[test]
    fn a_corrected_price_is_a_new_version_id_on_the_same_date() {
        let book = PriceBook::parse(BOOK).unwrap();
        let fixed = PriceBook::parse(&BOOK.replace("\"2.50\"", "\"2.40\"")).unwrap();
        let id = |b: &PriceBook| {
            b.version_at("gpt-4o", "openai", 1_767_225_600)
                .unwrap()
                .id()
        };
        assert!(id(&book).starts_with("2026-01-01:"));
        assert_ne!(id(&book), id(&fixed));
        assert_ne!(book.digest(), fixed.digest());
        assert_eq!(book.digest(), PriceBook::parse(BOOK).unwrap().digest());
    }

    #[test]
    fn cost_splits_classes_out_of_input_and_output_and_rounds_once() {
        let prices = TokenPrices {
            input: 2_500_000,
            output: 10_000_000,
            cache_read: 1_250_000,
            cache_write: 3_125_000,
            reasoning: 10_000_000,
        };
        let sums = TokenSums {
            input: 1_000,
            output: 300,
            cache_read: 400,
            cache_write: 100,
            reasoning: 200,
        };
        // USD 2.50 per million is 2,500 nano-dollars a token: 500 fresh ×
        // 2,500 + 400 × 1,250 + 100 × 3,125 + 100 plain × 10,000 + 200 ×
        // 10,000 = 5,062,500 nano-dollars.
        assert_eq!(prices.cost_nanos(&sums), 5_062_500);
        // USD 0.0005 per million is half a nano-dollar a token: one token
        // rounds up to 1, three tokens (1.5) to 2, and 2,001 (1,000.5) to
        // 1,001: rounded once, on the row's sum.
        let cheap = TokenPrices {
            input: 500,
            output: 500,
            cache_read: 500,
            cache_write: 500,
            reasoning: 500,
        };
        let tokens = |input| TokenSums {
            input,
            ..TokenSums::default()
        };
        assert_eq!(cheap.cost_nanos(&tokens(1)), 1);
        assert_eq!(cheap.cost_nanos(&tokens(3)), 2);
        assert_eq!(cheap.cost_nanos(&tokens(2_001)), 1_001);
        assert_eq!(cheap.cost_nanos(&tokens(4)), 2);
        // Ten billion tokens at USD 10,000 per million stay exact.
        let big = TokenSums {
            input: 10_000_000_000,
            ..TokenSums::default()
        };
        let dear = TokenPrices {
            input: MAX_PICOS_PER_TOKEN,
            ..cheap
        };
        assert_eq!(dear.cost_nanos(&big), 100_000_000_000_000_000);
        // Cache and reasoning tokens are parts, never added on top: all
        // input read from the cache costs the cache-read price only.
        let all_cached = TokenSums {
            input: 1_000,
            cache_read: 1_000,
            ..TokenSums::default()
        };
        assert_eq!(prices.cost_nanos(&all_cached), 1_250_000);
    }

    #[test]
    fn bad_entries_name_the_entry_and_the_field() {
        let err = |text: &str| PriceBook::parse(text).unwrap_err().to_string();
        let entry = |extra: &str| {
            format!("[[prices]]\nmodel = \"m\"\nprovider = \"p\"\neffective_from = 2026-01-01\ninput = \"1\"\noutput = \"2\"\n{extra}")
        };
        assert!(PriceBook::parse(&entry("")).is_ok());
        assert_eq!(
            err(&entry("cache_read = \"0.0000001\"")),
            "price entry 1 (m/p): field `cache_read`: `0.0000001` has more than six decimals (a millionth of a dollar per million tokens is the smallest step)"
        );
        assert!(err(&entry("reasoning = \"-1\"")).contains("field `reasoning`"));
        assert!(err(&entry("reasoning = \"20000\"")).contains("above USD 10,000"));
        assert!(err(&entry("discount = 1")).contains("field `discount`: unknown field"));
        let bad_date = entry("").replace("2026-01-01", "\"2026-02-30\"");
        assert!(err(&bad_date).contains("field `effective_from`: `2026-02-30` is not a date"));
        let with_time = entry("").replace("2026-01-01", "2026-01-01T12:00:00Z");
        assert!(err(&with_time).contains("field `effective_from`"));
        let twice = format!("{}\n{}", entry(""), entry(""));
        assert_eq!(
            err(&twice),
            "price entries 1 and 2 both give m/p from 2026-01-01"
        );
        assert!(
            err("[[prices]]\nprovider = \"p\"").contains("field `model`: missing required field")
        );
        assert!(err("prices = 3").starts_with("price book is not valid TOML"));
    }
}
