//! The query API against a real ClickHouse holding real rollups: minute
//! panes of two tenants are inserted and compacted into every tier by the
//! sink's own compactor, then every endpoint's answer is checked against
//! values computed here from the raw inputs: counts, costs, orderings, and
//! percentiles merged across tenants within 1% of the exact ones (which
//! averaged per-tenant percentiles would miss by far). Also: keys and
//! tenancy (401/403), parameter errors naming the parameter, ETag/304, and
//! that a late restatement is never served from the cache.

use std::collections::BTreeSet;

use centile::{
    api_kit::TestApi,
    testkit::{bin_path, metric_value, now_ms, TestEnv},
    truth::exact_quantile,
};
use centile_events::Sketch;
use centile_sink::{
    migrate::migrate,
    rollup::{Compactor, Dirty},
};

const ADMIN: &str = "ca_admin_key_for_tests";
const ACME: &str = "ca_acme_key_for_tests";

struct World {
    env: TestEnv,
    db: String,
    /// Midnight UTC two days ago: the day every pane falls in.
    day: i64,
}

impl World {
    async fn new() -> Self {
        let env = TestEnv::new("api_q");
        migrate(&env.config).await.expect("migrate");
        let db = env.config.clickhouse.database.clone();
        let day = (now_ms() / 1000 / 86_400 - 2) * 86_400;
        Self { env, db, day }
    }

    /// One minute pane of `values` for a tenant, model and tool, as a
    /// `VALUES` tuple for [`World::insert_latency`].
    fn latency_pane(
        pane: &str,
        version: u64,
        start: i64,
        tenant: &str,
        model: &str,
        tool: &str,
        values: &[f64],
    ) -> String {
        let mut sketch = Sketch::new();
        for v in values {
            sketch.add(*v);
        }
        let centroids = sketch.centroids();
        let means: Vec<String> = centroids.iter().map(|c| format!("{:?}", c.mean)).collect();
        let weights: Vec<String> = centroids.iter().map(|c| c.weight.to_string()).collect();
        let sum: f64 = values.iter().sum();
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(0.0, f64::max);
        let n = values.len();
        format!(
            "('{pane}', {version}, 'minute', {start}, {end}, '{tenant}', '{model}', 'prov', '{tool}', 'h', '{{}}', \
             0, {n}, {n}, 0, {sum:?}, {min:?}, {max:?}, {tin}, {n}, {tout}, {n}, [{means}], [{weights}], now())",
            end = start + 60,
            tin = 100 * n,
            tout = 50 * n,
            means = means.join(","),
            weights = weights.join(","),
        )
    }

    async fn insert_latency(&self, panes: &[String]) {
        self.env
            .clickhouse()
            .query(&format!(
                "INSERT INTO {db}.latency_panes (pane_id, version, granularity, window_start, window_end, \
                 tenant_id, model_id, provider, tool, parameter_hash, parameters, source_partition, calls, \
                 successes, errors, rt_sum, rt_min, rt_max, input_tokens_sum, input_tokens_count, \
                 output_tokens_sum, output_tokens_count, centroid_means, centroid_weights, emitted_at) VALUES {}",
                panes.join(", "),
                db = self.db,
            ))
            .execute()
            .await
            .expect("insert latency panes");
    }

    fn usage_pane(
        pane: &str,
        start: i64,
        tenant: &str,
        model: &str,
        feature: &str,
        requests: u64,
        cost_nanos: Option<i64>,
    ) -> String {
        let (tin, tout) = (requests * 10, requests * 5);
        // Without a reported cost, the requests and their tokens are the
        // unpriced ones, for the price book.
        let (reported, unpriced) = match cost_nanos {
            Some(nanos) => (nanos, (0, 0, 0)),
            None => (0, (requests, tin, tout)),
        };
        format!(
            "('{pane}', 1, 'minute', {start}, {end}, '{tenant}', '{model}', 'prov', '{feature}', 0, {requests}, \
             {tin}, {tout}, {reported}, {}, {}, {}, now())",
            unpriced.0,
            unpriced.1,
            unpriced.2,
            end = start + 60,
        )
    }

    async fn insert_usage(&self, panes: &[String]) {
        self.env
            .clickhouse()
            .query(&format!(
                "INSERT INTO {db}.usage_panes (pane_id, version, granularity, window_start, window_end, tenant_id, \
                 model_id, provider, feature, source_partition, requests, input_tokens_sum, output_tokens_sum, \
                 cost_usd_nanos_sum, unpriced_requests, unpriced_input_tokens_sum, \
                 unpriced_output_tokens_sum, emitted_at) VALUES {}",
                panes.join(", "),
                db = self.db,
            ))
            .execute()
            .await
            .expect("insert usage panes");
    }

    async fn compact(&self, latency: BTreeSet<i64>, usage: BTreeSet<i64>) {
        Compactor::new(
            self.env.clickhouse(),
            self.db.as_str(),
            centile_sink::prices::Prices::fixed(
                &centile_events::pricing::PriceBook::parse(PRICE_BOOK).expect("the test's book"),
            ),
        )
        .compact(&Dirty { latency, usage })
        .await
        .expect("compaction");
    }

    async fn watermark(&self, at: i64) {
        self.env
            .clickhouse()
            .query(&format!(
                "INSERT INTO {}.source_watermarks VALUES ('topic', 0, 0, {at}, 1, now())",
                self.db
            ))
            .execute()
            .await
            .expect("insert watermark");
    }
}

fn close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= expected * 0.01,
        "{what}: {actual} is not within 1% of {expected}"
    );
}

/// m2's usage reports no cost: the book prices its 10 input and 5 output
/// tokens a request at 200 and 1,000 nano-dollars a token, 7,000 in all.
const PRICE_BOOK: &str = r#"
[[prices]]
model = "m2"
provider = "prov"
effective_from = "2020-01-01"
input = "0.2"
output = "1"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_from_the_stored_tiers() {
    let w = World::new().await;
    // Hours 10 and 11 of the day: acme is fast (100–200 ms), beta slow
    // (1–2 s) and has twice the calls, on the same model and tool.
    let mut fast_all = Vec::new();
    let mut all = Vec::new();
    let mut minutes = BTreeSet::new();
    let mut panes = Vec::new();
    for minute in 0..120 {
        let start = w.day + 10 * 3_600 + minute * 60;
        minutes.insert(start);
        let fast: Vec<f64> = (0..20)
            .map(|i| 100.0 + 5.0 * i as f64 + minute as f64 * 0.01)
            .collect();
        let slow: Vec<f64> = (0..40)
            .map(|i| 1_000.0 + 25.0 * i as f64 + minute as f64 * 0.1)
            .collect();
        panes.push(World::latency_pane(
            &format!("a{minute}"),
            1,
            start,
            "acme",
            "m1",
            "chat",
            &fast,
        ));
        panes.push(World::latency_pane(
            &format!("b{minute}"),
            1,
            start,
            "beta",
            "m1",
            "chat",
            &slow,
        ));
        fast_all.extend(&fast);
        all.extend(&fast);
        all.extend(&slow);
    }
    // Usage: m1 chat for acme (3 per minute, 1000 nanos each), m2 search
    // for beta (1 per minute).
    w.insert_latency(&panes).await;
    let mut usage_minutes = BTreeSet::new();
    let mut usage = Vec::new();
    for minute in 0..120 {
        let start = w.day + 10 * 3_600 + minute * 60;
        usage_minutes.insert(start);
        usage.push(World::usage_pane(
            &format!("ua{minute}"),
            start,
            "acme",
            "m1",
            "chat",
            3,
            Some(3_000),
        ));
        usage.push(World::usage_pane(
            &format!("ub{minute}"),
            start,
            "beta",
            "m2",
            "search",
            1,
            None,
        ));
    }
    w.insert_usage(&usage).await;
    w.compact(minutes.clone(), usage_minutes).await;
    // Everything up to hour 11:00 is final.
    w.watermark(w.day + 11 * 3_600).await;

    let catalog = w.env.config.clickhouse.database.clone() + "_catalog.toml";
    let catalog = std::env::temp_dir().join(catalog);
    std::fs::write(
        &catalog,
        "[[model]]\nid = \"m1\"\nname = \"Model One\"\nprovider = \"prov\"\nstatus = \"active\"\ndescription = \"the first\"\n\
         [[model]]\nid = \"m9\"\nname = \"Model Nine\"\nprovider = \"other\"\nstatus = \"deprecated\"\n",
    )
    .unwrap();
    let api = TestApi::start(
        &w.env,
        &[(ADMIN, "admin"), (ACME, "tenant:acme")],
        &[("CENTILE_API_CATALOG_FILE", catalog.to_str().unwrap())],
    )
    .await;
    let day = centile_api::params::format_date(w.day);
    let next = centile_api::params::format_date(w.day + 86_400);
    all.sort_by(f64::total_cmp);
    fast_all.sort_by(f64::total_cmp);

    // Trends, hourly over the day, merged across tenants (no filter but the model).
    let trends = api
        .get(
            &format!("/v1/performance/trends?model_id=m1&granularity=hour&start={day}&end={next}"),
            ADMIN,
        )
        .await;
    assert_eq!(trends.status, 200, "{}", trends.text);
    let rows = trends.json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{}", trends.text);
    assert_eq!(rows[0]["call_count"], 60 * 60);
    assert_eq!(rows[0]["is_final"], true, "ends at the watermark");
    assert_eq!(rows[1]["is_final"], false);
    // Over the whole day: the merged sketch's percentiles are the union's.
    let daily = api
        .get(&format!("/v1/performance/trends?model_id=m1&tool=chat&granularity=day&start={day}&end={next}"), ADMIN)
        .await;
    let row = &daily.json["rows"][0];
    assert_eq!(row["call_count"], 120 * 60);
    for (level, key) in [
        (0.5, "p50_response_time"),
        (0.95, "p95_response_time"),
        (0.99, "p99_response_time"),
    ] {
        close(row[key].as_f64().unwrap(), exact_quantile(&all, level), key);
    }
    // The union's median lies in beta's range; averaging the tenants'
    // medians would give about 800 ms.
    assert!(row["p50_response_time"].as_f64().unwrap() > 1_000.0);
    close(row["success_rate"].as_f64().unwrap(), 1.0, "success_rate");
    close(
        row["avg_input_tokens"].as_f64().unwrap(),
        100.0,
        "avg_input_tokens",
    );

    // A tenant key reads only its own tenant, and may not ask for another.
    let own = api
        .get(
            &format!("/v1/performance/trends?model_id=m1&granularity=day&start={day}&end={next}"),
            ACME,
        )
        .await;
    assert_eq!(own.json["rows"][0]["call_count"], 120 * 20, "{}", own.text);
    close(
        own.json["rows"][0]["p99_response_time"].as_f64().unwrap(),
        exact_quantile(&fast_all, 0.99),
        "acme p99",
    );
    let other = api.get("/v1/performance/trends?tenant_id=beta", ACME).await;
    assert_eq!(other.status, 403, "{}", other.text);
    assert_eq!(
        api.get_with("/v1/usage/stats?group_by=day", None, &[])
            .await
            .status,
        401
    );
    assert_eq!(
        api.get("/v1/usage/stats?group_by=day", "wrong")
            .await
            .status,
        401
    );

    // Usage in seed 000's shapes.
    let by_model = api
        .get(
            &format!("/v1/usage/stats?group_by=model&start={day}&end={next}"),
            ADMIN,
        )
        .await;
    assert_eq!(by_model.status, 200, "{}", by_model.text);
    let models = by_model.json["rows"].as_array().unwrap();
    assert_eq!(models[0]["model_id"], "m1");
    assert_eq!(models[0]["total"], 360);
    assert_eq!(models[0]["by_feature"]["chat"], 360);
    close(
        models[0]["total_cost_usd"].as_f64().unwrap(),
        360e-6,
        "m1 cost",
    );
    assert_eq!(models[1]["model_id"], "m2");
    assert_eq!(
        (
            &models[0]["reported_cost_usd"],
            &models[0]["computed_cost_usd"],
            &models[1]["reported_cost_usd"],
            &models[1]["computed_cost_usd"],
            &models[1]["total_cost_usd"],
        ),
        (
            &serde_json::json!(0.00036),
            &serde_json::json!(0.0),
            &serde_json::json!(0.0),
            &serde_json::json!(0.00084),
            &serde_json::json!(0.00084),
        ),
        "reported and computed apart: {}",
        by_model.text
    );
    let by_day = api
        .get(
            &format!("/v1/usage/stats?group_by=day&start={day}&end={next}"),
            ADMIN,
        )
        .await;
    assert_eq!(
        by_day.json["rows"],
        serde_json::json!([{"date": day, "count": 480, "cost_usd": 0.00120,
            "reported_cost_usd": 0.00036, "computed_cost_usd": 0.00084}]),
        "{}",
        by_day.text
    );
    let by_feature = api.get("/v1/usage/stats?group_by=feature", ACME).await;
    assert_eq!(
        by_feature.json["rows"],
        serde_json::json!([{"feature": "chat", "count": 360, "cost_usd": 0.00036,
            "reported_cost_usd": 0.00036, "computed_cost_usd": 0.0}]),
        "{}",
        by_feature.text
    );
    // An hour-aligned range reads the hourly rows: hour 10 only.
    let hour = api
        .get(
            &format!(
                "/v1/usage/stats?group_by=feature&start={}&end={}",
                w.day + 36_000,
                w.day + 39_600
            ),
            ADMIN,
        )
        .await;
    assert_eq!(
        hour.json["rows"][0],
        serde_json::json!({"feature": "chat", "count": 180, "cost_usd": 0.00018,
            "reported_cost_usd": 0.00018, "computed_cost_usd": 0.0}),
        "{}",
        hour.text
    );

    let top = api.get("/v1/usage/top-models?days=7&limit=5", ADMIN).await;
    assert_eq!(top.status, 200, "{}", top.text);
    let top_rows = top.json["rows"].as_array().unwrap();
    assert_eq!(top_rows[0]["model_id"], "m1");
    assert_eq!(top_rows[0]["requests"], 360);
    assert_eq!(top_rows[0]["calls"], 120 * 60);
    close(
        top_rows[0]["p95_response_time"].as_f64().unwrap(),
        exact_quantile(&all, 0.95),
        "top p95",
    );
    assert_eq!(top_rows[1]["model_id"], "m2");
    assert_eq!(
        (
            &top_rows[1]["cost_usd"],
            &top_rows[1]["reported_cost_usd"],
            &top_rows[1]["computed_cost_usd"]
        ),
        (
            &serde_json::json!(0.00084),
            &serde_json::json!(0.0),
            &serde_json::json!(0.00084)
        ),
        "m2's cost is the book's: {}",
        top.text
    );
    assert!(
        top_rows[1]["p50_response_time"].is_null(),
        "m2 has no latency events"
    );

    // Parameter errors name the parameter.
    for (query, parameter) in [
        ("/v1/performance/trends?granularity=year", "granularity"),
        ("/v1/performance/trends?start=yesterday", "start"),
        ("/v1/performance/trends?modle_id=m1", "modle_id"),
        (
            "/v1/performance/trends?granularity=minute&start=2020-01-01",
            "start",
        ),
        ("/v1/usage/stats", "group_by"),
        ("/v1/usage/top-models?limit=0", "limit"),
        ("/v1/models/search?status=gone", "status"),
    ] {
        let reply = api.get(query, ADMIN).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.text);
        assert_eq!(
            reply.json["parameter"], parameter,
            "{query}: {}",
            reply.text
        );
        assert_eq!(reply.headers["content-type"], "application/problem+json");
        assert!(
            reply.json["detail"]
                .as_str()
                .unwrap()
                .starts_with(parameter),
            "{}",
            reply.text
        );
    }

    // The catalog joined with the models seen in events, and its search.
    let all_models = api.get("/v1/models", ADMIN).await;
    let ids: Vec<&str> = all_models.json["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["m2", "m9", "m1"],
        "sorted by name: m2 (its id), Model Nine, Model One: {}",
        all_models.text
    );
    let m1 = api.get("/v1/models/m1", ADMIN).await;
    assert_eq!(m1.json["in_catalog"], true);
    assert_eq!(m1.json["first_seen"], format!("{day}T00:00:00Z"));
    let m2 = api.get("/v1/models/m2", ADMIN).await;
    assert_eq!(m2.json["in_catalog"], false);
    assert_eq!(api.get("/v1/models/nope", ADMIN).await.status, 404);
    let found = api
        .get("/v1/models/search?q=MODEL&status=active", ADMIN)
        .await;
    assert_eq!(
        found.json["models"].as_array().unwrap().len(),
        1,
        "{}",
        found.text
    );
    assert_eq!(found.json["models"][0]["id"], "m1");
    // A tenant key sees the catalog and its own models only.
    let acme_models = api.get("/v1/models", ACME).await;
    let acme_ids: Vec<&str> = acme_models.json["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(acme_ids, ["m9", "m1"], "{}", acme_models.text);

    // Completeness per tier.
    let status = api.get("/v1/windows/status", ADMIN).await;
    assert_eq!(status.status, 200, "{}", status.text);
    assert_eq!(
        status.json["low_watermark"],
        centile_api::params::format_time(w.day + 11 * 3_600)
    );

    // The CLI asks the same questions: straight from ClickHouse, and
    // through the API.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(bin_path("centile"))
            .args(args)
            .envs(w.env.env())
            .env("CENTILE_API_CATALOG_FILE", &catalog)
            .output()
            .expect("centile runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = cli(&["query", "usage", "--group-by", "feature", "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let direct: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let served = api.get("/v1/usage/stats?group_by=feature", ADMIN).await;
    assert_eq!(direct, served.json, "the CLI and the API give one answer");
    let (code, stdout, stderr) = cli(&[
        "query",
        "--api",
        &api.url,
        "--key",
        ADMIN,
        "top-models",
        "--days",
        "7",
        "--csv",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let mut lines = stdout.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("model_id,provider,requests,calls,"),
        "{stdout}"
    );
    assert!(
        lines.next().unwrap().starts_with("m1,prov,360,7200,"),
        "{stdout}"
    );
    let (code, stdout, _) = cli(&["query", "search", "model", "--status", "deprecated"]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.starts_with("id ") && stdout.contains("Model Nine") && !stdout.contains("Model One"),
        "{stdout}"
    );
    let (code, _, stderr) = cli(&["query", "trends", "--granularity", "year"]);
    assert_eq!(code, Some(2), "a bad parameter is exit code 2");
    assert!(
        stderr.contains("granularity: expected one of minute, hour, day, week"),
        "{stderr}"
    );
    let (code, _, stderr) = cli(&[
        "query",
        "--api",
        &api.url,
        "--key",
        ACME,
        "trends",
        "--tenant-id",
        "beta",
    ]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("403"), "{stderr}");

    // ETag and 304; then a late restatement of one minute must show at
    // once, even to a client holding the old ETag.
    let path =
        format!("/v1/performance/trends?model_id=m1&granularity=hour&start={day}&end={next}");
    let first = api.get(&path, ADMIN).await;
    let etag = first.headers["etag"].to_str().unwrap().to_owned();
    let again = api
        .get_with(&path, Some(ADMIN), &[("if-none-match", &etag)])
        .await;
    assert_eq!(again.status, 304);
    let hit = api.get(&path, ADMIN).await;
    assert_eq!(hit.text, first.text);
    let scrape = api.service.metrics().await;
    assert!(
        metric_value(&scrape, "centile_api_cache_requests_total{result=\"hit\"}").unwrap() >= 1.0,
        "{scrape}"
    );
    assert!(
        metric_value(
            &scrape,
            "centile_api_cache_requests_total{result=\"not_modified\"}"
        )
        .unwrap()
            >= 1.0
    );

    let late_minute = w.day + 10 * 3_600 + 5 * 60;
    let mut restated: Vec<f64> = (0..20)
        .map(|i| 100.0 + 5.0 * i as f64 + 5.0 * 0.01)
        .collect();
    restated.push(150.0);
    w.insert_latency(&[World::latency_pane(
        "a5",
        2,
        late_minute,
        "acme",
        "m1",
        "chat",
        &restated,
    )])
    .await;
    w.compact(BTreeSet::from([late_minute]), BTreeSet::new())
        .await;
    // An answer reflects every restatement committed at least
    // api.token_ttl (500 ms) before the request.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let fresh = api
        .get_with(&path, Some(ADMIN), &[("if-none-match", &etag)])
        .await;
    assert_eq!(fresh.status, 200, "a restated answer is not 'not modified'");
    assert_ne!(fresh.headers["etag"].to_str().unwrap(), etag);
    assert_eq!(
        fresh.json["rows"][0]["call_count"],
        60 * 60 + 1,
        "{}",
        fresh.text
    );
    let served = api.get(&path, ADMIN).await;
    assert_eq!(
        served.json["rows"][0]["call_count"],
        60 * 60 + 1,
        "the cache serves the restated answer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_view_counts_the_last_five_minutes() {
    let w = World::new().await;
    // Started first: the events below must still be in the last five
    // minutes when they are asked for.
    let api = TestApi::start(&w.env, &[(ADMIN, "admin"), (ACME, "tenant:acme")], &[]).await;
    let now = now_ms() / 1000;
    let client = w.env.clickhouse();
    let mut values = Vec::new();
    // 30 events in the last minutes by 3 users, one replayed copy, and one
    // event from 10 minutes ago that is outside the window.
    for i in 0..30 {
        let at = now - 20 - i * 5;
        let (model, feature) = if i % 3 == 0 {
            ("m2", "search")
        } else {
            ("m1", "chat")
        };
        values.push(format!(
            "('e{i}', {at}, {ms}, 'acme', 'u{user}', '{model}', 'prov', '{feature}', 1, 1, 1, 0, {i}, now())",
            ms = at * 1000,
            user = i % 3,
        ));
    }
    values.push(format!(
        "('e0', {at}, {ms}, 'acme', 'u0', 'm2', 'prov', 'search', 1, 1, 1, 0, 0, now())",
        at = now - 20,
        ms = (now - 20) * 1000
    ));
    values.push(format!(
        "('old', {at}, {ms}, 'acme', 'u9', 'm3', 'prov', 'x', 1, 1, 1, 0, 99, now())",
        at = now - 600,
        ms = (now - 600) * 1000
    ));
    values.push(format!(
        "('b1', {at}, {ms}, 'beta', 'u5', 'm3', 'prov', 'x', 1, 1, 1, 0, 100, now())",
        at = now - 30,
        ms = (now - 30) * 1000
    ));
    client
        .query(&format!(
            "INSERT INTO {}.usage_events (event_id, occurred_at, occurred_at_ms, tenant_id, user_id, model_id, provider, feature, \
             input_tokens, output_tokens, cost_usd_nanos, source_partition, source_offset, ingested_at) VALUES {}",
            w.db,
            values.join(", ")
        ))
        .execute()
        .await
        .expect("insert raw events");
    let live = api.get("/v1/realtime", ACME).await;
    assert_eq!(live.status, 200, "{}", live.text);
    assert_eq!(live.json["total_events"], 30, "{}", live.text);
    assert_eq!(live.json["active_users"], 3);
    let per_minute: u64 = live.json["events_per_minute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["count"].as_u64().unwrap())
        .sum();
    assert!(per_minute >= 30, "{}", live.text);
    assert_eq!(
        live.json["top_pairs"][0],
        serde_json::json!({"model_id": "m1", "feature": "chat", "count": 20})
    );
    assert_eq!(
        live.json["top_pairs"][1],
        serde_json::json!({"model_id": "m2", "feature": "search", "count": 10})
    );
    let everyone = api.get("/v1/realtime", ADMIN).await;
    assert_eq!(everyone.json["total_events"], 31);

    // The stream pushes the same view as Server-Sent Events.
    let mut response = api
        .http
        .get(format!("{}/v1/realtime/stream", api.url))
        .bearer_auth(ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut events = 0;
    while events < 2 && std::time::Instant::now() < deadline {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(6), response.chunk())
            .await
            .expect("an event within 5 s")
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
        events = seen.matches("event: realtime").count();
    }
    assert_eq!(events, 2, "{seen}");
    assert!(seen.contains("\"total_events\":30"), "{seen}");
    let denied = api.get("/v1/realtime/stream?tenant_id=beta", ACME).await;
    assert_eq!(denied.status, 403);
}
