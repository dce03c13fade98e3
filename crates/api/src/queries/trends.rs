//! `GET /v1/performance/trends`: one row per bucket with calls, success
//! rate, response-time statistics and percentiles, from the coarsest stored
//! grouping that still holds every filter. Percentiles over the dimensions
//! left open come from the merged sketches of the rows (`sumMap` of bucket
//! counts and sums), never from averaged percentiles.

use centile_sink::rollup::{
    sql::{latest_rows, quantile_sql},
    Grouping, Kind, Rollup, Tier,
};
use clickhouse::Row;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{number, range_filter, Queries, Source};
use crate::{
    params::{format_time, Params},
    ApiError,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrendsRequest {
    pub tier: Tier,
    pub start: i64,
    pub end: i64,
    pub model_id: Option<String>,
    pub tool: Option<String>,
    pub provider: Option<String>,
    pub parameter_hash: Option<String>,
    pub tenant_id: Option<String>,
}

pub const PARAMETERS: &[&str] = &[
    "model_id",
    "tool",
    "provider",
    "parameter_hash",
    "tenant_id",
    "start",
    "end",
    "granularity",
];

impl TrendsRequest {
    /// `tenant_id` is the one already checked against the key.
    pub fn parse(
        p: &Params,
        tenant_id: Option<String>,
        now: i64,
        max_buckets: u64,
    ) -> Result<Self, ApiError> {
        let tier = p.tier("granularity")?.unwrap_or(Tier::Hour);
        let end = p.time("end")?.unwrap_or(now);
        let start = p
            .time("start")?
            .unwrap_or(end - super::default_span(tier).as_secs() as i64);
        let (start, end) = super::snap(tier, start, end);
        super::check_range(tier, start, end, max_buckets)?;
        Ok(Self {
            tier,
            start,
            end,
            model_id: p.text("model_id")?,
            tool: p.text("tool")?,
            provider: p.text("provider")?,
            parameter_hash: p.text("parameter_hash")?,
            tenant_id,
        })
    }

    /// The coarsest stored rollup holding every filter at this tier.
    pub fn rollup(&self) -> Rollup {
        let latency = |grouping| Rollup {
            kind: Kind::Latency,
            grouping,
        };
        let tier = self.tier;
        let coarse = tier != Tier::Minute;
        if self.tenant_id.is_some() || self.parameter_hash.is_some() {
            latency(Grouping::Full)
        } else if self.model_id.is_none()
            && self.tool.is_none()
            && self.provider.is_none()
            && matches!(tier, Tier::Minute | Tier::Hour)
        {
            latency(Grouping::Overall)
        } else if self.tool.is_none() && matches!(tier, Tier::Day | Tier::Week) {
            latency(Grouping::Model)
        } else if coarse {
            latency(Grouping::ModelTool)
        } else {
            latency(Grouping::Full)
        }
    }

    fn filter(&self) -> String {
        let rollup = self.rollup();
        let all = [
            ("model_id", &self.model_id),
            ("tool", &self.tool),
            ("provider", &self.provider),
            ("parameter_hash", &self.parameter_hash),
            ("tenant_id", &self.tenant_id),
        ];
        let held: Vec<(&str, &Option<String>)> = all
            .into_iter()
            .filter(|(column, _)| rollup.dimensions().contains(column))
            .collect();
        range_filter(self.start, self.end, &held)
    }
}

pub fn sources(_q: &Queries, r: &TrendsRequest) -> Vec<Source> {
    vec![Source {
        table: r.rollup().table(r.tier),
        filter: r.filter(),
    }]
}

#[derive(Debug, Row, Deserialize)]
struct Bucket {
    start: u32,
    end: u32,
    calls: u64,
    successes: u64,
    rt_sum: f64,
    rt_min: f64,
    rt_max: f64,
    input_sum: i64,
    input_count: u64,
    output_sum: i64,
    output_count: u64,
    p50: f64,
    p95: f64,
    p99: f64,
}

pub fn sql(database: &str, r: &TrendsRequest) -> String {
    let latest = latest_rows(database, r.rollup(), r.tier, &r.filter());
    let quantiles: Vec<String> = [0.5, 0.95, 0.99]
        .iter()
        .map(|level| format!("toFloat64({})", quantile_sql("o_sketch", *level)))
        .collect();
    format!(
        "SELECT toUInt32(o_start), toUInt32(o_end), toUInt64(o_calls), toUInt64(o_successes),
    toFloat64(o_rt_sum), toFloat64(o_rt_min), toFloat64(o_rt_max),
    toInt64(o_input_sum), toUInt64(o_input_count), toInt64(o_output_sum), toUInt64(o_output_count),
    {quantiles}
FROM
(
    SELECT window_start AS o_start, max(v_window_end) AS o_end,
        sum(v_calls) AS o_calls, sum(v_successes) AS o_successes,
        sum(v_rt_sum) AS o_rt_sum, min(v_rt_min) AS o_rt_min, max(v_rt_max) AS o_rt_max,
        sum(v_input_tokens_sum) AS o_input_sum, sum(v_input_tokens_count) AS o_input_count,
        sum(v_output_tokens_sum) AS o_output_sum, sum(v_output_tokens_count) AS o_output_count,
        sumMap(v_sketch_keys, v_sketch_counts, v_sketch_sums) AS o_sketch
    FROM ({latest})
    GROUP BY window_start
    HAVING o_calls > 0
)
ORDER BY o_start",
        quantiles = quantiles.join(", "),
    )
}

pub async fn answer(q: &Queries, r: &TrendsRequest) -> Result<Value, ApiError> {
    let watermark = q.low_watermark().await?;
    let buckets: Vec<Bucket> = q.fetch(&sql(q.database(), r)).await?;
    let rows: Vec<Value> = buckets
        .iter()
        .map(|b| {
            let calls = b.calls.max(1) as f64;
            let avg = |sum: i64, count: u64| {
                if count == 0 {
                    Value::Null
                } else {
                    number(sum as f64 / count as f64)
                }
            };
            json!({
                "time_bucket": format_time(b.start.into()),
                "call_count": b.calls,
                "success_rate": number(b.successes as f64 / calls),
                "avg_response_time": number(b.rt_sum / calls),
                "min_response_time": number(b.rt_min),
                "max_response_time": number(b.rt_max),
                "p50_response_time": number(b.p50),
                "p95_response_time": number(b.p95),
                "p99_response_time": number(b.p99),
                "avg_input_tokens": avg(b.input_sum, b.input_count),
                "avg_output_tokens": avg(b.output_sum, b.output_count),
                "is_final": watermark.is_some_and(|w| i64::from(b.end) <= w),
            })
        })
        .collect();
    Ok(json!({
        "granularity": r.tier.name(),
        "start": format_time(r.start),
        "end": format_time(r.end),
        "rows": rows,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(tier: Tier) -> TrendsRequest {
        TrendsRequest {
            tier,
            start: 0,
            end: 86_400,
            model_id: None,
            tool: None,
            provider: None,
            parameter_hash: None,
            tenant_id: None,
        }
    }

    #[test]
    fn the_coarsest_grouping_that_holds_the_filters() {
        let table = |r: &TrendsRequest| r.rollup().table(r.tier);
        assert_eq!(table(&request(Tier::Minute)), "latency_overall_minute");
        assert_eq!(table(&request(Tier::Day)), "latency_by_model_day");
        let model = TrendsRequest {
            model_id: Some("m".into()),
            ..request(Tier::Hour)
        };
        assert_eq!(table(&model), "latency_by_model_tool_hour");
        let tool = TrendsRequest {
            tool: Some("t".into()),
            ..request(Tier::Week)
        };
        assert_eq!(table(&tool), "latency_by_model_tool_week");
        let tenant = TrendsRequest {
            tenant_id: Some("acme".into()),
            model_id: Some("m".into()),
            ..request(Tier::Day)
        };
        assert_eq!(table(&tenant), "latency_rollup_day");
        assert!(tenant.filter().contains("tenant_id = 'acme'"));
        assert!(tenant.filter().contains("model_id = 'm'"));
        let minute_model = TrendsRequest {
            model_id: Some("m".into()),
            ..request(Tier::Minute)
        };
        assert_eq!(table(&minute_model), "latency_rollup_minute");
    }
}
