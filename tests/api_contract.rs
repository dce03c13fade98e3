//! The query API's OpenAPI document is the one in the repository, describes
//! every route, and holds against the live API: schemathesis, generating
//! requests from it (valid, invalid and edge cases, plus the document's
//! examples), finds no 5xx answer and no answer that breaks the document
//! (statuses, content types, headers, bodies), once with an admin key and
//! once with a tenant key (so the 403 answers are exercised). The API reads
//! real rollups: six days of traffic went through the aggregator and the
//! sink first, and a trickle of live events keeps flowing during the runs.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use centile::{
    api_kit::TestApi,
    testkit::{self, now_ms, workspace_root, TestEnv},
    truth::{wait_until_complete, Truth},
};
use centile_events::{Event, LatencyEvent, UsageEvent};
use centile_producer::generator::{Generator, GeneratorConfig};
use serde_json::Value;

const ADMIN_KEY: &str = "ck_api_contract_admin";
const TENANT_KEY: &str = "ck_api_contract_acme";
/// The tenant of `TENANT_KEY`; the generator's busiest tenant is renamed to it.
const TENANT: &str = "acme";
const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// Every route the API serves, as the document names it.
const ROUTES: [&str; 13] = [
    "/v1/performance/trends",
    "/v1/usage/stats",
    "/v1/usage/top-models",
    "/v1/models",
    "/v1/models/{id}",
    "/v1/models/search",
    "/v1/realtime",
    "/v1/realtime/stream",
    "/v1/windows/status",
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/",
];

const CATALOG: &str = r#"
[[model]]
id = "gpt-4o"
name = "GPT-4o"
provider = "openai"
status = "active"
description = "Flagship multimodal model"

[[model]]
id = "claude-sonnet-4"
name = "Claude Sonnet 4"
provider = "anthropic"
status = "beta"

[[model]]
id = "legacy-model"
name = "Legacy"
provider = "openai"
status = "deprecated"
description = "Never seen in events"
"#;

/// The live API and its document; collects every disagreement, so one run
/// reports them all.
struct Contract<'a> {
    api: &'a TestApi,
    document: &'a Value,
    problems: Vec<String>,
}

impl Contract<'_> {
    fn expect(&mut self, ok: bool, problem: impl FnOnce() -> String) {
        if !ok {
            self.problems.push(problem());
        }
    }

    /// GETs `path` with `key` and checks the status, the content type, the
    /// `ETag` and the body against the document's `schema`
    /// (`components/schemas`); returns the body (`null` when it is not JSON).
    async fn check(&mut self, path: &str, key: Option<&str>, status: u16, schema: &str) -> Value {
        let reply = self.api.get_with(path, key, &[]).await;
        if reply.status != status {
            self.problems.push(format!(
                "GET {path} answered {} (expected {status}): {}",
                reply.status, reply.text
            ));
            return Value::Null;
        }
        let content_type = reply
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let expected = if status < 400 {
            "application/json"
        } else {
            "application/problem+json"
        };
        if content_type != expected {
            self.problems.push(format!(
                "GET {path}: content type {content_type:?}, expected {expected}: {}",
                reply.text
            ));
            return Value::Null;
        }
        // With the cache on (the default), every answer but the live view
        // carries its data token.
        if status == 200 && path.starts_with("/v1/") && !path.starts_with("/v1/realtime") {
            let etag = reply.headers.get("etag").and_then(|v| v.to_str().ok());
            self.expect(
                etag.is_some_and(|e| e.len() > 2 && e.starts_with('"') && e.ends_with('"')),
                || format!("GET {path}: ETag {etag:?}"),
            );
        }
        self.conforms(schema, &reply.json, &format!("GET {path}"));
        reply.json
    }

    /// Validates `value` against `components/schemas/<schema>` (JSON Schema
    /// 2020-12, formats checked) with Python's jsonschema, which schemathesis
    /// brings.
    fn conforms(&mut self, schema: &str, value: &Value, what: &str) {
        const SCRIPT: &str = r##"
import json, sys
from jsonschema import Draft202012Validator, FormatChecker
given = json.load(sys.stdin)
schema = {"$ref": "#/components/schemas/" + given["schema"], "components": given["document"]["components"]}
validator = Draft202012Validator(schema, format_checker=FormatChecker())
errors = ["/" + "/".join(map(str, e.absolute_path)) + ": " + e.message for e in validator.iter_errors(given["value"])]
print("\n".join(errors))
sys.exit(1 if errors else 0)
"##;
        use std::io::Write;
        let mut child = Command::new("python3")
            .args(["-c", SCRIPT])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let input =
            serde_json::json!({"document": self.document, "schema": schema, "value": value});
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.to_string().as_bytes())
            .expect("write");
        let output = child.wait_with_output().expect("python3 ends");
        self.expect(output.status.success(), || {
            format!(
                "{what} does not conform to {schema}:\n{}{}{value}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        });
    }
}

fn latency(id: String, at: i64, tenant: &str, model: &str, tokens: Option<i64>) -> Event {
    Event::Latency(LatencyEvent {
        event_id: id,
        occurred_at: at,
        tenant_id: tenant.into(),
        model_id: model.into(),
        provider: "selfhosted".into(),
        tool: "chat".into(),
        parameters: Default::default(),
        response_time_ms: 120.0 + (at % 1_000) as f64,
        success: at % 7 != 0,
        error_type: (at % 7 == 0).then(|| "timeout".into()),
        input_tokens: tokens,
        output_tokens: tokens,
        session_id: None,
    })
}

fn usage(id: String, at: i64, tenant: &str, model: &str) -> Event {
    Event::Usage(UsageEvent {
        event_id: id,
        occurred_at: at,
        tenant_id: tenant.into(),
        user_id: None,
        model_id: model.into(),
        provider: "selfhosted".into(),
        feature: "batch".into(),
        input_tokens: 100,
        output_tokens: 50,
        cost_usd_nanos: Some(1_500_000),
        cache_read_input_tokens: None,
        cache_write_input_tokens: None,
        reasoning_output_tokens: None,
        session_id: None,
    })
}

fn rename_tenant(mut event: Event) -> Event {
    let tenant = match &mut event {
        Event::Latency(e) => &mut e.tenant_id,
        Event::Usage(e) => &mut e.tenant_id,
    };
    if tenant == "tenant-01" {
        *tenant = TENANT.into();
    }
    event
}

/// Six days of generated traffic (within the restatement horizon), denser
/// over the last ten minutes, in time order; plus a model seen only in
/// latency events without tokens, and one seen only in usage events.
fn history(now: i64) -> Vec<Event> {
    let mut generator = Generator::new(GeneratorConfig {
        seed: 2026,
        tenants: 3,
        models: 6,
        tools: 3,
        parameter_sets: 3,
        usage_ratio: 0.3,
    });
    let start = now - 6 * DAY_MS;
    let sparse_end = now - 10 * MINUTE_MS;
    let mut events: Vec<Event> = Vec::new();
    let sparse = 2_000;
    for i in 0..sparse {
        let at = start + (sparse_end - start) * i / sparse;
        events.extend(generator.next_events(at));
        if i % 100 == 0 {
            events.push(latency(
                format!("lat-only-{i}"),
                at,
                TENANT,
                "latency-only-model",
                None,
            ));
            events.push(usage(
                format!("use-only-{i}"),
                at,
                "tenant-02",
                "usage-only-model",
            ));
        }
    }
    let dense = 1_200;
    for i in 0..dense {
        let at = sparse_end + (now - 30_000 - sparse_end) * i / dense;
        events.extend(generator.next_events(at));
    }
    events.into_iter().map(rename_tenant).collect()
}

/// Runs schemathesis against the live API with `key`: the number of
/// generated cases and the tail of its report, or its whole report when it
/// found problems.
async fn schemathesis(api_url: &str, key: &str, seed: &str) -> Result<(u64, String), String> {
    let fuzzed = testkit::schemathesis(
        &format!("{api_url}/openapi.json"),
        key,
        seed,
        // An endless event stream: read in full by nothing; checked below.
        &[
            "--url",
            api_url,
            "--exclude-path",
            "/v1/realtime/stream",
            "--request-timeout",
            "20",
        ],
        60,
    )
    .await;
    if !fuzzed.passed {
        return Err(format!("{}\n{}", fuzzed.report, fuzzed.stderr));
    }
    Ok((fuzzed.generated, fuzzed.tail))
}

/// Reads the first event of `/v1/realtime/stream` (within 10 s): its name
/// and its data as JSON.
async fn first_stream_event(api: &TestApi, key: &str) -> (String, Value) {
    let mut response = api
        .http
        .get(format!("{}/v1/realtime/stream", api.url))
        .bearer_auth(key)
        .send()
        .await
        .expect("the API answers");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut text = String::new();
    while !text.contains("\n\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, response.chunk())
            .await
            .expect("an event within 10 s")
            .expect("the stream reads")
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let event = text.split("\n\n").next().expect("one event");
    let name = event
        .lines()
        .find_map(|l| l.strip_prefix("event:"))
        .map(|n| n.trim().to_owned())
        .unwrap_or_default();
    let data = event
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect::<Vec<_>>()
        .join("\n");
    let data = serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {event}"));
    (name, data)
}

/// The paths the API's router serves, read from its source, so a route
/// added without a description fails here. The dashboard's static files
/// (`assets.rs`, other than `/`) are left out.
fn served_routes() -> Vec<String> {
    let source = |file: &str| {
        std::fs::read_to_string(workspace_root().join("crates/api/src").join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
    };
    let routes = |text: &str| -> Vec<String> {
        text.split(".route(\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .map(str::to_owned)
            .collect()
    };
    let mut all = routes(&source("server.rs"));
    all.extend(
        routes(&source("assets.rs"))
            .into_iter()
            .filter(|r| r == "/"),
    );
    all.sort();
    all.dedup();
    all
}

/// The row whose `key` is `value`, or `null`.
fn row_of(rows: &Value, key: &str, value: &str) -> Value {
    rows.as_array()
        .and_then(|rows| rows.iter().find(|r| r[key] == value))
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_api_conforms_to_its_openapi_document() {
    let env = TestEnv::new("api_contract");
    let publisher = env.publisher().await;
    let _aggregator = env.spawn("centile-aggregator", &[]);
    let _sink = env.spawn("centile-sink", &[]);

    let events = history(now_ms());
    let mut truth = Truth::default();
    events.iter().for_each(|e| truth.add(e));
    truth.seal();
    for chunk in events.chunks(2_000) {
        publisher.send_batch(chunk).await.expect("publish");
    }
    wait_until_complete(&env, &truth, Duration::from_secs(300)).await;

    // A trickle of live events while the API is questioned, so the live
    // view has data and answers change under the cache.
    let trickle = {
        let publisher = env.publisher().await;
        tokio::spawn(async move {
            let mut generator = Generator::new(GeneratorConfig {
                seed: 99,
                tenants: 3,
                ..GeneratorConfig::default()
            });
            loop {
                let batch: Vec<Event> = (0..10)
                    .flat_map(|_| generator.next_events(now_ms()))
                    .map(rename_tenant)
                    .collect();
                publisher.send_batch(&batch).await.expect("publish live");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };

    let dir = workspace_root().join("target/test-api").join(&env.id);
    std::fs::create_dir_all(&dir).expect("api dir");
    let catalog = dir.join("catalog.toml");
    std::fs::write(&catalog, CATALOG).expect("catalog file");
    let tenant_role = format!("tenant:{TENANT}");
    let api = TestApi::start(
        &env,
        &[(ADMIN_KEY, "admin"), (TENANT_KEY, &tenant_role)],
        &[
            ("CENTILE_API_CATALOG_FILE", &catalog.display().to_string()),
            // The shipped book: the models' prices in the answers.
            (
                "CENTILE_PRICING_BOOK",
                &workspace_root()
                    .join("deploy/prices.example.toml")
                    .display()
                    .to_string(),
            ),
        ],
    )
    .await;

    // (a) The served document is the repository's.
    let served = api.get_with("/openapi.json", None, &[]).await;
    assert_eq!(served.status, 200);
    let in_repo = std::fs::read_to_string(workspace_root().join("schemas/openapi/api.json"))
        .expect("repo copy");
    assert!(
        served.text == in_repo,
        "the served document is the repository's"
    );
    let document: Value = serde_json::from_str(&served.text).expect("valid JSON");

    // (b) Every route is described, and every described route is served.
    let paths = document["paths"].as_object().expect("paths");
    let served_routes = served_routes();
    for route in ROUTES
        .iter()
        .map(|r| r.to_string())
        .chain(served_routes.clone())
    {
        assert!(paths.contains_key(&route), "{route} is described");
    }
    for path in paths.keys() {
        assert!(served_routes.contains(path), "{path} is a route of the API");
    }

    // The answers to questions whose data is known, each against its
    // schema: the cases schemathesis is unlikely to hit by chance.
    let mut c = Contract {
        api: &api,
        document: &document,
        problems: Vec::new(),
    };
    let admin = Some(ADMIN_KEY);
    let top = c
        .check(
            "/v1/usage/top-models?days=7&limit=100",
            admin,
            200,
            "TopModels",
        )
        .await;
    let gpt = row_of(&top["rows"], "model_id", "gpt-4o");
    c.expect(
        gpt["requests"].as_u64() > Some(0) && gpt["calls"].as_u64() > Some(0),
        || format!("top models: gpt-4o has requests and calls: {top}"),
    );
    let latency_only = row_of(&top["rows"], "model_id", "latency-only-model");
    c.expect(
        latency_only["requests"] == 0 && latency_only["p99_response_time"].is_number(),
        || format!("top models: a model with latency events only: {top}"),
    );
    let usage_only = row_of(&top["rows"], "model_id", "usage-only-model");
    c.expect(
        usage_only["calls"] == 0
            && usage_only["requests"].as_u64() > Some(0)
            && usage_only["error_rate"].is_null()
            && usage_only["p50_response_time"].is_null(),
        || format!("top models: a model with usage events only: {top}"),
    );
    for granularity in ["minute", "hour", "day", "week"] {
        let path = format!("/v1/performance/trends?granularity={granularity}&model_id=gpt-4o");
        let trends = c.check(&path, admin, 200, "Trends").await;
        c.expect(
            trends["rows"].as_array().is_some_and(|r| !r.is_empty()),
            || format!("GET {path}: no rows: {trends}"),
        );
    }
    let path = format!(
        "/v1/performance/trends?granularity=day&model_id=latency-only-model&tenant_id={TENANT}"
    );
    let trends = c.check(&path, admin, 200, "Trends").await;
    c.expect(
        trends["rows"].as_array().is_some_and(|rows| {
            rows.len() >= 6 && rows.iter().all(|r| r["avg_input_tokens"].is_null())
        }),
        || format!("GET {path}: 6+ days without token counts: {trends}"),
    );
    // Filter values that mean something to SQL or to the ClickHouse client
    // (quotes, backslashes, `?` placeholders, LIKE wildcards, braces) are
    // plain text: they match nothing here, and never fail the query.
    const ODD: &str = "a%27b%5Cc%3Fd%25_%7B0%7D";
    for parameter in [
        "model_id",
        "tool",
        "provider",
        "parameter_hash",
        "tenant_id",
    ] {
        let path = format!("/v1/performance/trends?{parameter}={ODD}");
        let trends = c.check(&path, admin, 200, "Trends").await;
        c.expect(
            trends.is_null() || trends["rows"] == serde_json::json!([]),
            || format!("GET {path}: {trends}"),
        );
    }
    for (path, schema) in [
        (
            format!("/v1/usage/stats?group_by=model&model_id={ODD}"),
            "UsageStats",
        ),
        (
            format!("/v1/usage/stats?group_by=day&tenant_id={ODD}"),
            "UsageStats",
        ),
        (format!("/v1/usage/top-models?tenant_id={ODD}"), "TopModels"),
        (format!("/v1/realtime?tenant_id={ODD}"), "Realtime"),
        (
            format!("/v1/models/search?q={ODD}&provider={ODD}"),
            "Models",
        ),
    ] {
        c.check(&path, admin, 200, schema).await;
    }
    c.check(&format!("/v1/models/{ODD}"), admin, 404, "ProblemNotFound")
        .await;
    for group_by in ["model", "day", "feature"] {
        let path = format!("/v1/usage/stats?group_by={group_by}");
        let usage = c.check(&path, admin, 200, "UsageStats").await;
        c.expect(
            usage["group_by"] == group_by
                && usage["rows"].as_array().is_some_and(|r| !r.is_empty()),
            || format!("GET {path}: {usage}"),
        );
    }
    let models = c.check("/v1/models", admin, 200, "Models").await;
    let legacy = row_of(&models["models"], "id", "legacy-model");
    c.expect(
        legacy["in_catalog"] == true && legacy["first_seen"].is_null(),
        || format!("/v1/models: a catalog model never seen: {legacy}"),
    );
    let seen = row_of(&models["models"], "id", "usage-only-model");
    c.expect(
        seen["in_catalog"] == false && seen["first_seen"].is_string(),
        || format!("/v1/models: a model seen only in events: {seen}"),
    );
    for id in [
        "gpt-4o",
        "claude-sonnet-4",
        "legacy-model",
        "latency-only-model",
    ] {
        c.check(&format!("/v1/models/{id}"), admin, 200, "Model")
            .await;
    }
    c.check("/v1/models/no-such-model", admin, 404, "ProblemNotFound")
        .await;
    // An id that is not UTF-8 is refused as the document says, as problem+json.
    let problem = c
        .check("/v1/models/%FF", admin, 400, "ProblemBadRequest")
        .await;
    c.expect(problem.is_null() || problem["parameter"] == "id", || {
        format!("/v1/models/%FF: {problem}")
    });
    let found = c
        .check("/v1/models/search?q=GPT&limit=3", admin, 200, "Models")
        .await;
    c.expect(found["models"][0]["id"] == "gpt-4o", || {
        format!("search q=GPT: the exact name match first: {found}")
    });
    c.check("/v1/models/search?status=deprecated", admin, 200, "Models")
        .await;
    let live = c.check("/v1/realtime", admin, 200, "Realtime").await;
    c.expect(live["total_events"].as_u64() > Some(0), || {
        format!("/v1/realtime: live events: {live}")
    });
    let status = c
        .check("/v1/windows/status", admin, 200, "WindowsStatus")
        .await;
    c.expect(status["low_watermark"].is_string(), || {
        format!("/v1/windows/status: a watermark: {status}")
    });
    for tier in status["tiers"].as_array().cloned().unwrap_or_default() {
        let (windows, finals, open) = (
            tier["windows"].as_u64(),
            tier["final"].as_u64(),
            tier["open"].as_u64(),
        );
        c.expect(
            windows.is_some() && windows == finals.zip(open).map(|(f, o)| f + o),
            || format!("/v1/windows/status: windows = final + open: {tier}"),
        );
    }

    // A tenant key: its own tenant's data, 403 for another's.
    let tenant = Some(TENANT_KEY);
    let own = c
        .check("/v1/usage/top-models?days=7", tenant, 200, "TopModels")
        .await;
    c.expect(
        own["rows"].as_array().is_some_and(|r| !r.is_empty()),
        || format!("top models of the key's own tenant: {own}"),
    );
    for path in [
        "/v1/usage/top-models?tenant_id=tenant-02",
        "/v1/performance/trends?tenant_id=tenant-02",
        "/v1/usage/stats?group_by=day&tenant_id=tenant-02",
        "/v1/realtime?tenant_id=tenant-02",
        "/v1/realtime/stream?tenant_id=tenant-02",
    ] {
        c.check(path, tenant, 403, "ProblemForbidden").await;
    }
    c.check(
        &format!("/v1/realtime?tenant_id={TENANT}"),
        tenant,
        200,
        "Realtime",
    )
    .await;
    // Models seen only in another tenant's events are not the key's to see.
    c.check(
        "/v1/models/usage-only-model",
        tenant,
        404,
        "ProblemNotFound",
    )
    .await;

    // Refusals: no key or an unknown one (with a Bearer challenge), a bad
    // value, an unknown parameter, a repeated one.
    for key in [None, Some("not-a-key")] {
        for path in ["/v1/usage/top-models", "/v1/realtime/stream"] {
            c.check(path, key, 401, "ProblemUnauthorized").await;
            let reply = api.get_with(path, key, &[]).await;
            let challenge = reply
                .headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            c.expect(challenge.starts_with("Bearer"), || {
                format!("GET {path} without a valid key: WWW-Authenticate {challenge:?}")
            });
        }
    }
    for (path, parameter) in [
        ("/v1/performance/trends?granularity=year", "granularity"),
        ("/v1/performance/trends?modle_id=gpt-4o", "modle_id"),
        (
            "/v1/performance/trends?granularity=minute&start=2020-01-01",
            "start",
        ),
        ("/v1/usage/top-models?limit=0", "limit"),
        ("/v1/usage/top-models?days=731", "days"),
        ("/v1/usage/top-models?limit=1&limit=2", "limit"),
        ("/v1/usage/stats", "group_by"),
        ("/v1/usage/stats?group_by=day&start=yesterday", "start"),
        ("/v1/models/search?status=retired", "status"),
        ("/v1/windows/status?tier=minute", "tier"),
        ("/v1/realtime/stream?tenant=acme", "tenant"),
    ] {
        let problem = c.check(path, admin, 400, "ProblemBadRequest").await;
        c.expect(
            problem.is_null()
                || (problem["parameter"] == parameter
                    && problem["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains(parameter))),
            || format!("GET {path}: names {parameter}: {problem}"),
        );
    }

    // ETag: the same question while nothing it reads changes is a 304.
    let path = "/v1/usage/stats?group_by=day&start=2026-01-01&end=2026-01-08";
    let first = api.get(path, ADMIN_KEY).await;
    let etag = first
        .headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let again = api.get_with(path, admin, &[("if-none-match", &etag)]).await;
    c.expect(
        first.status == 200
            && again.status == 304
            && again
                .headers
                .get("etag")
                .is_some_and(|e| e == etag.as_str()),
        || {
            format!(
                "GET {path} with If-None-Match {etag:?}: {} {:?}",
                again.status, again.headers
            )
        },
    );

    // The event stream: an `event: realtime` at once, the live view's JSON.
    let (name, data) = first_stream_event(&api, ADMIN_KEY).await;
    c.expect(name == "realtime", || {
        format!("the stream's first event is {name:?}")
    });
    c.conforms("Realtime", &data, "the stream's first event");

    // Schemathesis, as admin and as a tenant.
    for (who, key, seed) in [
        ("admin", ADMIN_KEY, "20261201"),
        ("tenant", TENANT_KEY, "20261202"),
    ] {
        match schemathesis(&api.url, key, seed).await {
            Ok((generated, tail)) => {
                println!("schemathesis, {who} key:\n{tail}");
                c.expect(generated >= 300, || {
                    format!("schemathesis, {who} key: only {generated} cases:\n{tail}")
                });
            }
            Err(report) => c.problems.push(format!(
                "schemathesis, {who} key, found problems:\n{report}"
            )),
        }
    }

    // The API's own count agrees: no 5xx outside schemathesis's report.
    trickle.abort();
    let scrape = api.service.metrics().await;
    let server_errors: Vec<&str> = scrape
        .lines()
        .filter(|l| l.starts_with("centile_api_requests_total") && l.contains("code=\"5"))
        .filter(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) > Some(0.0))
        .collect();
    c.expect(server_errors.is_empty(), || {
        format!(
            "the API counted server errors:\n{}",
            server_errors.join("\n")
        )
    });
    c.expect(!api.service.log().contains("panicked"), || {
        format!("the API panicked: {}", api.service.log_path.display())
    });
    let problems = c.problems;
    assert!(
        problems.is_empty(),
        "{} disagreements between the API and its document:\n\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}
