//! The ClickHouse schema: migrations are versioned, idempotent and recorded
//! on the real server, and the same SQL (migrations and the sink's tier
//! compaction, both printed by the `centile-sink` binary) runs on the real
//! server and on a modern ClickHouse (chdb).

use std::process::Command;

use centile::testkit::{bin_path, workspace_root, TestEnv};
use centile_sink::migrate::{migrate, version_at_least, MIGRATIONS};

#[tokio::test]
async fn migrations_apply_once_and_are_recorded() {
    let env = TestEnv::new("schema");
    let first = migrate(&env.config).await.expect("first migrate");
    let ttl_supported = version_at_least(&first.server_version, "19.6");
    let deferred = usize::from(!ttl_supported);
    assert_eq!(first.applied.len(), MIGRATIONS.len() - deferred);
    assert_eq!(first.deferred.len(), deferred);
    assert!(first.already_applied.is_empty());

    let second = migrate(&env.config).await.expect("second migrate");
    assert!(
        second.applied.is_empty(),
        "nothing is applied twice: {second:?}"
    );
    assert_eq!(second.already_applied, first.applied);
    assert_eq!(second.deferred, first.deferred);

    let recorded = env.query_u64("SELECT count() FROM schema_migrations").await;
    assert_eq!(recorded, Some(first.applied.len() as u64));
    let database = &env.config.clickhouse.database;
    let names = [
        "latency_minute",
        "latency_hourly",
        "latency_daily",
        "latency_weekly",
        "usage_minute",
        "usage_hourly",
        "usage_daily",
        "usage_weekly",
        "top_models_daily",
        "latency_events_dedup",
        "usage_events_dedup",
        "window_status",
        "source_watermarks",
        "latency_rollup_minute",
        "latency_rollup_hour",
        "latency_rollup_day",
        "latency_rollup_week",
        "usage_rollup_minute",
        "usage_rollup_hour",
        "usage_rollup_day",
        "usage_rollup_week",
    ];
    let list = names.map(|n| format!("'{n}'")).join(", ");
    let found = env
        .query_u64(&format!(
            "SELECT count() FROM system.tables WHERE database = '{database}' AND name IN ({list})"
        ))
        .await;
    assert_eq!(found, Some(names.len() as u64));

    // Each `*_dedup` view shows every column of its raw table, the ones
    // later migrations added included.
    for table in ["latency_events", "usage_events"] {
        let columns = |of: &str| {
            format!(
                "SELECT name FROM system.columns WHERE database = '{database}' AND table = '{of}'"
            )
        };
        let missing = env
            .query_u64(&format!(
                "SELECT count() FROM ({}) WHERE name NOT IN ({})",
                columns(table),
                columns(&format!("{table}_dedup"))
            ))
            .await;
        assert_eq!(missing, Some(0), "{table}_dedup lacks columns of {table}");
        let counts = env
            .query_u64(&format!(
                "SELECT uniqExact(table) FROM (SELECT table, count() AS n FROM system.columns \
                 WHERE database = '{database}' AND table IN ('{table}', '{table}_dedup') GROUP BY table) \
                 GROUP BY n"
            ))
            .await;
        assert_eq!(
            counts,
            Some(2),
            "{table} and {table}_dedup have as many columns"
        );
    }
}

/// Runs the SQL checker (migrations twice, fixture panes, the tier
/// compaction twice, every view checked against hand-computed values) with
/// extra arguments. It takes all SQL from the sink binary: `schema-sql` and
/// `compact-sql`.
fn run_sql_checks(extra: &[&str]) {
    let root = workspace_root();
    let output = Command::new("python3")
        .arg(root.join("tests/sql/check_modern_clickhouse.py"))
        .args(extra)
        // This package has no binaries, so no CARGO_BIN_EXE_centile-sink:
        // the testkit builds the workspace's once per test process.
        .env("CENTILE_SINK_BIN", bin_path("centile-sink"))
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "SQL checks failed (is `chdb` installed? `deploy/local/stack up` installs it)\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.lines().any(|l| l.ends_with(" passed, 0 failed")),
        "{stdout}"
    );
}

#[test]
fn schema_runs_on_modern_clickhouse() {
    run_sql_checks(&[]);
}

#[test]
fn schema_checks_pass_on_the_local_server() {
    let env = TestEnv::new("sqlcheck");
    run_sql_checks(&["--http", &env.config.clickhouse.url]);
}
