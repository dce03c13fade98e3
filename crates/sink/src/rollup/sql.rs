//! Every rollup table, view and compaction statement, made from one
//! template per kind and tier ([`Kind`] × [`Tier`]).
//!
//! The SQL runs on ClickHouse 18.16 and on modern servers. Two 18.16 rules
//! shape it: an alias must never equal a column name used inside an
//! aggregate (hence the `s_`, `a_` and `v_` prefixes), and a view is fast
//! only when the caller's filter can be pushed into it, which works through
//! `GROUP BY` (with `enable_optimize_predicate_expression = 1`, the default
//! since 19.x) but never through `FINAL`. Views therefore collapse row
//! versions with `argMax(…, revision)` grouped by the key, not with `FINAL`.

use std::collections::BTreeSet;

use centile_events::sketch::bucket_key_sql;

use super::pricing::PriceSql;
use super::tiers::{
    Grouping, Kind, Rollup, Tier, COMPUTED_COST, PRICE_VERSIONS, SCHEMA_VERSION, UNPRICED_REQUESTS,
    UNPRICED_TOKENS,
};

/// A week's last day, in seconds after its Monday.
const LAST_DAY_OF_WEEK: i64 = 6 * 86_400;

/// Seconds from a bucket's start to where the price version in effect at
/// its end is looked up: its last minute, or for a week its last day
/// (versions begin at 00:00 UTC).
pub(crate) fn last_price_offset(tier: Tier) -> i64 {
    LAST_DAY_OF_WEEK.min(tier.seconds() - 60)
}

/// `window_start` and the kind's dimensions: a stored row's identity.
pub(crate) fn key(r: Rollup) -> Vec<&'static str> {
    let mut key = vec!["window_start"];
    key.extend_from_slice(r.dimensions());
    key
}

/// The dimensions as a list to splice after another column: `, a, b`, or
/// nothing for the ungrouped rollup.
fn dims(r: Rollup) -> String {
    r.dimensions().iter().map(|d| format!(", {d}")).collect()
}

/// The nearest-rank quantile `level` of a merged sketch tuple
/// `(keys, counts, sums)`: the mean of the bucket the rank falls in.
pub fn quantile_sql(sketch: &str, level: f64) -> String {
    let counts = format!("tupleElement({sketch}, 2)");
    let sums = format!("tupleElement({sketch}, 3)");
    let index = format!(
        "arrayFirstIndex(c -> c >= greatest(1, ceil({level} * arraySum({counts}))), arrayCumSum({counts}))"
    );
    format!("arrayElement({sums}, {index}) / arrayElement({counts}, {index})")
}

/// `CREATE TABLE` for one stored tier of a rollup, as migration `as_of`
/// made it.
pub fn create_table(database: &str, r: Rollup, tier: Tier, as_of: u32) -> String {
    let kind = r.kind;
    let mut columns = vec![
        "window_start DateTime('UTC')".to_owned(),
        "window_end DateTime('UTC')".to_owned(),
    ];
    for d in r.dimensions().iter().chain(r.attributes()) {
        columns.push(format!("{d} String"));
    }
    for m in kind.metrics_as_of(as_of) {
        columns.push(format!("{} {}", m.name, m.sql_type));
    }
    if kind.has_sketch() {
        columns.extend(
            [
                "sketch_keys Array(Int32)",
                "sketch_counts Array(UInt64)",
                "sketch_sums Array(Float64)",
                "p50 Float64",
                "p95 Float64",
                "p99 Float64",
            ]
            .map(String::from),
        );
    }
    columns.extend(
        [
            "coverage UInt64",
            "panes UInt64",
            "revision UInt64",
            "updated_at DateTime('UTC')",
        ]
        .map(String::from),
    );
    format!(
        "CREATE TABLE IF NOT EXISTS {database}.{table}\n(\n    {columns}\n)\nENGINE = ReplacingMergeTree(revision)\nPARTITION BY {partition}\nORDER BY ({key})",
        table = r.table(tier),
        columns = columns.join(",\n    "),
        partition = tier.partition_sql(),
        key = r.order_by().join(", "),
    )
}

/// The stored columns that follow the key, in table order, as of
/// migration `as_of`.
pub(crate) fn value_columns(r: Rollup, as_of: u32) -> Vec<&'static str> {
    let kind = r.kind;
    let mut cols: Vec<&'static str> = vec!["window_end"];
    cols.extend_from_slice(r.attributes());
    cols.extend(kind.metrics_as_of(as_of).map(|m| m.name));
    if kind.has_sketch() {
        cols.extend([
            "sketch_keys",
            "sketch_counts",
            "sketch_sums",
            "p50",
            "p95",
            "p99",
        ]);
    }
    cols.extend(["coverage", "panes", "updated_at"]);
    cols
}

/// One row per key: the highest revision's values as `v_<column>`, and
/// `v_revision`. `filter` is ANDed into the scan.
pub fn latest_rows(database: &str, r: Rollup, tier: Tier, filter: &str) -> String {
    latest_rows_as_of(database, r, tier, filter, SCHEMA_VERSION)
}

fn latest_rows_as_of(database: &str, r: Rollup, tier: Tier, filter: &str, as_of: u32) -> String {
    latest_columns(database, r, tier, filter, &value_columns(r, as_of))
}

/// [`latest_rows`] with only `columns` (stored value columns): a view that
/// reads a few of many columns stays cheap on servers that do not prune
/// unused aggregates from a subquery.
fn latest_columns(database: &str, r: Rollup, tier: Tier, filter: &str, columns: &[&str]) -> String {
    let values: Vec<String> = columns
        .iter()
        .map(|c| format!("argMax({c}, revision) AS v_{c}"))
        .collect();
    format!(
        "SELECT {key}, {values}, max(revision) AS v_revision\n    FROM {database}.{table}{filter}\n    GROUP BY {key}",
        key = key(r).join(", "),
        values = values.join(", "),
        table = r.table(tier),
        filter = if filter.is_empty() {
            String::new()
        } else {
            format!("\n    WHERE {filter}")
        },
    )
}

/// Input rows of one tier's compaction, as `s_start`, the dimensions and
/// `s_<column>`: minute panes (latest version of each) for the minute tier,
/// the latest rows of the tier below otherwise; for a grouped rollup, the
/// latest full rows of the same tier.
fn source_rows(database: &str, r: Rollup, tier: Tier, filter: &str) -> String {
    let kind = r.kind;
    let mut cols = vec![format!("window_start AS s_start{}", dims(r))];
    let below = match r.grouping {
        Grouping::Full => tier.lower().map(|lower| (Rollup::full(kind), lower)),
        _ => Some((Rollup::full(kind), tier)),
    };
    match below {
        None => {
            for a in kind.attributes() {
                cols.push(format!("{a} AS s_{a}"));
            }
            for m in kind.metrics() {
                cols.push(format!(
                    "{} AS s_{}",
                    m.from_panes.unwrap_or(m.name),
                    m.name
                ));
            }
            if kind.has_sketch() {
                cols.push(format!(
                    "arrayMap(x -> {}, centroid_means) AS s_sketch_keys",
                    bucket_key_sql("x")
                ));
                cols.push("centroid_weights AS s_sketch_counts".into());
                cols.push(
                    "arrayMap((x, w) -> x * w, centroid_means, centroid_weights) AS s_sketch_sums"
                        .into(),
                );
            }
            cols.push("toUInt64(1) AS s_panes".into());
            // +1: a pane with version 0 still raises the revision.
            cols.push("version + 1 AS s_revision".into());
            cols.push("emitted_at AS s_updated_at".into());
            format!(
                "SELECT {cols}\n    FROM {database}.{panes} FINAL\n    WHERE granularity = 'minute' AND {filter}",
                cols = cols.join(", "),
                panes = kind.panes_table(),
            )
        }
        Some((source, source_tier)) => {
            for c in value_columns(r, SCHEMA_VERSION) {
                cols.push(format!("v_{c} AS s_{c}"));
            }
            cols.push("v_revision AS s_revision".into());
            format!(
                "SELECT {cols}\n    FROM ({latest})",
                cols = cols.join(", "),
                latest = latest_rows(database, source, source_tier, filter),
            )
        }
    }
}

/// The computed cost and price versions of a usage row whose unpriced sums
/// are `<prefix><column>`, priced by the version at `index`.
pub(crate) fn priced_columns(prices: &PriceSql, prefix: &str, index: &str) -> (String, String) {
    let sums = UNPRICED_TOKENS.map(|c| format!("{prefix}{c}"));
    let cost = prices.cost(index, [&sums[0], &sums[1], &sums[2], &sums[3], &sums[4]]);
    let versions = format!(
        "if({prefix}{UNPRICED_REQUESTS} > 0, [{}], emptyArrayString())",
        prices.id(index)
    );
    (cost, versions)
}

/// `INSERT … SELECT` recomputing every row of `tier` in `buckets` (bucket
/// starts, Unix seconds) from the tier below. Idempotent: the result is a
/// function of what is stored below (and of the price book), and its
/// revision (the sum of the merged rows' revisions) grows whenever
/// anything below changed.
///
/// A usage row's computed cost prices the row's own unpriced sums with
/// the version in effect at its start (one version covers any minute, hour
/// or day); a week that a new version begins inside sums its days' costs.
pub fn compact(
    database: &str,
    r: Rollup,
    tier: Tier,
    buckets: &BTreeSet<i64>,
    prices: &PriceSql,
) -> String {
    let (Some(first), Some(last)) = (buckets.first(), buckets.last()) else {
        return String::new();
    };
    let list: Vec<String> = buckets.iter().map(i64::to_string).collect();
    let filter = format!(
        "window_start >= toDateTime({first}, 'UTC') AND window_start < toDateTime({end}, 'UTC') AND toUInt32({bucket}) IN ({list})",
        end = last + tier.seconds(),
        bucket = tier.bucket_sql("window_start"),
        list = list.join(", "),
    );
    compact_where(database, r, tier, &filter, prices)
}

/// [`compact`] over the source rows matching `filter` (every bucket they
/// fall in).
fn compact_where(database: &str, r: Rollup, tier: Tier, filter: &str, prices: &PriceSql) -> String {
    let kind = r.kind;
    let bucket = tier.bucket_sql("s_start");
    let mut aggregates = vec![format!("{bucket} AS b{}", dims(r))];
    for a in r.attributes() {
        aggregates.push(format!("any(s_{a}) AS a_{a}"));
    }
    for m in kind.metrics() {
        aggregates.push(format!("{}(s_{}) AS a_{}", m.merge, m.name, m.name));
    }
    if kind.has_sketch() {
        aggregates.push("sumMap(s_sketch_keys, s_sketch_counts, s_sketch_sums) AS a_sketch".into());
    }
    // A full usage row prices its own sums; a grouped one (across models)
    // sums the full rows' costs and unites their versions.
    let priced = kind == Kind::Usage && r.grouping == Grouping::Full;
    let lower = tier.lower().filter(|_| r.grouping == Grouping::Full);
    aggregates.push(match lower {
        None => "toUInt64(0) AS a_coverage".into(),
        Some(lower) => format!(
            "groupBitOr(bitShiftLeft(toUInt64(1), toUInt64(intDiv(toUInt32(s_start) - toUInt32(b), {})))) AS a_coverage",
            lower.seconds()
        ),
    });
    aggregates.push("sum(s_panes) AS a_panes".into());
    aggregates.push("sum(s_revision) AS a_revision".into());
    aggregates.push("max(s_updated_at) AS a_updated_at".into());

    let mut outputs = vec![format!("b, b + {}{}", tier.seconds(), dims(r))];
    for a in r.attributes() {
        outputs.push(format!("a_{a}"));
    }
    let (cost, versions) = priced_columns(prices, "a_", "a_price_index");
    for m in kind.metrics() {
        outputs.push(match m.name {
            // One version covers the row: price its sums; else (a week
            // a version begins inside) its days' costs and versions.
            COMPUTED_COST if priced => {
                format!("if(a_price_index = a_price_index_end, {cost}, a_{COMPUTED_COST})")
            }
            PRICE_VERSIONS if priced => format!(
                "if(a_price_index = a_price_index_end, {versions}, arraySort(a_{PRICE_VERSIONS}))"
            ),
            PRICE_VERSIONS => format!("arraySort(a_{PRICE_VERSIONS})"),
            name => format!("a_{name}"),
        });
    }
    if kind.has_sketch() {
        outputs.push(
            "tupleElement(a_sketch, 1), tupleElement(a_sketch, 2), tupleElement(a_sketch, 3)"
                .into(),
        );
        for level in [0.5, 0.95, 0.99] {
            outputs.push(quantile_sql("a_sketch", level));
        }
    }
    outputs.push("a_coverage, a_panes, a_revision, a_updated_at".into());

    let mut columns = key(r);
    columns.insert(1, "window_end");
    columns.extend(
        value_columns(r, SCHEMA_VERSION)
            .into_iter()
            .filter(|c| !matches!(*c, "window_end" | "coverage" | "panes" | "updated_at")),
    );
    columns.extend(["coverage", "panes", "revision", "updated_at"]);

    let mut merged = format!(
        "SELECT {aggregates}\n    FROM ({source})\n    GROUP BY b{dims}",
        aggregates = aggregates.join(", "),
        source = source_rows(database, r, tier, filter),
        dims = dims(r),
    );
    if priced {
        // The version in effect at the bucket's start and on its last day,
        // on the merged rows (modern servers refuse it beside the
        // aggregates).
        merged = format!(
            "SELECT *, {} AS a_price_index, {} AS a_price_index_end\n    FROM ({merged})",
            prices.index("b"),
            prices.index(&format!("(b + {})", last_price_offset(tier))),
        );
    }
    format!(
        "INSERT INTO {database}.{table} ({columns})\nSELECT {outputs}\nFROM\n(\n    {merged}\n)",
        table = r.table(tier),
        columns = columns.join(", "),
        outputs = outputs.join(", "),
    )
}

/// The analysts' view of one rollup and tier, with the columns the views
/// have always had, then `window_end` and the sketch for merging.
pub fn create_view(database: &str, r: Rollup, tier: Tier, view: &str, as_of: u32) -> String {
    let d = dims(r);
    let attributes: String = r
        .attributes()
        .iter()
        .map(|a| format!(" v_{a} AS {a},"))
        .collect();
    let columns = match r.kind {
        Kind::Latency => format!(
            "window_start{d},{attributes}
    v_calls AS call_count, v_successes AS success_count, v_errors AS error_count,
    v_successes / greatest(v_calls, 1) AS success_rate,
    v_rt_sum / greatest(v_calls, 1) AS avg_response_time,
    v_rt_min AS min_response_time, v_rt_max AS max_response_time,
    v_p50 AS p50_response_time, v_p95 AS p95_response_time, v_p99 AS p99_response_time,
    v_input_tokens_sum / greatest(v_input_tokens_count, 1) AS avg_input_tokens,
    v_output_tokens_sum / greatest(v_output_tokens_count, 1) AS avg_output_tokens,
    v_input_tokens_sum AS total_input_tokens, v_output_tokens_sum AS total_output_tokens,
    v_revision AS revision, v_updated_at AS updated_at,
    v_window_end AS window_end, v_sketch_keys AS sketch_keys, v_sketch_counts AS sketch_counts, v_sketch_sums AS sketch_sums"
        ),
        Kind::Usage => {
            // Token classes since migration 7: parts of the input and
            // output totals, never added to them.
            let classes = if as_of >= 7 {
                "
    v_cache_read_input_tokens_sum AS total_cache_read_input_tokens,
    v_cache_write_input_tokens_sum AS total_cache_write_input_tokens,
    v_reasoning_output_tokens_sum AS total_reasoning_output_tokens,"
            } else {
                ""
            };
            // Since migration 8: the cost the events reported and the
            // price book's cost of the rest, apart, and their sum.
            let cost = if as_of >= 8 {
                format!(
                    "{total} AS total_cost_usd,
    {reported} AS reported_cost_usd,
    {computed} AS computed_cost_usd,
    v_{UNPRICED_REQUESTS} AS computed_request_count,
    v_{PRICE_VERSIONS} AS price_versions,",
                    total = dollars(&format!("v_cost_usd_nanos_sum + v_{COMPUTED_COST}")),
                    reported = dollars("v_cost_usd_nanos_sum"),
                    computed = dollars(&format!("v_{COMPUTED_COST}")),
                )
            } else {
                format!("{} AS total_cost_usd,", dollars("v_cost_usd_nanos_sum"))
            };
            format!(
                "window_start{d},
    v_requests AS request_count,
    v_input_tokens_sum AS total_input_tokens, v_output_tokens_sum AS total_output_tokens,{classes}
    {cost}
    v_revision AS revision, v_updated_at AS updated_at,
    v_window_end AS window_end"
            )
        }
    };
    format!(
        "CREATE VIEW {database}.{view} AS\nSELECT {columns}\nFROM\n(\n    {latest}\n)",
        latest = latest_rows_as_of(database, r, tier, "", as_of),
    )
}

/// Nano-dollars (an Int64 expression) as exact Decimal64(9) dollars.
fn dollars(nanos: &str) -> String {
    format!("toDecimal64({nanos}, 0) * toDecimal64('0.000000001', 9)")
}

/// Per day and model: latency merged across tenants, tools and parameter
/// sets (stored as such: no sketch is merged here), with the usage of the same day, model and
/// provider (0 when there is none). 18.16 needs explicit ANY/ALL strictness
/// on JOIN; ifNull() keeps the columns non-Nullable whatever the caller's
/// join_use_nulls is.
pub fn create_top_models_view(database: &str, as_of: u32) -> String {
    let by_model = Rollup {
        kind: Kind::Latency,
        grouping: Grouping::Model,
    };
    // Since migration 9, only the columns it shows (18.16 computes every
    // aggregate of a joined subquery).
    let (lat, usg) = if as_of >= 9 {
        (
            latest_columns(
                database,
                by_model,
                Tier::Day,
                "",
                &["calls", "errors", "p50", "p95", "p99"],
            ),
            latest_columns(
                database,
                Rollup::full(Kind::Usage),
                Tier::Day,
                "",
                &["requests", "cost_usd_nanos_sum", COMPUTED_COST],
            ),
        )
    } else {
        (
            latest_rows_as_of(database, by_model, Tier::Day, "", as_of),
            latest_rows_as_of(database, Rollup::full(Kind::Usage), Tier::Day, "", as_of),
        )
    };
    // Since migration 8 the cost includes the price book's.
    let cost = if as_of >= 8 {
        format!("v_cost_usd_nanos_sum + v_{COMPUTED_COST}")
    } else {
        "v_cost_usd_nanos_sum".to_owned()
    };
    let usg_cost = dollars(&format!("sum({cost})"));
    format!(
        "CREATE VIEW {database}.top_models_daily AS
SELECT window_start, model_id, provider, call_count, error_rate,
    p50_response_time, p95_response_time, p99_response_time,
    ifNull(usg_cost_usd, toDecimal64(0, 9)) AS total_cost_usd,
    ifNull(usg_requests, toUInt64(0)) AS request_count
FROM
(
    SELECT window_start, model_id, provider,
        v_calls AS call_count,
        v_errors / greatest(v_calls, 1) AS error_rate,
        v_p50 AS p50_response_time, v_p95 AS p95_response_time, v_p99 AS p99_response_time
    FROM ({lat})
) AS lat
ANY LEFT JOIN
(
    SELECT window_start, model_id, provider,
        sum(v_requests) AS usg_requests,
        {usg_cost} AS usg_cost_usd
    FROM ({usg})
    GROUP BY window_start, model_id, provider
) AS usg
USING (window_start, model_id, provider)",
    )
}

/// Completeness per tier and window: final once the watermark has passed
/// the window's end on every source partition, as seen on every rollup
/// partition. `panes` counts the minute panes merged into the window.
pub fn create_window_status_view(database: &str, as_of: u32) -> String {
    let mut branches = Vec::new();
    for tier in Tier::ALL {
        for kind in Kind::ALL {
            branches.push(format!(
                "SELECT '{name}' AS window_granularity, window_start, v_window_end AS window_end_at, sum(v_panes) AS pane_count\n        FROM ({latest})\n        GROUP BY window_start, window_end_at",
                name = tier.name(),
                latest = latest_rows_as_of(database, Rollup::full(kind), tier, "", as_of),
            ));
        }
    }
    format!(
        "CREATE VIEW {database}.window_status AS
SELECT granularity, window_start, window_end, panes, low_watermark,
    toUInt8(window_end <= low_watermark) AS is_final
FROM
(
    SELECT window_granularity AS granularity, window_start, window_end_at AS window_end, sum(pane_count) AS panes
    FROM
    (
        {branches}
    )
    GROUP BY granularity, window_start, window_end
) AS windows
CROSS JOIN
(
    SELECT min(source_watermark) AS low_watermark
    FROM
    (
        SELECT source_topic, source_partition, min(watermark) AS source_watermark
        FROM {database}.source_watermarks FINAL
        GROUP BY source_topic, source_partition
    )
) AS progress",
        branches = branches.join("\n        UNION ALL\n        "),
    )
}

/// Every statement of the rollup-tier migration (6), in order: tables,
/// then views replaced wholesale (they hold no data). Its text never
/// changes: columns added later come with their own migration.
pub fn migration(database: &str) -> Vec<String> {
    let mut statements = Vec::new();
    for (r, tiers) in Rollup::all_as_of(6) {
        for tier in tiers {
            statements.push(create_table(database, r, *tier, 6));
        }
    }
    statements.extend(views(database, 6));
    statements
}

/// Migration 7: the token classes (cache-read and cache-write input,
/// reasoning output) in the raw usage events, the usage panes and every
/// usage tier, then every view again with the new columns.
pub fn token_classes_migration(database: &str) -> Vec<String> {
    const RAW: [&str; 3] = [
        "cache_read_input_tokens",
        "cache_write_input_tokens",
        "reasoning_output_tokens",
    ];
    // One column per statement: 18.16 has no `ADD COLUMN IF NOT EXISTS`,
    // so the migrator skips a statement whose column exists already, and
    // a migration cut short half way is simply run again.
    let add = |table: &str, columns: Vec<String>| {
        columns
            .into_iter()
            .map(|c| format!("ALTER TABLE {database}.{table} ADD COLUMN {c}"))
            .collect::<Vec<_>>()
    };
    let mut statements = add(
        "usage_events",
        RAW.iter().map(|c| format!("{c} Nullable(Int64)")).collect(),
    );
    statements.extend(add(
        "usage_panes",
        RAW.iter()
            .map(|c| format!("{c}_sum Int64 DEFAULT 0"))
            .collect(),
    ));
    for (r, tiers) in Rollup::all_as_of(7) {
        let added: Vec<String> = r
            .kind
            .metrics()
            .iter()
            .filter(|m| m.since == 7)
            .map(|m| format!("{} {} DEFAULT 0", m.name, m.sql_type))
            .collect();
        if added.is_empty() {
            continue;
        }
        for tier in tiers {
            statements.extend(add(&r.table(*tier), added.clone()));
        }
    }
    statements.extend(views(database, 7));
    statements
}

/// Migration 8: the price book. Raw usage events say whether their cost
/// was reported; the usage panes and every usage tier keep the unpriced
/// requests' token sums, the computed cost and the price versions apart
/// from the reported cost; `reprice_audit` records every repricing; then
/// every view again.
pub fn price_book_migration(database: &str) -> Vec<String> {
    let add =
        |table: &str, column: String| format!("ALTER TABLE {database}.{table} ADD COLUMN {column}");
    // 1: events written before this migration all carried their cost.
    let mut statements = vec![add("usage_events", "cost_reported UInt8 DEFAULT 1".into())];
    for c in std::iter::once(UNPRICED_REQUESTS).chain(UNPRICED_TOKENS) {
        statements.push(add("usage_panes", format!("{c} Int64 DEFAULT 0")));
    }
    for (r, tiers) in Rollup::all_as_of(8) {
        for m in r.kind.metrics().iter().filter(|m| m.since == 8) {
            for tier in tiers {
                statements.push(add(&r.table(*tier), format!("{} {}", m.name, m.sql_type)));
            }
        }
    }
    statements.push(format!(
        "CREATE TABLE IF NOT EXISTS {database}.reprice_audit
(
    run_id String,
    requested_by String,
    started_at DateTime('UTC'),
    finished_at DateTime('UTC'),
    range_start DateTime('UTC'),
    range_end DateTime('UTC'),
    model_id String,
    price_book String,
    tier String,
    rows_restated UInt64,
    rows_skipped UInt64,
    old_computed_cost_usd_nanos Int64,
    new_computed_cost_usd_nanos Int64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(started_at)
ORDER BY (started_at, run_id, tier)"
    ));
    statements.extend(views(database, 8));
    statements
}

/// Migration 9: usage per tenant and feature at the day and week tiers
/// (`usage_by_feature_daily|weekly`), so cost by feature over months reads
/// a row per tenant, feature and day instead of deduplicating every model's.
/// The tables are filled here from every stored full row of their tier
/// (grouped rows sum them; nothing is priced again), so history from before
/// the upgrade reads the same through them; the sink keeps them current
/// from then on.
pub fn usage_by_feature_migration(database: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let added: Vec<(Rollup, &[Tier])> = Rollup::all()
        .into_iter()
        .filter(|(r, _)| r.since() == 9)
        .collect();
    for (r, tiers) in &added {
        for tier in *tiers {
            statements.push(create_table(database, *r, *tier, 9));
        }
    }
    for (r, tiers) in &added {
        for tier in *tiers {
            statements.push(compact_where(
                database,
                *r,
                *tier,
                "1",
                &PriceSql::new(&centile_events::PriceBook::default()),
            ));
        }
    }
    statements.extend(views(database, 9));
    statements
}

/// Every analysts' view of a stored rollup that migration `as_of` made:
/// the rollup, its tier and the view's name. The full rollups' views first,
/// then the grouped ones (`performance_*`, `overall_*`,
/// `usage_by_feature_*`).
pub fn rollup_views(as_of: u32) -> Vec<(Rollup, Tier, String)> {
    Rollup::all_as_of(as_of)
        .flat_map(|(rollup, tiers)| {
            tiers
                .iter()
                .filter_map(move |&tier| Some((rollup, tier, rollup.view(tier)?)))
        })
        .collect()
}

/// Every analysts' view, as of migration `as_of`: dropped, then created.
fn views(database: &str, as_of: u32) -> Vec<String> {
    let mut statements = Vec::new();
    let views = rollup_views(as_of);
    let names = views
        .iter()
        .map(|(.., name)| name.clone())
        .chain(["top_models_daily".into(), "window_status".into()]);
    for name in names {
        statements.push(format!("DROP TABLE IF EXISTS {database}.{name}"));
    }
    for (r, tier, name) in &views {
        statements.push(create_view(database, *r, *tier, name, as_of));
    }
    statements.push(create_top_models_view(database, as_of));
    statements.push(create_window_status_view(database, as_of));
    statements
}
