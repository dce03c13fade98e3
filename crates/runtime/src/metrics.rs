//! Declaring metrics: each metric is named, described, labelled and
//! registered in one statement, and recorded in a process-wide catalog that
//! `docs/metrics.md` is generated from (and checked against in CI).
//!
//! Labels are either *known*, a closed set of values that are all created
//! at zero when the metric is declared, or *open* (topic, partition), whose
//! values appear as the service meets them. Zero-initialised series matter:
//! `rate()` and `increase()` cannot see the increment that creates a
//! series, so without them the first failure of a kind would be invisible.

use std::{
    collections::BTreeMap,
    sync::{Mutex, OnceLock},
};

use prometheus::{
    core::Collector, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

/// One label of a metric.
#[derive(Debug, Clone, Copy)]
pub enum Label {
    /// A closed set of values, each created at zero at declaration.
    Known(&'static str, &'static [&'static str]),
    /// Values met at run time (bounded by the deployment: topics, partitions).
    Open(&'static str),
}

impl Label {
    fn name(&self) -> &'static str {
        match self {
            Self::Known(name, _) | Self::Open(name) => name,
        }
    }
}

/// What the catalog knows of a declared metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub name: String,
    /// `counter`, `gauge` or `histogram`.
    pub kind: &'static str,
    pub help: String,
    /// Label names, with the known values where the set is closed.
    pub labels: Vec<(String, Option<Vec<String>>)>,
    /// The service (or role) that declared it.
    pub owner: &'static str,
}

fn catalog_cell() -> &'static Mutex<BTreeMap<String, Descriptor>> {
    static CATALOG: OnceLock<Mutex<BTreeMap<String, Descriptor>>> = OnceLock::new();
    CATALOG.get_or_init(Default::default)
}

/// Every metric declared in this process so far, by name.
pub fn catalog() -> Vec<Descriptor> {
    catalog_cell()
        .lock()
        .expect("metric catalog lock")
        .values()
        .cloned()
        .collect()
}

/// Declares metrics into one registry, for one owner.
#[derive(Debug)]
pub struct Declare<'r> {
    registry: &'r Registry,
    owner: &'static str,
}

type Result<T> = prometheus::Result<T>;

impl<'r> Declare<'r> {
    pub fn new(registry: &'r Registry, owner: &'static str) -> Self {
        Self { registry, owner }
    }

    fn register<M: Collector + Clone + 'static>(
        &self,
        metric: M,
        kind: &'static str,
        name: &str,
        help: &str,
        labels: &[Label],
    ) -> Result<M> {
        self.registry.register(Box::new(metric.clone()))?;
        let descriptor = Descriptor {
            name: name.to_owned(),
            kind,
            help: help.to_owned(),
            labels: labels
                .iter()
                .map(|label| match label {
                    Label::Known(name, values) => (
                        (*name).to_owned(),
                        Some(values.iter().map(|v| (*v).to_owned()).collect()),
                    ),
                    Label::Open(name) => ((*name).to_owned(), None),
                })
                .collect(),
            owner: self.owner,
        };
        catalog_cell()
            .lock()
            .expect("metric catalog lock")
            .insert(name.to_owned(), descriptor);
        Ok(metric)
    }

    pub fn counter(&self, name: &str, help: &str) -> Result<IntCounter> {
        self.register(IntCounter::new(name, help)?, "counter", name, help, &[])
    }

    pub fn counter_vec(&self, name: &str, help: &str, labels: &[Label]) -> Result<IntCounterVec> {
        let metric = IntCounterVec::new(Opts::new(name, help), &names(labels))?;
        for values in known_combinations(labels) {
            metric.with_label_values(&values);
        }
        self.register(metric, "counter", name, help, labels)
    }

    pub fn gauge(&self, name: &str, help: &str) -> Result<IntGauge> {
        self.register(IntGauge::new(name, help)?, "gauge", name, help, &[])
    }

    pub fn gauge_vec(&self, name: &str, help: &str, labels: &[Label]) -> Result<IntGaugeVec> {
        let metric = IntGaugeVec::new(Opts::new(name, help), &names(labels))?;
        for values in known_combinations(labels) {
            metric.with_label_values(&values);
        }
        self.register(metric, "gauge", name, help, labels)
    }

    pub fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Result<Histogram> {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.register(Histogram::with_opts(opts)?, "histogram", name, help, &[])
    }

    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
        labels: &[Label],
    ) -> Result<HistogramVec> {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        let metric = HistogramVec::new(opts, &names(labels))?;
        for values in known_combinations(labels) {
            metric.with_label_values(&values);
        }
        self.register(metric, "histogram", name, help, labels)
    }
}

fn names(labels: &[Label]) -> Vec<&'static str> {
    labels.iter().map(Label::name).collect()
}

/// Every combination of known values, or none when a label is open.
fn known_combinations(labels: &[Label]) -> Vec<Vec<&'static str>> {
    let mut combinations: Vec<Vec<&'static str>> = vec![Vec::new()];
    for label in labels {
        let Label::Known(_, values) = label else {
            return Vec::new();
        };
        combinations = combinations
            .into_iter()
            .flat_map(|prefix| {
                values.iter().map(move |value| {
                    let mut next = prefix.clone();
                    next.push(*value);
                    next
                })
            })
            .collect();
    }
    combinations
}

/// Counts by label values, kept in plain integers by a hot loop and added
/// to a counter vector once per batch.
#[derive(Debug)]
pub struct Pending<const N: usize> {
    counts: Vec<([&'static str; N], u64)>,
}

impl<const N: usize> Default for Pending<N> {
    fn default() -> Self {
        Self { counts: Vec::new() }
    }
}

impl<const N: usize> Pending<N> {
    pub fn add(&mut self, labels: [&'static str; N]) {
        match self.counts.iter_mut().find(|(l, _)| *l == labels) {
            Some((_, n)) => *n += 1,
            None => self.counts.push((labels, 1)),
        }
    }

    /// Adds every count to `metric` and starts over.
    pub fn flush_into(&mut self, metric: &IntCounterVec) {
        for (labels, n) in self.counts.drain(..) {
            metric.with_label_values(&labels).inc_by(n);
        }
    }
}

/// Latency buckets for request and flush durations, 1 ms to 30 s.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Metrics every service exports: its build, its readiness checks and the
/// process (CPU, memory, file descriptors, threads).
#[derive(Debug, Clone)]
pub struct ServiceMetrics {
    pub build_info: IntGaugeVec,
    pub readiness: IntGaugeVec,
    /// The metrics server's own connections (`/metrics`, `/healthz`, `/readyz`).
    pub telemetry: crate::listener::ConnectionMetrics,
}

impl ServiceMetrics {
    pub fn register(registry: &Registry, service: &'static str) -> Result<Self> {
        let declare = Declare::new(registry, "every service");
        let metrics = Self {
            build_info: declare.gauge_vec(
                "centile_build_info",
                "Always 1; its labels name the service and its version.",
                &[Label::Open("service"), Label::Open("version")],
            )?,
            readiness: declare.gauge_vec(
                "centile_readiness_check_up",
                "1 while a readiness check passes, 0 while it fails (then /readyz is 503 and names it). Checks: kafka (the brokers answer a metadata probe), kafka_commit and kafka_produce (the last commit or publish succeeded), clickhouse (answers a probe), clickhouse_insert (the last insert succeeded), schema (the API: the database has every table it reads).",
                &[Label::Open("check")],
            )?,
            telemetry: crate::listener::ConnectionMetrics {
                open: declare.gauge(
                    "centile_telemetry_connections",
                    "Open connections to the metrics server (/metrics, /healthz, /readyz).",
                )?,
                cap_reached: declare.counter(
                    "centile_telemetry_connection_cap_reached_total",
                    "Times the metrics server's 64 connections were all taken; further ones waited in the listen backlog.",
                )?,
                timed_out: declare.counter(
                    "centile_telemetry_connections_timed_out_total",
                    "Metrics-server connections closed for idling 30 s or for a request taking more than 10 s to arrive.",
                )?,
            },
        };
        metrics
            .build_info
            .with_label_values(&[service, env!("CARGO_PKG_VERSION")])
            .set(1);
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(metrics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_labels_start_at_zero_and_open_ones_do_not() {
        let registry = Registry::new();
        let declare = Declare::new(&registry, "test");
        declare
            .counter_vec(
                "centile_test_refused_total",
                "test",
                &[
                    Label::Known("kind", &["latency", "usage"]),
                    Label::Known("reason", &["a", "b", "c"]),
                ],
            )
            .unwrap();
        declare
            .gauge_vec(
                "centile_test_offset",
                "test",
                &[Label::Known("kind", &["x"]), Label::Open("partition")],
            )
            .unwrap();
        let families = registry.gather();
        let refused = families
            .iter()
            .find(|f| f.name() == "centile_test_refused_total")
            .unwrap();
        assert_eq!(refused.get_metric().len(), 6);
        assert!(refused
            .get_metric()
            .iter()
            .all(|m| m.get_counter().get_value() == 0.0));
        assert!(!families.iter().any(|f| f.name() == "centile_test_offset"));
        let described = catalog()
            .into_iter()
            .find(|d| d.name == "centile_test_offset")
            .unwrap();
        assert_eq!(described.kind, "gauge");
        assert_eq!(described.labels[1], ("partition".to_owned(), None));
    }

    #[test]
    fn service_metrics_include_process_and_build_info() {
        let registry = Registry::new();
        ServiceMetrics::register(&registry, "centile-test").unwrap();
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        assert!(
            names.contains(&"centile_build_info".to_owned()),
            "{names:?}"
        );
        assert!(
            names.contains(&"process_resident_memory_bytes".to_owned()),
            "{names:?}"
        );
        assert!(names.contains(&"process_open_fds".to_owned()), "{names:?}");
    }
}
