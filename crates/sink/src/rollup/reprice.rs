//! Restating computed cost after a price correction (`centile reprice`).
//!
//! Every usage row overlapping the range whose price versions differ from
//! what the current book gives is written again, tier by tier from the
//! minute up, from its own stored unpriced sums: the same pricing the
//! compaction does, so a repriced row equals the row a fresh compaction
//! would make. Rows are restated with `revision + 1`; a later compaction
//! from below (late data) sums the children's revisions, each of which was
//! raised too, so it still wins. A week that a new version begins inside
//! is recomputed from its days (the sum of their costs) while the daily
//! tier keeps them, and is reported as skipped once they have expired.
//! Each tier's outcome is recorded in `reprice_audit`: who, when, the
//! range, the book, and the old and new totals. Running it again with the
//! same book restates nothing.

use std::collections::BTreeSet;

use clickhouse::{Client, Row};
use serde::Deserialize;

use super::{
    pricing::{literal, PriceSql},
    sql::{compact, key, last_price_offset, latest_rows, priced_columns, value_columns},
    tiers::{
        Grouping, Kind, Rollup, Tier, COMPUTED_COST, PRICE_VERSIONS, SCHEMA_VERSION,
        UNPRICED_REQUESTS,
    },
};

/// What to reprice.
#[derive(Debug, Clone)]
pub struct Request {
    /// Rows overlapping `[start, end)` (Unix seconds).
    pub start: i64,
    pub end: i64,
    pub model_id: Option<String>,
    /// Who asked, as the audit records it.
    pub requested_by: String,
    /// Count what would change; write nothing.
    pub dry_run: bool,
}

/// One tier's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierOutcome {
    pub tier: Tier,
    /// Rows written again.
    pub restated: u64,
    /// Weeks a version begins inside whose days have expired: left as
    /// they are.
    pub skipped: u64,
    /// Computed cost of the restated rows before and after, nano-dollars.
    pub old_nanos: i64,
    pub new_nanos: i64,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub run_id: String,
    pub tiers: Vec<TierOutcome>,
}

/// The rows of `tier` matching `filter` whose computed cost or price
/// versions differ from what `prices` gives, ready to insert: the stored
/// columns (cost and versions repriced, `revision + 1`), then `r_old` and
/// `r_new`. Weeks only where one version covers the whole week.
pub fn restated_rows(database: &str, tier: Tier, filter: &str, prices: &PriceSql) -> String {
    let r = Rollup::full(Kind::Usage);
    let last = last_price_offset(tier);
    let (cost, versions) = priced_columns(prices, "v_", "p_index");
    let mut columns: Vec<String> = key(r).iter().map(|c| c.to_string()).collect();
    for c in value_columns(r, SCHEMA_VERSION) {
        columns.push(match c {
            COMPUTED_COST => format!("r_new AS {c}"),
            PRICE_VERSIONS => format!("r_versions AS {c}"),
            "updated_at" => "now() AS updated_at".into(),
            _ => format!("v_{c} AS {c}"),
        });
    }
    columns.push("v_revision + 1 AS revision".into());
    columns.push("r_old, r_new".into());
    format!(
        "SELECT {columns}
FROM
(
    SELECT *, {cost} AS r_new, v_{COMPUTED_COST} AS r_old, {versions} AS r_versions
    FROM
    (
        SELECT *, {index} AS p_index, {index_end} AS p_index_end
        FROM ({latest})
    )
    WHERE p_index = p_index_end
)
WHERE r_new != r_old OR r_versions != arraySort(v_{PRICE_VERSIONS})",
        columns = columns.join(", "),
        index = prices.index("window_start"),
        index_end = prices.index(&format!("(window_start + {last})")),
        latest = latest_rows(database, r, tier, filter),
    )
}

/// The key filter of the rows of `tier` overlapping the request's range.
fn range_filter(tier: Tier, request: &Request) -> String {
    let mut filter = format!(
        "window_start > toDateTime({}, 'UTC') AND window_start < toDateTime({}, 'UTC')",
        request.start - tier.seconds(),
        request.end
    );
    filter.push_str(&model_clause(request));
    filter
}

#[derive(Debug, Row, Deserialize)]
struct Totals {
    rows: u64,
    old: i64,
    new: i64,
    /// The bucket starts of the rows, read in the same pass.
    buckets: Vec<u32>,
}

/// `AND model_id = …` when the request names a model.
fn model_clause(request: &Request) -> String {
    request
        .model_id
        .as_ref()
        .map(|m| format!(" AND model_id = {}", literal(m)))
        .unwrap_or_default()
}

/// A week a version begins inside, and how many day rows it still has.
#[derive(Debug, Row, Deserialize)]
struct StraddlingWeek {
    week: u32,
    days: u64,
}

/// Week starts in range that a version begins inside and that hold
/// unpriced requests, each with its stored day rows (none: expired).
fn straddling_weeks(database: &str, filter: &str, prices: &PriceSql, request: &Request) -> String {
    let week = Tier::Week.bucket_sql("window_start");
    format!(
        "SELECT week, toUInt64(ifNull(days, 0)) AS days
FROM
(
    SELECT DISTINCT toUInt32(window_start) AS week
    FROM
    (
        SELECT window_start, v_{UNPRICED_REQUESTS}, {index} AS p_index, {index_end} AS p_index_end
        FROM ({latest})
    )
    WHERE p_index != p_index_end AND v_{UNPRICED_REQUESTS} > 0
) AS weeks
ANY LEFT JOIN
(
    SELECT toUInt32({week}) AS week, count() AS days
    FROM {database}.{days}
    WHERE window_start >= toDateTime({from}, 'UTC') AND window_start < toDateTime({to}, 'UTC')
    GROUP BY week
) AS stored
USING (week)
ORDER BY week",
        index = prices.index("window_start"),
        index_end = prices.index(&format!(
            "(window_start + {})",
            last_price_offset(Tier::Week)
        )),
        latest = latest_rows(database, Rollup::full(Kind::Usage), Tier::Week, filter),
        days = Rollup::full(Kind::Usage).table(Tier::Day),
        from = request.start - Tier::Week.seconds(),
        to = request.end + Tier::Week.seconds(),
    )
}

/// A straddling week's rows that differ from the sum of their days as the
/// book prices them now (computed cost or price versions): how many, and
/// their computed cost before and after a recomputation from the days.
#[derive(Debug, Row, Deserialize)]
struct StaleWeek {
    rows: u64,
    old: i64,
    new: i64,
}

fn stale_week_rows(database: &str, week: i64, request: &Request, prices: &PriceSql) -> String {
    let usage = Rollup::full(Kind::Usage);
    let model = model_clause(request);
    let week_rows = latest_rows(
        database,
        usage,
        Tier::Week,
        &format!("window_start = toDateTime({week}, 'UTC'){model}"),
    );
    let day_rows = latest_rows(
        database,
        usage,
        Tier::Day,
        &format!(
            "window_start >= toDateTime({week}, 'UTC') AND window_start < toDateTime({}, 'UTC'){model}",
            week + Tier::Week.seconds()
        ),
    );
    // Each day priced as a reprice leaves it (so a dry run sees what the
    // run would write).
    let (day_cost, day_versions) = priced_columns(prices, "v_", "p_index");
    format!(
        "SELECT toUInt64(count()) AS rows, toInt64(sum(w_cost)) AS old, toInt64(sum(d_cost)) AS new
FROM
(
    SELECT tenant_id, model_id, provider, feature, v_{COMPUTED_COST} AS w_cost,
        arraySort(v_{PRICE_VERSIONS}) AS w_versions
    FROM ({week_rows})
) AS w
ANY LEFT JOIN
(
    SELECT tenant_id, model_id, provider, feature, toInt64(sum(d_row_cost)) AS d_cost,
        arraySort(groupUniqArrayArray(d_row_versions)) AS d_versions
    FROM
    (
        SELECT *, {day_cost} AS d_row_cost, {day_versions} AS d_row_versions
        FROM (SELECT *, {index} AS p_index FROM ({day_rows}))
    )
    GROUP BY tenant_id, model_id, provider, feature
) AS d
USING (tenant_id, model_id, provider, feature)
WHERE w_cost != d_cost OR w_versions != d_versions",
        index = prices.index("window_start"),
    )
}

/// The usage rollups grouped across models that `tier` keeps: their rows
/// sum the full rows' computed cost, so they follow a restatement.
fn grouped_above(tier: Tier) -> Vec<Rollup> {
    Rollup::all()
        .into_iter()
        .filter(|(r, tiers)| {
            r.kind == Kind::Usage && r.grouping != Grouping::Full && tiers.contains(&tier)
        })
        .map(|(r, _)| r)
        .collect()
}

/// Reprices the request's range with `prices` (whose digest is `book`),
/// minute tier first, and records the outcome in `reprice_audit` unless
/// it is a dry run.
pub async fn reprice(
    client: &Client,
    database: &str,
    prices: &PriceSql,
    book: &str,
    request: &Request,
) -> Result<Outcome, clickhouse::error::Error> {
    // 18.16 would push the filters on repriced values down into the
    // grouped rows they are computed from, where they are not yet columns.
    let client = &client
        .clone()
        .with_setting("enable_optimize_predicate_expression", "0");
    let started = now_secs();
    let run_id = uuid::Uuid::new_v4().to_string();
    let mut tiers = Vec::new();
    let table = |tier: Tier| Rollup::full(Kind::Usage).table(tier);
    for tier in Tier::ALL {
        let filter = range_filter(tier, request);
        let rows = restated_rows(database, tier, &filter, prices);
        let totals: Totals = client
            .query(&format!(
                "SELECT count() AS rows, toInt64(sum(r_old)) AS old, toInt64(sum(r_new)) AS new, \
                 groupUniqArray(toUInt32(window_start)) AS buckets FROM ({rows})"
            ))
            .fetch_one()
            .await?;
        let mut outcome = TierOutcome {
            tier,
            restated: totals.rows,
            skipped: 0,
            old_nanos: totals.old,
            new_nanos: totals.new,
        };
        // The buckets whose rows change: the rollups grouped across models
        // are recomputed from them afterwards.
        let mut changed: BTreeSet<i64> = BTreeSet::new();
        if !request.dry_run {
            changed.extend(totals.buckets.iter().copied().map(i64::from));
        }
        if !request.dry_run && totals.rows > 0 {
            let mut columns: Vec<&str> = key(Rollup::full(Kind::Usage));
            columns.extend(value_columns(Rollup::full(Kind::Usage), SCHEMA_VERSION));
            columns.push("revision");
            let list = columns.join(", ");
            client
                .query(&format!(
                    "INSERT INTO {database}.{table} ({list}) SELECT {list} FROM ({rows})",
                    table = table(tier),
                ))
                .execute()
                .await?;
        }
        if tier == Tier::Week {
            let weeks: Vec<StraddlingWeek> = client
                .query(&straddling_weeks(database, &filter, prices, request))
                .fetch_all()
                .await?;
            for StraddlingWeek { week, days } in weeks {
                let week = i64::from(week);
                if days == 0 {
                    outcome.skipped += 1;
                    continue;
                }
                // Already the sum of its days as priced now (a second
                // run): nothing to do.
                let stale: StaleWeek = client
                    .query(&stale_week_rows(database, week, request, prices))
                    .fetch_one()
                    .await?;
                if stale.rows == 0 {
                    continue;
                }
                if !request.dry_run {
                    let statement = compact(
                        database,
                        Rollup::full(Kind::Usage),
                        Tier::Week,
                        &BTreeSet::from([week]),
                        prices,
                    );
                    client.query(&statement).execute().await?;
                }
                outcome.restated += stale.rows;
                outcome.old_nanos += stale.old;
                outcome.new_nanos += stale.new;
                if !request.dry_run {
                    changed.insert(week);
                }
            }
        }
        if !changed.is_empty() {
            for rollup in grouped_above(tier) {
                let statement = compact(database, rollup, tier, &changed, prices);
                client.query(&statement).execute().await?;
            }
        }
        tiers.push(outcome);
    }
    if !request.dry_run {
        let finished = now_secs();
        for t in &tiers {
            client
                .query(&format!(
                    "INSERT INTO {database}.reprice_audit (run_id, requested_by, started_at, finished_at, range_start, range_end, model_id, price_book, tier, rows_restated, rows_skipped, old_computed_cost_usd_nanos, new_computed_cost_usd_nanos) VALUES ({}, {}, toDateTime({started}, 'UTC'), toDateTime({finished}, 'UTC'), toDateTime({}, 'UTC'), toDateTime({}, 'UTC'), {}, {}, {}, {}, {}, {}, {})",
                    literal(&run_id),
                    literal(&request.requested_by),
                    request.start,
                    request.end,
                    literal(request.model_id.as_deref().unwrap_or("")),
                    literal(book),
                    literal(t.tier.name()),
                    t.restated,
                    t.skipped,
                    t.old_nanos,
                    t.new_nanos,
                ))
                .execute()
                .await?;
        }
    }
    Ok(Outcome { run_id, tiers })
}

fn now_secs() -> i64 {
    crate::runner::now_ms() / 1_000
}
