//! The dashboard in a real browser, on the real pipeline: events posted to
//! the gateway go through the aggregator and sink into ClickHouse, and
//! `tests/browser/dashboard.py` (headless Chromium driven by Playwright)
//! checks that `centile-api`'s page shows within 5 s, shows the API's own
//! numbers on every tab, and shows an event published while Live is open
//! within 5 s. Screenshots: `target/test-artifacts/dashboard/`.

use std::{process::Stdio, time::Duration};

use centile::{
    api_kit::TestApi,
    gateway_kit::TestGateway,
    testkit::{eventually, now_ms, workspace_root, TestEnv},
};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::Command,
};

const GATEWAY_KEY: &str = "ck_dashboard_browser_gateway_key";
const API_KEY: &str = "ca_dashboard_browser_admin_key";
const TENANT: &str = "dash-tenant";
const LIVE_MODEL: &str = "dash-live";

/// Latency events per (model, provider, tool).
const CALLS: [(&str, &str, &str, i64); 4] = [
    ("dash-gpt", "openai", "chat", 30),
    ("dash-gpt", "openai", "search", 10),
    ("dash-claude", "anthropic", "chat", 25),
    ("dash-mini", "openai", "chat", 10),
];
/// Usage events per (model, provider, feature). Four pairs, so the live
/// event's pair is still among the five `top_pairs` the API lists.
const BILLS: [(&str, &str, &str, i64); 4] = [
    ("dash-gpt", "openai", "chat", 30),
    ("dash-gpt", "openai", "search", 10),
    ("dash-claude", "anthropic", "chat", 20),
    ("dash-mini", "openai", "summarise", 5),
];
/// Distinct `user_id`s among the usage events (Live's active users).
const USERS: i64 = 7;
/// $0.001234567 a call: small costs must show more than two decimals.
const COST_NANOS: i64 = 1_234_567;

fn call(model: &str, provider: &str, tool: &str, at: i64, i: i64) -> Value {
    json!({
        "occurred_at": at,
        "tenant_id": TENANT,
        "model_id": model,
        "provider": provider,
        "tool": tool,
        "parameters": {"temperature": 0.2},
        "response_time_ms": 80 + (i * 137) % 1900,
        "success": i % 10 != 3,
        "error_type": if i % 10 == 3 { Value::from("timeout") } else { Value::Null },
        "input_tokens": 100 + i,
        "output_tokens": 20 + i,
    })
}

/// The sink's price book: `dash-mini`'s events carry no cost, so the
/// dashboard shows a computed cost beside the reported ones.
const PRICE_BOOK: &str = r#"
[[prices]]
model = "dash-mini"
provider = "openai"
effective_from = "2020-01-01"
input = "1"
output = "2"
"#;
/// By hand: `dash-mini`'s 5 events carry 100..=104 input and 20..=24
/// output tokens, 510 and 110 in all, at 1,000 and 2,000 nano-dollars a
/// token.
const MINI_COMPUTED_NANOS: i64 = 510 * 1_000 + 110 * 2_000;

fn bill(model: &str, provider: &str, feature: &str, at: i64, i: i64) -> Value {
    let mut bill = json!({
        "occurred_at": at,
        "tenant_id": TENANT,
        "user_id": format!("user-{}", i % USERS),
        "model_id": model,
        "provider": provider,
        "feature": feature,
        "input_tokens": 100 + i,
        "output_tokens": 20 + i,
    });
    if model != "dash-mini" {
        bill["cost_usd_nanos"] = json!(COST_NANOS);
    }
    bill
}

async fn post(gateway: &TestGateway, kind: &str, events: Vec<Value>) {
    let count = events.len();
    let answer = gateway
        .post_json(kind, GATEWAY_KEY, &Value::Array(events))
        .await;
    assert_eq!(answer.status, 202, "{kind}: {:?}", answer.body);
    assert_eq!(answer.body["accepted"], count);
}

/// Sum of `field` over an answer's `rows`.
fn sum(answer: &Value, field: &str) -> i64 {
    answer["rows"].as_array().map_or(0, |rows| {
        rows.iter().filter_map(|r| r[field].as_i64()).sum()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_apis_numbers_in_a_real_browser() {
    let env = TestEnv::new("dashboard");
    env.create_topics().await;
    let _aggregator = env.spawn("centile-aggregator", &[]);
    let _sink = env.spawn_priced_sink(PRICE_BOOK);
    let gateway = TestGateway::start(&env, &[(GATEWAY_KEY, TENANT)], &[]).await;
    let api = TestApi::start(
        &env,
        &[(API_KEY, "admin")],
        &[("CENTILE_API_REALTIME_INTERVAL", "1s")],
    )
    .await;

    // Everything in the last minute: still inside Live's 5-minute window
    // when the browser looks, and in today's day and this hour's minutes.
    let start = now_ms() - 60_000;
    let mut calls = Vec::new();
    for (model, provider, tool, n) in CALLS {
        calls.extend((0..n).map(|i| call(model, provider, tool, start + i * 1500, i)));
    }
    let mut bills = Vec::new();
    for (model, provider, feature, n) in BILLS {
        bills.extend((0..n).map(|i| bill(model, provider, feature, start + i * 1500, i)));
    }
    let (call_count, bill_count) = (calls.len() as i64, bills.len() as i64);
    post(&gateway, "latency", calls).await;
    post(&gateway, "usage", bills).await;

    // Landed: every view the dashboard reads counts every event.
    eventually(
        "the events in every view the dashboard reads",
        Duration::from_secs(120),
        || async {
            let top = api.get("/v1/usage/top-models?days=30", API_KEY).await.json;
            let features = api
                .get("/v1/usage/stats?group_by=feature", API_KEY)
                .await
                .json;
            let trend = api
                .get(
                    "/v1/performance/trends?model_id=dash-gpt&tool=chat&granularity=minute",
                    API_KEY,
                )
                .await
                .json;
            let models = api.get("/v1/models", API_KEY).await.json;
            let live = api.get("/v1/realtime", API_KEY).await.json;
            let listed = models["models"].as_array().map_or(0, |m| m.len());
            (sum(&top, "calls") == call_count
                && sum(&top, "requests") == bill_count
                && sum(&features, "count") == bill_count
                && sum(&trend, "call_count") == 30
                && listed >= 3
                && live["total_events"].as_i64() == Some(bill_count))
            .then_some(())
        },
    )
    .await;
    // The API keeps what the events reported apart from what the book
    // computed, and their sum is the cost.
    let top = api.get("/v1/usage/top-models?days=30", API_KEY).await.json;
    let rows = top["rows"].as_array().expect("rows");
    let usd = |nanos: i64| nanos as f64 / 1e9;
    for row in rows {
        let (reported, computed) = match row["model_id"].as_str() {
            Some("dash-mini") => (0, MINI_COMPUTED_NANOS),
            _ => (row["requests"].as_i64().unwrap() * COST_NANOS, 0),
        };
        assert_eq!(
            (
                row["reported_cost_usd"].as_f64(),
                row["computed_cost_usd"].as_f64(),
                row["cost_usd"].as_f64()
            ),
            (
                Some(usd(reported)),
                Some(usd(computed)),
                Some(usd(reported + computed))
            ),
            "{row}"
        );
    }

    let out = workspace_root().join("target/test-artifacts/dashboard");
    let mut script = Command::new("python3")
        .arg(workspace_root().join("tests/browser/dashboard.py"))
        .args(["--url", &format!("{}/", api.url)])
        .arg("--out")
        .arg(&out)
        .args([
            "--expect-model",
            "dash-gpt",
            "--expect-model",
            "dash-claude",
        ])
        .args(["--expect-feature", "chat", "--expect-feature", "summarise"])
        .args(["--perf-model", "dash-gpt", "--perf-tool", "chat"])
        .args(["--expect-live-model", LIVE_MODEL, "--live-handshake"])
        .args(["--expect-live-users", &USERS.to_string()])
        // Not on the command line, where any process could read it.
        .env("CENTILE_API_KEY", API_KEY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs (playwright and chromium: deploy/local/stack up)");
    let mut stdin = script.stdin.take().expect("stdin");
    let mut lines = BufReader::new(script.stdout.take().expect("stdout")).lines();
    let stderr = script.stderr.take().expect("stderr");
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            text.push_str(&line);
            text.push('\n');
        }
        text
    });

    // The script says when Live is showing; the event is published then, and
    // the script allows it 5 s from the moment it is told.
    let mut report = String::new();
    let run = async {
        while let Some(line) = lines.next_line().await.expect("script output") {
            println!("{line}");
            report.push_str(&line);
            report.push('\n');
            if line == "live-ready" {
                let at = now_ms();
                post(
                    &gateway,
                    "usage",
                    vec![bill(LIVE_MODEL, "openai", "chat", at, 0)],
                )
                .await;
                stdin
                    .write_all(b"published\n")
                    .await
                    .expect("tell the script");
                stdin.flush().await.expect("flush");
            }
        }
        script.wait().await.expect("the script exits")
    };
    let status = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the browser test finishes within 240 s");
    let errors = errors.await.unwrap_or_default();
    assert!(
        status.success(),
        "tests/browser/dashboard.py failed ({status}); screenshots in {}:\n{report}\n{errors}",
        out.display()
    );
    assert!(
        report.contains("ok: the published event shows on Live"),
        "{report}"
    );
    for tab in ["top", "daily", "feature", "perf", "live", "status"] {
        assert!(out.join(format!("{tab}.png")).is_file(), "{tab}.png kept");
    }
}
