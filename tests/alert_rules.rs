//! The shipped Prometheus files are valid and every alert is proven by a
//! unit test: Debian's promtool (installed for the current user by
//! `deploy/local/prometheus/install`) accepts `deploy/prometheus/alerts.yml`
//! and `prometheus.yml`, and `promtool test rules` passes
//! `deploy/prometheus/alerts_test.yml`, in which every alert of alerts.yml
//! has a case where it fires and one where it stays silent. Needs no broker
//! and no ClickHouse.
//!
//! `CENTILE_PROMTOOL=/path/to/promtool` uses that promtool instead of
//! installing one.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative))
        .unwrap_or_else(|e| panic!("reading {relative}: {e}"))
}

/// promtool, installed once per test process.
fn promtool() -> &'static Path {
    static PROMTOOL: OnceLock<PathBuf> = OnceLock::new();
    PROMTOOL.get_or_init(|| {
        if let Some(path) = std::env::var_os("CENTILE_PROMTOOL") {
            return PathBuf::from(path);
        }
        let script = root().join("deploy/local/prometheus/install");
        let output = Command::new(&script)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{} failed ({}):\n{stderr}",
            script.display(),
            output.status
        );
        let bin_dir = String::from_utf8(output.stdout).expect("the install script prints a path");
        let promtool = Path::new(bin_dir.trim()).join("promtool");
        assert!(
            promtool.is_file(),
            "the install script printed {bin_dir:?}, which holds no promtool; its log:\n{stderr}"
        );
        promtool
    })
}

/// Runs promtool in the repository root and returns its output, failing the
/// test with everything it printed unless it succeeds.
fn promtool_ok(args: &[&str]) -> String {
    let output = Command::new(promtool())
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("running promtool {args:?}: {e}"));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool {} failed ({}):\n{printed}",
        args.join(" "),
        output.status
    );
    println!("promtool {}:\n{printed}", args.join(" "));
    printed
}

/// The alerts of alerts.yml in file order, each with the lines of its rule.
fn alerts() -> Vec<(String, Vec<String>)> {
    let mut alerts: Vec<(String, Vec<String>)> = Vec::new();
    for line in read("deploy/prometheus/alerts.yml").lines() {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("- alert:") {
            alerts.push((name.trim().to_owned(), Vec::new()));
        } else if trimmed.starts_with("- name:") || trimmed.starts_with("- record:") {
            // A new group or a recording rule ends the alert before it.
            alerts.push((String::new(), Vec::new()));
        } else if let Some((_, lines)) = alerts.last_mut() {
            lines.push(trimmed.to_owned());
        }
    }
    alerts.retain(|(name, _)| !name.is_empty());
    alerts
}

#[test]
fn promtool_accepts_the_alerting_rules() {
    let printed = promtool_ok(&["check", "rules", "deploy/prometheus/alerts.yml"]);
    let count = alerts().len();
    assert!(
        printed.contains(&format!("SUCCESS: {count} rules found")),
        "promtool found another number of rules than the {count} alerts:\n{printed}"
    );
}

#[test]
fn promtool_accepts_the_prometheus_config() {
    promtool_ok(&["check", "config", "deploy/prometheus/prometheus.yml"]);
}

#[test]
fn every_alert_passes_its_unit_tests() {
    promtool_ok(&["test", "rules", "deploy/prometheus/alerts_test.yml"]);
}

#[test]
fn every_alert_has_a_firing_and_a_silent_unit_test() {
    let alerts = alerts();
    assert!(alerts.len() >= 30, "only {} alerts found", alerts.len());
    let names: BTreeSet<&str> = alerts.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names.len(), alerts.len(), "an alert name is used twice");

    // For each alertname in the tests: (has a firing case, has a silent case).
    let mut cases: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in read("deploy/prometheus/alerts_test.yml").lines() {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix("alertname:") {
            let name = name.trim().to_owned();
            cases.entry(name.clone()).or_default();
            current = Some(name);
        } else if trimmed == "exp_alerts: []" {
            let name = current.as_ref().expect("exp_alerts after an alertname");
            cases.get_mut(name).expect("seen").1 = true;
        } else if trimmed.starts_with("- exp_labels:") {
            let name = current.as_ref().expect("exp_labels after an alertname");
            cases.get_mut(name).expect("seen").0 = true;
        }
    }

    let mut problems = Vec::new();
    for name in &names {
        match cases.get(*name) {
            None => problems.push(format!("{name} has no unit test in alerts_test.yml")),
            Some((false, _)) => problems.push(format!("{name} has no case where it fires")),
            Some((_, false)) => problems.push(format!("{name} has no case where it stays silent")),
            Some((true, true)) => {}
        }
    }
    for name in cases.keys() {
        if !names.contains(name.as_str()) {
            problems.push(format!(
                "alerts_test.yml tests {name}, which alerts.yml lacks"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_alert_has_a_severity_a_summary_and_a_description() {
    let mut problems = Vec::new();
    for (name, lines) in alerts() {
        let has = |prefix: &str| lines.iter().any(|line| line.starts_with(prefix));
        if !(has("severity: critical") || has("severity: warning")) {
            problems.push(format!("{name}: severity is neither critical nor warning"));
        }
        for annotation in ["summary:", "description:"] {
            if !has(annotation) {
                problems.push(format!("{name}: no {annotation} annotation"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_alert_is_listed_in_docs_alerts_md() {
    let doc = read("docs/alerts.md");
    let missing: Vec<String> = alerts()
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| !doc.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/alerts.md does not list: {}",
        missing.join(", ")
    );
}
