//! `GET /v1/realtime` (seed 001): the last 5 minutes of event time from the
//! raw usage events, which land within seconds. Each event id counts once,
//! even before ClickHouse has merged a replayed copy away.

use clickhouse::Row;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{literal, Queries};
use crate::{
    params::{format_time, Params},
    ApiError,
};

pub const WINDOW_SECONDS: i64 = 300;
pub const PARAMETERS: &[&str] = &["tenant_id"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealtimeRequest {
    pub tenant_id: Option<String>,
    /// The answer's `as_of` (Unix seconds).
    pub now: i64,
}

impl RealtimeRequest {
    pub fn parse(_p: &Params, tenant_id: Option<String>, now: i64) -> Result<Self, ApiError> {
        Ok(Self { tenant_id, now })
    }
}

#[derive(Debug, Row, Deserialize)]
struct Minute {
    minute: u32,
    count: u64,
}

#[derive(Debug, Row, Deserialize)]
struct Totals {
    events: u64,
    users: u64,
}

#[derive(Debug, Row, Deserialize)]
struct Pair {
    model_id: String,
    feature: String,
    count: u64,
}

pub async fn answer(q: &Queries, r: &RealtimeRequest) -> Result<Value, ApiError> {
    let since = r.now - WINDOW_SECONDS;
    let first_minute = since - since.rem_euclid(60);
    let tenant = r
        .tenant_id
        .as_deref()
        .map(|t| format!(" AND tenant_id = {}", literal(t)))
        .unwrap_or_default();
    let table = format!("{}.usage_events", q.database());
    let window = |from: i64| {
        format!(
            "occurred_at >= toDateTime({from}, 'UTC') AND occurred_at <= toDateTime({}, 'UTC'){tenant}",
            r.now
        )
    };
    let minutes: Vec<Minute> = q
        .fetch(&format!(
            "SELECT toUInt32(toStartOfMinute(occurred_at)) AS o_minute, toUInt64(uniqExact(event_id))
FROM {table} WHERE {} GROUP BY o_minute",
            window(first_minute)
        ))
        .await?;
    let totals: Totals = q
        .client()
        .query(&format!(
            // Aggregates of a Nullable column are Nullable on 18.16, which
            // RowBinary would read as a marker byte.
            "SELECT toUInt64(uniqExact(event_id)), toUInt64(uniqExactIf(assumeNotNull(user_id), isNotNull(user_id))) FROM {table} WHERE {}",
            window(since)
        ))
        .fetch_one()
        .await?;
    let pairs: Vec<Pair> = q
        .fetch(&format!(
            "SELECT model_id, feature, toUInt64(uniqExact(event_id)) AS o_count
FROM {table} WHERE {}
GROUP BY model_id, feature ORDER BY o_count DESC, model_id, feature LIMIT 5",
            window(since)
        ))
        .await?;
    let per_minute: Vec<Value> = (0..)
        .map(|i| first_minute + 60 * i)
        .take_while(|m| *m <= r.now)
        .map(|m| {
            let count = minutes
                .iter()
                .find(|x| i64::from(x.minute) == m)
                .map_or(0, |x| x.count);
            json!({"minute": format_time(m), "count": count})
        })
        .collect();
    Ok(json!({
        "as_of": format_time(r.now),
        "window_seconds": WINDOW_SECONDS,
        "total_events": totals.events,
        "events_per_minute": per_minute,
        "active_users": totals.users,
        "top_pairs": pairs.iter().map(|p| json!({"model_id": p.model_id, "feature": p.feature, "count": p.count})).collect::<Vec<_>>(),
    }))
}
