//! `centile-producer import` against the real broker and ClickHouse: history
//! two years, 40 days, 2 days and minutes old lands in every view exactly
//! once, with the live aggregator running beside it (it must not count the
//! raw-published rows again); only rows young enough are kept raw; a re-run
//! of the same files changes nothing. A refused row is reported by line,
//! field and reason, and `--all-or-nothing` then publishes nothing.

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::Duration,
};

use centile::{
    testkit::{bin_path, eventually, metric_value, now_ms, workspace_root, Service, TestEnv},
    truth::{assert_exact_aggregates, Truth},
};
use centile_events::{Event, LatencyEvent, UsageEvent};
use rdkafka::consumer::{BaseConsumer, Consumer};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// Per age band.
const ROWS: usize = 150;

/// How old each band's rows are, and whether they are young enough to be
/// published raw (the default restatement horizon, 7 days, minus an hour).
const BANDS: [(i64, bool); 4] = [
    (730 * DAY, false),
    (40 * DAY, false),
    (2 * DAY, true),
    (5 * MINUTE, true),
];

/// A row, whether it is young enough for the raw tables, and whether it
/// carries its own event id.
struct Row<E> {
    event: E,
    young: bool,
    own_id: bool,
}

fn latency_rows(now: i64) -> Vec<Row<LatencyEvent>> {
    let models = [
        ("gpt-4o", "openai"),
        ("claude-sonnet-4", "anthropic"),
        ("gemini-2.5", "google"),
    ];
    let mut rows = Vec::new();
    for (band, (age, young)) in BANDS.into_iter().enumerate() {
        for i in 0..ROWS {
            let n = band * ROWS + i;
            let (model, provider) = models[n % models.len()];
            let success = !n.is_multiple_of(7);
            let mut parameters = BTreeMap::new();
            parameters.insert(
                "temperature".to_owned(),
                if n.is_multiple_of(2) { "0.2" } else { "0.7" }.to_owned(),
            );
            if n.is_multiple_of(5) {
                parameters.insert("streaming".to_owned(), "true".to_owned());
            }
            rows.push(Row {
                event: LatencyEvent {
                    event_id: format!("hist-latency-{n}"),
                    // Over about half an hour, out of order within the band.
                    occurred_at: now - age - ((i as i64 * 7_919) % 1_800) * 1_000,
                    tenant_id: if n.is_multiple_of(4) {
                        "globex"
                    } else {
                        "acme"
                    }
                    .to_owned(),
                    model_id: model.to_owned(),
                    provider: provider.to_owned(),
                    tool: if n.is_multiple_of(3) {
                        "search"
                    } else {
                        "chat"
                    }
                    .to_owned(),
                    parameters,
                    // Integral values keep float sums exact in any order.
                    response_time_ms: (50 + (n * 37) % 2_000) as f64,
                    success,
                    error_type: (!success).then(|| "timeout".to_owned()),
                    input_tokens: (!n.is_multiple_of(6)).then_some((n % 500) as i64),
                    output_tokens: Some((n % 90) as i64),
                    session_id: None,
                },
                young,
                own_id: n.is_multiple_of(2),
            });
        }
    }
    rows
}

fn usage_rows(now: i64) -> Vec<Row<UsageEvent>> {
    let mut rows = Vec::new();
    for (band, (age, young)) in BANDS.into_iter().enumerate() {
        for i in 0..ROWS / 2 {
            let n = band * ROWS + i;
            rows.push(Row {
                event: UsageEvent {
                    event_id: format!("hist-usage-{n}"),
                    occurred_at: now - age - ((i as i64 * 104_729) % 1_800) * 1_000,
                    tenant_id: if n.is_multiple_of(3) {
                        "globex"
                    } else {
                        "acme"
                    }
                    .to_owned(),
                    user_id: (!n.is_multiple_of(4)).then(|| format!("u-{}", n % 9)),
                    model_id: if n.is_multiple_of(2) {
                        "gpt-4o"
                    } else {
                        "claude-sonnet-4"
                    }
                    .to_owned(),
                    provider: if n.is_multiple_of(2) {
                        "openai"
                    } else {
                        "anthropic"
                    }
                    .to_owned(),
                    feature: ["chat", "image", "auto-router"][n % 3].to_owned(),
                    input_tokens: (n * 13 % 4_000) as i64,
                    output_tokens: (n * 7 % 900) as i64,
                    cost_usd_nanos: Some((n as i64 * 1_234_567) % 90_000_000),
                    cache_read_input_tokens: None,
                    cache_write_input_tokens: None,
                    reasoning_output_tokens: None,
                    session_id: None,
                },
                young,
                own_id: n % 3 != 1,
            });
        }
    }
    rows
}

/// NDJSON, rows without their own id leaving `event_id` out.
fn ndjson(rows: &[Row<LatencyEvent>]) -> String {
    let mut text = String::new();
    for row in rows {
        let mut value = serde_json::to_value(&row.event).expect("json");
        let object = value.as_object_mut().expect("object");
        if !row.own_id {
            object.remove("event_id");
        }
        text.push_str(&value.to_string());
        text.push('\n');
    }
    text
}

/// CSV with the gateway's field names; an empty cell is an absent field.
fn csv(rows: &[Row<UsageEvent>]) -> String {
    let mut text = String::from(
        "event_id,occurred_at,tenant_id,user_id,model_id,provider,feature,input_tokens,output_tokens,cost_usd_nanos\n",
    );
    for Row {
        event: e, own_id, ..
    } in rows
    {
        text.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            if *own_id { e.event_id.as_str() } else { "" },
            e.occurred_at,
            e.tenant_id,
            e.user_id.as_deref().unwrap_or_default(),
            e.model_id,
            e.provider,
            e.feature,
            e.input_tokens,
            e.output_tokens,
            e.cost_usd_nanos.map_or(String::new(), |c| c.to_string())
        ));
    }
    text
}

fn gzip(text: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).expect("gzip");
    gz.finish().expect("gzip")
}

fn scratch(env: &TestEnv) -> PathBuf {
    let dir = workspace_root().join("target/test-imports").join(&env.id);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Runs `centile-producer import ARGS` in this env, `stdin` piped in.
fn import(env: &TestEnv, args: &[&str], stdin: Option<&Path>) -> Output {
    let mut child = Command::new(bin_path("centile-producer"))
        .arg("import")
        .args(args)
        .envs(env.env())
        .stdin(match stdin {
            Some(path) => Stdio::from(std::fs::File::open(path).expect("stdin file")),
            None => Stdio::null(),
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("centile-producer runs");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("wait").is_none() {
        assert!(std::time::Instant::now() < deadline, "import hangs");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// Runs an import that must succeed; returns its JSON summary.
fn import_ok(env: &TestEnv, args: &[&str], stdin: Option<&Path>) -> serde_json::Value {
    let output = import(env, args, stdin);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "import {args:?}: {stderr}");
    serde_json::from_slice(&output.stdout).expect("--json summary")
}

fn count(summary: &serde_json::Value, field: &str) -> u64 {
    summary[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {summary}"))
}

/// The sum of the high watermarks of every partition of `topic`.
fn end_offsets(env: &TestEnv, topic: &str) -> i64 {
    let consumer: BaseConsumer =
        centile_runtime::kafka::consumer_config(&env.config.kafka, &format!("{}.offsets", env.id))
            .create()
            .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .sum()
}

/// Rows the sink has written to `tables`, from its metrics.
async fn written(sink: &Service, tables: &[&str]) -> u64 {
    let scrape = sink.metrics().await;
    tables
        .iter()
        .map(|t| {
            metric_value(
                &scrape,
                &format!("centile_sink_rows_written_total{{table=\"{t}\"}}"),
            )
            .unwrap_or(0.0) as u64
        })
        .sum()
}

/// Waits until the sink has written at least `raw` raw rows and `panes`
/// pane rows, then a little longer for the aggregator to have read (and
/// skipped) every raw event.
async fn wait_for_sink(sink: &Service, raw: u64, panes: u64) {
    eventually(
        "the sink to write every import",
        Duration::from_secs(120),
        || async {
            let got_raw = written(sink, &["latency_events", "usage_events"]).await;
            let got_panes = written(sink, &["latency_panes", "usage_panes"]).await;
            (got_raw >= raw && got_panes >= panes).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
}

async fn assert_raw(env: &TestEnv, view: &str, expected: u64, own_ids: u64, prefix: &str) {
    let rows = env.query_u64(&format!("SELECT count() FROM {view}")).await;
    let ids = env
        .query_u64(&format!("SELECT uniqExact(event_id) FROM {view}"))
        .await;
    assert_eq!((rows, ids), (Some(expected), Some(expected)), "{view}");
    let own = env
        .query_u64(&format!(
            "SELECT count() FROM {view} WHERE startsWith(event_id, '{prefix}')"
        ))
        .await;
    assert_eq!(own, Some(own_ids), "{view}: rows that brought their own id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_history_counts_once_and_re_runs_change_nothing() {
    let env = TestEnv::new("import");
    env.create_topics().await;
    let now = now_ms();
    let latency = latency_rows(now);
    let usage = usage_rows(now);
    let mut truth = Truth::default();
    latency
        .iter()
        .for_each(|r| truth.add(&Event::Latency(r.event.clone())));
    usage
        .iter()
        .for_each(|r| truth.add(&Event::Usage(r.event.clone())));
    let dir = scratch(&env);
    let latency_file = dir.join("latency.ndjson.gz");
    std::fs::write(&latency_file, gzip(&ndjson(&latency))).expect("write");
    let usage_file = dir.join("usage.csv");
    std::fs::write(&usage_file, csv(&usage)).expect("write");
    let young_latency = latency.iter().filter(|r| r.young).count() as u64;
    let young_usage = usage.iter().filter(|r| r.young).count() as u64;
    let own_latency = latency.iter().filter(|r| r.young && r.own_id).count() as u64;
    let own_usage = usage.iter().filter(|r| r.young && r.own_id).count() as u64;

    let _aggregator = env.spawn("centile-aggregator", &[]);
    let sink = env.spawn("centile-sink", &[]);

    let latency_path = latency_file.to_str().expect("utf-8 path");
    let usage_path = usage_file.to_str().expect("utf-8 path");
    let first_latency = import_ok(&env, &["--kind", "latency", "--json", latency_path], None);
    let first_usage = import_ok(&env, &["--kind", "usage", "--json", usage_path], None);
    for (summary, rows, young) in [
        (&first_latency, latency.len(), young_latency),
        (&first_usage, usage.len(), young_usage),
    ] {
        assert_eq!(count(summary, "read"), rows as u64, "{summary}");
        assert_eq!(count(summary, "refused"), 0, "{summary}");
        assert_eq!(count(summary, "published_raw"), young, "{summary}");
        assert_eq!(
            count(summary, "skipped_raw"),
            rows as u64 - young,
            "{summary}"
        );
        assert!(count(summary, "published_panes") > 0, "{summary}");
    }
    let raw = young_latency + young_usage;
    let panes = count(&first_latency, "published_panes") + count(&first_usage, "published_panes");
    wait_for_sink(&sink, raw, panes).await;

    // Every view equals the truth, and the raw tables hold each young event once.
    let landed_once = || async {
        assert_exact_aggregates(&env.clickhouse(), &truth).await;
        assert_raw(
            &env,
            "latency_events_dedup",
            young_latency,
            own_latency,
            "hist-latency-",
        )
        .await;
        assert_raw(
            &env,
            "usage_events_dedup",
            young_usage,
            own_usage,
            "hist-usage-",
        )
        .await;
    };
    landed_once().await;

    // Again: the latency file through standard input this time (same bytes,
    // same digest), the usage file as before.
    let second_latency = import_ok(
        &env,
        &["--kind", "latency", "--json", "-"],
        Some(&latency_file),
    );
    let second_usage = import_ok(&env, &["--kind", "usage", "--json", usage_path], None);
    assert_eq!(
        second_latency["digests"][0][1],
        first_latency["digests"][0][1]
    );
    assert_eq!(
        count(&second_latency, "published_panes"),
        count(&first_latency, "published_panes")
    );
    let panes_again =
        panes + count(&second_latency, "published_panes") + count(&second_usage, "published_panes");
    let raw_again =
        raw + count(&second_latency, "published_raw") + count(&second_usage, "published_raw");
    wait_for_sink(&sink, raw_again, panes_again).await;
    landed_once().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_row_is_reported_and_all_or_nothing_publishes_nothing() {
    let env = TestEnv::new("import_refused");
    env.create_topics().await;
    let now = now_ms();
    let mut rows: Vec<Row<LatencyEvent>> = latency_rows(now)
        .into_iter()
        .filter(|r| r.young)
        .take(6)
        .collect();
    rows[3].event.response_time_ms = -5.0;
    let path = scratch(&env).join("one-bad-row.ndjson");
    std::fs::write(&path, ndjson(&rows)).expect("write");
    let name = path.to_str().expect("utf-8 path");
    let topics = [
        env.config.topics.latency.clone(),
        env.config.topics.usage.clone(),
        env.config.topics.rollups.clone(),
    ];
    let offsets =
        |env: &TestEnv| -> Vec<i64> { topics.iter().map(|t| end_offsets(env, t)).collect() };
    let before = offsets(&env);

    let output = import(&env, &["--kind", "latency", "--all-or-nothing", name], None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{name}:4: field `response_time_ms`: must not be negative, got -5"
        )),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches(name).count(),
        1,
        "one problem, reported once: {stderr}"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("6 rows read"), "{stdout}");
    assert!(stdout.contains("1 refused"), "{stdout}");
    assert_eq!(offsets(&env), before, "--all-or-nothing published nothing");

    // Without it the other five rows are published, and the status says
    // that some were refused.
    let output = import(&env, &["--kind", "latency", "--json", name], None);
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(count(&summary, "refused"), 1);
    assert_eq!(count(&summary, "published_raw"), 5);
    let after = offsets(&env);
    assert_eq!(after[0] - before[0], 5, "five raw latency events");
    assert_eq!(after[1], before[1], "no usage events");
    assert_eq!(
        (after[2] - before[2]) as u64,
        count(&summary, "published_panes"),
        "the panes"
    );
}
