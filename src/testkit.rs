//! Isolated environments on the real local broker and ClickHouse, service
//! processes that can be stopped with SIGTERM or SIGKILL, and polling helpers.

use std::{
    future::Future,
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use centile_producer::EventPublisher;
use centile_runtime::{kafka::ensure_centile_topics, Config};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    message::OwnedMessage,
    Offset, TopicPartitionList,
};

/// Topics, groups and a database of one's own, on the shared servers.
#[derive(Debug, Clone)]
pub struct TestEnv {
    pub id: String,
    pub config: Config,
    overrides: Vec<(String, String)>,
}

impl TestEnv {
    pub fn new(name: &str) -> Self {
        let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        let id = format!("{name}_{suffix}");
        let mut config = Config::load(None).expect("default config loads");
        config.topics.usage = format!("{id}.usage");
        config.topics.latency = format!("{id}.latency");
        config.topics.rollups = format!("{id}.rollups");
        config.topics.dlq = format!("{id}.dlq");
        config.topics.checkpoints = format!("{id}.checkpoints");
        config.clickhouse.database = format!("t_{id}");
        config.aggregator.group_id = format!("{id}.aggregator");
        config.sink.group_id = format!("{id}.sink");
        config.aggregator.emit_interval = Duration::from_millis(500);
        config.aggregator.allowed_lateness = Duration::from_secs(5);
        config.aggregator.idle_timeout = Duration::from_secs(3);
        config.sink.batch_max_wait = Duration::from_millis(300);
        Self {
            id,
            config,
            overrides: Vec::new(),
        }
    }

    /// The environment a service process needs to join this test's world.
    pub fn env(&self) -> Vec<(String, String)> {
        let c = &self.config;
        let mut env: Vec<(String, String)> = [
            ("CENTILE_KAFKA_BROKERS", c.kafka.brokers.clone()),
            // Explicit, so a test that wants group mode gets it even when
            // the run exports the local stack's `all` (deploy/local/stack env).
            (
                "CENTILE_KAFKA_ASSIGNMENT",
                assignment_name(c.kafka.assignment),
            ),
            ("CENTILE_TOPIC_USAGE", c.topics.usage.clone()),
            ("CENTILE_TOPIC_LATENCY", c.topics.latency.clone()),
            ("CENTILE_TOPIC_ROLLUPS", c.topics.rollups.clone()),
            ("CENTILE_TOPIC_DLQ", c.topics.dlq.clone()),
            ("CENTILE_TOPIC_CHECKPOINTS", c.topics.checkpoints.clone()),
            ("CENTILE_CLICKHOUSE_URL", c.clickhouse.url.clone()),
            ("CENTILE_CLICKHOUSE_DATABASE", c.clickhouse.database.clone()),
            ("CENTILE_AGGREGATOR_GROUP_ID", c.aggregator.group_id.clone()),
            ("CENTILE_SINK_GROUP_ID", c.sink.group_id.clone()),
            (
                "CENTILE_AGGREGATOR_EMIT_INTERVAL",
                humantime(c.aggregator.emit_interval),
            ),
            (
                "CENTILE_AGGREGATOR_ALLOWED_LATENESS",
                humantime(c.aggregator.allowed_lateness),
            ),
            (
                "CENTILE_AGGREGATOR_IDLE_TIMEOUT",
                humantime(c.aggregator.idle_timeout),
            ),
            (
                "CENTILE_SINK_BATCH_MAX_WAIT",
                humantime(c.sink.batch_max_wait),
            ),
            ("RUST_LOG", "info".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        env.extend(self.overrides.iter().cloned());
        env
    }

    /// Adds an environment variable for the services this env spawns.
    pub fn set(&mut self, key: &str, value: &str) {
        self.overrides.push((key.to_owned(), value.to_owned()));
    }

    /// Creates this test's topics.
    /// Puts a [`CuttableProxy`] between the services this env spawns and
    /// ClickHouse; the test's own queries still go straight to ClickHouse.
    pub async fn proxy_clickhouse(&mut self) -> CuttableProxy {
        let target = self
            .config
            .clickhouse
            .url
            .trim_start_matches("http://")
            .parse()
            .expect("clickhouse host:port");
        let proxy = CuttableProxy::start(target).await;
        self.set("CENTILE_CLICKHOUSE_URL", &format!("http://{}", proxy.addr));
        proxy
    }

    pub async fn create_topics(&self) {
        ensure_centile_topics(&self.config).await.expect(
            "topics can be created on the local broker (is `deploy/local/stack up` running?)",
        );
    }

    pub async fn publisher(&self) -> EventPublisher {
        self.create_topics().await;
        EventPublisher::new(&self.config.kafka, &self.config.topics).expect("publisher")
    }

    /// A ClickHouse client bound to this test's database.
    pub fn clickhouse(&self) -> clickhouse::Client {
        centile_sink::client::database_client(&self.config.clickhouse)
    }

    /// Runs `sql` and returns its single unsigned result, or `None` on error
    /// (for example before the tables exist).
    pub async fn query_u64(&self, sql: &str) -> Option<u64> {
        self.clickhouse().query(sql).fetch_one::<u64>().await.ok()
    }

    /// Starts a service binary with this env, logging to `target/test-logs`.
    pub fn spawn(&self, bin: &str, args: &[&str]) -> Service {
        self.spawn_with(bin, args, &[])
    }

    /// Starts a service binary with this env plus `extra` variables.
    /// The sink, pricing events without a cost from the TOML `book`
    /// (written to a file of this test's own).
    pub fn spawn_priced_sink(&self, book: &str) -> Service {
        let path = std::env::temp_dir().join(format!("{}-prices.toml", self.id));
        std::fs::write(&path, book).expect("price book written");
        self.spawn_with(
            "centile-sink",
            &[],
            &[("CENTILE_PRICING_BOOK".into(), path.display().to_string())],
        )
    }

    pub fn spawn_with(&self, bin: &str, args: &[&str], extra: &[(String, String)]) -> Service {
        let metrics_port = free_port();
        let log_dir = workspace_root().join("target/test-logs");
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let log_path = log_dir.join(format!("{}-{bin}-{metrics_port}.log", self.id));
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new(bin_path(bin))
            .args(args)
            .envs(self.env())
            // Gateways of parallel tests must not share the OTLP/gRPC port.
            .env(
                "CENTILE_GATEWAY_OTLP_GRPC_ADDR",
                format!("127.0.0.1:{}", free_port()),
            )
            .envs(extra.iter().cloned())
            .env("CENTILE_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        Service {
            name: bin.to_owned(),
            child: Some(child),
            metrics_port,
            log_path,
        }
    }

    /// Reads every message of `topic` from the beginning.
    pub fn read_topic(&self, topic: &str, timeout: Duration) -> Vec<OwnedMessage> {
        let consumer: BaseConsumer = centile_runtime::kafka::consumer_config(
            &self.config.kafka,
            &format!("{}.reader", self.id),
        )
        .create()
        .expect("reader");
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        let mut assignment = TopicPartitionList::new();
        for partition in metadata.topics()[0].partitions() {
            assignment
                .add_partition_offset(topic, partition.id(), Offset::Beginning)
                .expect("assignment");
        }
        consumer.assign(&assignment).expect("assign");
        let deadline = Instant::now() + timeout;
        let mut messages = Vec::new();
        while Instant::now() < deadline {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
                messages.push(message.detach());
            }
        }
        messages
    }
}

fn humantime(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// A running service process; killed when dropped.
#[derive(Debug)]
pub struct Service {
    pub name: String,
    child: Option<Child>,
    pub metrics_port: u16,
    pub log_path: PathBuf,
}

impl Service {
    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        self.send_sigterm();
        self.wait_exit(timeout)
    }

    /// Sends SIGTERM without waiting.
    pub fn send_sigterm(&self) {
        let child = self.child.as_ref().expect("service is running");
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill runs");
    }

    /// Waits for the process to exit; panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("service is running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "{} did not exit within {timeout:?} of SIGTERM; log: {}",
                    self.name,
                    self.log_path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGKILL: the process gets no chance to flush, commit or leave
    /// its consumer group.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("service is running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Resident memory in bytes, from `/proc`, while it runs.
    pub fn rss_bytes(&self) -> Option<u64> {
        rss_of(self.pid()?)
    }

    /// Scrapes the service's `/metrics`.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .await
            .expect("metrics endpoint answers")
            .text()
            .await
            .expect("metrics body")
    }

    /// Scrapes `/metrics`, or `None` while the endpoint is not up yet.
    pub async fn metrics_if_up(&self) -> Option<String> {
        let response = reqwest::get(format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .await
            .ok()?;
        response.text().await.ok()
    }

    /// Answers an HTTP GET on the service's metrics port: status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("http://127.0.0.1:{}{path}", self.metrics_port))
            .await
            .expect("service answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().expect("wait").is_none())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A failing test shows what its services said last: CI keeps the
        // test's output, not the log files.
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            eprintln!(
                "--- last {} lines of {} ({}) ---\n{}",
                tail.len(),
                self.name,
                self.log_path.display(),
                tail.join("\n")
            );
        }
    }
}

/// How much of each service's log a failing test prints.
const LOG_TAIL_LINES: usize = 30;

/// Resident memory of process `pid` in bytes, from `/proc`.
pub fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The value of a counter or gauge line `name{labels} value` in a scrape.
pub fn metric_value(scrape: &str, name_and_labels: &str) -> Option<f64> {
    scrape
        .lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The sum of every series of `name` in a scrape whose labels include each
/// of `labels` (`key="value"`), whatever its other labels; `None` when no
/// series matches.
pub fn metric_sum(scrape: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let mut matched = None;
    for line in scrape.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (series_labels, value) = match rest.strip_prefix('{') {
            Some(rest) => match rest.split_once("} ") {
                Some((l, v)) => (l, v),
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(v) => ("", v),
                None => continue,
            },
        };
        let pairs: Vec<&str> = series_labels.split(',').collect();
        if labels.iter().all(|l| pairs.contains(l)) {
            if let Ok(v) = value.trim().parse::<f64>() {
                *matched.get_or_insert(0.0) += v;
            }
        }
    }
    matched
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

static BUILT: OnceLock<()> = OnceLock::new();

/// The path of a workspace binary, rebuilt once per test process so a test
/// never runs a stale service.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("target profile dir");
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let release = dir.ends_with("release").then_some("--release");
        let status = Command::new(cargo)
            .args(["build", "--workspace", "--bins"])
            .args(release)
            .current_dir(workspace_root())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the service binaries failed");
    });
    dir.join(name)
}

/// Polls `check` every 500 ms until it yields a value or `timeout` passes.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A TCP proxy that can cut its traffic, to give one service an outage of a
/// shared server without disturbing other tests.
#[derive(Debug)]
pub struct CuttableProxy {
    pub addr: std::net::SocketAddr,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl CuttableProxy {
    pub async fn start(target: std::net::SocketAddr) -> Self {
        use std::sync::{atomic::Ordering, Arc};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy bind");
        let addr = listener.local_addr().expect("proxy addr");
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let connections = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (flag, open) = (down.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if flag.load(Ordering::SeqCst) {
                    continue; // dropping the socket refuses the connection
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                open.lock().expect("proxy lock").push(task.abort_handle());
            }
        });
        Self {
            addr,
            down,
            connections,
            accept,
        }
    }

    /// Refuses new connections and breaks open ones.
    pub fn cut(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        for connection in self.connections.lock().expect("proxy lock").drain(..) {
            connection.abort();
        }
    }

    pub fn restore(&self) {
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

fn assignment_name(assignment: centile_runtime::Assignment) -> String {
    match assignment {
        centile_runtime::Assignment::Group => "group",
        centile_runtime::Assignment::All => "all",
    }
    .to_owned()
}

/// The broker binary the local stack runs (Tansu with Centile's storage
/// fixes, `deploy/local/tansu/build`), or `CENTILE_TANSU_BIN`.
/// Asked once per test process: brokers restart many times.
pub fn tansu_bin() -> String {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(bin) = std::env::var("CENTILE_TANSU_BIN") {
            return bin;
        }
        let output = Command::new(workspace_root().join("deploy/local/stack"))
            .arg("tansu-bin")
            .output()
            .expect("deploy/local/stack runs");
        String::from_utf8(output.stdout)
            .expect("a path")
            .trim()
            .to_owned()
    })
    .clone()
}

/// A Tansu broker of a test's own, on sqlite storage in its own directory,
/// so a test can stop and restart it without disturbing other tests.
#[derive(Debug)]
pub struct PrivateBroker {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateBroker {
    pub fn start(name: &str) -> Self {
        let dir = workspace_root()
            .join("target/test-brokers")
            .join(format!("{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("broker dir");
        let mut broker = Self {
            port: free_port(),
            dir,
            child: None,
        };
        broker.restart();
        broker
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and storage, and waits until it listens.
    pub fn restart(&mut self) {
        let bin = tansu_bin();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("tansu.log"))
            .expect("broker log");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(bin)
            .current_dir(&self.dir)
            .args([
                "broker",
                "--cluster-id",
                "centile-test",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                // Relative to the working directory, as Tansu 0.6 resolves it.
                "--storage-engine",
                "sqlite://tansu.db",
            ])
            .env("RUST_LOG", "warn")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("tansu starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Everything the broker has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("tansu.log")).unwrap_or_default()
    }

    /// Freezes the broker (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused broker (SIGCONT); what it had buffered is processed.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("broker is running");
        Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill runs");
    }

    /// Stops the broker with SIGTERM and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("kill runs");
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().expect("wait").is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a schemathesis run found.
#[derive(Debug)]
pub struct Fuzzed {
    pub passed: bool,
    /// Cases generated, from its summary line.
    pub generated: u64,
    /// The last `tail_lines` lines of its report.
    pub tail: String,
    pub report: String,
    pub stderr: String,
}

/// Runs schemathesis (installed by `deploy/local/stack up`) against the
/// OpenAPI document at `document_url` with the checks every contract test
/// uses (no 5xx; statuses, content types, headers and bodies as
/// documented), a bearer `key`, a fixed `seed` and 60 examples per
/// operation, plus `extra` arguments.
pub async fn schemathesis(
    document_url: &str,
    key: &str,
    seed: &str,
    extra: &[&str],
    tail_lines: usize,
) -> Fuzzed {
    let mut args: Vec<String> = [
        "-m",
        "schemathesis.cli",
        "run",
        document_url,
        "--header",
        &format!("Authorization: Bearer {key}"),
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance",
        "--max-examples",
        "60",
        "--seed",
        seed,
        "--no-color",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(extra.iter().map(|a| a.to_string()));
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(&args)
            .env("SCHEMATHESIS_TELEMETRY", "false")
            // It keeps a cache in its working directory; keep that out of the tree.
            .current_dir(workspace_root().join("target"))
            .output()
            .expect("python3 runs (schemathesis is installed by deploy/local/stack up)")
    })
    .await
    .expect("schemathesis thread");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    let lines: Vec<&str> = report.lines().collect();
    let tail = lines[lines.len().saturating_sub(tail_lines)..].join("\n");
    let generated = report
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_suffix(" passed")
                .and_then(|l| l.split(" generated, ").next())
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0);
    Fuzzed {
        passed: output.status.success(),
        generated,
        tail,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        report,
    }
}

/// (year, month, day) of `days` since 1970-01-01 (Howard Hinnant's
/// days-to-civil), so tests write RFC 3339 times without a date crate.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}
