//! OpenTelemetry trace ingest end to end, with clients that are not
//! Centile's: the stock OpenTelemetry Python SDK (TracerProvider,
//! BatchSpanProcessor and its own OTLP exporters, over HTTP/protobuf and
//! over gRPC, gzip on and off; `tests/interop/otel_genai.py`) and
//! hand-written OTLP/JSON in the specification's example layout.
//!
//! - GenAI model-call spans of several models and providers, current and
//!   legacy attribute names, errors, users, parameters, costs, embeddings
//!   and spans without token counts arrive in every latency and usage view
//!   with exact counts, token sums, costs, min/max and percentiles within
//!   the sketch's bound; spans that are not model calls (HTTP handlers,
//!   database calls, agent and tool steps) are counted as ignored and
//!   published nowhere.
//! - Exporting the same spans again through the other transport changes
//!   nothing: event ids come from the trace and span ids.
//! - A bad model-call span is rejected alone through OTLP partial success.
//! - Refusals (no key, wrong content type or encoding, gzip bombs) are
//!   final answers in OTLP's terms, and the SDK's exporters see them fail.
//!
//! Needs `python3` with `opentelemetry-sdk` and the OTLP exporters
//! (installed by `deploy/local/stack up`), besides the local stack.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use centile::{
    gateway_kit::TestGateway,
    testkit::{eventually, free_port, metric_sum, metric_value, now_ms, workspace_root, TestEnv},
    truth::{
        assert_exact_aggregates, assert_raw_exactly_once, exact_quantile, fetch_latency,
        wait_until_complete, Truth,
    },
};
use centile_events::{Event, LatencyEvent, PriceBook, UsageEvent};
use centile_sink::rollup::Tier;
use serde_json::{json, Map, Value};

const KEY: &str = "ck_otlp_ingest_test_key";
const TENANT: &str = "otlp-acme";
const HOUR_MS: i64 = 3_600_000;
/// The exporting application's `service.name`: the usage events' feature
/// unless a span names an agent.
const SERVICE: &str = "support-bot";
const GRPC_ROUTE: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The sink's price book in the export tests: `Truth::computed_nanos`
/// prices the plan's unpriced tokens with it, row by row.
const PRICE_BOOK: &str = r#"
[[prices]]
model = "gpt-4o"
provider = "openai"
effective_from = 2020-01-01
input = "2.50"
output = "10"
cache_read = "1.25"
cache_write = "3.75"
reasoning = "12.5"

[[prices]]
model = "claude-sonnet-4"
provider = "anthropic"
effective_from = 2020-01-01
input = "3"
output = "15"
cache_read = "0.30"
"#;

const MODELS: [(&str, &str); 4] = [
    ("gpt-4o", "openai"),
    ("claude-sonnet-4", "anthropic"),
    ("gemini-2.5-pro", "gcp.gemini"),
    ("mistral-large", "mistral_ai"),
];

/// Spans for the SDK to emit, and what they must come to.
struct Plan {
    /// The script's input: the resource and the spans in emission order.
    input: Value,
    truth: Truth,
    model_calls: u64,
    ignored: u64,
    latency_ids: BTreeSet<String>,
    usage_ids: BTreeSet<String>,
    /// Failed calls by error type.
    error_types: BTreeMap<String, u64>,
}

/// What a span is to become, kept beside its attributes to build the
/// expected events.
struct Call {
    trace_id: String,
    span_id: String,
    start_ns: i64,
    end_ns: i64,
    model: String,
    provider: &'static str,
    tool: &'static str,
    parameters: Vec<(&'static str, String)>,
    error_type: Option<String>,
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
    /// Token classes: cache reads and writes (parts of the input) and
    /// reasoning (part of the output).
    cache_read: Option<i64>,
    cache_write: Option<i64>,
    reasoning: Option<i64>,
    user: Option<String>,
    feature: String,
    cost_usd: Option<f64>,
}

impl Call {
    fn events(&self) -> Vec<Event> {
        let event_id = format!("{}{}", self.trace_id, self.span_id);
        let occurred_at = self.start_ns / 1_000_000;
        let parameters: Map<String, Value> = self
            .parameters
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(v.clone())))
            .collect();
        let mut events = vec![latency_event(json!({
            "event_id": event_id,
            "occurred_at": occurred_at,
            "tenant_id": TENANT,
            "model_id": self.model,
            "provider": self.provider,
            "tool": self.tool,
            "parameters": parameters,
            // As the gateway computes it, so the f64s compare exactly.
            "response_time_ms": (self.end_ns - self.start_ns) as f64 / 1_000_000.0,
            "success": self.error_type.is_none(),
            "error_type": self.error_type,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }))];
        if self.input_tokens.is_some() || self.output_tokens.is_some() {
            events.push(usage_event(json!({
                "event_id": event_id,
                "occurred_at": occurred_at,
                "tenant_id": TENANT,
                "user_id": self.user,
                "model_id": self.model,
                "provider": self.provider,
                "feature": self.feature,
                "input_tokens": self.input_tokens.unwrap_or(0),
                "output_tokens": self.output_tokens.unwrap_or(0),
                // No `gen_ai.usage.cost`: the book prices the tokens.
                "cost_usd_nanos": self.cost_usd.map(|usd| (usd * 1e9).round() as i64),
                "cache_read_input_tokens": self.cache_read,
                "cache_write_input_tokens": self.cache_write,
                "reasoning_output_tokens": self.reasoning,
            })));
        }
        events
    }
}

/// An expected latency event from its fields (optional ones may be left out).
fn latency_event(fields: Value) -> Event {
    Event::Latency(serde_json::from_value::<LatencyEvent>(fields).expect("latency event"))
}

/// An expected usage event from its fields (optional ones may be left out).
fn usage_event(fields: Value) -> Event {
    Event::Usage(serde_json::from_value::<UsageEvent>(fields).expect("usage event"))
}

fn hex_id(tag: u32, n: u64, width: usize) -> String {
    format!("{tag:08x}{n:0w$x}", w = width - 8)
}

/// `count` GenAI spans over a few minutes of the hour before the last one
/// (inside every admission bound), with the non-model spans around them.
fn plan(tag: u32, count: u64) -> Plan {
    let base_ms = (now_ms() / HOUR_MS - 1) * HOUR_MS + 7 * 60_000;
    let mut spans = Vec::new();
    let mut truth = Truth::default();
    truth.prices = PriceBook::parse(PRICE_BOOK).expect("the test's book");
    let (mut model_calls, mut ignored) = (0, 0);
    let (mut latency_ids, mut usage_ids) = (BTreeSet::new(), BTreeSet::new());
    let mut error_types = BTreeMap::new();
    for i in 0..count {
        let trace_id = hex_id(tag, 0xA000_0000 + i, 32);
        let span_id = hex_id(tag, 2 * i + 1, 16);
        // Sub-millisecond start times: event time is the start, floored to ms.
        let start_ns = (base_ms + i as i64 * 1_100) * 1_000_000 + (i as i64 % 7) * 13_000;
        let duration_ns =
            (120 + (i as i64 * 53) % 1_700) * 1_000_000 + if i % 2 == 0 { 250_000 } else { 0 };
        let end_ns = start_ns + duration_ns;
        let (model, provider) = MODELS[(i % 4) as usize];
        let legacy = i % 7 == 3;
        let response_model_only = i % 11 == 5;
        let embeddings = i % 13 == 6;
        let error_type = if i % 9 == 4 {
            Some(["rate_limit_exceeded", "timeout"][(i % 2) as usize].to_owned())
        } else if i % 19 == 10 {
            Some("error".to_owned()) // status ERROR without error.type
        } else {
            None
        };
        let untallied = error_type.is_some() || i % 17 == 8;
        let (input_tokens, output_tokens) = match (untallied, embeddings) {
            (true, _) => (None, None),
            (false, true) => (Some(200 + (i as i64 * 29) % 3_000), None),
            (false, false) => (
                Some(50 + (i as i64 * 37) % 2_000),
                Some(5 + (i as i64 * 11) % 600),
            ),
        };
        // Token classes, on some calls: parts of the input and output counts.
        let cache_read = input_tokens.filter(|_| i % 3 == 1).map(|n| n / 2);
        let cache_write = input_tokens.filter(|_| i % 10 == 1).map(|n| n / 5);
        let reasoning = output_tokens.filter(|_| i % 4 == 1).map(|n| n / 3);
        let user = (i % 5 != 0).then(|| format!("user-{}", i % 3));
        let agent = (i % 8 == 2).then_some("triage-agent");
        let cost_usd = (i % 6 == 0 && input_tokens.is_some()).then(|| (i + 1) as f64 * 1.7e-5);
        let temperature = [0.2, 0.7, 1.0][(i % 3) as usize];
        let max_tokens = [256, 1024][(i % 2) as usize];
        let model_name = if response_model_only {
            format!("{model}-snapshot")
        } else {
            model.to_owned()
        };
        let tool = if embeddings { "embeddings" } else { "chat" };

        let mut attributes = Map::new();
        attributes.insert("gen_ai.operation.name".into(), tool.into());
        if legacy {
            attributes.insert("gen_ai.system".into(), provider.into());
        } else {
            attributes.insert("gen_ai.provider.name".into(), provider.into());
        }
        if response_model_only {
            attributes.insert("gen_ai.response.model".into(), model_name.clone().into());
        } else {
            attributes.insert("gen_ai.request.model".into(), model.into());
            attributes.insert(
                "gen_ai.response.model".into(),
                format!("{model}-2025-01-01").into(),
            );
        }
        attributes.insert("gen_ai.request.temperature".into(), json!(temperature));
        attributes.insert("gen_ai.request.max_tokens".into(), json!(max_tokens));
        let (input_name, output_name) = if legacy {
            (
                "gen_ai.usage.prompt_tokens",
                "gen_ai.usage.completion_tokens",
            )
        } else {
            ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")
        };
        if let Some(n) = input_tokens {
            // Some instrumentations report counts as numeric strings.
            let value = if i % 23 == 15 {
                json!(n.to_string())
            } else {
                json!(n)
            };
            attributes.insert(input_name.into(), value);
        }
        if let Some(n) = output_tokens {
            attributes.insert(output_name.into(), json!(n));
        }
        if let Some(kind) = error_type.as_deref().filter(|k| *k != "error") {
            attributes.insert("error.type".into(), kind.into());
        }
        if let Some(user) = &user {
            attributes.insert("user.id".into(), user.clone().into());
            // One conversation per user: `session.id` becomes both
            // events' `session_id`.
            attributes.insert("session.id".into(), format!("{user}-conv").into());
        }
        if let Some(agent) = agent {
            attributes.insert("gen_ai.agent.name".into(), agent.into());
        }
        if let Some(usd) = cost_usd {
            attributes.insert("gen_ai.usage.cost".into(), json!(usd));
        }
        for (name, count) in [
            ("gen_ai.usage.cache_read.input_tokens", cache_read),
            ("gen_ai.usage.cache_creation.input_tokens", cache_write),
            ("gen_ai.usage.reasoning.output_tokens", reasoning),
        ] {
            if let Some(n) = count {
                attributes.insert(name.into(), json!(n));
            }
        }
        attributes.insert("server.address".into(), "api.example.invalid".into());

        // Every fourth call is made inside an HTTP request handler.
        let parent = (i % 4 == 0).then(|| {
            let parent_id = hex_id(tag, 2 * i + 2, 16);
            spans.push(json!({
                "name": "POST /v1/chat",
                "trace_id": trace_id,
                "span_id": parent_id,
                "kind": "server",
                "start_ns": start_ns - 5_000_000,
                "end_ns": end_ns + 5_000_000,
                "attributes": {
                    "http.request.method": "POST",
                    "http.route": "/v1/chat",
                    "http.response.status_code": 200,
                    "url.scheme": "https",
                },
            }));
            ignored += 1;
            parent_id
        });
        spans.push(json!({
            "name": format!("{tool} {model_name}"),
            "trace_id": trace_id,
            "span_id": span_id,
            "parent_span_id": parent,
            "kind": "client",
            "start_ns": start_ns,
            "end_ns": end_ns,
            "attributes": attributes,
            "error": error_type.is_some(),
            "status_message": error_type.as_deref().unwrap_or_default(),
        }));
        model_calls += 1;

        // Steps that are not model calls: an agent invocation and a tool
        // call (GenAI attributes, no model) and a database query.
        if i % 10 == 3 {
            for (n, (name, attributes)) in [
                (
                    "invoke_agent triage-agent",
                    json!({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "triage-agent",
                           "gen_ai.provider.name": "openai"}),
                ),
                (
                    "execute_tool lookup_order",
                    json!({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order",
                           "gen_ai.usage.input_tokens": 5}),
                ),
                (
                    "SELECT conversations",
                    json!({"db.system.name": "postgresql", "db.operation.name": "SELECT"}),
                ),
            ]
            .into_iter()
            .enumerate()
            {
                spans.push(json!({
                    "name": name,
                    "trace_id": hex_id(tag, 0xB000_0000 + i * 4 + n as u64, 32),
                    "span_id": hex_id(tag, 0x8000_0000 + i * 4 + n as u64, 16),
                    "kind": "internal",
                    "start_ns": start_ns + 1_000_000,
                    "end_ns": start_ns + 3_000_000,
                    "attributes": attributes,
                }));
                ignored += 1;
            }
        }

        if let Some(kind) = &error_type {
            *error_types.entry(kind.clone()).or_default() += 1;
        }
        let call = Call {
            trace_id,
            span_id,
            start_ns,
            end_ns,
            model: model_name,
            provider,
            tool,
            parameters: vec![
                ("max_tokens", max_tokens.to_string()),
                // Rust's shortest form of the double, as the gateway writes it.
                ("temperature", temperature.to_string()),
            ],
            error_type,
            input_tokens,
            output_tokens,
            cache_read,
            cache_write,
            reasoning,
            user,
            feature: agent.unwrap_or(SERVICE).to_owned(),
            cost_usd,
        };
        for event in call.events() {
            match &event {
                Event::Latency(e) => latency_ids.insert(e.event_id.clone()),
                Event::Usage(e) => usage_ids.insert(e.event_id.clone()),
            };
            truth.add(&event);
        }
    }
    truth.seal();
    Plan {
        input: json!({
            "resource": {"service.name": SERVICE, "service.version": "1.4.2",
                         "deployment.environment.name": "test"},
            "spans": spans,
        }),
        truth,
        model_calls,
        ignored,
        latency_ids,
        usage_ids,
        error_types,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Http,
    Grpc,
}

/// What one run of the SDK script reported.
#[derive(Debug)]
struct Run {
    success: bool,
    summary: Value,
    stderr: String,
}

/// Runs `tests/interop/otel_genai.py`: the stock SDK exports `input`'s
/// spans to the gateway over `transport`.
async fn sdk_export(
    env: &TestEnv,
    name: &str,
    input: &Value,
    transport: Transport,
    endpoint: &str,
    key: Option<&str>,
    gzip: bool,
) -> Run {
    let dir = workspace_root().join("target/test-logs");
    std::fs::create_dir_all(&dir).expect("log dir");
    let path: PathBuf = dir.join(format!("{}-{name}.spans.json", env.id));
    std::fs::write(&path, input.to_string()).expect("spans file");
    let mut args = vec![
        workspace_root()
            .join("tests/interop/otel_genai.py")
            .display()
            .to_string(),
        "--spans".into(),
        path.display().to_string(),
        "--transport".into(),
        match transport {
            Transport::Http => "http",
            Transport::Grpc => "grpc",
        }
        .into(),
        "--endpoint".into(),
        endpoint.into(),
    ];
    if let Some(key) = key {
        args.extend(["--key".into(), key.into()]);
    }
    if gzip {
        args.push("--gzip".into());
    }
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(&args)
            // The SDK must not pick up an exporter setup from the outside.
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_HEADERS")
            .env_remove("OTEL_EXPORTER_OTLP_COMPRESSION")
            .env_remove("OTEL_TRACES_SAMPLER")
            .env_remove("OTEL_SDK_DISABLED")
            .output()
            .expect("python3 runs (opentelemetry-sdk and exporters: deploy/local/stack up)")
    })
    .await
    .expect("sdk thread");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let summary = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no summary from otel_genai.py: {stdout}\n{stderr}"));
    Run {
        success: output.status.success(),
        summary,
        stderr,
    }
}

fn endpoint(gateway: &TestGateway, grpc_port: u16, transport: Transport) -> String {
    match transport {
        Transport::Http => format!("{}/v1/traces", gateway.url),
        Transport::Grpc => format!("http://127.0.0.1:{grpc_port}"),
    }
}

/// `p50`, `p95` and `p99` of every latency view row within the sketch's
/// documented bound (0.5%) of the exact nearest-rank value, and ordered.
async fn assert_percentiles_within_bound(env: &TestEnv, truth: &Truth) -> usize {
    let mut checked = 0;
    for tier in Tier::ALL {
        let rows = fetch_latency(&env.clickhouse(), tier).await;
        for (key, t) in &truth.latency[&tier] {
            let row = &rows[key];
            let ordered = [
                row.min_response_time,
                row.p50_response_time,
                row.p95_response_time,
                row.p99_response_time,
                row.max_response_time,
            ];
            assert!(
                ordered.windows(2).all(|w| w[0] <= w[1] * (1.0 + 1e-9)),
                "{tier:?} {key:?}: min <= p50 <= p95 <= p99 <= max, got {ordered:?}"
            );
            for (q, got) in [
                (0.5, row.p50_response_time),
                (0.95, row.p95_response_time),
                (0.99, row.p99_response_time),
            ] {
                let exact = exact_quantile(&t.values, q);
                let error = (got - exact).abs() / exact;
                assert!(
                    error <= 0.005 + 1e-9,
                    "{tier:?} {key:?} p{}: {got} vs exact {exact} over {} calls",
                    q * 100.0,
                    t.calls
                );
                checked += 1;
            }
        }
    }
    checked
}

/// Every id the plan's spans stand for is in the raw tables, once.
async fn assert_raw_ids(env: &TestEnv, plan: &Plan) {
    for (table, expected) in [
        ("latency_events_dedup", &plan.latency_ids),
        ("usage_events_dedup", &plan.usage_ids),
    ] {
        let ids: BTreeSet<String> = env
            .clickhouse()
            .query(&format!("SELECT event_id FROM {table}"))
            .fetch_all::<String>()
            .await
            .expect("raw ids")
            .into_iter()
            .collect();
        assert_eq!(&ids, expected, "{table}: trace id + span id, in hex");
    }
}

/// The SDK exports the plan over `first`, then again over `second`: the
/// first export is counted exactly, the second changes nothing.
async fn export_then_reexport(
    name: &str,
    tag: u32,
    first: (Transport, bool),
    second: (Transport, bool),
) {
    let env = TestEnv::new(name);
    env.create_topics().await;
    let _aggregator = env.spawn("centile-aggregator", &[]);
    // Spans without a cost are priced from this book (two of the four
    // models; the others stay at the version `none`).
    let _sink = env.spawn_priced_sink(PRICE_BOOK);
    let grpc_port = free_port();
    let grpc_addr = format!("127.0.0.1:{grpc_port}");
    let gateway = TestGateway::start(
        &env,
        &[(KEY, TENANT)],
        &[("CENTILE_GATEWAY_OTLP_GRPC_ADDR", &grpc_addr)],
    )
    .await;
    let plan = plan(tag, 200);
    let spans = plan.input["spans"].as_array().expect("spans").len() as u64;
    assert_eq!(spans, plan.model_calls + plan.ignored);
    println!(
        "{name}: {} model-call spans ({} latency, {} usage events), {} other spans",
        plan.model_calls,
        plan.latency_ids.len(),
        plan.usage_ids.len(),
        plan.ignored
    );

    let started = Instant::now();
    let (transport, gzip) = first;
    let run = sdk_export(
        &env,
        "first",
        &plan.input,
        transport,
        &endpoint(&gateway, grpc_port, transport),
        Some(KEY),
        gzip,
    )
    .await;
    println!("first export: {} in {:?}", run.summary, started.elapsed());
    assert!(
        run.success,
        "the SDK's export failed: {}\n{}",
        run.summary, run.stderr
    );
    assert_eq!(run.summary["spans_exported"], spans);
    let exports = run.summary["exports"].as_u64().expect("exports");
    assert!(exports >= spans / 64, "batches of at most 64 spans");

    wait_until_complete(&env, &plan.truth, Duration::from_secs(120)).await;
    println!(
        "views complete {:?} after the export began",
        started.elapsed()
    );
    assert_exact_aggregates(&env.clickhouse(), &plan.truth).await;
    assert_raw_exactly_once(&env, &plan.truth).await;
    assert_raw_ids(&env, &plan).await;
    let checked = assert_percentiles_within_bound(&env, &plan.truth).await;
    println!("{checked} percentiles within 0.5% of exact");

    // Mapped fields the views do not show: users and error types.
    let users = env
        .query_u64(&format!(
            "SELECT toUInt64(uniqExact(assumeNotNull(user_id))) FROM usage_events_dedup \
             WHERE tenant_id = '{TENANT}' AND user_id IS NOT NULL"
        ))
        .await;
    assert_eq!(users, Some(3), "user.id became the usage events' user_id");
    for table in ["usage_events_dedup", "latency_events_dedup"] {
        let sessions = env
            .query_u64(&format!(
                "SELECT toUInt64(uniqExact(assumeNotNull(session_id))) FROM {table} \
                 WHERE tenant_id = '{TENANT}' AND session_id IS NOT NULL"
            ))
            .await;
        assert_eq!(sessions, Some(3), "session.id became {table}' session_id");
    }
    // Each usage event's session is its user's conversation, and an event
    // without a user has none.
    let astray = env
        .query_u64(&format!(
            "SELECT count() FROM usage_events_dedup WHERE tenant_id = '{TENANT}' \
             AND NOT ((user_id IS NULL AND session_id IS NULL) \
             OR assumeNotNull(session_id) = concat(assumeNotNull(user_id), '-conv'))"
        ))
        .await;
    assert_eq!(
        astray,
        Some(0),
        "session_id follows session.id span by span"
    );
    let error_types: BTreeMap<String, u64> = env
        .clickhouse()
        .query(
            "SELECT assumeNotNull(error_type), toUInt64(count()) FROM latency_events_dedup \
             WHERE NOT success GROUP BY error_type",
        )
        .fetch_all::<(String, u64)>()
        .await
        .expect("error types")
        .into_iter()
        .collect();
    assert_eq!(
        error_types, plan.error_types,
        "error.type, or \"error\" for a bare ERROR status"
    );

    let scrape = gateway.service.metrics().await;
    assert_eq!(
        spans_metric_in(&scrape, "ignored"),
        Some(plan.ignored as f64)
    );
    assert_eq!(
        spans_metric_in(&scrape, "accepted"),
        Some(plan.model_calls as f64)
    );
    assert_eq!(spans_metric_in(&scrape, "rejected"), Some(0.0));
    let route = match transport {
        Transport::Http => "/v1/traces",
        Transport::Grpc => GRPC_ROUTE,
    };
    assert_eq!(
        metric_sum(
            &scrape,
            "centile_gateway_requests_total",
            &[&format!("route=\"{route}\""), "code=\"200\""]
        ),
        Some(exports as f64),
        "one answered request per export() call, none retried"
    );

    // The same spans again, over the other transport.
    let (transport, gzip) = second;
    let run = sdk_export(
        &env,
        "again",
        &plan.input,
        transport,
        &endpoint(&gateway, grpc_port, transport),
        Some(KEY),
        gzip,
    )
    .await;
    println!("re-export: {}", run.summary);
    assert!(
        run.success,
        "the SDK's re-export failed: {}\n{}",
        run.summary, run.stderr
    );
    let deduplicated = |scrape: &str, kind: &str| {
        metric_value(
            scrape,
            &format!("centile_gateway_events_deduplicated_total{{kind=\"{kind}\"}}"),
        )
        .unwrap_or(0.0) as usize
    };
    eventually(
        "the re-export to be answered",
        Duration::from_secs(30),
        || async {
            let scrape = gateway.service.metrics().await;
            (deduplicated(&scrape, "latency") == plan.latency_ids.len()).then_some(())
        },
    )
    .await;
    let scrape = gateway.service.metrics().await;
    assert_eq!(deduplicated(&scrape, "usage"), plan.usage_ids.len());
    assert_eq!(
        spans_metric_in(&scrape, "accepted"),
        Some(2.0 * plan.model_calls as f64)
    );
    assert_eq!(
        spans_metric_in(&scrape, "ignored"),
        Some(2.0 * plan.ignored as f64)
    );
    // Long enough for a second copy to pass the aggregator (500 ms emit
    // interval) and the sink (300 ms batches) several times over.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_exact_aggregates(&env.clickhouse(), &plan.truth).await;
    assert_raw_exactly_once(&env, &plan.truth).await;
    let raw_rows = env
        .query_u64("SELECT count() FROM latency_events")
        .await
        .expect("raw rows");
    assert_eq!(
        raw_rows,
        plan.latency_ids.len() as u64,
        "nothing was published twice, not even into the raw table"
    );
    for (topic, expected) in [
        (&env.config.topics.latency, plan.latency_ids.len()),
        (&env.config.topics.usage, plan.usage_ids.len()),
    ] {
        let messages = env.read_topic(topic, Duration::from_secs(3)).len();
        assert_eq!(messages, expected, "{topic}: each event published once");
    }
}

fn spans_metric_in(scrape: &str, outcome: &str) -> Option<f64> {
    metric_value(
        scrape,
        &format!("centile_gateway_spans_total{{outcome=\"{outcome}\"}}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_http_protobuf_gzip_export_counts_exactly_and_a_grpc_reexport_changes_nothing() {
    export_then_reexport(
        "otlp_http",
        0x0717_0001,
        (Transport::Http, true),
        (Transport::Grpc, false),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_grpc_gzip_export_counts_exactly_and_an_http_reexport_changes_nothing() {
    export_then_reexport(
        "otlp_grpc",
        0x0717_0002,
        (Transport::Grpc, true),
        (Transport::Http, false),
    )
    .await;
}

fn kv(key: &str, value: Value) -> Value {
    json!({"key": key, "value": value})
}

/// An OTLP/JSON span in the layout of opentelemetry-proto's
/// `examples/trace.json`: upper-case hex ids, times as decimal strings.
fn json_span(
    trace_id: &str,
    span_id: &str,
    name: &str,
    start_ms: i64,
    attributes: Vec<Value>,
) -> Value {
    json!({
        "traceId": trace_id,
        "spanId": span_id,
        "parentSpanId": "",
        "name": name,
        "kind": 3,
        "startTimeUnixNano": (start_ms * 1_000_000).to_string(),
        "endTimeUnixNano": ((start_ms + 420) * 1_000_000 + 500_000).to_string(),
        "attributes": attributes,
        "droppedAttributesCount": 0,
        "events": [],
        "links": [],
        "status": {"code": 1},
    })
}

fn json_export(spans: Vec<Value>) -> Value {
    json!({"resourceSpans": [{
        "resource": {"attributes": [kv("service.name", json!({"stringValue": "json-client"}))]},
        "scopeSpans": [{
            "scope": {"name": "hand.written", "version": "1.0.0"},
            "spans": spans,
        }],
    }]})
}

async fn post_traces(
    gateway: &TestGateway,
    key: Option<&str>,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (u16, String, Value) {
    let mut request = gateway
        .http
        .post(format!("{}/v1/traces", gateway.url))
        .header("content-type", content_type)
        .body(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(encoding) = encoding {
        request = request.header("content-encoding", encoding);
    }
    let response = request.send().await.expect("the gateway answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    let bytes = response.bytes().await.unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, content_type, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_json_partial_success_rejects_only_the_bad_span() {
    let env = TestEnv::new("otlp_json");
    env.create_topics().await;
    let _aggregator = env.spawn("centile-aggregator", &[]);
    let _sink = env.spawn("centile-sink", &[]);
    let gateway = TestGateway::start(&env, &[(KEY, TENANT)], &[]).await;
    let start_ms = (now_ms() / HOUR_MS - 1) * HOUR_MS + 11 * 60_000 + 321;

    let good_trace = "5B8EFFF798038103D269B633813FC60C";
    let good = json_span(
        good_trace,
        "EEE19B7EC3C1B174",
        "chat json-good-model",
        start_ms,
        vec![
            kv("gen_ai.operation.name", json!({"stringValue": "chat"})),
            kv("gen_ai.provider.name", json!({"stringValue": "openai"})),
            kv(
                "gen_ai.request.model",
                json!({"stringValue": "json-good-model"}),
            ),
            // OTLP/JSON sends 64-bit integers as strings; numbers are read too.
            kv("gen_ai.usage.input_tokens", json!({"intValue": "42"})),
            kv("gen_ai.usage.output_tokens", json!({"intValue": 7})),
            kv("gen_ai.request.temperature", json!({"doubleValue": 0.5})),
            kv("gen_ai.usage.cost", json!({"doubleValue": 0.000_125})),
            kv("user.id", json!({"stringValue": "json-user"})),
        ],
    );
    let mut bad = json_span(
        "5B8EFFF798038103D269B633813FC60D",
        "EEE19B7EC3C1B175",
        "chat json-bad-model",
        start_ms + 10,
        vec![
            kv("gen_ai.provider.name", json!({"stringValue": "openai"})),
            kv(
                "gen_ai.request.model",
                json!({"stringValue": "json-bad-model"}),
            ),
            kv("gen_ai.usage.input_tokens", json!({"intValue": "-5"})),
        ],
    );
    bad["status"] = json!({"code": 2, "message": "boom"});
    let mut health = json_span(
        "5B8EFFF798038103D269B633813FC60E",
        "EEE19B7EC3C1B176",
        "GET /healthz",
        start_ms + 20,
        vec![kv("http.route", json!({"stringValue": "/healthz"}))],
    );
    health["kind"] = json!(2);
    // OTLP/JSON receivers must ignore fields they do not know.
    health["someFutureField"] = json!({"nested": true});

    let (status, content_type, body) = post_traces(
        &gateway,
        Some(KEY),
        "application/json",
        None,
        json_export(vec![good, bad, health])
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "application/json");
    let partial = &body["partialSuccess"];
    assert_eq!(partial["rejectedSpans"], "1", "{body}");
    let message = partial["errorMessage"].as_str().expect("errorMessage");
    assert!(message.contains("gen_ai.usage.input_tokens"), "{message}");
    assert!(message.contains("negative"), "{message}");
    assert!(
        message.contains("5b8efff798038103d269b633813fc60d/eee19b7ec3c1b175"),
        "names the rejected span: {message}"
    );
    assert!(
        !message.contains("fc60c/"),
        "names only the bad span: {message}"
    );

    // A fully accepted export is answered `{}`; times as JSON numbers.
    let mut second = json_span(
        "0AF7651916CD43DD8448EB211C80319C",
        "B7AD6B7169203331",
        "text_completion json-good-model",
        start_ms + 30_000,
        vec![
            kv(
                "gen_ai.operation.name",
                json!({"stringValue": "text_completion"}),
            ),
            kv("gen_ai.system", json!({"stringValue": "openai"})),
            kv(
                "gen_ai.response.model",
                json!({"stringValue": "json-good-model"}),
            ),
            kv("gen_ai.usage.prompt_tokens", json!({"intValue": 100})),
            kv(
                "gen_ai.usage.completion_tokens",
                json!({"doubleValue": 20.0}),
            ),
        ],
    );
    second["startTimeUnixNano"] = json!((start_ms + 30_000) * 1_000_000);
    second["endTimeUnixNano"] = json!((start_ms + 30_000 + 75) * 1_000_000);
    let (status, _, body) = post_traces(
        &gateway,
        Some(KEY),
        "application/json; charset=utf-8",
        None,
        json_export(vec![second]).to_string().into_bytes(),
    )
    .await;
    assert_eq!((status, &body), (200, &json!({})));

    let mut truth = Truth::default();
    let latency =
        |id: &str, at: i64, tool: &str, ms: f64, parameters: Value, tokens: (i64, i64)| {
            latency_event(json!({
                "event_id": id, "occurred_at": at, "tenant_id": TENANT,
                "model_id": "json-good-model", "provider": "openai", "tool": tool,
                "parameters": parameters, "response_time_ms": ms, "success": true,
                "input_tokens": tokens.0, "output_tokens": tokens.1,
            }))
        };
    let usage = |id: &str, at: i64, user: Option<&str>, tokens: (i64, i64), cost: i64| {
        usage_event(json!({
            "event_id": id, "occurred_at": at, "tenant_id": TENANT, "user_id": user,
            "model_id": "json-good-model", "provider": "openai", "feature": "json-client",
            "input_tokens": tokens.0, "output_tokens": tokens.1, "cost_usd_nanos": cost,
        }))
    };
    let first_id = "5b8efff798038103d269b633813fc60ceee19b7ec3c1b174";
    let second_id = "0af7651916cd43dd8448eb211c80319cb7ad6b7169203331";
    truth.add(&latency(
        first_id,
        start_ms,
        "chat",
        420.5,
        json!({"temperature": "0.5"}),
        (42, 7),
    ));
    truth.add(&usage(
        first_id,
        start_ms,
        Some("json-user"),
        (42, 7),
        125_000,
    ));
    truth.add(&latency(
        second_id,
        start_ms + 30_000,
        "text_completion",
        75.0,
        json!({}),
        (100, 20),
    ));
    truth.add(&usage(second_id, start_ms + 30_000, None, (100, 20), 0));
    truth.seal();
    wait_until_complete(&env, &truth, Duration::from_secs(90)).await;
    assert_exact_aggregates(&env.clickhouse(), &truth).await;
    assert_raw_exactly_once(&env, &truth).await;
    let bad_rows = env
        .query_u64(
            "SELECT count() FROM (SELECT model_id FROM latency_events UNION ALL \
             SELECT model_id FROM usage_events) WHERE model_id = 'json-bad-model'",
        )
        .await;
    assert_eq!(bad_rows, Some(0), "the rejected span published nothing");

    let scrape = gateway.service.metrics().await;
    assert_eq!(spans_metric_in(&scrape, "accepted"), Some(2.0));
    assert_eq!(spans_metric_in(&scrape, "ignored"), Some(1.0));
    assert_eq!(spans_metric_in(&scrape, "rejected"), Some(1.0));
}

/// 20 MiB of zeros: a few kilobytes once gzipped.
fn gzip_bomb() -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..20 {
        encoder.write_all(&zeros).expect("gzip");
    }
    encoder.finish().expect("gzip")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_refusals_are_final_and_the_sdk_sees_them_fail() {
    let env = TestEnv::new("otlp_refuse");
    env.create_topics().await;
    let grpc_port = free_port();
    let grpc_addr = format!("127.0.0.1:{grpc_port}");
    let gateway = TestGateway::start(
        &env,
        &[(KEY, TENANT)],
        &[("CENTILE_GATEWAY_OTLP_GRPC_ADDR", &grpc_addr)],
    )
    .await;
    let start_ms = now_ms() - 60_000;
    let export = json_export(vec![json_span(
        "7B8EFFF798038103D269B633813FC60C",
        "7EE19B7EC3C1B174",
        "chat refused-model",
        start_ms,
        vec![
            kv("gen_ai.provider.name", json!({"stringValue": "openai"})),
            kv(
                "gen_ai.request.model",
                json!({"stringValue": "refused-model"}),
            ),
        ],
    )])
    .to_string()
    .into_bytes();

    // No key: 401 with a google.rpc.Status (UNAUTHENTICATED) in the
    // request's encoding.
    let (status, content_type, body) =
        post_traces(&gateway, None, "application/json", None, export.clone()).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(content_type, "application/json");
    assert_eq!(body["code"], 16, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("Authorization")),
        "{body}"
    );
    let (status, content_type, _) = post_traces(
        &gateway,
        Some("ck_not_a_key"),
        "application/x-protobuf",
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(
        (status, content_type.as_str()),
        (401, "application/x-protobuf")
    );

    // A content type OTLP/HTTP does not define: 415, final.
    let (status, _, body) =
        post_traces(&gateway, Some(KEY), "text/plain", None, export.clone()).await;
    assert_eq!(status, 415, "{body}");
    assert_eq!(body["code"], 3, "INVALID_ARGUMENT: {body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("text/plain")),
        "{body}"
    );
    let (status, _, _) = post_traces(
        &gateway,
        Some(KEY),
        "application/json",
        Some("br"),
        export.clone(),
    )
    .await;
    assert_eq!(status, 415, "an encoding other than gzip");

    // A gzip bomb: small on the wire, refused at the inflated limit.
    let bomb = gzip_bomb();
    assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
    let (status, _, body) = post_traces(
        &gateway,
        Some(KEY),
        "application/x-protobuf",
        Some("gzip"),
        bomb.clone(),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    let (status, _, body) =
        post_traces(&gateway, Some(KEY), "application/json", Some("gzip"), bomb).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("inflates")),
        "{body}"
    );
    // Not gzip at all, and not OTLP at all: 400.
    let (status, _, body) = post_traces(
        &gateway,
        Some(KEY),
        "application/json",
        Some("gzip"),
        export.clone(),
    )
    .await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(3)), "{body}");
    let (status, _, _) = post_traces(
        &gateway,
        Some(KEY),
        "application/x-protobuf",
        None,
        b"\xff\xff\xff\xff".to_vec(),
    )
    .await;
    assert_eq!(status, 400);

    // The stock exporters without a key, and with an unknown one: the
    // gateway refuses, the SDK reports the export failed, nothing retried.
    let input = json!({
        "resource": {"service.name": SERVICE},
        "spans": [{
            "name": "chat refused-model",
            "trace_id": "7b8efff798038103d269b633813fc60d",
            "span_id": "7ee19b7ec3c1b175",
            "kind": "client",
            "start_ns": start_ms * 1_000_000,
            "end_ns": (start_ms + 100) * 1_000_000,
            "attributes": {"gen_ai.provider.name": "openai", "gen_ai.request.model": "refused-model",
                           "gen_ai.usage.input_tokens": 3},
        }],
    });
    let started = Instant::now();
    for (name, transport, key) in [
        ("grpc-nokey", Transport::Grpc, None),
        ("grpc-badkey", Transport::Grpc, Some("ck_not_a_key")),
        ("http-nokey", Transport::Http, None),
    ] {
        let run = sdk_export(
            &env,
            name,
            &input,
            transport,
            &endpoint(&gateway, grpc_port, transport),
            key,
            false,
        )
        .await;
        assert!(!run.success, "{name}: {}", run.summary);
        assert_eq!(
            run.summary["results"],
            json!(["FAILURE"]),
            "{name}: {}",
            run.summary
        );
        assert_eq!(run.summary["spans_exported"], 0, "{name}");
        if transport == Transport::Grpc {
            assert!(
                run.stderr.contains("UNAUTHENTICATED"),
                "{name}: the SDK saw UNAUTHENTICATED: {}",
                run.stderr
            );
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "final refusals are not retried: {:?}",
        started.elapsed()
    );

    // A gRPC message that inflates past the limit: refused, the gateway
    // unharmed. Raw stubs, so the SDK's retries do not hide the answer.
    let rss_before = gateway.service.rss_bytes().expect("gateway rss");
    let code = grpc_bomb(grpc_port, KEY).await;
    assert_ne!(code, "OK", "a 20 MiB message is over the 5 MiB limit");
    let rss_after = gateway.service.rss_bytes().expect("gateway rss");
    println!(
        "gRPC bomb: {code}; gateway rss {} -> {} MiB",
        rss_before >> 20,
        rss_after >> 20
    );
    assert!(
        rss_after < rss_before + (16 << 20),
        "the gateway did not inflate the bomb: {rss_before} -> {rss_after} bytes"
    );
    gateway.wait_ready(Duration::from_secs(5)).await;

    let scrape = gateway.service.metrics().await;
    assert_eq!(
        metric_sum(
            &scrape,
            "centile_gateway_requests_total",
            &[&format!("route=\"{GRPC_ROUTE}\""), "code=\"401\""]
        ),
        Some(2.0),
        "one gRPC call per refused export"
    );
    assert_eq!(
        metric_sum(
            &scrape,
            "centile_gateway_requests_total",
            &["route=\"/v1/traces\"", "code=\"401\""]
        ),
        Some(3.0)
    );
    assert_eq!(
        metric_sum(
            &scrape,
            "centile_gateway_requests_total",
            &["route=\"/v1/traces\"", "code=\"413\""]
        ),
        Some(2.0)
    );
    assert_eq!(spans_metric_in(&scrape, "accepted"), Some(0.0));
    let published = env.read_topic(&env.config.topics.latency, Duration::from_secs(3));
    assert!(
        published.is_empty(),
        "refused exports published {} events",
        published.len()
    );
}

/// Sends, with the OTLP protobuf stubs and gzip, one export holding a
/// 20 MiB attribute (a few KiB on the wire); returns the gRPC status name.
async fn grpc_bomb(port: u16, key: &str) -> String {
    const SNIPPET: &str = r#"
import sys, grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as ts, trace_service_pb2_grpc as tsg
from opentelemetry.proto.common.v1 import common_pb2 as common
from opentelemetry.proto.trace.v1 import trace_pb2 as tr
port, key = sys.argv[1], sys.argv[2]
padding = common.KeyValue(key="padding", value=common.AnyValue(string_value="0" * (20 << 20)))
span = tr.Span(trace_id=bytes.fromhex("7c" * 16), span_id=bytes.fromhex("7d" * 8), name="bomb",
               start_time_unix_nano=1, end_time_unix_nano=2, attributes=[padding])
request = ts.ExportTraceServiceRequest(
    resource_spans=[tr.ResourceSpans(scope_spans=[tr.ScopeSpans(spans=[span])])])
channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 64 << 20)])
try:
    tsg.TraceServiceStub(channel).Export(request, metadata=[("authorization", f"Bearer {key}")],
                                         compression=grpc.Compression.Gzip, timeout=20)
    print("OK")
except grpc.RpcError as error:
    print(error.code().name)
"#;
    let args = vec![
        "-c".to_owned(),
        SNIPPET.to_owned(),
        port.to_string(),
        key.to_owned(),
    ];
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(&args)
            .output()
            .expect("python3 runs")
    })
    .await
    .expect("python thread");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// GenAI semantic conventions: `invoke_agent` (and `create_agent`) spans
/// may carry `gen_ai.request.model` and the agent run's total token usage,
/// while each model call inside the run has its own `chat` span. Only the
/// model calls may count, or every agent run is counted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn agent_spans_naming_a_model_are_not_model_calls() {
    let env = TestEnv::new("otlp_agent");
    env.create_topics().await;
    let gateway = TestGateway::start(&env, &[(KEY, TENANT)], &[]).await;
    let start = (now_ms() - 120_000) * 1_000_000;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let chat = |n: i64, span_id: &str| {
        json!({
            "name": "chat gpt-4o", "trace_id": trace_id, "span_id": span_id,
            "parent_span_id": "00f067aa0ba902b7", "kind": "client",
            "start_ns": start + n * 400_000_000, "end_ns": start + (n + 1) * 400_000_000,
            "attributes": {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                           "gen_ai.request.model": "gpt-4o",
                           "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 10},
        })
    };
    let input = json!({
        "resource": {"service.name": SERVICE},
        "spans": [
            {"name": "invoke_agent triage-agent", "trace_id": trace_id, "span_id": "00f067aa0ba902b7",
             "kind": "internal", "start_ns": start, "end_ns": start + 1_000_000_000,
             "attributes": {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "triage-agent",
                            "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
                            "gen_ai.usage.input_tokens": 200, "gen_ai.usage.output_tokens": 20}},
            chat(0, "00f067aa0ba902b8"),
            chat(1, "00f067aa0ba902b9"),
        ],
    });
    let run = sdk_export(
        &env,
        "agent",
        &input,
        Transport::Http,
        &endpoint(&gateway, 0, Transport::Http),
        Some(KEY),
        false,
    )
    .await;
    assert!(run.success, "{}\n{}", run.summary, run.stderr);
    let scrape = gateway.service.metrics().await;
    assert_eq!(
        (
            spans_metric_in(&scrape, "accepted"),
            spans_metric_in(&scrape, "ignored")
        ),
        (Some(2.0), Some(1.0)),
        "the two chat spans are the model calls; the agent run is not a third"
    );
}
