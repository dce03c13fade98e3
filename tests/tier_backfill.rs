//! `centile-sink backfill`: panes already in ClickHouse (as after an upgrade
//! from a release that merged them at query time) get their minute, hour,
//! day and week rows, and running it again changes nothing.

use std::process::Command;

use centile::testkit::{bin_path, now_ms, TestEnv};
use centile_sink::migrate::migrate;

#[tokio::test]
async fn backfill_fills_every_tier_from_stored_panes() {
    let env = TestEnv::new("backfill");
    migrate(&env.config).await.expect("migrate");
    let db = &env.config.clickhouse.database;
    let hour = (now_ms() / 1000 - 2 * 86_400) / 3_600 * 3_600;
    // Two panes of one minute (two source partitions), one of the next.
    let panes = [
        ("a", hour, 0, 3, 30.0, "[10,20]", "[1,2]"),
        ("b", hour, 1, 2, 200.0, "[100]", "[2]"),
        ("c", hour + 60, 0, 1, 7.0, "[7]", "[1]"),
    ];
    for (id, start, partition, calls, rt_sum, means, weights) in panes {
        env.clickhouse()
            .query(&format!(
                "INSERT INTO {db}.latency_panes (pane_id, version, granularity, window_start, window_end, \
                 tenant_id, model_id, provider, tool, parameter_hash, parameters, source_partition, calls, \
                 successes, rt_sum, rt_min, rt_max, centroid_means, centroid_weights, emitted_at) VALUES \
                 ('{id}', 1, 'minute', {start}, {end}, 't', 'm', 'p', 'x', 'h', '{{}}', {partition}, {calls}, \
                 {calls}, {rt_sum}, 1, 300, {means}, {weights}, now())",
                end = start + 60
            ))
            .execute()
            .await
            .expect("insert pane");
    }
    let backfill = || {
        let output = Command::new(bin_path("centile-sink"))
            .args(["backfill", "--days", "3"])
            .envs(env.env())
            .output()
            .expect("centile-sink runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert!(backfill().contains("recomputed the tiers of 2 minutes"));
    for (view, rows, calls) in [
        ("latency_minute", 2, 6),
        ("latency_hourly", 1, 6),
        ("latency_daily", 1, 6),
        ("latency_weekly", 1, 6),
        ("performance_hourly", 1, 6),
        ("top_models_daily", 1, 6),
    ] {
        let got = env
            .query_u64(&format!("SELECT count() FROM {db}.{view}"))
            .await;
        assert_eq!(got, Some(rows), "{view} rows");
        let got = env
            .query_u64(&format!(
                "SELECT toUInt64(sum(call_count)) FROM {db}.{view}"
            ))
            .await;
        assert_eq!(got, Some(calls), "{view} calls");
    }
    // p99 of {10, 20, 20, 100, 100, 7}: the value at rank 6 is 100.
    let p99 = env
        .query_u64(&format!(
            "SELECT toUInt64(round(p99_response_time)) FROM {db}.latency_hourly"
        ))
        .await;
    assert_eq!(p99, Some(100));
    let revision = env
        .query_u64(&format!("SELECT revision FROM {db}.latency_hourly"))
        .await;
    backfill();
    let again = env
        .query_u64(&format!("SELECT revision FROM {db}.latency_hourly"))
        .await;
    assert_eq!(again, revision, "a second backfill restates nothing");
}
