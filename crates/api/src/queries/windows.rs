//! `GET /v1/windows/status`: per tier, over a recent span, how many windows
//! hold data and how many of them are final (the watermark has passed
//! their end on every source partition).

use centile_sink::rollup::{Kind, Rollup, Tier};
use clickhouse::Row;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Queries, Source};
use crate::{params::format_time, ApiError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowsRequest {
    /// The start of the current minute: the spans move once a minute, so
    /// requests within one minute share a cache entry.
    pub now: i64,
}

impl WindowsRequest {
    pub fn at(now: i64) -> Self {
        Self {
            now: now - now.rem_euclid(60),
        }
    }
}

/// How far back each tier is reported.
fn since(tier: Tier, now: i64) -> i64 {
    let span = match tier {
        Tier::Minute => 3_600,
        Tier::Hour => 48 * 3_600,
        Tier::Day => 30 * 86_400,
        Tier::Week => 26 * 7 * 86_400,
    };
    tier.bucket_of(now - span)
}

fn filter(tier: Tier, now: i64) -> String {
    format!("window_start >= toDateTime({}, 'UTC')", since(tier, now))
}

pub fn sources(_q: &Queries, r: &WindowsRequest) -> Vec<Source> {
    // The rows each tier's count reads: its recent span only.
    let now = r.now;
    Tier::ALL
        .into_iter()
        .flat_map(|tier| {
            Kind::ALL.into_iter().map(move |kind| Source {
                table: Rollup::full(kind).table(tier),
                filter: filter(tier, now),
            })
        })
        .collect()
}

#[derive(Debug, Row, Deserialize)]
struct Counts {
    windows: u64,
    finals: u64,
    latest_final_end: u32,
    oldest_open_start: u32,
}

pub async fn answer(q: &Queries, r: &WindowsRequest) -> Result<Value, ApiError> {
    let watermark = q.low_watermark().await?;
    // No watermark yet: nothing is final.
    let wm = watermark.unwrap_or(0);
    let mut tiers = Vec::new();
    for tier in Tier::ALL {
        let branches: Vec<String> = Kind::ALL
            .into_iter()
            .map(|kind| {
                format!(
                    "SELECT window_start, window_end FROM {}.{} WHERE {}",
                    q.database(),
                    Rollup::full(kind).table(tier),
                    filter(tier, r.now)
                )
            })
            .collect();
        let c: Counts = q
            .client()
            .query(&format!(
                "SELECT count(), countIf(o_end <= {wm}), toUInt32(maxIf(o_end, o_end <= {wm})), toUInt32(minIf(o_start, o_end > {wm}))
FROM
(
    SELECT toUInt32(window_start) AS o_start, max(toUInt32(window_end)) AS o_end
    FROM ({})
    GROUP BY o_start
)",
                branches.join(" UNION ALL ")
            ))
            .fetch_one()
            .await?;
        let time_or_null = |t: u32, present: bool| {
            if present {
                Value::from(format_time(t.into()))
            } else {
                Value::Null
            }
        };
        tiers.push(json!({
            "tier": tier.name(),
            "since": format_time(since(tier, r.now)),
            "windows": c.windows,
            "final": c.finals,
            "open": c.windows - c.finals,
            "latest_final_end": time_or_null(c.latest_final_end, c.finals > 0),
            "oldest_open_start": time_or_null(c.oldest_open_start, c.windows > c.finals),
        }));
    }
    Ok(json!({
        "low_watermark": watermark.map(format_time),
        "tiers": tiers,
    }))
}
