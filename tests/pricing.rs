//! The price book end to end: usage events without a cost are priced by
//! the sink from the book, apart from the cost events reported, at every
//! tier; a corrected book is read again while the sink runs; `centile
//! reprice` restates the range with an audit record and is idempotent.
//! Every expected figure is computed by hand in the comments.

use std::{path::Path, process::Command, time::Duration};

use centile::{
    testkit::{bin_path, eventually, metric_value, now_ms, TestEnv},
    truth::dollars_to_nanos,
};
use centile_events::{Event, UsageEvent};
use clickhouse::Row;
use serde::Deserialize;

/// The book as first entered: the reasoning price is wrong (10, not 12)
/// and so is the cache-read price (1.25, not 1.00).
const WRONG: &str = r#"
[[prices]]
model = "gpt-4o"
provider = "openai"
effective_from = 2020-01-01
input = "2.50"
output = "10"
cache_read = "1.25"
cache_write = "3.125"
reasoning = "10"
"#;

const TIERS: [&str; 4] = ["minute", "hourly", "daily", "weekly"];

fn usage(id: &str, at: i64, model: &str, tokens: (i64, i64), cost: Option<i64>) -> Event {
    Event::Usage(UsageEvent {
        event_id: id.into(),
        occurred_at: at,
        tenant_id: "acme".into(),
        user_id: None,
        model_id: model.into(),
        provider: "openai".into(),
        feature: "chat".into(),
        input_tokens: tokens.0,
        output_tokens: tokens.1,
        cost_usd_nanos: cost,
        cache_read_input_tokens: None,
        cache_write_input_tokens: None,
        reasoning_output_tokens: None,
        session_id: None,
    })
}

#[derive(Debug, Row, Deserialize, PartialEq)]
struct Costs {
    total: String,
    reported: String,
    computed: String,
    priced_by_book: i64,
    versions: Vec<String>,
}

/// The costs of `model`'s rows in `usage_<tier>`, summed, in nano-dollars:
/// (total, reported, computed, requests priced by the book), and the
/// versions named.
async fn costs(
    env: &TestEnv,
    tier: &str,
    model: &str,
) -> Option<(i64, i64, i64, i64, Vec<String>)> {
    let rows: Vec<Costs> = env
        .clickhouse()
        .query(&format!(
            "SELECT toString(total_cost_usd) AS total, toString(reported_cost_usd) AS reported, \
             toString(computed_cost_usd) AS computed, computed_request_count AS priced_by_book, \
             price_versions AS versions FROM usage_{tier} WHERE model_id = '{model}'"
        ))
        .fetch_all()
        .await
        .ok()?;
    let mut sum = (0, 0, 0, 0, Vec::new());
    for r in rows {
        sum.0 += dollars_to_nanos(&r.total);
        sum.1 += dollars_to_nanos(&r.reported);
        sum.2 += dollars_to_nanos(&r.computed);
        sum.3 += r.priced_by_book;
        sum.4.extend(r.versions);
    }
    sum.4.sort();
    sum.4.dedup();
    Some(sum)
}

/// `usage_by_feature_<view>` (merged across models) holds exactly the
/// requests, total and computed cost, and price versions of
/// `usage_<view>`.
async fn assert_feature_rows_follow(env: &TestEnv, view: &str, when: &str) {
    let totals = |table: String| async move {
        env.clickhouse()
            .query(&format!(
                "SELECT toString(sum(request_count)), toString(sum(total_cost_usd)), \
                 toString(sum(computed_cost_usd)), \
                 toString(arraySort(groupUniqArrayArray(price_versions))) FROM {table}"
            ))
            .fetch_one::<(String, String, String, String)>()
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}"))
    };
    // The grouped rows are compacted right after the full ones: give the
    // sink's running compaction a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (grouped, full) = (
            totals(format!("usage_by_feature_{view}")).await,
            totals(format!("usage_{view}")).await,
        );
        if grouped == full || std::time::Instant::now() > deadline {
            assert_eq!(
                grouped, full,
                "usage_by_feature_{view} against usage_{view} {when}"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn reprice(env: &TestEnv, book: &Path, from: i64, to: i64) -> String {
    let out = Command::new(bin_path("centile"))
        .args([
            "reprice",
            "--from",
            &from.to_string(),
            "--to",
            &to.to_string(),
        ])
        .args(["--by", "auditor@example.com"])
        .envs(env.env())
        .env("CENTILE_PRICING_BOOK", book)
        .output()
        .expect("centile runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "centile reprice: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The `rows old new` columns `centile reprice` printed for `tier`.
fn printed(report: &str, tier: &str) -> (u64, String, String) {
    let line = report
        .lines()
        .find(|l| l.split_whitespace().next() == Some(tier))
        .unwrap_or_else(|| panic!("no {tier} line in {report}"));
    let f: Vec<&str> = line.split_whitespace().collect();
    (f[1].parse().unwrap(), f[3].to_owned(), f[4].to_owned())
}

#[derive(Debug, Row, Deserialize)]
struct Audit {
    requested_by: String,
    tier: String,
    rows_restated: u64,
    old_computed_cost_usd_nanos: i64,
    new_computed_cost_usd_nanos: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_without_cost_is_priced_by_the_book_and_repriced_exactly() {
    let env = TestEnv::new("pricing");
    env.create_topics().await;
    let dir = std::env::temp_dir().join(&env.id);
    std::fs::create_dir_all(&dir).unwrap();
    let book = dir.join("prices.toml");
    std::fs::write(&book, WRONG).unwrap();
    let book_env = [(
        "CENTILE_PRICING_BOOK".to_owned(),
        book.display().to_string(),
    )];
    let _aggregator = env.spawn("centile-aggregator", &[]);
    let sink = env.spawn_with("centile-sink", &[], &book_env);

    // Minute :10 of the previous hour, and :11 for the event sent later.
    let hour = now_ms() / 3_600_000 * 3_600_000 - 3_600_000;
    let at = hour + 10 * 60_000 + 5_000;
    let mut first = match usage(&format!("{}-1", env.id), at, "gpt-4o", (1_000, 300), None) {
        Event::Usage(e) => e,
        _ => unreachable!(),
    };
    first.cache_read_input_tokens = Some(400);
    first.cache_write_input_tokens = Some(100);
    first.reasoning_output_tokens = Some(200);
    let events = vec![
        Event::Usage(first),
        usage(
            &format!("{}-2", env.id),
            at + 1,
            "gpt-4o",
            (2_000, 500),
            None,
        ),
        // Reported: kept as reported, never priced.
        usage(
            &format!("{}-3", env.id),
            at + 2,
            "gpt-4o",
            (999, 999),
            Some(5_000_000),
        ),
        // No price for this model: a computed cost of 0, version `none`.
        usage(
            &format!("{}-4", env.id),
            at + 3,
            "mystery-1",
            (10, 10),
            None,
        ),
    ];
    let publisher = env.publisher().await;
    publisher.send_batch(&events).await.expect("published");

    // By hand, the book as entered, for the two unpriced gpt-4o events
    // (3,000 input of which 400 cache read and 100 cache write; 800 output
    // of which 200 reasoning), in nano-dollars a token: 2,500 fresh input,
    // 1,250 cache read, 3,125 cache write, 10,000 output and reasoning:
    // 2,500 × 2,500 + 400 × 1,250 + 100 × 3,125 + 600 × 10,000 + 200 ×
    // 10,000 = 15,062,500.
    const WRONG_NANOS: i64 = 15_062_500;
    const REPORTED: i64 = 5_000_000;
    for tier in TIERS {
        let got = eventually(
            &format!("usage_{tier} priced"),
            Duration::from_secs(120),
            || async {
                costs(&env, tier, "gpt-4o")
                    .await
                    .filter(|c| c.3 == 2 && c.2 > 0)
            },
        )
        .await;
        assert_eq!(
            (got.0, got.1, got.2, got.3),
            (WRONG_NANOS + REPORTED, REPORTED, WRONG_NANOS, 2),
            "usage_{tier}: total, reported, computed, priced by the book"
        );
        assert_eq!(got.4.len(), 1, "usage_{tier}: one version: {:?}", got.4);
        assert!(got.4[0].starts_with("2020-01-01:"), "{:?}", got.4);
        let mystery = costs(&env, tier, "mystery-1").await.unwrap();
        assert_eq!(
            (mystery.2, mystery.3, mystery.4),
            (0, 1, vec!["none".to_owned()]),
            "usage_{tier}: an unknown model is not priced, and says so"
        );
    }
    let wrong_version = costs(&env, "minute", "gpt-4o").await.unwrap().4;
    for view in ["daily", "weekly"] {
        assert_feature_rows_follow(&env, view, "as first priced").await;
    }

    // The correction: reasoning 12, cache read 1.00. By hand: 2,500 ×
    // 2,500 + 400 × 1,000 + 100 × 3,125 + 600 × 10,000 + 200 × 12,000 =
    // 15,362,500.
    const RIGHT_NANOS: i64 = 15_362_500;
    std::fs::write(
        &book,
        WRONG
            .replace("reasoning = \"10\"", "reasoning = \"12\"")
            .replace("cache_read = \"1.25\"", "cache_read = \"1.00\""),
    )
    .unwrap();
    let (from, to) = (hour / 1_000 - 86_400, now_ms() / 1_000 + 86_400);
    let report = reprice(&env, &book, from, to);
    for tier in ["minute", "hour", "day", "week"] {
        assert_eq!(
            printed(&report, tier),
            (1, "0.015062500".into(), "0.015362500".into()),
            "{tier} in {report}"
        );
    }
    for tier in TIERS {
        let got = costs(&env, tier, "gpt-4o").await.unwrap();
        assert_eq!(
            (got.0, got.1, got.2, got.3),
            (RIGHT_NANOS + REPORTED, REPORTED, RIGHT_NANOS, 2),
            "usage_{tier} after the reprice"
        );
        assert_eq!(got.4.len(), 1);
        assert_ne!(got.4, wrong_version, "the corrected version is recorded");
        assert_eq!(costs(&env, tier, "mystery-1").await.unwrap().2, 0);
    }
    for view in ["daily", "weekly"] {
        assert_feature_rows_follow(&env, view, "after the reprice").await;
    }
    let audit: Vec<Audit> = env
        .clickhouse()
        .query(
            "SELECT requested_by, tier, rows_restated, old_computed_cost_usd_nanos, \
             new_computed_cost_usd_nanos FROM reprice_audit ORDER BY started_at, tier",
        )
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(audit.len(), 4, "one record per tier: {audit:?}");
    for a in &audit {
        assert_eq!(a.requested_by, "auditor@example.com");
        assert_eq!(
            (
                a.rows_restated,
                a.old_computed_cost_usd_nanos,
                a.new_computed_cost_usd_nanos
            ),
            (1, WRONG_NANOS, RIGHT_NANOS),
            "{}",
            a.tier
        );
    }

    // Twice: nothing left to restate, nothing changes.
    let again = reprice(&env, &book, from, to);
    for tier in ["minute", "hour", "day", "week"] {
        assert_eq!(
            printed(&again, tier),
            (0, "0.000000000".into(), "0.000000000".into()),
            "{tier} in {again}"
        );
    }
    for tier in TIERS {
        assert_eq!(
            costs(&env, tier, "gpt-4o").await.unwrap().2,
            RIGHT_NANOS,
            "usage_{tier} after the second run"
        );
    }

    // The running sink read the corrected book: a new unpriced event
    // (1,000 input at 2,500) is priced by it, and the hour, day and week
    // are priced again from their sums: 15,362,500 + 2,500,000.
    publisher
        .send(usage(
            &format!("{}-5", env.id),
            at + 60_000,
            "gpt-4o",
            (1_000, 0),
            None,
        ))
        .await
        .expect("published");
    for tier in ["hourly", "daily", "weekly"] {
        let got = eventually(
            &format!("usage_{tier} with the late event"),
            Duration::from_secs(120),
            || async { costs(&env, tier, "gpt-4o").await.filter(|c| c.3 == 3) },
        )
        .await;
        assert_eq!(got.2, RIGHT_NANOS + 2_500_000, "usage_{tier}");
    }
    let scrape = sink.metrics().await;
    assert_eq!(
        metric_value(
            &scrape,
            "centile_sink_price_book_reloads_total{outcome=\"loaded\"}"
        ),
        Some(1.0),
        "the sink read the changed book once"
    );

    // A book broken while the sink runs is refused, and the last good one
    // keeps pricing.
    std::fs::write(&book, "[[prices]]\nmodel = \"gpt-4o\"\n").unwrap();
    publisher
        .send(usage(
            &format!("{}-6", env.id),
            at + 60_001,
            "gpt-4o",
            (1_000, 0),
            None,
        ))
        .await
        .expect("published");
    let got = eventually(
        "usage_daily with the event after the broken book",
        Duration::from_secs(120),
        || async { costs(&env, "daily", "gpt-4o").await.filter(|c| c.3 == 4) },
    )
    .await;
    assert_eq!(
        got.2,
        RIGHT_NANOS + 5_000_000,
        "priced by the last good book"
    );
    let scrape = sink.metrics().await;
    assert_eq!(
        metric_value(
            &scrape,
            "centile_sink_price_book_reloads_total{outcome=\"refused\"}"
        ),
        Some(1.0)
    );
    assert!(sink
        .log()
        .contains("field `provider`: missing required field"));
    std::fs::remove_dir_all(&dir).ok();
}

/// A version that begins inside a week: `reprice` restates the days the new
/// version covers, recomputes the week (and the usage by feature) as the sum
/// of its days, writes nothing on a dry run, and restates nothing when run
/// again. Panes go straight into ClickHouse and through the real compaction.
#[tokio::test]
async fn a_week_a_new_price_begins_inside_is_repriced_from_its_days_once() {
    use centile_events::PriceBook;
    use centile_sink::{
        migrate::migrate,
        prices::Prices,
        rollup::{
            pricing::PriceSql,
            reprice::{reprice, Request},
            Compactor, Dirty, Tier,
        },
    };

    let env = TestEnv::new("reprice_week");
    migrate(&env.config).await.expect("migrate");
    let db = env.config.clickhouse.database.clone();
    let client = env.clickhouse();
    // The Monday two weeks back; one unpriced request on Tuesday and one
    // on Friday, 1,000 input and 100 output tokens each.
    let week = Tier::Week.bucket_of(now_ms() / 1_000) - 14 * 86_400;
    let (tuesday, friday) = (week + 86_400 + 36_000, week + 4 * 86_400 + 36_000);
    let panes: Vec<String> = [("p-tue", tuesday), ("p-fri", friday)]
        .iter()
        .map(|(id, at)| {
            format!(
                "('{id}', 1, 'minute', {at}, {end}, 't1', 'm', 'prov', 'chat', 0, 1, 1000, 100, 0, \
                 1, 1000, 100, now())",
                end = at + 60
            )
        })
        .collect();
    client
        .query(&format!(
            "INSERT INTO {db}.usage_panes (pane_id, version, granularity, window_start, window_end, \
             tenant_id, model_id, provider, feature, source_partition, requests, input_tokens_sum, \
             output_tokens_sum, cost_usd_nanos_sum, unpriced_requests, unpriced_input_tokens_sum, \
             unpriced_output_tokens_sum, emitted_at) VALUES {}",
            panes.join(", ")
        ))
        .execute()
        .await
        .expect("panes");
    // As first entered: $1 and $2 per million tokens, 1,000 and 2,000
    // nano-dollars a token: 1,000 × 1,000 + 100 × 2,000 = 1,200,000 a day.
    let first = "[[prices]]\nmodel = \"m\"\nprovider = \"prov\"\neffective_from = 2020-01-01\ninput = \"1\"\noutput = \"2\"\n";
    let book = PriceBook::parse(first).unwrap();
    Compactor::new(client.clone(), db.as_str(), Prices::fixed(&book))
        .compact(&Dirty {
            latency: Default::default(),
            usage: [tuesday / 60 * 60, friday / 60 * 60].into_iter().collect(),
        })
        .await
        .expect("compaction");
    let cost = |view: &'static str| {
        let env = &env;
        async move {
            env.query_u64(&format!(
                "SELECT toUInt64(sum(computed_cost_usd) * 1000000000) FROM {view}"
            ))
            .await
            .expect(view)
        }
    };
    assert_eq!(cost("usage_weekly").await, 2_400_000);

    // Doubled from Thursday: Friday costs 2,400,000; the week is the sum of
    // its days, 3,600,000.
    let thursday = format_date(week + 3 * 86_400);
    let corrected = PriceBook::parse(&format!(
        "{first}[[prices]]\nmodel = \"m\"\nprovider = \"prov\"\neffective_from = {thursday}\ninput = \"2\"\noutput = \"4\"\n"
    ))
    .unwrap();
    let sql = PriceSql::new(&corrected);
    let request = |dry_run| Request {
        start: week,
        end: week + 7 * 86_400,
        model_id: None,
        requested_by: "test".into(),
        dry_run,
    };
    let restated = |outcome: &centile_sink::rollup::reprice::Outcome| -> Vec<(Tier, u64)> {
        outcome.tiers.iter().map(|t| (t.tier, t.restated)).collect()
    };
    let dry = reprice(&client, &db, &sql, "corrected", &request(true))
        .await
        .expect("dry run");
    assert_eq!(
        restated(&dry),
        [
            (Tier::Minute, 1),
            (Tier::Hour, 1),
            (Tier::Day, 1),
            (Tier::Week, 1)
        ],
        "Friday's minute, hour and day, and the week"
    );
    assert_eq!(
        cost("usage_weekly").await,
        2_400_000,
        "a dry run writes nothing"
    );

    let run = reprice(&client, &db, &sql, "corrected", &request(false))
        .await
        .expect("reprice");
    assert_eq!(restated(&run), restated(&dry));
    let week_outcome = run.tiers.iter().find(|t| t.tier == Tier::Week).unwrap();
    assert_eq!(
        (week_outcome.old_nanos, week_outcome.new_nanos),
        (2_400_000, 3_600_000)
    );
    assert_eq!(cost("usage_daily").await, 3_600_000);
    assert_eq!(cost("usage_weekly").await, 3_600_000);
    assert_eq!(cost("usage_by_feature_daily").await, 3_600_000);
    assert_eq!(cost("usage_by_feature_weekly").await, 3_600_000);

    let again = reprice(&client, &db, &sql, "corrected", &request(false))
        .await
        .expect("second run");
    assert!(
        again.tiers.iter().all(|t| t.restated == 0),
        "a second run restates nothing: {:?}",
        again.tiers
    );
    assert_eq!(cost("usage_by_feature_weekly").await, 3_600_000);
}

/// `YYYY-MM-DD` of a Unix time (UTC).
fn format_date(secs: i64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%d"])
        .output()
        .expect("date runs");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
