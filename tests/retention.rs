//! Retention tiers, with rows on both sides of every boundary: on the real
//! server (18.16 here: whole expired partitions are dropped) and on a
//! modern ClickHouse (chdb: TTL).

use std::process::Command;

use centile::testkit::{bin_path, workspace_root, TestEnv};
use centile_runtime::config::{Keep, RetentionConfig};
use centile_sink::{
    migrate::migrate,
    retention::{self, policies},
};

/// 2026-12-01 12:00:00 UTC, a Tuesday.
const NOW: i64 = 1_796_126_400;
const DAY: i64 = 86_400;

/// For each table: a row just younger than its tier (must stay) and one
/// whose whole partition is past the tier (must go).
fn placements(config: &RetentionConfig, now: i64) -> Vec<(String, &'static str, i64, i64)> {
    policies(config)
        .into_iter()
        .map(|p| {
            let column = if p.table.ends_with("_events") {
                "occurred_at"
            } else {
                "window_start"
            };
            let keep = p.keep.days().map_or(10 * 365 * DAY, |d| d as i64 * DAY);
            // Younger than the tier by an hour: never deleted.
            let young = now - keep + 3_600;
            // Past the tier by more than any partition's span (a year).
            let old = now - keep - 400 * DAY;
            (p.table, column, young, old)
        })
        .collect()
}

#[tokio::test]
async fn expired_partitions_go_and_nothing_younger_than_its_tier_does() {
    let env = TestEnv::new("retention");
    migrate(&env.config).await.expect("migrate");
    let client = env.clickhouse();
    let config = RetentionConfig::default();
    let db = &env.config.clickhouse.database;
    let places = placements(&config, NOW);
    for (table, column, young, old) in &places {
        for at in [young, old] {
            client
                .query(&format!(
                    "INSERT INTO {db}.{table} ({column}) VALUES (toDateTime({at}, 'UTC'))"
                ))
                .execute()
                .await
                .expect("insert");
        }
    }

    let dry = retention::run(&client, db, &config, NOW, true)
        .await
        .expect("dry run");
    let mut listed: Vec<&str> = dry.dropped.iter().map(|e| e.table.as_str()).collect();
    listed.sort_unstable();
    let mut expected: Vec<&str> = places
        .iter()
        .filter(|(t, ..)| !t.ends_with("_week"))
        .map(|(t, ..)| t.as_str())
        .collect();
    expected.sort_unstable();
    assert_eq!(listed, expected, "one old partition per table with a tier");
    for (table, ..) in &places {
        let rows = env
            .query_u64(&format!("SELECT count() FROM {db}.{table}"))
            .await;
        assert_eq!(rows, Some(2), "{table}: a dry run deletes nothing");
    }

    let done = retention::run(&client, db, &config, NOW, false)
        .await
        .expect("retention run");
    assert_eq!(done.dropped, dry.dropped);
    for (table, column, young, _) in &places {
        let kept = env
            .query_u64(&format!(
                "SELECT count() FROM {db}.{table} WHERE {column} = toDateTime({young}, 'UTC')"
            ))
            .await;
        assert_eq!(
            kept,
            Some(1),
            "{table}: the row younger than its tier stays"
        );
        let total = env
            .query_u64(&format!("SELECT count() FROM {db}.{table}"))
            .await
            .unwrap();
        let forever = table.ends_with("_week");
        assert_eq!(total, if forever { 2 } else { 1 }, "{table}");
    }

    // A second run finds nothing more.
    let again = retention::run(&client, db, &config, NOW, false)
        .await
        .expect("second run");
    assert!(again.dropped.is_empty(), "{again:?}");
}

#[tokio::test]
async fn dry_run_command_lists_what_would_go() {
    let env = TestEnv::new("retention_cli");
    migrate(&env.config).await.expect("migrate");
    let db = &env.config.clickhouse.database;
    // Two days of minute rows, 30 days old: past the 7-day minute tier.
    let old = centile::testkit::now_ms() / 1000 - 30 * DAY;
    env.clickhouse()
        .query(&format!(
            "INSERT INTO {db}.latency_rollup_minute (window_start) VALUES (toDateTime({old}, 'UTC')), (toDateTime({}, 'UTC'))",
            old + DAY
        ))
        .execute()
        .await
        .unwrap();
    let output = Command::new(bin_path("centile-sink"))
        .args(["retention", "--dry-run"])
        .envs(env.env())
        .output()
        .expect("centile-sink runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("latency_rollup_minute"))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines.iter().all(|l| l.starts_with("would drop")),
        "{stdout}"
    );
    let rows = env
        .query_u64(&format!("SELECT count() FROM {db}.latency_rollup_minute"))
        .await;
    assert_eq!(rows, Some(2), "a dry run deletes nothing");
}

#[test]
fn retention_settings_are_validated() {
    let mut config = centile_runtime::Config::default();
    config.retention.minute = Keep::For(std::time::Duration::from_secs(DAY as u64));
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("retention.minute"), "{err}");
    let mut config = centile_runtime::Config::default();
    config.retention.day = Keep::For(std::time::Duration::from_secs(30 * DAY as u64));
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("retention.day"), "{err}");
    let parsed = centile_runtime::Config::load_from(
        None,
        [("CENTILE_RETENTION_HOUR".to_owned(), "forever".to_owned())],
    );
    // hour forever but day 2 years: the day tier would keep less.
    assert!(parsed.unwrap_err().to_string().contains("retention.day"));
}

/// TTL on a modern server: the same rows, the TTLs the sink sets, then a
/// merge; only the rows past their tier are gone.
#[test]
fn ttl_expires_the_same_rows_on_modern_clickhouse() {
    let root = workspace_root();
    let config = RetentionConfig::default();
    let ttls: Vec<String> = policies(&config)
        .iter()
        .map(|p| format!("{}={}", p.table, p.ttl().unwrap_or_default()))
        .collect();
    // TTL compares with the server's clock.
    let now = centile::testkit::now_ms() / 1000;
    let places: Vec<String> = placements(&config, now)
        .iter()
        .map(|(t, c, young, old)| format!("{t}:{c}:{young}:{old}"))
        .collect();
    let output = Command::new("python3")
        .arg(root.join("tests/sql/check_retention_ttl.py"))
        .arg(bin_path("centile-sink"))
        .arg(ttls.join(";"))
        .arg(places.join(";"))
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "TTL checks failed (is `chdb` installed?)\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("ttl ok"), "{stdout}");
}
