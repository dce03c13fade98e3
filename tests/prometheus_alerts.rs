//! The shipped dashboard and alerts against a real Prometheus (Debian's,
//! from `deploy/local/prometheus/install`) scraping the aggregator, the
//! sink, the gateway and the query API on the local stack, with events
//! flowing through the gateway the whole time:
//!
//! - every panel query of deploy/grafana/centile.json parses and returns
//!   series, each template variable finds its values, every metric a rule
//!   or a panel reads is exported, no rule fails to evaluate, and no
//!   shipped alert fires while everything is healthy;
//! - poison messages on the latency topic fire the refused-input alert
//!   with their reason, and the first one is visible to `increase()`;
//! - ClickHouse unreachable (a proxy in front of it, for the sink and the
//!   API, is cut) turns the sink's and the API's `/readyz` red naming
//!   `clickhouse` and fires CentileNotReady, CentileApiClickHouseUnreachable
//!   and CentileClickHouseWritesFailing;
//! - the broker unreachable (the test's own broker is stopped) turns the
//!   aggregator's, the sink's and the gateway's `/readyz` red naming
//!   `kafka` and fires CentileNotReady and CentileGatewayBrokerUnreachable.
//!
//! After each fault is repaired, every `/readyz` is 200 again and the
//! readiness alerts resolve. The rules are the shipped ones with each
//! `for:` shortened (prometheus_kit::shorten_for); the expressions are
//! unchanged.
//!
//! The broker is the test's own (PrivateBroker) rather than the shared one
//! behind a proxy: a Kafka client reconnects to the address the broker
//! advertises, which a proxy in front of the shared broker would not be.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use centile::{
    api_kit::TestApi,
    gateway_kit::TestGateway,
    prometheus_kit::{
        dashboard_queries, dashboard_variable_queries, grafana_substitute, metric_names,
        TestPrometheus,
    },
    testkit::{eventually, now_ms, workspace_root, PrivateBroker, Service, TestEnv},
};
use centile_runtime::kafka::{producer_config, send_all, OutMessage};
use serde_json::{json, Value};

const GATEWAY_KEY: &str = "ck_prometheus_alerts_acme";
const TENANT: &str = "prom-acme";
const ADMIN: &str = "ca_prometheus_alerts_admin";

/// How long a readiness check may take to turn red: the bound.
const RED_WITHIN: Duration = Duration::from_secs(60);

/// Dashboard queries that may legitimately return no series in this
/// healthy run, each with the reason. Keep it as short as possible: an
/// entry that no longer matches a panel query fails the test.
const MAY_BE_EMPTY: &[(&str, &str)] = &[];

/// Metrics read by a rule or a panel that may legitimately not exist in
/// this healthy run, each with the reason.
const MAY_BE_ABSENT: &[(&str, &str)] = &[];

/// How much history Prometheus holds before the healthy run is judged.
const HEALTHY_HISTORY: Duration = Duration::from_secs(75);

/// Alerts that may fire in this young, lightly loaded healthy run with
/// their `for:` shortened, each with the reason.
const MAY_FIRE_WHILE_HEALTHY: &[(&str, &str)] = &[(
    "CentileApiSlowAnswers",
    "p95 over the test's two dozen questions is set by the first, cold \
     answers of a debug build; the shipped rule needs 10 minutes of it",
)];

/// The refused-input alert of deploy/prometheus/alerts.yml.
const REFUSED_ALERT: &str = "CentileDeadLetters";

/// Garbage on the latency topic: two messages in no known framing
/// (`unknown_framing`), one Confluent-framed with a schema id nobody
/// registered (`unknown_schema_id`).
const POISON: &[&[u8]] = &[b"{\"not\": \"avro\"}", b"\x00\x01garbage", b"x"];

fn latency_event(i: u64) -> Value {
    json!({
        "occurred_at": now_ms() - 500,
        "model_id": format!("prom-model-{}", i % 3),
        "provider": "openai",
        "tool": "chat",
        "response_time_ms": 50 + i % 400,
        "success": !i.is_multiple_of(10),
        "error_type": if i.is_multiple_of(10) { Value::from("timeout") } else { Value::Null },
        "input_tokens": 10,
        "output_tokens": i % 100,
    })
}

fn usage_event(i: u64) -> Value {
    json!({
        "occurred_at": now_ms() - 500,
        "user_id": format!("user-{}", i % 4),
        "model_id": format!("prom-model-{}", i % 3),
        "provider": "openai",
        "feature": "summarise",
        "input_tokens": 100,
        "output_tokens": i % 50,
        "cost_usd_nanos": 1_000_000,
    })
}

/// The gateway's answers to the feeder, by status.
type Statuses = Arc<Mutex<BTreeMap<u16, u64>>>;

/// Posts a batch of latency and usage events to the gateway every 500 ms
/// until `stop`; counts the answers by status (0: no answer in 15 s).
fn feed(url: String, stop: Arc<AtomicBool>) -> (tokio::task::JoinHandle<()>, Statuses) {
    let statuses = Statuses::default();
    let counted = statuses.clone();
    let task = tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .expect("client");
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            for (kind, events) in [
                (
                    "latency",
                    (i..i + 20).map(latency_event).collect::<Vec<_>>(),
                ),
                ("usage", (i..i + 5).map(usage_event).collect()),
            ] {
                let status = http
                    .post(format!("{url}/v1/events/{kind}"))
                    .bearer_auth(GATEWAY_KEY)
                    .json(&events)
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16());
                *counted.lock().expect("lock").entry(status).or_insert(0) += 1;
            }
            i += 20;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    (task, statuses)
}

/// Polls `/readyz` on the service's metrics port until it answers
/// `status`, and returns the body.
async fn wait_readyz(service: &Service, status: u16, timeout: Duration) -> Value {
    let what = format!("{}'s /readyz to answer {status}", service.name);
    eventually(&what, timeout, || async {
        let (got, body) = service.get("/readyz").await;
        (got == status).then(|| serde_json::from_str(&body).unwrap_or(Value::String(body)))
    })
    .await
}

/// Waits until `service`'s `/readyz` is 503 naming `check` among the
/// failing ones, with a reason; returns how long that took since `since`.
async fn wait_red(service: &Service, check: &str, since: Instant) -> Duration {
    let what = format!("{}'s /readyz to fail naming {check}", service.name);
    let body = eventually(&what, RED_WITHIN, || async {
        let (status, body) = service.get("/readyz").await;
        let json: Value = serde_json::from_str(&body).ok()?;
        (status == 503 && json["failing"].get(check).is_some()).then_some(json)
    })
    .await;
    let took = since.elapsed();
    assert_eq!(body["ready"], false, "{body}");
    assert_eq!(body["checks"][check], false, "{body}");
    assert!(
        body["failing"][check]
            .as_str()
            .is_some_and(|reason| !reason.trim().is_empty()),
        "{}: the failing {check} check gives no reason: {body}",
        service.name
    );
    println!(
        "  {} /readyz red after {:.1}s: {}",
        service.name,
        took.as_secs_f64(),
        body["failing"]
    );
    took
}

fn dashboard() -> Value {
    let path = workspace_root().join("deploy/grafana/centile.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard"))
        .expect("the dashboard is JSON")
}

/// Every metric an alerting rule or a panel reads must exist in this
/// healthy run (labelled counters at zero from start): a rule reading a
/// renamed or never-exported metric would stay silent forever. Returns the
/// missing names.
async fn missing_metrics(prometheus: &TestPrometheus, dashboard: &Value) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let rules = prometheus.alerting_rules().await;
    let exprs = rules
        .iter()
        .filter_map(|r| r["query"].as_str().map(str::to_owned))
        .chain(dashboard_queries(dashboard).into_iter().map(|q| q.expr));
    for expr in exprs {
        for name in metric_names(&expr) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    let present: Vec<String> = prometheus
        .query(&format!(
            "group by (__name__) ({{__name__=~\"{}\"}})",
            names.join("|")
        ))
        .await
        .into_iter()
        .filter_map(|s| s.labels.get("__name__").cloned())
        .collect();
    println!(
        "metrics read by the rules and panels: {}, of which exported: {}",
        names.len(),
        present.len()
    );
    names.retain(|n| !present.contains(n) && !MAY_BE_ABSENT.iter().any(|(m, _)| m == n));
    names
}

/// Checks every dashboard panel query: it must parse and return at least
/// one series. Returns the problems, one a line.
async fn check_dashboard(prometheus: &TestPrometheus, dashboard: &Value) -> Vec<String> {
    let queries = dashboard_queries(dashboard);
    assert!(!queries.is_empty(), "no panel queries in the dashboard");
    for (expr, _) in MAY_BE_EMPTY {
        assert!(
            queries.iter().any(|q| q.expr == *expr),
            "MAY_BE_EMPTY names `{expr}`, which is no panel query any more: remove it"
        );
    }
    let mut problems = Vec::new();
    // The template variables' choices: each selector must find series
    // carrying the label.
    for var in dashboard_variable_queries(dashboard) {
        let selector = match grafana_substitute(dashboard, &var.selector, "1m") {
            Ok(selector) => selector,
            Err(e) => {
                problems.push(format!("variable {} `{}`: {e}", var.name, var.selector));
                continue;
            }
        };
        match prometheus.try_query(&selector).await {
            Err(e) => problems.push(format!("variable {} `{selector}`: {e}", var.name)),
            Ok(series) if !series.iter().any(|s| s.labels.contains_key(&var.label)) => problems
                .push(format!(
                    "variable {} `{selector}`: no series with label {}",
                    var.name, var.label
                )),
            Ok(series) => println!(
                "variable {}: {} series with {}",
                var.name,
                series.len(),
                var.label
            ),
        }
    }
    let mut pending = Vec::new();
    for query in &queries {
        let expr = match grafana_substitute(dashboard, &query.expr, "1m") {
            Ok(expr) => expr,
            Err(e) => {
                problems.push(format!("{} `{}`: {e}", query.panel, query.expr));
                continue;
            }
        };
        match prometheus.try_query(&expr).await {
            Err(e) => problems.push(format!("{} `{expr}`: {e}", query.panel)),
            Ok(series) if series.is_empty() => pending.push((query, expr)),
            Ok(_) => {}
        }
    }
    // Some series need a few more scrapes (a rate needs two samples).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pending.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut still = Vec::new();
        for (query, expr) in pending {
            if prometheus.query(&expr).await.is_empty() {
                still.push((query, expr));
            }
        }
        pending = still;
    }
    let mut empty = Vec::new();
    for (query, expr) in &pending {
        empty.push(format!("  {}: {expr}", query.panel));
        if !MAY_BE_EMPTY.iter().any(|(e, _)| *e == query.expr) {
            problems.push(format!("{} `{expr}`: no series", query.panel));
        }
    }
    for (expr, _) in MAY_BE_EMPTY {
        if !pending.iter().any(|(q, _)| q.expr == *expr) {
            println!("MAY_BE_EMPTY: `{expr}` returned series this time");
        }
    }
    println!(
        "dashboard: {} panel queries, {} with no series{}",
        queries.len(),
        empty.len(),
        if empty.is_empty() {
            String::new()
        } else {
            format!(":\n{}", empty.join("\n"))
        }
    );
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_alerts_on_a_real_prometheus() {
    let started = Instant::now();
    let mut broker = PrivateBroker::start("prom_alerts");
    let mut env = TestEnv::new("prom_alerts");
    env.config.kafka.brokers = broker.brokers();
    // Producers ride out the broker outage instead of failing.
    env.set("CENTILE_KAFKA_DELIVERY_TIMEOUT", "300s");
    // The test's own queries (env.query_u64) go straight to ClickHouse.
    let clickhouse = env.proxy_clickhouse().await;
    env.set("CENTILE_SINK_RETRY_MAX_BACKOFF", "1s");
    env.create_topics().await;

    let aggregator = env.spawn("centile-aggregator", &[]);
    let sink = env.spawn("centile-sink", &[]);
    let gateway = TestGateway::start(&env, &[(GATEWAY_KEY, TENANT)], &[]).await;
    // The API waits for the database the sink creates.
    eventually(
        "the sink to create its tables",
        Duration::from_secs(60),
        || async { env.query_u64("SELECT count() FROM latency_events").await },
    )
    .await;
    let api = TestApi::start(&env, &[(ADMIN, "admin")], &[]).await;

    let targets: Vec<(&str, String)> = vec![
        (
            "centile-aggregator",
            format!("127.0.0.1:{}", aggregator.metrics_port),
        ),
        ("centile-sink", format!("127.0.0.1:{}", sink.metrics_port)),
        (
            "centile-gateway",
            format!("127.0.0.1:{}", gateway.service.metrics_port),
        ),
        (
            "centile-api",
            format!("127.0.0.1:{}", api.service.metrics_port),
        ),
    ];
    let target_refs: Vec<(&str, &str)> = targets.iter().map(|(j, t)| (*j, t.as_str())).collect();
    let rules = workspace_root().join("deploy/prometheus/alerts.yml");
    let prometheus = TestPrometheus::start(&target_refs, Some(&rules)).await;
    println!(
        "prometheus at {} with {} alerting rules ({} `for:` shortened)",
        prometheus.url, prometheus.rules, prometheus.shortened
    );
    prometheus
        .wait_targets_up(targets.len(), Duration::from_secs(30))
        .await;

    // Healthy traffic: events through the gateway for the whole test, and
    // questions to the API (one without a key) once rollups landed.
    let stop = Arc::new(AtomicBool::new(false));
    let (feeder, statuses) = feed(gateway.url.clone(), stop.clone());
    eventually(
        "events and rollups to land in ClickHouse",
        Duration::from_secs(90),
        || async {
            let raw = env.query_u64("SELECT count() FROM latency_events").await?;
            let minutes = env
                .query_u64("SELECT toUInt64(count()) FROM latency_minute")
                .await?;
            (raw > 0 && minutes > 0).then_some(())
        },
    )
    .await;
    let now = now_ms() / 1000;
    let (start, end) = (now - 3_600, now + 60);
    for round in 0..3 {
        for path in [
            format!("/v1/performance/trends?granularity=minute&start={start}&end={end}"),
            format!("/v1/usage/stats?group_by=model&start={start}&end={end}"),
            "/v1/usage/top-models?days=1&limit=5".to_owned(),
            "/v1/models".to_owned(),
            "/v1/models/prom-model-1".to_owned(),
            "/v1/realtime".to_owned(),
            "/v1/windows/status".to_owned(),
        ] {
            let reply = api.get(&path, ADMIN).await;
            assert!(
                reply.status < 500,
                "{path}: {} {}",
                reply.status,
                reply.text
            );
        }
        if round == 0 {
            let unauthorized = api.get_with("/v1/models", None, &[]).await;
            assert_eq!(unauthorized.status, 401);
        }
    }
    // A few scrapes and evaluations of the healthy state.
    tokio::time::sleep(Duration::from_secs(5)).await;

    println!("== healthy");
    let unhealthy = prometheus.unhealthy_rules().await;
    assert!(
        unhealthy.is_empty(),
        "rules whose evaluation fails: {unhealthy:#?}"
    );
    let dashboard = dashboard();
    let missing = missing_metrics(&prometheus, &dashboard).await;
    assert!(
        missing.is_empty(),
        "rules or panels read metrics no service exports: {missing:?}"
    );
    let dashboard_problems = check_dashboard(&prometheus, &dashboard).await;
    assert!(
        dashboard_problems.is_empty(),
        "dashboard queries that fail or return nothing:\n{}",
        dashboard_problems.join("\n")
    );
    // No alert fires in a healthy run, once Prometheus holds enough history
    // for rules that look for a change over their window (the aggregator
    // cuts a segment, and so commits, about once a minute).
    tokio::time::sleep(HEALTHY_HISTORY.saturating_sub(prometheus.started.elapsed())).await;
    let firing: Vec<_> = prometheus
        .alerts()
        .await
        .into_iter()
        .filter(|a| {
            !MAY_FIRE_WHILE_HEALTHY
                .iter()
                .any(|(name, _)| a.name == *name)
        })
        .collect();
    println!(
        "alerts firing while healthy:\n{}",
        prometheus.list_alerts().await
    );
    assert!(
        firing.is_empty(),
        "alerts fire while everything is healthy:\n{}",
        prometheus.list_alerts().await
    );
    for service in [&aggregator, &sink, &gateway.service, &api.service] {
        assert_eq!(service.get("/readyz").await.0, 200, "{}", service.name);
    }

    // Poison messages on the latency topic: both consumers refuse them, the
    // sink dead-letters them, and the first one is already visible.
    println!("== poison messages");
    let producer = producer_config(&env.config.kafka)
        .create()
        .expect("producer");
    let poison: Vec<OutMessage> = POISON
        .iter()
        .map(|payload| OutMessage {
            topic: env.config.topics.latency.clone(),
            partition: None,
            key: Some("poison".into()),
            payload: payload.to_vec(),
            headers: Vec::new(),
        })
        .collect();
    send_all(&producer, &poison).await.expect("publish poison");
    for metric in [
        "centile_sink_refused_messages_total",
        "centile_aggregator_refused_messages_total",
    ] {
        let expr = format!("increase({metric}{{reason=\"unknown_framing\"}}[1m]) > 0");
        let series = prometheus
            .wait_query(&expr, Duration::from_secs(30), |s| !s.is_empty())
            .await;
        println!("  {expr}: {:?}", series[0].labels);
    }
    let alert = prometheus
        .wait_alert(
            REFUSED_ALERT,
            &[("kind", "latency"), ("reason", "unknown_framing")],
            Duration::from_secs(30),
        )
        .await;
    println!("  fired: {alert}");
    for service in [&aggregator, &sink] {
        assert_eq!(
            service.get("/readyz").await.0,
            200,
            "{} is unready after poison messages",
            service.name
        );
    }

    // ClickHouse unreachable for the sink and the API, while events flow.
    println!("== clickhouse unreachable");
    let cut = Instant::now();
    clickhouse.cut();
    let red_sink = wait_red(&sink, "clickhouse", cut).await;
    let red_api = wait_red(&api.service, "clickhouse", cut).await;
    for (name, labels) in [
        (
            "CentileNotReady",
            &[("job", "centile-sink"), ("check", "clickhouse")][..],
        ),
        ("CentileApiClickHouseUnreachable", &[][..]),
        ("CentileClickHouseWritesFailing", &[][..]),
    ] {
        let alert = prometheus
            .wait_alert(name, labels, Duration::from_secs(60))
            .await;
        println!("  fired after {:.1}s: {alert}", cut.elapsed().as_secs_f64());
    }
    prometheus
        .wait_query(
            "increase(centile_sink_insert_failures_total[1m]) > 0",
            Duration::from_secs(30),
            |s| !s.is_empty(),
        )
        .await;
    println!("  firing:\n{}", prometheus.list_alerts().await);
    clickhouse.restore();
    let restored = Instant::now();
    wait_readyz(&sink, 200, Duration::from_secs(90)).await;
    wait_readyz(&api.service, 200, Duration::from_secs(90)).await;
    println!(
        "  sink and api ready again after {:.1}s",
        restored.elapsed().as_secs_f64()
    );
    for labels in [
        &[("job", "centile-sink")][..],
        &[("job", "centile-api")][..],
    ] {
        prometheus
            .wait_alert_gone("CentileNotReady", labels, Duration::from_secs(30))
            .await;
    }
    prometheus
        .wait_alert_gone(
            "CentileApiClickHouseUnreachable",
            &[],
            Duration::from_secs(30),
        )
        .await;

    // The broker unreachable for everyone.
    println!("== broker unreachable");
    let cut = Instant::now();
    broker.stop();
    let mut red_kafka = Vec::new();
    for service in [&aggregator, &sink, &gateway.service] {
        red_kafka.push(wait_red(service, "kafka", cut).await);
    }
    for (name, labels) in [
        (
            "CentileNotReady",
            &[("job", "centile-aggregator"), ("check", "kafka")][..],
        ),
        (
            "CentileNotReady",
            &[("job", "centile-sink"), ("check", "kafka")][..],
        ),
        ("CentileGatewayBrokerUnreachable", &[][..]),
    ] {
        let alert = prometheus
            .wait_alert(name, labels, Duration::from_secs(60))
            .await;
        println!("  fired after {:.1}s: {alert}", cut.elapsed().as_secs_f64());
    }
    println!("  firing:\n{}", prometheus.list_alerts().await);
    broker.restart();
    let restored = Instant::now();
    for service in [&aggregator, &sink, &gateway.service] {
        wait_readyz(service, 200, Duration::from_secs(120)).await;
    }
    println!(
        "  aggregator, sink and gateway ready again after {:.1}s",
        restored.elapsed().as_secs_f64()
    );
    prometheus
        .wait_alert_gone("CentileNotReady", &[], Duration::from_secs(30))
        .await;
    prometheus
        .wait_alert_gone(
            "CentileGatewayBrokerUnreachable",
            &[],
            Duration::from_secs(30),
        )
        .await;

    stop.store(true, Ordering::Relaxed);
    feeder.await.expect("feeder");
    println!(
        "gateway answers while feeding: {:?}",
        statuses.lock().expect("lock")
    );
    println!(
        "readiness red after: clickhouse sink {:.1}s api {:.1}s, kafka {:?}; the whole test took {:.0}s",
        red_sink.as_secs_f64(),
        red_api.as_secs_f64(),
        red_kafka
            .iter()
            .map(|d| format!("{:.1}s", d.as_secs_f64()))
            .collect::<Vec<_>>(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        prometheus.unhealthy_rules().await.is_empty(),
        "{:#?}",
        prometheus.unhealthy_rules().await
    );
}
