//! Percentiles at the hour, day and week tiers of a heavy-tailed workload
//! large enough that every sketch pools many values per bucket: 150,000
//! calls in one hour (one ISO week, one day), spread over 60 minutes and 3
//! source partitions, through the real compaction on the real server.

use centile::testkit::{now_ms, TestEnv};
use centile::truth::exact_quantile;
use centile_events::Sketch;
use centile_sink::{
    migrate::migrate,
    rollup::{Compactor, Dirty},
};
use rand::{rngs::StdRng, Rng, SeedableRng};

#[tokio::test]
async fn hour_day_and_week_percentiles_stay_within_one_percent() {
    let env = TestEnv::new("tier_pct");
    migrate(&env.config).await.expect("migrate");
    let db = &env.config.clickhouse.database;
    let client = env.clickhouse();
    let hour = (now_ms() / 1000 - 86_400) / 3_600 * 3_600;
    let mut rng = StdRng::seed_from_u64(7);
    let mut all = Vec::new();
    let mut minutes = std::collections::BTreeSet::new();
    for minute in 0..60 {
        let start = hour + minute * 60;
        minutes.insert(start);
        for partition in 0..3 {
            let mut sketch = Sketch::new();
            for _ in 0..(150_000 / 180) {
                // Log-normal body (median 400 ms, sigma 0.8) with a Pareto
                // tail on 2% of calls.
                let normal: f64 = (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0;
                let mut v = 400.0 * (0.8 * normal).exp();
                if rng.random::<f64>() < 0.02 {
                    v *= 1.0 / rng.random::<f64>().max(1e-3).powf(0.7);
                }
                sketch.add(v);
                all.push(v);
            }
            let centroids = sketch.centroids();
            let means: Vec<String> = centroids.iter().map(|c| format!("{:?}", c.mean)).collect();
            let weights: Vec<String> = centroids.iter().map(|c| c.weight.to_string()).collect();
            client
                .query(&format!(
                    "INSERT INTO {db}.latency_panes (pane_id, version, granularity, window_start, window_end, \
                     tenant_id, model_id, provider, tool, parameter_hash, parameters, source_partition, calls, \
                     successes, centroid_means, centroid_weights, emitted_at) VALUES \
                     ('p{minute}-{partition}', 1, 'minute', {start}, {end}, 't', 'm', 'p', 'x', 'h', '{{}}', \
                     {partition}, {n}, {n}, [{means}], [{weights}], now())",
                    end = start + 60,
                    n = sketch.count(),
                    means = means.join(","),
                    weights = weights.join(","),
                ))
                .execute()
                .await
                .expect("insert pane");
        }
    }
    Compactor::new(
        client.clone(),
        db.as_str(),
        centile_sink::prices::Prices::fixed(&Default::default()),
    )
    .compact(&Dirty {
        latency: minutes,
        usage: Default::default(),
    })
    .await
    .expect("compaction");
    all.sort_by(f64::total_cmp);
    for view in [
        "latency_hourly",
        "latency_daily",
        "latency_weekly",
        "performance_daily",
        "top_models_daily",
    ] {
        let (calls, p50, p95, p99): (u64, f64, f64, f64) = client
            .query(&format!(
                "SELECT call_count, p50_response_time, p95_response_time, p99_response_time FROM {db}.{view}"
            ))
            .fetch_one()
            .await
            .expect("one row");
        assert_eq!(calls as usize, all.len(), "{view}");
        for (q, got) in [(0.5, p50), (0.95, p95), (0.99, p99)] {
            let exact = exact_quantile(&all, q);
            let error = (got - exact).abs() / exact;
            assert!(
                error < 0.01,
                "{view} p{}: {got} vs exact {exact} ({:.3}%)",
                q * 100.0,
                error * 100.0
            );
        }
    }
}
