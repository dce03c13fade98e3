//! A real Prometheus of a test's own, scraping the services a test started
//! and evaluating the shipped alerting rules, plus the dashboard's queries.
//!
//! The binaries come from `deploy/local/prometheus/install`, which prints the
//! directory holding Debian's `prometheus` and `promtool` (installing them
//! first if needed); `CENTILE_PROMETHEUS_BIN_DIR` names another directory.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::testkit::{free_port, workspace_root};

/// How long every `for:` of the shipped rules lasts in a test's copy.
pub const TEST_FOR: &str = "2s";

/// One series of an instant query: its labels and value (`NaN` included).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One alert as `/api/v1/alerts` shows it (`pending` or `firing`).
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub state: String,
    pub value: String,
}

impl Alert {
    /// Whether every `(name, value)` of `subset` is among its labels.
    pub fn has_labels(&self, subset: &[(&str, &str)]) -> bool {
        subset
            .iter()
            .all(|(k, v)| self.labels.get(*k).map(String::as_str) == Some(*v))
    }
}

impl std::fmt::Display for Alert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let labels: Vec<String> = self
            .labels
            .iter()
            .filter(|(k, _)| *k != "alertname")
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        write!(
            f,
            "{}{{{}}} {} (value {})",
            self.name,
            labels.join(","),
            self.state,
            self.value
        )
    }
}

/// The directory holding `prometheus` and `promtool`: asked once per test
/// process of `deploy/local/prometheus/install` (its last line of output),
/// or `CENTILE_PROMETHEUS_BIN_DIR`. Panics, saying why, when neither gives
/// a directory with both binaries: a missing Prometheus is a failure.
pub fn prometheus_bin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = match std::env::var_os("CENTILE_PROMETHEUS_BIN_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => {
                let script = workspace_root().join("deploy/local/prometheus/install");
                let output = Command::new(&script)
                    .stdin(Stdio::null())
                    .stderr(Stdio::inherit())
                    .output()
                    .unwrap_or_else(|e| {
                        panic!(
                            "cannot run {} to find Prometheus: {e}; this test needs a real \
                             Prometheus (Debian's `prometheus` package), or \
                             CENTILE_PROMETHEUS_BIN_DIR naming a directory with \
                             `prometheus` and `promtool`",
                            script.display()
                        )
                    });
                let stdout = String::from_utf8_lossy(&output.stdout);
                assert!(
                    output.status.success(),
                    "{} failed ({}), so there is no Prometheus to test the alerts against; \
                     its output:\n{stdout}",
                    script.display(),
                    output.status
                );
                let line = stdout
                    .lines()
                    .map(str::trim)
                    .rfind(|l| !l.is_empty())
                    .unwrap_or_else(|| panic!("{} printed no directory", script.display()));
                PathBuf::from(line)
            }
        };
        for bin in ["prometheus", "promtool"] {
            assert!(
                dir.join(bin).is_file(),
                "no {bin} in {} (from deploy/local/prometheus/install or \
                 CENTILE_PROMETHEUS_BIN_DIR)",
                dir.display()
            );
        }
        dir
    })
    .clone()
}

/// Copies the alerting rules at `source` to `dest` with every rule's `for:`
/// set to `duration`, and returns how many it changed.
///
/// Only the durations change: the expressions, labels and annotations are
/// the shipped ones, line for line. A test cannot wait out `for: 5m` per
/// fault, and the hold-down is Prometheus's own logic, not ours; what a
/// test must prove is that the expressions see each fault.
pub fn shorten_for(source: &Path, dest: &Path, duration: &str) -> usize {
    let text = std::fs::read_to_string(source)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", source.display()));
    let mut changed = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let indent = line.len() - line.trim_start().len();
            match line.trim_start().strip_prefix("for:") {
                // A rule's key holds a duration and nothing else (a
                // description's text never looks like that).
                Some(value) if is_duration(value.split('#').next().unwrap_or("").trim()) => {
                    changed += 1;
                    format!("{}for: {duration}", &line[..indent])
                }
                _ => line.to_owned(),
            }
        })
        .collect();
    std::fs::write(dest, lines.join("\n") + "\n")
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", dest.display()));
    changed
}

/// A Prometheus duration such as `5m`, `1h30m` or `90s`.
fn is_duration(value: &str) -> bool {
    let value = value.trim_matches(|c| c == '"' || c == '\'');
    let mut digits = false;
    let mut units = false;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            digits = true;
        } else if digits && "smhdwy".contains(c) {
            if c == 'm' && chars.peek() == Some(&'s') {
                chars.next();
            }
            units = true;
            digits = false;
        } else {
            return false;
        }
    }
    units && !digits
}

/// A running Prometheus; stopped (and its directory removed) when dropped.
#[derive(Debug)]
pub struct TestPrometheus {
    pub url: String,
    pub dir: PathBuf,
    pub log_path: PathBuf,
    /// The number of alerting rules loaded.
    pub rules: usize,
    /// How many of their `for:` durations were shortened to [`TEST_FOR`].
    pub shortened: usize,
    /// When it became ready: how much history its queries can see.
    pub started: Instant,
    child: Option<Child>,
    http: reqwest::Client,
}

impl TestPrometheus {
    /// Starts Prometheus scraping every `(job, "host:port")` target each
    /// second and evaluating the alerting rules of `rules_file` (if any)
    /// each second, from a copy whose `for:` durations are [`TEST_FOR`]
    /// (see [`shorten_for`]: the expressions are the file's own); waits
    /// until it is ready and has loaded every rule.
    pub async fn start(targets: &[(&str, &str)], rules_file: Option<&Path>) -> Self {
        let bin = prometheus_bin_dir().join("prometheus");
        let dir = workspace_root()
            .join("target/test-prometheus")
            .join(uuid::Uuid::new_v4().simple().to_string());
        std::fs::create_dir_all(dir.join("data")).expect("prometheus dir");
        let mut jobs: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (job, target) in targets {
            jobs.entry(job).or_default().push(target);
        }
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n",
        );
        let mut expected_rules = 0;
        let mut shortened = 0;
        if let Some(rules) = rules_file {
            let copy = dir.join("rules.yml");
            shortened = shorten_for(rules, &copy, TEST_FOR);
            config.push_str(&format!("rule_files:\n  - {}\n", copy.display()));
            expected_rules = std::fs::read_to_string(&copy)
                .expect("rules")
                .lines()
                .filter(|l| l.trim_start().starts_with("- alert:"))
                .count();
        }
        config.push_str("scrape_configs:\n");
        for (job, targets) in &jobs {
            let list: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: [{}]\n",
                list.join(", ")
            ));
        }
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("prometheus config");
        let port = free_port();
        let log_path = dir.join("prometheus.log");
        let log = std::fs::File::create(&log_path).expect("prometheus log");
        let child = Command::new(&bin)
            .current_dir(&dir)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut prometheus = Self {
            url: format!("http://127.0.0.1:{port}"),
            dir,
            log_path,
            rules: 0,
            shortened,
            started: Instant::now(),
            child: Some(child),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = prometheus
                .child
                .as_mut()
                .and_then(|c| c.try_wait().expect("wait"))
            {
                panic!(
                    "prometheus exited at start ({status}); its log:\n{}",
                    prometheus.log()
                );
            }
            let ready = prometheus
                .http
                .get(format!("{}/-/ready", prometheus.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus was not ready within 60s; its log:\n{}",
                prometheus.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        prometheus.started = Instant::now();
        prometheus.rules = prometheus.alerting_rules().await.len();
        assert_eq!(
            prometheus.rules, expected_rules,
            "prometheus loaded {} alerting rules of {expected_rules}",
            prometheus.rules
        );
        prometheus
    }

    /// Everything Prometheus logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, String> {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .query(query)
            .send()
            .await
            .map_err(|e| format!("prometheus does not answer: {e}"))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| format!("{status} and a body that is not JSON: {e}"))?;
        if body["status"] == "success" {
            Ok(body["data"].clone())
        } else {
            Err(format!(
                "{status} {}: {}",
                body["errorType"].as_str().unwrap_or("?"),
                body["error"].as_str().unwrap_or("?")
            ))
        }
    }

    /// Evaluates `expr` now: its series, or Prometheus's error (a parse
    /// error, for example).
    pub async fn try_query(&self, expr: &str) -> Result<Vec<Series>, String> {
        let data = self.api("/api/v1/query", &[("query", expr)]).await?;
        let value = |v: &Value| -> f64 {
            v[1].as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(f64::NAN)
        };
        match data["resultType"].as_str() {
            Some("vector") => Ok(data["result"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| Series {
                    labels: labels(&s["metric"]),
                    value: value(&s["value"]),
                })
                .collect()),
            Some("scalar") => Ok(vec![Series {
                labels: BTreeMap::new(),
                value: value(&data["result"]),
            }]),
            other => Err(format!("unexpected result type {other:?}")),
        }
    }

    /// Evaluates `expr` now; panics on an error.
    pub async fn query(&self, expr: &str) -> Vec<Series> {
        self.try_query(expr)
            .await
            .unwrap_or_else(|e| panic!("query `{expr}` failed: {e}"))
    }

    /// Polls `expr` until `done` accepts its series, and returns them.
    pub async fn wait_query(
        &self,
        expr: &str,
        timeout: Duration,
        done: impl Fn(&[Series]) -> bool,
    ) -> Vec<Series> {
        let deadline = Instant::now() + timeout;
        loop {
            let series = self.query(expr).await;
            if done(&series) {
                return series;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting on `{expr}`; it gives {series:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Waits until every target is scraped successfully.
    pub async fn wait_targets_up(&self, targets: usize, timeout: Duration) {
        self.wait_query("up", timeout, |series| {
            series.len() == targets && series.iter().all(|s| s.value == 1.0)
        })
        .await;
    }

    /// Every pending and firing alert.
    pub async fn all_alerts(&self) -> Vec<Alert> {
        let data = self
            .api("/api/v1/alerts", &[])
            .await
            .unwrap_or_else(|e| panic!("/api/v1/alerts: {e}"));
        data["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                let labels = labels(&a["labels"]);
                Alert {
                    name: labels.get("alertname").cloned().unwrap_or_default(),
                    labels,
                    state: a["state"].as_str().unwrap_or_default().to_owned(),
                    value: a["value"].as_str().unwrap_or_default().to_owned(),
                }
            })
            .collect()
    }

    /// The alerts firing now.
    pub async fn alerts(&self) -> Vec<Alert> {
        let mut alerts = self.all_alerts().await;
        alerts.retain(|a| a.state == "firing");
        alerts
    }

    /// Waits until alert `name` fires with (at least) `labels`, and returns
    /// it. On timeout the panic shows the rule (its expression, health and
    /// last error) and every alert pending or firing.
    pub async fn wait_alert(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        timeout: Duration,
    ) -> Alert {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(alert) = self
                .alerts()
                .await
                .into_iter()
                .find(|a| a.name == name && a.has_labels(labels))
            {
                return alert;
            }
            if Instant::now() > deadline {
                panic!(
                    "alert {name} with {labels:?} did not fire within {timeout:?}\nthe rule: {}\nalerts now:\n{}",
                    self.describe_rule(name).await,
                    self.list_alerts().await
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Waits until no alert `name` with `labels` is pending or firing.
    pub async fn wait_alert_gone(&self, name: &str, labels: &[(&str, &str)], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let active: Vec<Alert> = self
                .all_alerts()
                .await
                .into_iter()
                .filter(|a| a.name == name && a.has_labels(labels))
                .collect();
            if active.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "alert {name} with {labels:?} still active after {timeout:?}: {}",
                    active
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Every pending and firing alert, one a line.
    pub async fn list_alerts(&self) -> String {
        let alerts = self.all_alerts().await;
        if alerts.is_empty() {
            return "  (none)".to_owned();
        }
        alerts
            .iter()
            .map(|a| format!("  {a}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every alerting rule as `/api/v1/rules` shows it.
    pub async fn alerting_rules(&self) -> Vec<Value> {
        let data = self
            .api("/api/v1/rules", &[("type", "alert")])
            .await
            .unwrap_or_else(|e| panic!("/api/v1/rules: {e}"));
        data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// The names of every alerting rule loaded.
    pub async fn rule_names(&self) -> Vec<String> {
        self.alerting_rules()
            .await
            .iter()
            .filter_map(|r| r["name"].as_str().map(str::to_owned))
            .collect()
    }

    /// Rules whose last evaluation failed: `(name, error)`.
    pub async fn unhealthy_rules(&self) -> Vec<(String, String)> {
        self.alerting_rules()
            .await
            .iter()
            .filter(|r| r["health"] != "ok" && r["health"] != "unknown")
            .map(|r| {
                (
                    r["name"].as_str().unwrap_or_default().to_owned(),
                    r["lastError"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    async fn describe_rule(&self, name: &str) -> String {
        let rules: Vec<Value> = self
            .alerting_rules()
            .await
            .into_iter()
            .filter(|r| r["name"] == name)
            .collect();
        if rules.is_empty() {
            return format!("no alerting rule is named {name}");
        }
        rules
            .iter()
            .map(|r| {
                format!(
                    "`{}` for {}s, health {} {}",
                    r["query"].as_str().unwrap_or_default(),
                    r["duration"],
                    r["health"].as_str().unwrap_or_default(),
                    r["lastError"].as_str().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn labels(metric: &Value) -> BTreeMap<String, String> {
    metric
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

impl Drop for TestPrometheus {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Kept after a failure, for its log.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The metric names an expression reads: every identifier outside quotes
/// that starts with `centile_` or `process_`, or is `up`, in order of
/// first appearance. (Centile's own and the process collector's names; a
/// heuristic, not a PromQL parser, but label values are skipped.)
pub fn metric_names(expr: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut quote: Option<char> = None;
    let mut word = String::new();
    let flush = |word: &mut String, names: &mut Vec<String>| {
        let is_metric =
            word.starts_with("centile_") || word.starts_with("process_") || word == "up";
        if is_metric && !names.contains(word) {
            names.push(word.clone());
        }
        word.clear();
    };
    let mut escaped = false;
    for c in expr.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        flush(&mut word, &mut names);
        if c == '"' || c == '\'' || c == '`' {
            quote = Some(c);
        }
    }
    flush(&mut word, &mut names);
    names
}

/// A panel query of a Grafana dashboard: the panel's title and the
/// expression as the dashboard holds it.
#[derive(Debug, Clone)]
pub struct PanelQuery {
    pub panel: String,
    pub expr: String,
}

/// Every panel target's `expr` in a Grafana dashboard, rows' nested panels
/// included; hidden (`"hide": true`) targets too.
pub fn dashboard_queries(dashboard: &Value) -> Vec<PanelQuery> {
    fn walk(panels: &Value, out: &mut Vec<PanelQuery>) {
        for panel in panels.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("(untitled)").to_owned();
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str().filter(|e| !e.trim().is_empty()) {
                    out.push(PanelQuery {
                        panel: title.clone(),
                        expr: expr.to_owned(),
                    });
                }
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// A template variable filled by `label_values(selector, label)`.
#[derive(Debug, Clone)]
pub struct VariableQuery {
    pub name: String,
    pub selector: String,
    pub label: String,
}

/// The dashboard's `label_values(selector, label)` variables. (Grafana
/// keeps a variable's query as a string or as an object with `query`.)
pub fn dashboard_variable_queries(dashboard: &Value) -> Vec<VariableQuery> {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["type"] == "query")
        .filter_map(|v| {
            let query = v["query"]["query"].as_str().or(v["query"].as_str())?;
            let inner = query
                .trim()
                .strip_prefix("label_values(")?
                .strip_suffix(')')?;
            let (selector, label) = inner.rsplit_once(',')?;
            Some(VariableQuery {
                name: v["name"].as_str().unwrap_or_default().to_owned(),
                selector: selector.trim().to_owned(),
                label: label.trim().to_owned(),
            })
        })
        .collect()
}

/// `expr` with Grafana's variables replaced as a dashboard user with every
/// variable at "All" would see it: the interval built-ins by `interval`,
/// each of the dashboard's own template variables (`$name`, `${name}`,
/// `${name:format}`, `[[name]]`) by its `allValue` or else `.*` (both
/// meant for `=~` matchers), a constant by its value. Errors name a variable it does not know.
pub fn grafana_substitute(dashboard: &Value, expr: &str, interval: &str) -> Result<String, String> {
    let seconds = humantime_seconds(interval);
    let mut values: Vec<(String, String)> = vec![
        ("__rate_interval".into(), interval.into()),
        ("__interval".into(), interval.into()),
        ("__range".into(), interval.into()),
        ("__interval_ms".into(), (seconds * 1000).to_string()),
        ("__range_ms".into(), (seconds * 1000).to_string()),
        ("__range_s".into(), seconds.to_string()),
    ];
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(name) = var["name"].as_str() else {
            continue;
        };
        let value = match var["type"].as_str() {
            Some("constant") => var["query"].as_str().unwrap_or_default().to_owned(),
            Some("interval") => interval.to_owned(),
            // What Grafana substitutes for "All": the custom all value, or
            // a regex of every value (which `.*` stands for).
            _ => var["allValue"]
                .as_str()
                .filter(|v| !v.is_empty())
                .unwrap_or(".*")
                .to_owned(),
        };
        values.push((name.to_owned(), value));
    }
    // Longest names first, so `$instance` never eats `$instance_type`.
    values.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    let mut out = expr.to_owned();
    for (name, value) in &values {
        out = out.replace(&format!("[[{name}]]"), value);
        out = out.replace(&format!("${{{name}}}"), value);
        // ${name:format}
        let open = format!("${{{name}:");
        while let Some(start) = out.find(&open) {
            let Some(len) = out[start..].find('}') else {
                break;
            };
            out.replace_range(start..start + len + 1, value);
        }
        let plain = format!("${name}");
        let mut from = 0;
        while let Some(at) = out[from..].find(&plain).map(|i| i + from) {
            let end = at + plain.len();
            let next = out[end..].chars().next();
            if next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                from = end;
                continue;
            }
            out.replace_range(at..end, value);
            from = at + value.len();
        }
    }
    let unknown = out.char_indices().find(|(i, c)| {
        *c == '$'
            && out[i + 1..]
                .chars()
                .next()
                .is_some_and(|n| n.is_ascii_alphabetic() || n == '_' || n == '{')
    });
    match unknown {
        Some((i, _)) => Err(format!(
            "unknown Grafana variable at `{}`",
            &out[i..(i + 24).min(out.len())]
        )),
        None => Ok(out),
    }
}

fn humantime_seconds(interval: &str) -> u64 {
    let (number, unit) = interval.split_at(interval.len() - 1);
    let n: u64 = number.parse().unwrap_or(60);
    n * match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for ok in ["5m", "1h30m", "90s", "100ms", "\"2m\""] {
            assert!(is_duration(ok), "{ok}");
        }
        for bad in ["", "5", "m", "five minutes", "2 minutes", "5m,"] {
            assert!(!is_duration(bad), "{bad}");
        }
    }

    #[test]
    fn only_rule_durations_are_shortened() {
        let dir = std::env::temp_dir().join(format!("pk-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let source = dir.join("a.yml");
        std::fs::write(
            &source,
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        for: 10m  # long\n        annotations:\n          description: >-\n            for: two minutes, then\n",
        )
        .unwrap();
        let dest = dir.join("b.yml");
        assert_eq!(shorten_for(&source, &dest, "2s"), 1);
        let text = std::fs::read_to_string(&dest).unwrap();
        assert!(text.contains("        for: 2s\n"), "{text}");
        assert!(
            text.contains("            for: two minutes, then\n"),
            "{text}"
        );
        assert!(text.contains("        expr: up == 0\n"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn metric_names_skip_functions_labels_and_strings() {
        assert_eq!(
            metric_names(
                r#"sum by (job) (rate(centile_a_total{job=~"centile_x|up"}[5m])) / on (job) up unless process_open_fds offset 5m > centile_a_total"#
            ),
            ["centile_a_total", "up", "process_open_fds"]
        );
    }

    #[test]
    fn grafana_variables() {
        let dashboard = serde_json::json!({"templating": {"list": [
            {"name": "instance", "type": "query"},
            {"name": "job", "type": "custom", "allValue": "centile-.*"},
            {"name": "DS_PROMETHEUS", "type": "datasource"},
        ]}});
        let expr = r#"sum by (x) (rate(m{instance=~"$instance",job=~"${job:regex}"}[$__rate_interval])) / [[job]] $__interval_ms"#;
        assert_eq!(
            grafana_substitute(&dashboard, expr, "1m").unwrap(),
            r#"sum by (x) (rate(m{instance=~".*",job=~"centile-.*"}[1m])) / centile-.* 60000"#
        );
        assert!(grafana_substitute(&dashboard, "rate(m[$nope])", "1m").is_err());
        assert_eq!(
            grafana_substitute(&dashboard, r#"m{a=~"x$"}"#, "1m").unwrap(),
            r#"m{a=~"x$"}"#
        );
    }
}
