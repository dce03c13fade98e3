//! `docs/metrics.md` is generated from the code: every service's metrics
//! are declared through `centile_runtime::metrics::Declare`, which records
//! each one in a catalog, and this test renders that catalog and compares
//! it with the file. A metric added, renamed or re-described without the
//! reference fails CI. `CENTILE_BLESS=1 cargo test --test metrics_reference`
//! rewrites the file.
//!
//! It also holds the naming rules: `centile_` prefix, `_total` on counters
//! only, `_timestamp_seconds` on gauges that hold an instant, `code` (never
//! `status`) for HTTP status labels.

use centile::testkit::workspace_root;
use centile_runtime::metrics::{catalog, Descriptor, ServiceMetrics};
use prometheus::Registry;

/// Declares every service's metrics, each into a registry of its own, as
/// the services do, and returns the catalog plus the process collector's
/// families (name, type, help), which are not Centile's to declare.
fn declare_everything() -> (Vec<Descriptor>, Vec<(String, String, String)>) {
    centile_aggregator::metrics::AggregatorMetrics::register(&Registry::new()).unwrap();
    centile_sink::metrics::SinkMetrics::register(&Registry::new()).unwrap();
    centile_producer::gateway::GatewayMetrics::register(&Registry::new()).unwrap();
    centile_producer::load::LoadMetrics::register(&Registry::new()).unwrap();
    centile_api::metrics::ApiMetrics::register(&Registry::new()).unwrap();
    let service = Registry::new();
    ServiceMetrics::register(&service, "centile-test").unwrap();
    let process = service
        .gather()
        .iter()
        .filter(|f| f.name().starts_with("process_"))
        .map(|f| {
            let kind = format!("{:?}", f.get_field_type()).to_lowercase();
            (f.name().to_owned(), kind, f.help().to_owned())
        })
        .collect();
    (catalog(), process)
}

fn render(metrics: &[Descriptor], process: &[(String, String, String)]) -> String {
    let mut out = String::from(
        "# Metrics reference\n\n\
         Generated from the code by `CENTILE_BLESS=1 cargo test --test metrics_reference`;\n\
         CI fails when this file and the code disagree. Every service serves these on\n\
         `/metrics` (Prometheus text format; `metrics.auth_token` adds a bearer token).\n\n\
         Labels marked *known* have a closed set of values, and every value exists from\n\
         start at 0, so `rate()` and `increase()` see the first failure of each kind.\n\
         *Open* labels (topics, partitions) appear as the service meets them.\n\n\
         Alerts on these metrics: [alerts.md](alerts.md). Dashboard: `deploy/grafana/centile.json`.\n",
    );
    let mut owners: Vec<&str> = metrics.iter().map(|d| d.owner).collect();
    owners.sort();
    owners.dedup();
    for owner in owners {
        out.push_str(&format!(
            "\n## {owner}\n\n| metric | type | labels | meaning |\n|---|---|---|---|\n"
        ));
        for d in metrics.iter().filter(|d| d.owner == owner) {
            let labels = d
                .labels
                .iter()
                .map(|(name, values)| match values {
                    Some(values) => format!("`{name}` (known: {})", values.join(", ")),
                    None => format!("`{name}` (open)"),
                })
                .collect::<Vec<_>>()
                .join("; ");
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                d.name,
                d.kind,
                labels,
                d.help.replace('|', "\\|")
            ));
        }
    }
    out.push_str(
        "\n## every service: the process\n\n\
         The standard Prometheus process collector (Linux).\n\n\
         | metric | type | meaning |\n|---|---|---|\n",
    );
    for (name, kind, help) in process {
        out.push_str(&format!("| `{name}` | {kind} | {help} |\n"));
    }
    out
}

#[test]
fn the_metrics_reference_matches_the_code() {
    let (metrics, process) = declare_everything();
    let rendered = render(&metrics, &process);
    let path = workspace_root().join("docs/metrics.md");
    if std::env::var("CENTILE_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &rendered).expect("write docs/metrics.md");
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == rendered,
        "docs/metrics.md is out of date; run `CENTILE_BLESS=1 cargo test --test metrics_reference` and review the diff"
    );
    assert!(
        process
            .iter()
            .any(|(name, _, _)| name == "process_resident_memory_bytes"),
        "{process:?}"
    );
}

#[test]
fn metric_names_follow_the_conventions() {
    let (metrics, _) = declare_everything();
    assert!(
        metrics.len() > 50,
        "only {} metrics declared",
        metrics.len()
    );
    for d in &metrics {
        let name = &d.name;
        assert!(name.starts_with("centile_"), "{name}: centile_ prefix");
        assert_eq!(
            d.kind == "counter",
            name.ends_with("_total"),
            "{name}: `_total` marks counters, and only counters"
        );
        if d.kind == "gauge" && name.ends_with("_seconds") {
            assert!(
                name.ends_with("_timestamp_seconds"),
                "{name}: a gauge in seconds holds an instant: `_timestamp_seconds`"
            );
        }
        assert!(!d.help.trim().is_empty(), "{name}: described");
        for (label, values) in &d.labels {
            assert_ne!(label, "status", "{name}: HTTP statuses are labelled `code`");
            if let Some(values) = values {
                assert!(!values.is_empty(), "{name}: {label} has values");
            }
        }
    }
}
