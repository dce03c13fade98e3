//! Exact answers computed from the raw events a test published, and the
//! comparison of ClickHouse's views against them.

use std::collections::BTreeMap;

use centile_events::{Event, ParameterHasher};
use centile_sink::rollup::{
    sql::rollup_views, tiers::SCHEMA_VERSION, Grouping, Kind, Rollup, Tier,
};
use clickhouse::Row;
use serde::Deserialize;

/// A latency view row's identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LatencyKey {
    pub window_start: u32,
    pub tenant_id: String,
    pub model_id: String,
    pub provider: String,
    pub tool: String,
    pub parameter_hash: String,
}

/// A usage view row's identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UsageKey {
    pub window_start: u32,
    pub tenant_id: String,
    pub model_id: String,
    pub provider: String,
    pub feature: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencyTruth {
    pub calls: u64,
    pub successes: u64,
    pub errors: u64,
    pub min: f64,
    pub max: f64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub values: Vec<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageTruth {
    pub requests: u64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd_nanos: i64,
    /// Token classes: cache-read and cache-write input, reasoning output.
    pub token_classes: [i64; 3],
    /// Requests without a cost and their tokens: what the book prices.
    pub unpriced: centile_events::Unpriced,
}

/// Exact per-window aggregates of every event added.
#[derive(Debug, Default)]
pub struct Truth {
    pub latency: BTreeMap<Tier, BTreeMap<LatencyKey, LatencyTruth>>,
    pub usage: BTreeMap<Tier, BTreeMap<UsageKey, UsageTruth>>,
    pub latency_events: u64,
    pub usage_events: u64,
    /// The sink's price book: the views' total adds its cost of the
    /// events that carried none (empty: nothing is priced).
    pub prices: centile_events::PriceBook,
    hasher: ParameterHasher,
}

impl Truth {
    pub fn add(&mut self, event: &Event) {
        for g in Tier::ALL {
            let window_start = g.bucket_of(event.occurred_at().div_euclid(1000)) as u32;
            match event {
                Event::Latency(e) => {
                    let key = LatencyKey {
                        window_start,
                        tenant_id: e.tenant_id.clone(),
                        model_id: e.model_id.clone(),
                        provider: e.provider.clone(),
                        tool: e.tool.clone(),
                        parameter_hash: self.hasher.select(&e.parameters).hash,
                    };
                    let t = self
                        .latency
                        .entry(g)
                        .or_default()
                        .entry(key)
                        .or_insert_with(|| LatencyTruth {
                            min: f64::INFINITY,
                            max: f64::NEG_INFINITY,
                            ..LatencyTruth::default()
                        });
                    t.calls += 1;
                    t.successes += u64::from(e.success);
                    t.errors += u64::from(!e.success);
                    t.min = t.min.min(e.response_time_ms);
                    t.max = t.max.max(e.response_time_ms);
                    t.input_tokens += e.input_tokens.unwrap_or(0);
                    t.output_tokens += e.output_tokens.unwrap_or(0);
                    t.values.push(e.response_time_ms);
                }
                Event::Usage(e) => {
                    let key = UsageKey {
                        window_start,
                        tenant_id: e.tenant_id.clone(),
                        model_id: e.model_id.clone(),
                        provider: e.provider.clone(),
                        feature: e.feature.clone(),
                    };
                    let t = self.usage.entry(g).or_default().entry(key).or_default();
                    t.requests += 1;
                    t.input_tokens += e.input_tokens;
                    t.output_tokens += e.output_tokens;
                    match e.cost_usd_nanos {
                        Some(cost) => t.cost_usd_nanos += cost,
                        None => t.unpriced.add(e),
                    }
                    for (sum, class) in t.token_classes.iter_mut().zip([
                        e.cache_read_input_tokens,
                        e.cache_write_input_tokens,
                        e.reasoning_output_tokens,
                    ]) {
                        *sum += class.unwrap_or(0);
                    }
                }
            }
        }
        match event {
            Event::Latency(_) => self.latency_events += 1,
            Event::Usage(_) => self.usage_events += 1,
        }
    }

    /// Sorts every window's values, for quantile lookups.
    pub fn seal(&mut self) {
        for windows in self.latency.values_mut() {
            for t in windows.values_mut() {
                t.values.sort_by(f64::total_cmp);
            }
        }
    }
}

/// A row of `latency_minute`, `latency_hourly`, `latency_daily` or `latency_weekly`.
#[derive(Debug, Clone, Row, Deserialize)]
pub struct LatencyViewRow {
    pub window_start: u32,
    pub tenant_id: String,
    pub model_id: String,
    pub provider: String,
    pub tool: String,
    pub parameter_hash: String,
    pub call_count: u64,
    pub success_count: u64,
    pub error_count: u64,
    pub min_response_time: f64,
    pub max_response_time: f64,
    pub p50_response_time: f64,
    pub p95_response_time: f64,
    pub p99_response_time: f64,
    pub total_input_tokens: i64,
    pub total_output_tokens: i64,
}

/// A row of `usage_minute`, `usage_hourly`, `usage_daily` or `usage_weekly`, cost as text.
#[derive(Debug, Clone, Row, Deserialize)]
pub struct UsageViewRow {
    pub window_start: u32,
    pub tenant_id: String,
    pub model_id: String,
    pub provider: String,
    pub feature: String,
    pub request_count: u64,
    pub total_input_tokens: i64,
    pub total_output_tokens: i64,
    pub total_cost_usd: String,
    pub total_cache_read_input_tokens: i64,
    pub total_cache_write_input_tokens: i64,
    pub total_reasoning_output_tokens: i64,
}

pub fn latency_view(g: Tier) -> String {
    g.view(Kind::Latency)
}

pub fn usage_view(g: Tier) -> String {
    g.view(Kind::Usage)
}

pub async fn fetch_latency(
    client: &clickhouse::Client,
    g: Tier,
) -> BTreeMap<LatencyKey, LatencyViewRow> {
    let sql = format!(
        "SELECT window_start, tenant_id, model_id, provider, tool, parameter_hash, call_count, \
         success_count, error_count, min_response_time, max_response_time, p50_response_time, \
         p95_response_time, p99_response_time, total_input_tokens, total_output_tokens FROM {}",
        latency_view(g)
    );
    let rows: Vec<LatencyViewRow> = client
        .query(&sql)
        .fetch_all()
        .await
        .expect("latency view query");
    rows.into_iter()
        .map(|r| {
            let key = LatencyKey {
                window_start: r.window_start,
                tenant_id: r.tenant_id.clone(),
                model_id: r.model_id.clone(),
                provider: r.provider.clone(),
                tool: r.tool.clone(),
                parameter_hash: r.parameter_hash.clone(),
            };
            (key, r)
        })
        .collect()
}

pub async fn fetch_usage(client: &clickhouse::Client, g: Tier) -> BTreeMap<UsageKey, UsageViewRow> {
    let sql = format!(
        "SELECT window_start, tenant_id, model_id, provider, feature, request_count, \
         total_input_tokens, total_output_tokens, toString(total_cost_usd), \
         total_cache_read_input_tokens, total_cache_write_input_tokens, \
         total_reasoning_output_tokens FROM {}",
        usage_view(g)
    );
    let rows: Vec<UsageViewRow> = client
        .query(&sql)
        .fetch_all()
        .await
        .expect("usage view query");
    rows.into_iter()
        .map(|r| {
            let key = UsageKey {
                window_start: r.window_start,
                tenant_id: r.tenant_id.clone(),
                model_id: r.model_id.clone(),
                provider: r.provider.clone(),
                feature: r.feature.clone(),
            };
            (key, r)
        })
        .collect()
}

/// Parses a decimal dollar amount (`"12.5"`, `"12.500000000"`) into nanos exactly.
pub fn dollars_to_nanos(text: &str) -> i64 {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    assert!(fraction.len() <= 9, "more than 9 decimals in {text}");
    let fraction = format!("{fraction:0<9}");
    whole.parse::<i64>().expect("whole dollars") * 1_000_000_000
        + fraction.parse::<i64>().expect("nanos")
}

/// Checks every count, sum, min and max of every view row against the truth,
/// and that the views hold no extra rows. Percentiles are checked separately.
pub async fn assert_exact_aggregates(client: &clickhouse::Client, truth: &Truth) {
    for g in Tier::ALL {
        let rows = fetch_latency(client, g).await;
        let expected = &truth.latency[&g];
        assert_eq!(rows.len(), expected.len(), "{} row count", latency_view(g));
        for (key, t) in expected {
            let row = rows
                .get(key)
                .unwrap_or_else(|| panic!("{} lacks {key:?}", latency_view(g)));
            let got = (
                row.call_count,
                row.success_count,
                row.error_count,
                row.total_input_tokens,
                row.total_output_tokens,
            );
            let want = (
                t.calls,
                t.successes,
                t.errors,
                t.input_tokens,
                t.output_tokens,
            );
            assert_eq!(
                got,
                want,
                "{} {key:?}: counts and token sums",
                latency_view(g)
            );
            assert_eq!(
                (row.min_response_time, row.max_response_time),
                (t.min, t.max),
                "{} {key:?}: min/max",
                latency_view(g)
            );
        }
        let rows = fetch_usage(client, g).await;
        let expected = &truth.usage[&g];
        assert_eq!(rows.len(), expected.len(), "{} row count", usage_view(g));
        for (key, t) in expected {
            let row = rows
                .get(key)
                .unwrap_or_else(|| panic!("{} lacks {key:?}", usage_view(g)));
            let got = (
                row.request_count,
                row.total_input_tokens,
                row.total_output_tokens,
                dollars_to_nanos(&row.total_cost_usd),
                [
                    row.total_cache_read_input_tokens,
                    row.total_cache_write_input_tokens,
                    row.total_reasoning_output_tokens,
                ],
            );
            let want = (
                t.requests,
                t.input_tokens,
                t.output_tokens,
                t.cost_usd_nanos + truth.computed_nanos(g, key),
                t.token_classes,
            );
            assert_eq!(
                got,
                want,
                "{} {key:?}: counts, tokens by class and exact cost",
                usage_view(g)
            );
        }
    }
    assert_grouped_views(client, truth).await;
}

/// A grouped view's row (`performance_*`, `overall_*`,
/// `usage_by_feature_*`): its window, its dimensions joined by `|`, and
/// the counts and sums that merging full rows must keep exactly.
#[derive(Debug, Clone, Row, Deserialize)]
struct GroupedRow {
    window_start: u32,
    key: String,
    counts: Vec<i64>,
    bounds: Vec<f64>,
    cost: String,
}

/// The value of dimension `d` in a full latency or usage key.
fn dimension<'a>(d: &str, fields: [(&str, &'a str); 5]) -> &'a str {
    fields
        .iter()
        .find(|(name, _)| *name == d)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("unknown dimension {d}"))
}

/// The row of `out` for a window and joined dimensions, made empty if new.
fn slot(
    out: &mut BTreeMap<(u32, String), GroupedRow>,
    window_start: u32,
    key: String,
) -> &mut GroupedRow {
    out.entry((window_start, key.clone()))
        .or_insert_with(|| GroupedRow {
            window_start,
            key,
            counts: Vec::new(),
            bounds: Vec::new(),
            cost: String::new(),
        })
}

/// Adds `values` to `row.counts`, position by position.
fn add_counts(row: &mut GroupedRow, values: &[i64]) {
    row.counts.resize(values.len(), 0);
    for (sum, v) in row.counts.iter_mut().zip(values) {
        *sum += v;
    }
}

/// What a grouped view should hold, folded from the full rows' truth: per
/// window and joined dimensions, the counts and sums, min and max
/// (latency) and the exact cost in nano-dollars (usage).
fn expected_grouped(truth: &Truth, r: Rollup, tier: Tier) -> BTreeMap<(u32, String), GroupedRow> {
    let mut out = BTreeMap::new();
    match r.kind {
        Kind::Latency => {
            for (k, t) in &truth.latency[&tier] {
                let fields = [
                    ("tenant_id", k.tenant_id.as_str()),
                    ("model_id", k.model_id.as_str()),
                    ("provider", k.provider.as_str()),
                    ("tool", k.tool.as_str()),
                    ("parameter_hash", k.parameter_hash.as_str()),
                ];
                let key: Vec<&str> = r
                    .dimensions()
                    .iter()
                    .map(|d| dimension(d, fields))
                    .collect();
                let row = slot(&mut out, k.window_start, key.join("|"));
                add_counts(
                    row,
                    &[
                        t.calls as i64,
                        t.successes as i64,
                        t.errors as i64,
                        t.input_tokens,
                        t.output_tokens,
                    ],
                );
                row.bounds = match row.bounds[..] {
                    [min, max] => vec![min.min(t.min), max.max(t.max)],
                    _ => vec![t.min, t.max],
                };
            }
        }
        Kind::Usage => {
            let mut nanos: BTreeMap<(u32, String), i64> = BTreeMap::new();
            for (k, t) in &truth.usage[&tier] {
                let fields = [
                    ("tenant_id", k.tenant_id.as_str()),
                    ("model_id", k.model_id.as_str()),
                    ("provider", k.provider.as_str()),
                    ("feature", k.feature.as_str()),
                    ("", ""),
                ];
                let key: Vec<&str> = r
                    .dimensions()
                    .iter()
                    .map(|d| dimension(d, fields))
                    .collect();
                let key = key.join("|");
                let [cache_read, cache_write, reasoning] = t.token_classes;
                add_counts(
                    slot(&mut out, k.window_start, key.clone()),
                    &[
                        t.requests as i64,
                        t.input_tokens,
                        t.output_tokens,
                        cache_read,
                        cache_write,
                        reasoning,
                    ],
                );
                *nanos.entry((k.window_start, key)).or_default() +=
                    t.cost_usd_nanos + truth.computed_nanos(tier, k);
            }
            for (k, n) in nanos {
                out.get_mut(&k).expect("a row per cost").cost = n.to_string();
            }
        }
    }
    out
}

/// The grouped view `name` of `r` at `tier` as [`GroupedRow`]s.
async fn fetch_grouped(
    client: &clickhouse::Client,
    r: Rollup,
    name: &str,
) -> BTreeMap<(u32, String), GroupedRow> {
    let dims: Vec<String> = r.dimensions().iter().map(|d| d.to_string()).collect();
    let key = if dims.is_empty() {
        "''".to_owned()
    } else {
        format!("arrayStringConcat([{}], '|')", dims.join(", "))
    };
    let columns = match r.kind {
        Kind::Latency => "[toInt64(call_count), toInt64(success_count), toInt64(error_count), \
             total_input_tokens, total_output_tokens] AS counts, [min_response_time, max_response_time] AS bounds, '' AS cost",
        Kind::Usage => "[toInt64(request_count), total_input_tokens, total_output_tokens, \
             total_cache_read_input_tokens, total_cache_write_input_tokens, \
             total_reasoning_output_tokens] AS counts, emptyArrayFloat64() AS bounds, toString(total_cost_usd) AS cost",
    };
    let rows: Vec<GroupedRow> = client
        .query(&format!(
            "SELECT toUInt32(window_start) AS window_start, {key} AS key, {columns} FROM {name}"
        ))
        .fetch_all()
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    rows.into_iter()
        .map(|mut row| {
            if r.kind == Kind::Usage {
                row.cost = dollars_to_nanos(&row.cost).to_string();
            }
            ((row.window_start, row.key.clone()), row)
        })
        .collect()
}

/// Checks every grouped view (`performance_*`, `overall_*`,
/// `usage_by_feature_*`) against the full rows' truth folded to its
/// dimensions: the same counts, sums, min/max and exact cost, no extra
/// rows.
pub async fn assert_grouped_views(client: &clickhouse::Client, truth: &Truth) {
    for (r, tier, name) in rollup_views(SCHEMA_VERSION) {
        if r.grouping == Grouping::Full {
            continue;
        }
        let got = fetch_grouped(client, r, &name).await;
        let want = expected_grouped(truth, r, tier);
        assert_eq!(got.len(), want.len(), "{name} row count");
        for (k, w) in &want {
            let g = got.get(k).unwrap_or_else(|| panic!("{name} lacks {k:?}"));
            assert_eq!(
                (&g.counts, &g.bounds, &g.cost),
                (&w.counts, &w.bounds, &w.cost),
                "{name} {k:?}: counts and sums, min/max, cost in nano-dollars"
            );
        }
    }
}

impl Truth {
    /// The book's cost of a usage row, as `docs/pricing.md` defines it: its
    /// unpriced sums at the version in effect at its start, rounded once;
    /// a week a new version begins inside sums its days.
    pub fn computed_nanos(&self, g: Tier, key: &UsageKey) -> i64 {
        let version = |at: i64| {
            self.prices
                .version_at(&key.model_id, &key.provider, at)
                .map(|v| v.id())
        };
        let start = i64::from(key.window_start);
        let t = &self.usage[&g][key];
        if g == Tier::Week && version(start) != version(start + 6 * 86_400) {
            return self.usage[&Tier::Day]
                .keys()
                .filter(|day| {
                    (start..start + 7 * 86_400).contains(&i64::from(day.window_start))
                        && (&day.tenant_id, &day.model_id, &day.provider, &day.feature)
                            == (&key.tenant_id, &key.model_id, &key.provider, &key.feature)
                })
                .map(|day| self.computed_nanos(Tier::Day, day))
                .sum();
        }
        self.prices
            .version_at(&key.model_id, &key.provider, start)
            .map_or(0, |v| v.prices.cost_nanos(&t.unpriced.tokens()))
    }
}

/// Waits until every view and the raw tables account for every event; a
/// timeout names the last shortfall seen, tier by tier.
pub async fn wait_until_complete(
    env: &crate::testkit::TestEnv,
    truth: &Truth,
    timeout: std::time::Duration,
) {
    let deadline = std::time::Instant::now() + timeout;
    let mut last = String::from("no answer from ClickHouse");
    loop {
        match completeness(env, truth).await {
            Some(Ok(())) => return,
            Some(Err(state)) => last = state,
            None => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for views to account for every event; last seen: {last}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// `Ok` when every view and raw table holds every event, else what falls
/// short; `None` when ClickHouse did not answer.
async fn completeness(env: &crate::testkit::TestEnv, truth: &Truth) -> Option<Result<(), String>> {
    let (latency, usage) = (truth.latency_events, truth.usage_events);
    let mut short = Vec::new();
    // Every view of every stored rollup, grouped ones included (they are
    // compacted after the full rows of the same batch).
    for (r, _, name) in rollup_views(SCHEMA_VERSION) {
        let (column, want, unit) = match r.kind {
            Kind::Latency => ("call_count", latency, "calls"),
            Kind::Usage => ("request_count", usage, "requests"),
        };
        let got = env
            .query_u64(&format!("SELECT sum({column}) FROM {name}"))
            .await?;
        if got != want {
            short.push(format!("{name}: {got} of {want} {unit}"));
        }
    }
    let raw_latency = env
        .query_u64("SELECT count() FROM latency_events_dedup")
        .await?;
    let raw_usage = env
        .query_u64("SELECT count() FROM usage_events_dedup")
        .await?;
    if (raw_latency, raw_usage) != (latency, usage) {
        short.push(format!(
            "raw tables: {raw_latency} of {latency} latency, {raw_usage} of {usage} usage events"
        ));
    }
    Some(if short.is_empty() {
        Ok(())
    } else {
        Err(short.join("; "))
    })
}

/// How the view percentiles compared with the exact ones.
#[derive(Debug, Clone, Copy, Default)]
pub struct PercentileReport {
    /// Checks on windows of at least 10k events, held to 1% relative error.
    pub large: usize,
    /// Checks on windows of at least 1k events, held to ranks q±0.005.
    pub medium: usize,
    /// The largest relative error among the large checks.
    pub worst_large: f64,
    /// The largest relative error among windows of at least 1k events.
    pub worst_medium: f64,
}

/// Checks p50, p95 and p99 of every latency view row against the exact
/// nearest-rank values: within 1% relative error for windows of at least 10k
/// events, and between the exact values at ranks q±0.005 for windows of at
/// least 1k events. `truth` must be sealed.
pub async fn assert_percentiles(client: &clickhouse::Client, truth: &Truth) -> PercentileReport {
    let mut report = PercentileReport::default();
    for g in Tier::ALL {
        let rows = fetch_latency(client, g).await;
        for (key, t) in &truth.latency[&g] {
            let row = &rows[key];
            for (q, got) in [
                (0.5, row.p50_response_time),
                (0.95, row.p95_response_time),
                (0.99, row.p99_response_time),
            ] {
                if t.calls < 1_000 {
                    continue;
                }
                let exact = exact_quantile(&t.values, q);
                let error = (got - exact).abs() / exact;
                report.worst_medium = report.worst_medium.max(error);
                let low = exact_quantile(&t.values, q - 0.005);
                let high = exact_quantile(&t.values, (q + 0.005).min(1.0));
                assert!(
                    (low..=high).contains(&got),
                    "{g:?} {key:?} p{}: {got} outside [{low}, {high}]",
                    q * 100.0
                );
                report.medium += 1;
                if t.calls >= 10_000 {
                    assert!(
                        error <= 0.01,
                        "{g:?} {key:?} p{}: {got} vs exact {exact} ({:.3}%)",
                        q * 100.0,
                        error * 100.0
                    );
                    report.worst_large = report.worst_large.max(error);
                    report.large += 1;
                }
            }
        }
    }
    report
}

/// Every raw event is in its table exactly once when read through the
/// dedup views.
pub async fn assert_raw_exactly_once(env: &crate::testkit::TestEnv, truth: &Truth) {
    for (view, expected) in [
        ("latency_events_dedup", truth.latency_events),
        ("usage_events_dedup", truth.usage_events),
    ] {
        let rows = env.query_u64(&format!("SELECT count() FROM {view}")).await;
        let ids = env
            .query_u64(&format!("SELECT uniqExact(event_id) FROM {view}"))
            .await;
        assert_eq!((rows, ids), (Some(expected), Some(expected)), "{view}");
    }
}

/// Nearest-rank quantile of sorted values.
pub fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_parse_exactly() {
        assert_eq!(dollars_to_nanos("123456.789012345"), 123_456_789_012_345);
        assert_eq!(dollars_to_nanos("3"), 3_000_000_000);
        assert_eq!(dollars_to_nanos("3.000000000"), 3_000_000_000);
        assert_eq!(dollars_to_nanos("0.5"), 500_000_000);
    }

    #[test]
    fn nearest_rank_matches_definition() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(exact_quantile(&v, 0.5), 2.0);
        assert_eq!(exact_quantile(&v, 0.51), 3.0);
        assert_eq!(exact_quantile(&v, 0.99), 4.0);
    }
}
