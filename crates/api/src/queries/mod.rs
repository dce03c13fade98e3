//! Every question the API and the CLI answer, as a checked [`Request`], and
//! the ClickHouse SQL that answers it from the stored tiers.
//!
//! Reads go through [`latest_rows`](centile_sink::rollup::sql::latest_rows)
//! with the request's filters pushed into the scan, so an answer reads the
//! rows of its range and nothing older, whatever the history's length. Each
//! request also names the stored tables and filters it reads
//! ([`Source`]); their row count, revision sum and latest update make the
//! cache token ([`Queries::token`]).

mod models;
mod realtime;
mod trends;
mod usage;
mod windows;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use centile_sink::{prices::Prices, rollup::Tier};
use clickhouse::{Client, Row};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use models::{ModelsRequest, ModelsWhat};
pub use realtime::RealtimeRequest;
pub use trends::TrendsRequest;
pub use usage::{GroupBy, TopModelsRequest, UsageRequest};
pub use windows::WindowsRequest;

use crate::{catalog::Catalog, ApiError};

/// The parameters each endpoint takes.
pub fn trends_parameters() -> &'static [&'static str] {
    trends::PARAMETERS
}
pub fn usage_parameters() -> &'static [&'static str] {
    usage::STATS_PARAMETERS
}
pub fn top_models_parameters() -> &'static [&'static str] {
    usage::TOP_PARAMETERS
}
pub fn search_parameters() -> &'static [&'static str] {
    models::SEARCH_PARAMETERS
}
pub fn realtime_parameters() -> &'static [&'static str] {
    realtime::PARAMETERS
}

/// One checked question.
#[derive(Debug, Clone)]
pub enum Request {
    Trends(TrendsRequest),
    Usage(UsageRequest),
    TopModels(TopModelsRequest),
    Models(ModelsRequest),
    Realtime(RealtimeRequest),
    Windows(WindowsRequest),
}

/// The database and what answers need besides it.
#[derive(Debug, Clone)]
pub struct Queries {
    client: Client,
    database: String,
    catalog: Catalog,
    /// The price book the models' prices come from (the sink's).
    prices: Prices,
    /// Recent data tokens and watermarks, shared by concurrent requests
    /// (see [`Queries::with_token_ttl`]).
    memo: Arc<Mutex<HashMap<String, (Instant, String)>>>,
    token_ttl: Duration,
}

/// At most this many remembered tokens; older ones are dropped wholesale.
const MEMO_LIMIT: usize = 10_000;

/// A stored table and the filter an answer reads it with.
#[derive(Debug, Clone)]
pub struct Source {
    pub table: String,
    pub filter: String,
}

impl Queries {
    pub fn new(client: Client, database: &str, catalog: Catalog) -> Self {
        Self {
            client,
            database: database.to_owned(),
            catalog,
            prices: Prices::fixed(&Default::default()),
            memo: Arc::default(),
            token_ttl: Duration::ZERO,
        }
    }

    /// Lists the models' prices from `prices` (none: every model's
    /// `prices` is empty).
    pub fn with_prices(mut self, prices: Prices) -> Self {
        self.prices = prices;
        self
    }

    /// The price book, read again if its file changed (a broken change is
    /// logged and the last good book kept, as in the sink).
    pub(crate) fn price_book(&self) -> Arc<centile_events::PriceBook> {
        if let Err(e) = self.prices.refresh() {
            tracing::warn!(error = %e, "price book change refused; the last good book stays");
        }
        self.prices.book()
    }

    /// Reuses a data token (and the watermark) computed less than `ttl`
    /// ago, so many requests for the same data cost one token query per
    /// `ttl` instead of one each. An answer then reflects every
    /// restatement committed at least `ttl` before the request; zero
    /// computes the token for every request.
    pub fn with_token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = ttl;
        self
    }

    /// `compute`'s result, or the one remembered under `key` if it is
    /// younger than the token TTL.
    async fn memoized<F, Fut>(&self, key: &str, compute: F) -> Result<String, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<String, ApiError>>,
    {
        if self.token_ttl.is_zero() {
            return compute().await;
        }
        if let Some((at, value)) = self.memo.lock().expect("memo lock").get(key) {
            if at.elapsed() < self.token_ttl {
                return Ok(value.clone());
            }
        }
        let value = compute().await?;
        let mut memo = self.memo.lock().expect("memo lock");
        if memo.len() >= MEMO_LIMIT {
            memo.clear();
        }
        memo.insert(key.to_owned(), (Instant::now(), value.clone()));
        Ok(value)
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The answer, as the JSON the API serves.
    pub async fn answer(&self, request: &Request) -> Result<Value, ApiError> {
        match request {
            Request::Trends(r) => trends::answer(self, r).await,
            Request::Usage(r) => usage::stats(self, r).await,
            Request::TopModels(r) => usage::top_models(self, r).await,
            Request::Models(r) => models::answer(self, r).await,
            Request::Realtime(r) => realtime::answer(self, r).await,
            Request::Windows(r) => windows::answer(self, r).await,
        }
    }

    /// A token that changes whenever the answer could: the count, revision
    /// sum and latest update of the stored rows the answer reads, and the
    /// watermark as far as it decides `is_final` in the answer. `None`: the
    /// answer is never cached (the live view).
    pub async fn token(&self, request: &Request) -> Result<Option<String>, ApiError> {
        let (sources, final_until) = match request {
            Request::Trends(r) => (trends::sources(self, r), Some(r.end)),
            Request::Usage(r) => (usage::stats_sources(self, r), None),
            Request::TopModels(r) => (usage::top_sources(self, r), None),
            Request::Models(r) => (models::sources(self, r), None),
            Request::Windows(r) => (windows::sources(self, r), Some(i64::MAX)),
            Request::Realtime(_) => return Ok(None),
        };
        let mut parts = Vec::new();
        for source in &sources {
            let sql = format!(
                "SELECT count(), toUInt64(sum(revision)), toUInt32(max(updated_at)) FROM {}.{}{}",
                self.database,
                source.table,
                where_clause(&source.filter)
            );
            let part = self
                .memoized(&sql, || async {
                    let (count, revisions, updated): (u64, u64, u32) =
                        self.client.query(&sql).fetch_one().await?;
                    Ok(format!("{}:{count}:{revisions}:{updated}", source.table))
                })
                .await?;
            parts.push(part);
        }
        if let Request::Models(r) = request {
            // Prices come from the book, as in effect on the request's UTC
            // day: a new day may bring a new version, and the token is the
            // ETag a client revalidates with.
            parts.push(format!("book:{}:{}", self.price_book().digest(), r.day));
        }
        if let Some(until) = final_until {
            // Past `until`, a later watermark changes no `is_final` flag.
            let watermark = self.low_watermark().await?.map(|w| w.min(until));
            parts.push(format!("wm:{watermark:?}"));
        }
        let digest = Sha256::digest(parts.join("|").as_bytes());
        Ok(Some(hex::encode(&digest[..12])))
    }

    /// The lowest watermark over every source partition (Unix seconds):
    /// windows ending at or before it are final.
    pub async fn low_watermark(&self) -> Result<Option<i64>, ApiError> {
        let remembered = self
            .memoized("low_watermark", || async {
                Ok(self
                    .fetch_low_watermark()
                    .await?
                    .map_or(String::new(), |w| w.to_string()))
            })
            .await?;
        Ok(remembered.parse().ok())
    }

    async fn fetch_low_watermark(&self) -> Result<Option<i64>, ApiError> {
        #[derive(Row, Deserialize)]
        struct Low {
            partitions: u64,
            low: u32,
        }
        let sql = format!(
            "SELECT count(), toUInt32(min(w)) FROM (SELECT source_topic, source_partition, min(watermark) AS w FROM {}.source_watermarks FINAL GROUP BY source_topic, source_partition)",
            self.database
        );
        let low: Low = self.client.query(&sql).fetch_one().await?;
        Ok((low.partitions > 0).then_some(i64::from(low.low)))
    }

    async fn fetch<T>(&self, sql: &str) -> Result<Vec<T>, ApiError>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        Ok(self.client.query(sql).fetch_all::<T>().await?)
    }
}

/// ` WHERE <filter>`, or nothing.
fn where_clause(filter: &str) -> String {
    if filter.is_empty() {
        String::new()
    } else {
        format!(" WHERE {filter}")
    }
}

/// A ClickHouse string literal (the sink's one definition). Values are
/// checked free of control characters first ([`crate::params`]).
pub use centile_sink::rollup::pricing::literal;

/// `window_start` within `[start, end)` and each given `column = value`.
fn range_filter(start: i64, end: i64, equal: &[(&str, &Option<String>)]) -> String {
    let mut parts = vec![format!(
        "window_start >= toDateTime({start}, 'UTC') AND window_start < toDateTime({end}, 'UTC')"
    )];
    for (column, value) in equal {
        if let Some(value) = value {
            parts.push(format!("{column} = {}", literal(value)));
        }
    }
    parts.join(" AND ")
}

/// `start` rounded down and `end` rounded up to `tier`'s buckets.
pub fn snap(tier: Tier, start: i64, end: i64) -> (i64, i64) {
    let end_bucket = tier.bucket_of(end);
    let end = if end_bucket == end {
        end
    } else {
        end_bucket + tier.seconds()
    };
    (tier.bucket_of(start), end)
}

/// Checks `start < end` and that the range is at most `max_buckets` of `tier`.
pub fn check_range(tier: Tier, start: i64, end: i64, max_buckets: u64) -> Result<(), ApiError> {
    if start >= end {
        return Err(ApiError::bad("start", "must be before end"));
    }
    let buckets = ((end - start) / tier.seconds()) as u64;
    if buckets > max_buckets {
        return Err(ApiError::bad(
            "start",
            format!(
                "the range holds {buckets} {} buckets, at most {max_buckets} are answered; narrow it or pick a coarser granularity",
                tier.name()
            ),
        ));
    }
    Ok(())
}

/// How long ago a default range starts, per granularity.
pub fn default_span(tier: Tier) -> Duration {
    Duration::from_secs(match tier {
        Tier::Minute => 3_600,
        Tier::Hour => 86_400,
        Tier::Day => 30 * 86_400,
        Tier::Week => 26 * 7 * 86_400,
    })
}

/// A JSON number, or `null` for NaN and infinities.
fn number(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_cannot_break_out() {
        assert_eq!(literal("gpt-4o"), "'gpt-4o'");
        assert_eq!(literal("a'b\\c"), "'a\\'b\\\\c'");
        assert_eq!(literal("x\\'); DROP"), "'x\\\\\\'); DROP'");
        assert_eq!(literal("a?b"), "'a??b'");
    }

    #[test]
    fn ranges_snap_outwards() {
        assert_eq!(snap(Tier::Hour, 3_601, 7_201), (3_600, 10_800));
        assert_eq!(snap(Tier::Hour, 3_600, 7_200), (3_600, 7_200));
        assert!(check_range(Tier::Minute, 0, 60 * 101, 100).is_err());
        assert!(check_range(Tier::Minute, 60, 60, 100).is_err());
        assert!(check_range(Tier::Minute, 0, 60 * 100, 100).is_ok());
    }
}
