//! `GET /v1/usage/stats` (seed 000's shapes: per model, per day, per
//! feature) and `GET /v1/usage/top-models`, from the usage rollups at the
//! coarsest tier whose buckets fit the range exactly, and for top models
//! the per-model latency rows of the same days.

use std::collections::BTreeMap;

use centile_sink::rollup::{
    sql::{latest_rows, quantile_sql},
    tiers::COMPUTED_COST,
    Grouping, Kind, Rollup, Tier,
};
use clickhouse::Row;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{number, range_filter, Queries, Source};
use crate::{
    params::{format_date, format_time, Params},
    ApiError,
};

const NANOS: f64 = 1e9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Model,
    Day,
    Feature,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRequest {
    pub group_by: GroupBy,
    pub start: i64,
    pub end: i64,
    pub model_id: Option<String>,
    pub tenant_id: Option<String>,
}

pub const STATS_PARAMETERS: &[&str] = &["group_by", "model_id", "tenant_id", "start", "end"];
pub const TOP_PARAMETERS: &[&str] = &["limit", "days", "tenant_id"];

/// The last `days` UTC days, today included.
fn last_days(now: i64, days: i64) -> (i64, i64) {
    let today = Tier::Day.bucket_of(now);
    (today - (days - 1) * 86_400, today + 86_400)
}

/// The coarsest tier whose buckets tile `[start, end)` exactly.
fn fitting_tier(start: i64, end: i64) -> Tier {
    [Tier::Day, Tier::Hour]
        .into_iter()
        .find(|t| t.bucket_of(start) == start && t.bucket_of(end) == end)
        .unwrap_or(Tier::Minute)
}

impl UsageRequest {
    pub fn parse(p: &Params, tenant_id: Option<String>, now: i64) -> Result<Self, ApiError> {
        let group_by = match p.choice("group_by", &["model", "day", "feature"])? {
            Some("model") => GroupBy::Model,
            Some("day") => GroupBy::Day,
            Some(_) => GroupBy::Feature,
            None => return Err(ApiError::bad("group_by", "required: model, day or feature")),
        };
        let (default_start, default_end) = last_days(now, 30);
        let start = p.time("start")?.unwrap_or(default_start);
        let end = p.time("end")?.unwrap_or(default_end);
        let (start, end) = super::snap(Tier::Minute, start, end);
        super::check_range(Tier::Minute, start, end, u64::MAX)?;
        Ok(Self {
            group_by,
            start,
            end,
            model_id: p.text("model_id")?,
            tenant_id,
        })
    }

    fn tier(&self) -> Tier {
        fitting_tier(self.start, self.end)
    }

    fn filter(&self) -> String {
        range_filter(
            self.start,
            self.end,
            &[("model_id", &self.model_id), ("tenant_id", &self.tenant_id)],
        )
    }

    /// The stored usage per tenant and feature when the answer is by
    /// feature over whole days of every model; the full rows otherwise.
    fn rollup(&self) -> Rollup {
        let by_feature = self.group_by == GroupBy::Feature
            && self.model_id.is_none()
            && self.tier() == Tier::Day;
        Rollup {
            kind: Kind::Usage,
            grouping: if by_feature {
                Grouping::Feature
            } else {
                Grouping::Full
            },
        }
    }
}

pub fn stats_sources(_q: &Queries, r: &UsageRequest) -> Vec<Source> {
    vec![Source {
        table: r.rollup().table(r.tier()),
        filter: r.filter(),
    }]
}

/// The cost columns of a usage answer's grouped rows: what the events
/// reported and what the price book computed for the rest, in
/// nano-dollars, over `v_` columns of the latest rows.
fn costs_sql() -> String {
    format!("toInt64(sum(v_cost_usd_nanos_sum)) AS o_reported, toInt64(sum(v_{COMPUTED_COST})) AS o_computed")
}

/// Reported and computed cost, in nano-dollars.
#[derive(Debug, Default, Clone, Copy)]
struct Cost {
    reported: i64,
    computed: i64,
}

impl Cost {
    fn add(&mut self, other: Cost) {
        self.reported += other.reported;
        self.computed += other.computed;
    }

    /// The answer's fields: `<total>` (reported plus computed), and
    /// `reported_cost_usd` and `computed_cost_usd` apart.
    fn fields(self, total: &str) -> [(String, Value); 3] {
        let usd = |nanos: i64| number(nanos as f64 / NANOS);
        [
            (total.to_owned(), usd(self.reported + self.computed)),
            ("reported_cost_usd".into(), usd(self.reported)),
            ("computed_cost_usd".into(), usd(self.computed)),
        ]
    }
}

/// `object` with the cost fields added.
fn with_cost(mut object: Value, cost: Cost, total: &str) -> Value {
    if let Value::Object(map) = &mut object {
        map.extend(cost.fields(total));
    }
    object
}

#[derive(Debug, Row, Deserialize)]
struct Group {
    key: String,
    sub: String,
    requests: u64,
    reported: i64,
    computed: i64,
}

impl Group {
    fn cost(&self) -> Cost {
        Cost {
            reported: self.reported,
            computed: self.computed,
        }
    }
}

pub async fn stats(q: &Queries, r: &UsageRequest) -> Result<Value, ApiError> {
    let (key, sub) = match r.group_by {
        GroupBy::Model => ("model_id", "feature"),
        GroupBy::Day => ("toString(toUInt32(toStartOfDay(window_start)))", "''"),
        GroupBy::Feature => ("feature", "''"),
    };
    let latest = latest_rows(q.database(), r.rollup(), r.tier(), &r.filter());
    let sql = format!(
        "SELECT toString({key}) AS o_key, toString({sub}) AS o_sub, toUInt64(sum(v_requests)), {costs}
FROM ({latest})
GROUP BY o_key, o_sub",
        costs = costs_sql()
    );
    let groups: Vec<Group> = q.fetch(&sql).await?;
    let rows: Vec<Value> = match r.group_by {
        GroupBy::Model => {
            let mut models: BTreeMap<&str, (u64, BTreeMap<&str, u64>, Cost)> = BTreeMap::new();
            for g in &groups {
                let m = models.entry(&g.key).or_default();
                m.0 += g.requests;
                *m.1.entry(&g.sub).or_default() += g.requests;
                m.2.add(g.cost());
            }
            let mut models: Vec<_> = models.into_iter().collect();
            models.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
            models
                .into_iter()
                .map(|(model, (total, features, cost))| {
                    with_cost(
                        json!({"model_id": model, "total": total, "by_feature": features}),
                        cost,
                        "total_cost_usd",
                    )
                })
                .collect()
        }
        GroupBy::Day => {
            let mut days: Vec<(i64, &Group)> = groups
                .iter()
                .map(|g| (g.key.parse().unwrap_or(0), g))
                .collect();
            days.sort_by_key(|(day, _)| *day);
            days.into_iter()
                .map(|(day, g)| {
                    with_cost(
                        json!({"date": format_date(day), "count": g.requests}),
                        g.cost(),
                        "cost_usd",
                    )
                })
                .collect()
        }
        GroupBy::Feature => {
            let mut features: Vec<&Group> = groups.iter().collect();
            features.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.key.cmp(&b.key)));
            features
                .into_iter()
                .map(|g| {
                    with_cost(
                        json!({"feature": g.key, "count": g.requests}),
                        g.cost(),
                        "cost_usd",
                    )
                })
                .collect()
        }
    };
    Ok(json!({
        "group_by": match r.group_by { GroupBy::Model => "model", GroupBy::Day => "day", GroupBy::Feature => "feature" },
        "start": format_time(r.start),
        "end": format_time(r.end),
        "rows": rows,
    }))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopModelsRequest {
    pub limit: u64,
    pub days: i64,
    pub start: i64,
    pub end: i64,
    pub tenant_id: Option<String>,
}

impl TopModelsRequest {
    pub fn parse(p: &Params, tenant_id: Option<String>, now: i64) -> Result<Self, ApiError> {
        let limit = p.number("limit", 1, 100)?.unwrap_or(10);
        let days = p.number("days", 1, 730)?.unwrap_or(30) as i64;
        let (start, end) = last_days(now, days);
        Ok(Self {
            limit,
            days,
            start,
            end,
            tenant_id,
        })
    }

    /// Latency per model: the stored per-model rows, or the full rows
    /// when one tenant's share is asked for.
    fn latency(&self) -> Rollup {
        Rollup {
            kind: Kind::Latency,
            grouping: if self.tenant_id.is_some() {
                Grouping::Full
            } else {
                Grouping::Model
            },
        }
    }

    fn filter(&self) -> String {
        range_filter(self.start, self.end, &[("tenant_id", &self.tenant_id)])
    }
}

pub fn top_sources(_q: &Queries, r: &TopModelsRequest) -> Vec<Source> {
    vec![
        Source {
            table: Rollup::full(Kind::Usage).table(Tier::Day),
            filter: r.filter(),
        },
        Source {
            table: r.latency().table(Tier::Day),
            filter: r.filter(),
        },
    ]
}

#[derive(Debug, Row, Deserialize)]
struct ModelUsage {
    model_id: String,
    provider: String,
    requests: u64,
    reported: i64,
    computed: i64,
    input_tokens: i64,
    output_tokens: i64,
}

#[derive(Debug, Row, Deserialize)]
struct ModelLatency {
    model_id: String,
    provider: String,
    calls: u64,
    errors: u64,
    p50: f64,
    p95: f64,
    p99: f64,
}

pub async fn top_models(q: &Queries, r: &TopModelsRequest) -> Result<Value, ApiError> {
    let usage_rows = latest_rows(
        q.database(),
        Rollup::full(Kind::Usage),
        Tier::Day,
        &r.filter(),
    );
    let usage: Vec<ModelUsage> = q
        .fetch(&format!(
            "SELECT model_id, provider, toUInt64(sum(v_requests)), {costs},
    toInt64(sum(v_input_tokens_sum)), toInt64(sum(v_output_tokens_sum))
FROM ({usage_rows})
GROUP BY model_id, provider",
            costs = costs_sql()
        ))
        .await?;
    let latency_rows = latest_rows(q.database(), r.latency(), Tier::Day, &r.filter());
    let quantiles: Vec<String> = [0.5, 0.95, 0.99]
        .iter()
        .map(|level| format!("toFloat64({})", quantile_sql("o_sketch", *level)))
        .collect();
    let latency: Vec<ModelLatency> = q
        .fetch(&format!(
            "SELECT model_id, provider, toUInt64(o_calls), toUInt64(o_errors), {quantiles}
FROM
(
    SELECT model_id, provider, sum(v_calls) AS o_calls, sum(v_errors) AS o_errors,
        sumMap(v_sketch_keys, v_sketch_counts, v_sketch_sums) AS o_sketch
    FROM ({latency_rows})
    GROUP BY model_id, provider
    HAVING o_calls > 0
)",
            quantiles = quantiles.join(", ")
        ))
        .await?;

    #[derive(Default)]
    struct Top<'a> {
        usage: Option<&'a ModelUsage>,
        latency: Option<&'a ModelLatency>,
    }
    let mut models: BTreeMap<(&str, &str), Top> = BTreeMap::new();
    for u in &usage {
        models.entry((&u.model_id, &u.provider)).or_default().usage = Some(u);
    }
    for l in &latency {
        models
            .entry((&l.model_id, &l.provider))
            .or_default()
            .latency = Some(l);
    }
    let mut ranked: Vec<_> = models.into_iter().collect();
    let requests = |t: &Top| t.usage.map_or(0, |u| u.requests);
    let calls = |t: &Top| t.latency.map_or(0, |l| l.calls);
    ranked.sort_by(|(ka, a), (kb, b)| {
        requests(b)
            .cmp(&requests(a))
            .then(calls(b).cmp(&calls(a)))
            .then(ka.cmp(kb))
    });
    let rows: Vec<Value> = ranked
        .into_iter()
        .take(r.limit as usize)
        .map(|((model, provider), t)| {
            let lat = |f: fn(&ModelLatency) -> f64| t.latency.map_or(Value::Null, |l| number(f(l)));
            with_cost(
                json!({
                    "model_id": model,
                    "provider": provider,
                    "requests": requests(&t),
                    "calls": calls(&t),
                    "error_rate": t.latency.map_or(Value::Null, |l| number(l.errors as f64 / l.calls.max(1) as f64)),
                    "input_tokens": t.usage.map_or(0, |u| u.input_tokens),
                    "output_tokens": t.usage.map_or(0, |u| u.output_tokens),
                    "p50_response_time": lat(|l| l.p50),
                    "p95_response_time": lat(|l| l.p95),
                    "p99_response_time": lat(|l| l.p99),
                }),
                t.usage.map_or(Cost::default(), |u| Cost {
                    reported: u.reported,
                    computed: u.computed,
                }),
                "cost_usd",
            )
        })
        .collect();
    Ok(json!({
        "days": r.days,
        "start": format_time(r.start),
        "end": format_time(r.end),
        "rows": rows,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarsest_tier_that_tiles_the_range() {
        assert_eq!(fitting_tier(86_400, 3 * 86_400), Tier::Day);
        assert_eq!(fitting_tier(86_400, 86_400 + 3_600), Tier::Hour);
        assert_eq!(fitting_tier(60, 3_600), Tier::Minute);
        assert_eq!(last_days(86_400 * 10 + 5, 1), (86_400 * 10, 86_400 * 11));
        assert_eq!(last_days(86_400 * 10 + 5, 30).0, 86_400 * 10 - 29 * 86_400);
    }
}
