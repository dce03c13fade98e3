//! The query API under concurrent clients over 30 days of history:
//! `centile-api` with its answer cache, without it, and the same queries
//! sent straight to ClickHouse, side by side in one run.
//!
//! Run it through `scripts/bench-api`, which loads the history (the query
//! benchmark's loader), starts the two API processes and passes them here:
//!
//! ```text
//! cargo bench --bench api_load -- --cached URL --uncached URL --key KEY
//!     [--cached-metrics URL] [--uncached-metrics URL] [--watch NAME=PID,...]
//!     [--clients 50] [--duration 10] [--rounds 3] [--seed 1] [--out FILE]
//! ```
//!
//! ClickHouse (`CENTILE_CLICKHOUSE_*`, read as the API reads them) answers
//! the direct runs and tells the history's range and its model × tool
//! pairs.
//!
//! Targets: `cache on` (the API with its default cache), `cache off` (the
//! API with `CENTILE_API_CACHE_ENTRIES=0`) and `ClickHouse direct`: the
//! API's own query code ([`Queries::answer`], the same SQL through the same
//! ClickHouse HTTP client and settings) called from this process, without
//! the API's HTTP server, authentication, data token or cache. Requests are
//! parsed from the same parameters by the same parsers on every target.
//!
//! Mixes, picked per request by weight (`Kind::weight`): trends of one
//! model × tool hourly over 7 days and daily over 30 days (seed 002), top
//! models over 30 days (seed 000), usage by day, feature and model over 30
//! days, windows status. `fixed`: those exact questions, about the history's
//! last days, 85 distinct requests in all, so with the cache on nearly all
//! are hits; `distinct`: each parameter drawn at random (time ranges,
//! pairs, limits, filters) from a space of about 59,000 requests, so nearly all
//! are misses. Every target gets the same request sequence per client.
//!
//! Closed loop: each of `--clients` tasks sends its next request when the
//! previous one is answered, for `--duration` seconds per run; every run is
//! repeated `--rounds` times, targets in rotating order, and the latencies
//! of a target's rounds are pooled. Every request's latency is kept and
//! percentiles are exact (nearest rank). Before timing, every fixed request
//! is asked of all three targets and the answers compared.

use centile::bench_kit::percentile;
use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use centile_api::{
    params::Params,
    queries::{
        self, Queries, Request, TopModelsRequest, TrendsRequest, UsageRequest, WindowsRequest,
    },
    ApiError,
};
use centile_runtime::Config;
use centile_sink::rollup::{Grouping, Kind as RollupKind, Rollup, Tier};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::Value;

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
/// The CPU column for every process not watched: other work on the machine.
const OTHERS: &str = "all other processes";
/// Linux's USER_HZ: the unit of utime and stime in /proc/<pid>/stat.
const TICKS_PER_SECOND: f64 = 100.0;

// ---------------------------------------------------------------- arguments

#[derive(Debug)]
struct Args {
    cached: String,
    uncached: String,
    cached_metrics: Option<String>,
    uncached_metrics: Option<String>,
    key: String,
    watch: Vec<(String, u32)>,
    clients: usize,
    duration: Duration,
    rounds: usize,
    seed: u64,
    out: Option<String>,
}

fn parse_args() -> Args {
    let mut named: BTreeMap<String, String> = BTreeMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        // `cargo bench` adds `--bench`.
        if arg == "--bench" {
            continue;
        }
        let Some(name) = arg.strip_prefix("--") else {
            panic!("unexpected argument {arg:?}; see benches/api_load.rs");
        };
        let value = it
            .next()
            .unwrap_or_else(|| panic!("--{name} needs a value"));
        named.insert(name.to_owned(), value);
    }
    let mut take = |name: &str| named.remove(name);
    let number = |v: Option<String>, default: u64| {
        v.map_or(default, |s| {
            s.parse()
                .unwrap_or_else(|_| panic!("expected a number, got {s:?}"))
        })
    };
    let args = Args {
        cached: take("cached").expect("--cached URL"),
        uncached: take("uncached").expect("--uncached URL"),
        cached_metrics: take("cached-metrics"),
        uncached_metrics: take("uncached-metrics"),
        key: take("key").expect("--key KEY"),
        watch: take("watch")
            .map(|w| {
                w.split(',')
                    .filter(|s| !s.is_empty())
                    .map(|item| {
                        let (name, pid) = item.split_once('=').expect("--watch NAME=PID,...");
                        (name.to_owned(), pid.parse().expect("a pid"))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        clients: number(take("clients"), 50) as usize,
        duration: Duration::from_secs(number(take("duration"), 10)),
        rounds: number(take("rounds"), 3) as usize,
        seed: number(take("seed"), 1),
        out: take("out"),
    };
    if let Some(unknown) = named.keys().next() {
        panic!("unknown argument --{unknown}; see benches/api_load.rs");
    }
    args
}

// ---------------------------------------------------------------- requests

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    TrendsHour,
    TrendsDay,
    TopModels,
    UsageDay,
    UsageFeature,
    UsageModel,
    Windows,
}

impl Kind {
    const ALL: [Kind; 7] = [
        Kind::TrendsHour,
        Kind::TrendsDay,
        Kind::TopModels,
        Kind::UsageDay,
        Kind::UsageFeature,
        Kind::UsageModel,
        Kind::Windows,
    ];

    /// Share of requests, in percent.
    fn weight(self) -> u32 {
        match self {
            Kind::TrendsHour => 25,
            Kind::TrendsDay => 20,
            Kind::TopModels => 15,
            Kind::UsageDay | Kind::UsageFeature | Kind::UsageModel | Kind::Windows => 10,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::TrendsHour => "trends, model × tool, hourly, 7 d",
            Kind::TrendsDay => "trends, model × tool, daily, 30 d",
            Kind::TopModels => "top models, 30 d",
            Kind::UsageDay => "usage by day, 30 d",
            Kind::UsageFeature => "usage by feature, 30 d",
            Kind::UsageModel => "usage by model, 30 d",
            Kind::Windows => "windows status",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Kind::TrendsHour | Kind::TrendsDay => "/v1/performance/trends",
            Kind::TopModels => "/v1/usage/top-models",
            Kind::UsageDay | Kind::UsageFeature | Kind::UsageModel => "/v1/usage/stats",
            Kind::Windows => "/v1/windows/status",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mix {
    Fixed,
    Distinct,
}

impl Mix {
    fn name(self) -> &'static str {
        match self {
            Mix::Fixed => "fixed",
            Mix::Distinct => "distinct",
        }
    }
}

/// One request: its kind and query parameters.
#[derive(Debug, Clone)]
struct Ask {
    kind: Kind,
    params: Vec<(&'static str, String)>,
}

/// What the loaded history holds.
#[derive(Debug)]
struct History {
    start: i64,
    end: i64,
    pairs: Vec<(String, String)>,
    models: Vec<String>,
    meta: BTreeMap<String, String>,
}

impl History {
    fn days(&self) -> i64 {
        (self.end - self.start) / DAY
    }

    fn trends(&self, kind: Kind, pair: &(String, String), start: i64, end: i64) -> Ask {
        let granularity = if kind == Kind::TrendsHour {
            "hour"
        } else {
            "day"
        };
        Ask {
            kind,
            params: vec![
                ("model_id", pair.0.clone()),
                ("tool", pair.1.clone()),
                ("granularity", granularity.into()),
                ("start", start.to_string()),
                ("end", end.to_string()),
            ],
        }
    }

    fn usage(kind: Kind, start: i64, end: i64, model: Option<&String>) -> Ask {
        let group_by = match kind {
            Kind::UsageDay => "day",
            Kind::UsageFeature => "feature",
            _ => "model",
        };
        let mut params = vec![
            ("group_by", group_by.into()),
            ("start", start.to_string()),
            ("end", end.to_string()),
        ];
        if let Some(model) = model {
            params.push(("model_id", model.clone()));
        }
        Ask { kind, params }
    }

    /// The fixed questions about the history's last days.
    fn fixed(&self, kind: Kind, pair: &(String, String)) -> Ask {
        let week = self.days().min(7) * DAY;
        let month = self.days().min(30) * DAY;
        match kind {
            Kind::TrendsHour => self.trends(kind, pair, self.end - week, self.end),
            Kind::TrendsDay => self.trends(kind, pair, self.end - month, self.end),
            Kind::TopModels => Ask {
                kind,
                params: vec![("days", "30".into()), ("limit", "10".into())],
            },
            Kind::UsageDay | Kind::UsageFeature | Kind::UsageModel => {
                Self::usage(kind, self.end - month, self.end, None)
            }
            Kind::Windows => Ask {
                kind,
                params: vec![],
            },
        }
    }

    /// Every distinct fixed request.
    fn all_fixed(&self) -> Vec<Ask> {
        let mut all = Vec::new();
        for kind in Kind::ALL {
            if matches!(kind, Kind::TrendsHour | Kind::TrendsDay) {
                all.extend(self.pairs.iter().map(|pair| self.fixed(kind, pair)));
            } else {
                all.push(self.fixed(kind, &self.pairs[0]));
            }
        }
        all
    }

    /// A day range `[start, end)` within the history, at random.
    fn day_range(&self, rng: &mut StdRng) -> (i64, i64) {
        let a = rng.random_range(0..self.days());
        let b = rng.random_range(a + 1..=self.days());
        (self.start + a * DAY, self.start + b * DAY)
    }

    fn ask(&self, mix: Mix, rng: &mut StdRng) -> Ask {
        let mut x = rng.random_range(0..100);
        let kind = Kind::ALL
            .into_iter()
            .find(|k| {
                if x < k.weight() {
                    true
                } else {
                    x -= k.weight();
                    false
                }
            })
            .expect("weights sum to 100");
        let pair = &self.pairs[rng.random_range(0..self.pairs.len())];
        if mix == Mix::Fixed {
            return self.fixed(kind, pair);
        }
        match kind {
            Kind::TrendsHour => {
                let week = self.days().min(7) * DAY;
                let shift = rng.random_range(0..=(self.end - self.start - week) / HOUR);
                let end = self.end - shift * HOUR;
                self.trends(kind, pair, end - week, end)
            }
            Kind::TrendsDay => {
                let (start, end) = self.day_range(rng);
                self.trends(kind, pair, start, end)
            }
            Kind::TopModels => Ask {
                kind,
                params: vec![
                    ("days", rng.random_range(1..=30).to_string()),
                    ("limit", rng.random_range(1..=100).to_string()),
                ],
            },
            Kind::UsageDay | Kind::UsageFeature | Kind::UsageModel => {
                let (start, end) = self.day_range(rng);
                let model = rng
                    .random_bool(0.5)
                    .then(|| &self.models[rng.random_range(0..self.models.len())]);
                Self::usage(kind, start, end, model)
            }
            Kind::Windows => Ask {
                kind,
                params: vec![],
            },
        }
    }
}

/// The history's range and pairs, from the stored day tier.
async fn discover(queries: &Queries) -> History {
    let table = Rollup {
        kind: RollupKind::Latency,
        grouping: Grouping::ModelTool,
    }
    .table(Tier::Day);
    let client = queries.client();
    let (start, end): (u32, u32) = client
        .query(&format!(
            "SELECT toUInt32(min(window_start)), toUInt32(max(window_end)) FROM {table}"
        ))
        .fetch_one()
        .await
        .expect("the history's range");
    let pairs: Vec<(String, String)> = client
        .query(&format!(
            "SELECT DISTINCT model_id, tool FROM {table} ORDER BY model_id, tool"
        ))
        .fetch_all()
        .await
        .expect("model × tool pairs");
    assert!(
        !pairs.is_empty() && end > start,
        "no history in {}",
        queries.database()
    );
    let mut models: Vec<String> = pairs.iter().map(|p| p.0.clone()).collect();
    models.dedup();
    let meta: Vec<(String, String)> = client
        .query("SELECT k, v FROM bench_meta")
        .fetch_all()
        .await
        .unwrap_or_default();
    History {
        start: i64::from(start),
        end: i64::from(end),
        pairs,
        models,
        meta: meta.into_iter().collect(),
    }
}

// ---------------------------------------------------------------- targets

#[derive(Debug, Clone)]
enum Target {
    Api {
        name: &'static str,
        base: String,
        key: Arc<str>,
        metrics: Option<String>,
        client: reqwest::Client,
    },
    Direct {
        queries: Arc<Queries>,
        max_buckets: u64,
    },
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Target::Api { name, .. } => name,
            Target::Direct { .. } => "ClickHouse direct",
        }
    }

    /// Asks once; the answer's size in bytes, or why it failed.
    async fn send(&self, ask: &Ask) -> Result<usize, String> {
        match self {
            Target::Api { .. } => self.get(ask).await.map(|b| b.as_ref().len()),
            Target::Direct { .. } => {
                let value = self.direct(ask).await?;
                Ok(serde_json::to_vec(&value).expect("json").len())
            }
        }
    }

    async fn get(&self, ask: &Ask) -> Result<impl AsRef<[u8]>, String> {
        let Target::Api {
            base, key, client, ..
        } = self
        else {
            unreachable!("an API target");
        };
        let response = client
            .get(format!("{base}{}", ask.kind.path()))
            .query(&ask.params)
            .bearer_auth(key)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(format!("{status}: {}", String::from_utf8_lossy(&body)))
        }
    }

    async fn direct(&self, ask: &Ask) -> Result<Value, String> {
        let Target::Direct {
            queries,
            max_buckets,
        } = self
        else {
            unreachable!("the direct target");
        };
        let request = request(ask, *max_buckets).map_err(|e| e.to_string())?;
        queries.answer(&request).await.map_err(|e| e.to_string())
    }

    async fn json(&self, ask: &Ask) -> Result<Value, String> {
        match self {
            Target::Api { .. } => serde_json::from_slice(self.get(ask).await?.as_ref())
                .map_err(|e| format!("not JSON: {e}")),
            Target::Direct { .. } => self.direct(ask).await,
        }
    }

    fn metrics(&self) -> Option<&str> {
        match self {
            Target::Api { metrics, .. } => metrics.as_deref(),
            Target::Direct { .. } => None,
        }
    }
}

/// The request the API builds from these parameters (server.rs), for an
/// admin key.
fn request(ask: &Ask, max_buckets: u64) -> Result<Request, ApiError> {
    let pairs = ask
        .params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let now = centile_api::server::now();
    Ok(match ask.kind {
        Kind::TrendsHour | Kind::TrendsDay => Request::Trends(TrendsRequest::parse(
            &Params::new(pairs, queries::trends_parameters())?,
            None,
            now,
            max_buckets,
        )?),
        Kind::TopModels => Request::TopModels(TopModelsRequest::parse(
            &Params::new(pairs, queries::top_models_parameters())?,
            None,
            now,
        )?),
        Kind::UsageDay | Kind::UsageFeature | Kind::UsageModel => Request::Usage(
            UsageRequest::parse(&Params::new(pairs, queries::usage_parameters())?, None, now)?,
        ),
        Kind::Windows => Request::Windows(WindowsRequest::at(now)),
    })
}

/// `centile_api_cache_requests_total` by result, from a metrics endpoint.
async fn cache_counts(client: &reqwest::Client, url: &str) -> BTreeMap<String, f64> {
    let Ok(response) = client.get(url).send().await else {
        return BTreeMap::new();
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("centile_api_cache_requests_total{"))
        .filter_map(|l| {
            let result = l.split("result=\"").nth(1)?.split('"').next()?;
            let value = l.rsplit(' ').next()?.parse().ok()?;
            Some((result.to_owned(), value))
        })
        .collect()
}

// ---------------------------------------------------------------- measuring

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / TICKS_PER_SECOND)
}

/// CPU seconds the whole machine has been busy (all but idle and iowait).
fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<f64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    let idle = ticks.get(3)? + ticks.get(4)?;
    Some((ticks.iter().take(8).sum::<f64>() - idle) / TICKS_PER_SECOND)
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    kind: Kind,
    ms: f64,
    bytes: usize,
    ok: bool,
}

/// A target's runs under one mix, pooled over the rounds.
#[derive(Debug, Default)]
struct Pool {
    samples: Vec<Sample>,
    wall: f64,
    cache: BTreeMap<String, f64>,
    /// CPU seconds per watched process (and this generator).
    cpu: BTreeMap<String, f64>,
    load: Vec<f64>,
    first_error: Option<String>,
}

impl Pool {
    fn ok_ms(&self, kind: Option<Kind>) -> Vec<f64> {
        let mut ms: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.ok && kind.is_none_or(|k| s.kind == k))
            .map(|s| s.ms)
            .collect();
        ms.sort_by(f64::total_cmp);
        ms
    }

    fn errors(&self) -> usize {
        self.samples.iter().filter(|s| !s.ok).count()
    }

    fn throughput(&self) -> f64 {
        self.samples.len() as f64 / self.wall
    }

    fn hit_share(&self) -> Option<f64> {
        let total: f64 = self.cache.values().sum();
        (total > 0.0).then(|| self.cache.get("hit").copied().unwrap_or(0.0) / total)
    }
}

/// One timed run: `clients` closed-loop clients for `duration`.
#[allow(clippy::too_many_arguments)]
async fn run(
    target: &Target,
    history: &Arc<History>,
    mix: Mix,
    clients: usize,
    duration: Duration,
    seed: u64,
    pool: &mut Pool,
    watch: &[(String, String)],
    metrics_client: &reqwest::Client,
) {
    let cache_before = match target.metrics() {
        Some(url) => cache_counts(metrics_client, url).await,
        None => BTreeMap::new(),
    };
    let cpu_before: Vec<Option<f64>> = watch.iter().map(|(_, pid)| cpu_seconds(pid)).collect();
    let machine_before = machine_busy_seconds();
    pool.load.push(load_average());
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let target = target.clone();
            let history = history.clone();
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(1_000_003) + c as u64);
                let mut samples = Vec::new();
                let mut first_error = None;
                while Instant::now() < deadline {
                    let ask = history.ask(mix, &mut rng);
                    let t = Instant::now();
                    let result = target.send(&ask).await;
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    let (ok, bytes) = match result {
                        Ok(bytes) => (true, bytes),
                        Err(e) => {
                            first_error.get_or_insert(e);
                            (false, 0)
                        }
                    };
                    samples.push(Sample {
                        kind: ask.kind,
                        ms,
                        bytes,
                        ok,
                    });
                }
                (samples, first_error)
            })
        })
        .collect();
    for task in tasks {
        let (samples, first_error) = task.await.expect("client task");
        pool.samples.extend(samples);
        if pool.first_error.is_none() {
            pool.first_error = first_error;
        }
    }
    pool.wall += started.elapsed().as_secs_f64();
    pool.load.push(load_average());
    let mut watched = 0.0;
    for ((name, pid), before) in watch.iter().zip(cpu_before) {
        if let (Some(before), Some(after)) = (before, cpu_seconds(pid)) {
            *pool.cpu.entry(name.clone()).or_default() += after - before;
            watched += after - before;
        }
    }
    if let (false, Some(before), Some(after)) =
        (watch.is_empty(), machine_before, machine_busy_seconds())
    {
        *pool.cpu.entry(OTHERS.into()).or_default() += (after - before - watched).max(0.0);
    }
    if let Some(url) = target.metrics() {
        for (result, after) in cache_counts(metrics_client, url).await {
            let delta = after - cache_before.get(&result).copied().unwrap_or(0.0);
            *pool.cache.entry(result).or_default() += delta;
        }
    }
}

// ---------------------------------------------------------------- report

fn ms(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else if x < 10.0 {
        format!("{x:.2}")
    } else if x < 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() || b == 0.0 {
        "–".into()
    } else {
        format!("{:.2}", a / b)
    }
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &Args,
    history: &History,
    targets: &[Target],
    pools: &BTreeMap<(usize, usize), Pool>,
    mixes: &[Mix],
    checks: &Checks,
    load_before: f64,
    load_range: (f64, f64),
) -> String {
    let mut w = String::new();
    let mut line = |s: String| {
        w.push_str(&s);
        w.push('\n');
    };
    let days = history.days();
    let calls = history.meta.get("calls").and_then(|c| c.parse().ok());
    let usage = history.meta.get("usage").and_then(|c| c.parse().ok());
    line(format!(
        "## API: {} client{} over {} days of history{}",
        args.clients,
        if args.clients == 1 { "" } else { "s" },
        days,
        match (calls, usage) {
            (Some(c), Some(u)) =>
                format!(" ({} calls, {} usage events)", thousands(c), thousands(u)),
            _ => String::new(),
        }
    ));
    line(String::new());
    line(format!(
        "{} rounds × {} s per target and mix, targets in rotating order, latencies \
         pooled over the rounds; percentiles exact (nearest rank) over every request. \
         The {} fixed requests' answers agree on the three targets: {}/{} (numbers \
         within 1e-9 relative; largest difference {:.1e}, from ClickHouse's parallel \
         float sums){}.",
        args.rounds,
        args.duration.as_secs(),
        checks.asked,
        checks.agree,
        checks.asked,
        checks.worst,
        if checks.differ.is_empty() {
            String::new()
        } else {
            format!(
                "; differ: {}",
                checks
                    .differ
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        }
    ));
    line(format!(
        "Load average (1 min): {:.1} before the runs; {:.1} to {:.1} at the runs' starts \
         and ends (ClickHouse's query threads count in it), on {} cores.",
        load_before,
        load_range.0,
        load_range.1,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));
    line(String::new());
    line(
        "| mix | target | requests | errors | p50 ms | p95 ms | p99 ms | req/s | cache hits | \
         p50 / direct | p95 / direct | req/s / direct |"
            .into(),
    );
    line("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|".into());
    let direct = targets.len() - 1;
    for (m, mix) in mixes.iter().enumerate() {
        let base = &pools[&(m, direct)];
        let base_ms = base.ok_ms(None);
        for (t, target) in targets.iter().enumerate() {
            let pool = &pools[&(m, t)];
            let sorted = pool.ok_ms(None);
            line(format!(
                "| {} | {} | {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} |",
                mix.name(),
                target.name(),
                thousands(pool.samples.len()),
                pool.errors(),
                ms(percentile(&sorted, 0.5)),
                ms(percentile(&sorted, 0.95)),
                ms(percentile(&sorted, 0.99)),
                pool.throughput(),
                pool.hit_share()
                    .map_or("–".into(), |h| format!("{:.1}%", h * 100.0)),
                ratio(percentile(&sorted, 0.5), percentile(&base_ms, 0.5)),
                ratio(percentile(&sorted, 0.95), percentile(&base_ms, 0.95)),
                ratio(pool.throughput(), base.throughput()),
            ));
        }
    }
    line(String::new());
    for (m, mix) in mixes.iter().enumerate() {
        line(format!(
            "**{} mix, by request kind** (p50 / p95 ms):",
            mix.name()
        ));
        line(String::new());
        let mut head = "| request | share |".to_owned();
        let mut sep = "|---|---:|".to_owned();
        for target in targets {
            head += &format!(" {} |", target.name());
            sep += "---:|";
        }
        line(head);
        line(sep);
        let all = pools[&(m, 0)].samples.len().max(1) as f64;
        for kind in Kind::ALL {
            let n = pools[&(m, 0)]
                .samples
                .iter()
                .filter(|s| s.kind == kind)
                .count();
            let mut row = format!("| {} | {:.0}% |", kind.label(), n as f64 / all * 100.0);
            for t in 0..targets.len() {
                let sorted = pools[&(m, t)].ok_ms(Some(kind));
                row += &format!(
                    " {} / {} |",
                    ms(percentile(&sorted, 0.5)),
                    ms(percentile(&sorted, 0.95))
                );
            }
            line(row);
        }
        line(String::new());
    }
    let mut names: Vec<&String> = pools
        .values()
        .flat_map(|p| p.cpu.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    names.sort_by_key(|n| (n.as_str() == OTHERS, n.as_str()));
    if !names.is_empty() {
        line(
            "**CPU during the runs** (cores busy on average = CPU seconds / wall seconds):".into(),
        );
        line(String::new());
        let mut head = "| mix | target |".to_owned();
        let mut sep = "|---|---|".to_owned();
        for name in &names {
            head += &format!(" {name} |");
            sep += "---:|";
        }
        line(head);
        line(sep);
        for (m, mix) in mixes.iter().enumerate() {
            for (t, target) in targets.iter().enumerate() {
                let pool = &pools[&(m, t)];
                let mut row = format!("| {} | {} |", mix.name(), target.name());
                for name in &names {
                    row += &format!(
                        " {:.2} |",
                        pool.cpu.get(*name).copied().unwrap_or(f64::NAN) / pool.wall
                    );
                }
                line(row);
            }
        }
        line(String::new());
    }
    let sizes: Vec<String> = targets
        .iter()
        .enumerate()
        .filter(|(_, t)| matches!(t, Target::Api { .. }))
        .flat_map(|(t, target)| {
            mixes.iter().enumerate().map(move |(m, mix)| {
                let pool = &pools[&(m, t)];
                let ok: Vec<&Sample> = pool.samples.iter().filter(|s| s.ok).collect();
                let mean =
                    ok.iter().map(|s| s.bytes).sum::<usize>() as f64 / ok.len().max(1) as f64;
                format!("{} {}: {:.1} KB", target.name(), mix.name(), mean / 1e3)
            })
        })
        .collect();
    line(format!("Mean answer size: {}.", sizes.join(", ")));
    for ((m, t), pool) in pools {
        if let Some(e) = &pool.first_error {
            line(format!(
                "First error, {} {}: {}",
                mixes[*m].name(),
                targets[*t].name(),
                e.chars().take(300).collect::<String>()
            ));
        }
    }
    w
}

// ---------------------------------------------------------------- main

/// Whether two answers agree: the same shape and strings, numbers equal
/// up to a relative 1e-9 (ClickHouse sums floats in parallel, so the last
/// bits of a sum depend on the order). `worst`: the largest relative
/// difference seen.
fn agree(a: &Value, b: &Value, worst: &mut f64) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            if x == y {
                return true;
            }
            let relative = (x - y).abs() / x.abs().max(y.abs());
            *worst = worst.max(relative);
            relative < 1e-9
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| agree(a, b, worst))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| agree(v, w, worst)))
        }
        _ => a == b,
    }
}

/// What asking every fixed request of every target found.
#[derive(Debug, Default)]
struct Checks {
    asked: usize,
    agree: usize,
    worst: f64,
    differ: Vec<String>,
}

async fn check_answers(targets: &[Target], history: &History) -> Checks {
    let mut checks = Checks::default();
    for ask in &history.all_fixed() {
        checks.asked += 1;
        // Windows status counts back from now: a second boundary between
        // the three asks changes `since`; ask again.
        for attempt in 0..3 {
            let mut answers = Vec::new();
            for target in targets {
                answers.push(
                    target
                        .json(ask)
                        .await
                        .unwrap_or_else(|e| panic!("{} {ask:?}: {e}", target.name())),
                );
            }
            let mut worst = 0.0;
            if answers.windows(2).all(|w| agree(&w[0], &w[1], &mut worst)) {
                checks.agree += 1;
                checks.worst = checks.worst.max(worst);
                break;
            }
            if attempt == 2 {
                checks
                    .differ
                    .push(format!("{} {:?}", ask.kind.label(), ask.params));
            }
        }
    }
    checks
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let load_before = load_average();
    let config = Config::load(None).expect("CENTILE_* configuration");
    let catalog =
        centile_api::catalog::Catalog::load(config.api.catalog_file.as_deref()).expect("catalog");
    let client = centile_sink::client::database_client(&config.clickhouse);
    let queries = Arc::new(Queries::new(client, &config.clickhouse.database, catalog));
    let history = Arc::new(discover(&queries).await);
    eprintln!(
        "api_load: {} days of history in {} ({} model × tool pairs), {} clients, {} s × {} rounds per target and mix",
        history.days(),
        config.clickhouse.database,
        history.pairs.len(),
        args.clients,
        args.duration.as_secs(),
        args.rounds
    );

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("http client");
    let key: Arc<str> = args.key.clone().into();
    let targets = vec![
        Target::Api {
            name: "API, cache on",
            base: args.cached.trim_end_matches('/').to_owned(),
            key: key.clone(),
            metrics: args.cached_metrics.clone(),
            client: http.clone(),
        },
        Target::Api {
            name: "API, cache off",
            base: args.uncached.trim_end_matches('/').to_owned(),
            key,
            metrics: args.uncached_metrics.clone(),
            client: http.clone(),
        },
        Target::Direct {
            queries: queries.clone(),
            max_buckets: config.api.max_buckets,
        },
    ];

    let checks = check_answers(&targets, &history).await;
    eprintln!(
        "api_load: fixed answers agree on all targets: {}/{} (largest relative difference {:.1e})",
        checks.agree, checks.asked, checks.worst
    );
    let mut watch: Vec<(String, String)> = vec![("load generator".into(), "self".into())];
    watch.extend(args.watch.iter().map(|(n, p)| (n.clone(), p.to_string())));

    // Warm-up, not recorded: connections, and the cache's fixed answers.
    let mut scratch = Pool::default();
    for target in &targets {
        run(
            target,
            &history,
            Mix::Fixed,
            args.clients,
            Duration::from_secs(2),
            u64::MAX,
            &mut scratch,
            &[],
            &http,
        )
        .await;
    }

    let mixes = [Mix::Fixed, Mix::Distinct];
    let mut pools: BTreeMap<(usize, usize), Pool> = BTreeMap::new();
    let mut load_range = (f64::INFINITY, f64::NEG_INFINITY);
    for round in 0..args.rounds {
        for (m, mix) in mixes.iter().enumerate() {
            for i in 0..targets.len() {
                let t = (i + round) % targets.len();
                let pool = pools.entry((m, t)).or_default();
                let seed = args.seed * 1_000 + (round * mixes.len() + m) as u64;
                run(
                    &targets[t],
                    &history,
                    *mix,
                    args.clients,
                    args.duration,
                    seed,
                    pool,
                    &watch,
                    &http,
                )
                .await;
                for l in &pool.load {
                    load_range = (load_range.0.min(*l), load_range.1.max(*l));
                }
                let sorted = pool.ok_ms(None);
                eprintln!(
                    "  round {}/{} {} {}: {} requests so far, p50 {} ms, p95 {} ms, load {:.1}",
                    round + 1,
                    args.rounds,
                    mix.name(),
                    targets[t].name(),
                    pool.samples.len(),
                    ms(percentile(&sorted, 0.5)),
                    ms(percentile(&sorted, 0.95)),
                    load_average()
                );
            }
        }
    }
    let text = report(
        &args,
        &history,
        &targets,
        &pools,
        &mixes,
        &checks,
        load_before,
        load_range,
    );
    println!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, &text).expect("write --out");
    }
}
