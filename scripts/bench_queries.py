#!/usr/bin/env python3
"""Query benchmark at 30 days: the stored rollup views against query-time
aggregation over a raw table holding the same events, on ClickHouse 18.16
(HTTP) and on a modern ClickHouse in process (PyPI `chdb`).

Run it through `scripts/bench-queries` (which builds `centile-sink` first):

    scripts/bench-queries                                  # 10M calls, 30 days, both engines
    scripts/bench-queries --calls 200000 --days 3          # quick run
    scripts/bench-queries --engine chdb --reuse --runs 11  # re-time loaded data

The generator (documented in BENCHMARKS.md, "Queries at 30 days"):

1. Raw events are generated server side, one day per `INSERT ... SELECT FROM
   numbers()`, from a seeded hash (`cityHash64(seed, day, n, k)`), so both
   engines hold the same events:
   * latency calls: 200 series = 10 models (3 providers) x 4 tools x 5
     tenants, each tenant/model/tool with one of 2 parameter sets; model
     popularity skewed (31% .. 5% of calls), tools and tenants uniform,
     timestamps uniform over the day; response times log-normal (median by
     model x tool, sigma 0.35..0.7) with a heavy tail (1% of calls 4-20x
     slower, 30% of those failing), 2% errors otherwise; tokens log-normal.
   * usage events (`--usage-ratio`, default 0.2 per call): the same tenants
     and models, 6 features, tokens log-normal, cost = tokens x model price.
   The raw tables are plain MergeTree, one row per event, partitioned by day
   and sorted like the project's raw tables (tenant, model, time).
2. Minute panes are built FROM the raw tables (`INSERT INTO latency_panes
   SELECT ... GROUP BY minute, series`), one pane per series-minute with
   calls, sums, min/max and the raw response times as centroids of weight 1,
   so panes and raw rows are the same events by construction. (The
   aggregator sends one centroid per sketch bucket instead; the compaction
   re-buckets centroids either way, and a bucket's count and sum are the
   same, so the stored tiers are identical.)
3. The stored tiers are then computed by the real compaction statements,
   printed by `centile-sink compact-sql` for every minute of the day and
   run in order, exactly as the sink runs them after a batch.

The schema is the sink's own (`centile-sink schema-sql`), applied like the
migrator does (version-gated files skipped on 18.16).

Days are loaded newest first: after the newest 7 days, the live-panel query
(last hour by minute) is timed once, and again after the whole history, to
show it does not grow with history.

Every query runs once to warm up, then `--runs` times alternating views and
raw; medians of wall-clock time (HTTP round trip, or the chdb call) are
reported with the ratio raw / views. Call and request counts of every query
are compared between views and raw; percentiles of queries 1 and 3 are
compared with the exact nearest-rank percentile of the raw values.
"""

import argparse
import datetime as dt
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

# --------------------------------------------------------------------------
# generator parameters
# --------------------------------------------------------------------------

# model, provider, median response time (ms, for tool factor 1),
# price per input / output token (USD nanos)
MODELS = [
    ("gpt-4o", "openai", 900, 2500, 10000),
    ("claude-3-5-sonnet", "anthropic", 1100, 3000, 15000),
    ("gpt-4o-mini", "openai", 450, 150, 600),
    ("gemini-1.5-pro", "google", 1300, 1250, 5000),
    ("claude-3-haiku", "anthropic", 400, 250, 1250),
    ("gemini-1.5-flash", "google", 350, 75, 300),
    ("o3-mini", "openai", 2500, 1100, 4400),
    ("claude-3-opus", "anthropic", 2200, 15000, 75000),
    ("gpt-4-turbo", "openai", 1600, 10000, 30000),
    ("text-embedding-3-large", "openai", 120, 130, 0),
]
# tool, response-time factor, log-normal sigma
TOOLS = [("chat", 1.0, 0.5), ("completion", 0.8, 0.45), ("search", 1.6, 0.7),
         ("embedding", 0.15, 0.35)]
TENANTS = 5
PARAMETER_SETS = ['{"temperature":0.2}', '{"temperature":0.7}']
FEATURES = ["assistant", "summarize", "search", "code-review", "translate", "classify"]
SEED = 20240601
DAY = 86400
HISTORY_PROBE_DAYS = 7
CHUNK_ROWS = 2_000_000  # at most this many raw rows per INSERT

# The model and tool of query 1 (the most popular pair).
Q1_MODEL, Q1_TOOL = MODELS[0][0], TOOLS[0][0]

VERSION_RE = re.compile(r"^--\s*centile:min-server-version\s+([0-9][0-9.]*)\s*$")


def sql_array(values):
    def lit(v):
        if isinstance(v, str):
            return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return repr(v)
    return "[" + ", ".join(lit(v) for v in values) + "]"


def uniform(day, k):
    """A uniform value in (0, 1) from the seeded hash of (day, n, k)."""
    return ("((cityHash64(%d, %d, n, %d) %% 4294967296) + 0.5) / 4294967296"
            % (SEED, day, k))


def latency_raw_sql(db, day, day_start, offset, count):
    models = sql_array([m[0] for m in MODELS])
    providers = sql_array([m[1] for m in MODELS])
    medians = sql_array([float(m[2]) for m in MODELS])
    tools = sql_array([t[0] for t in TOOLS])
    factors = sql_array([t[1] for t in TOOLS])
    sigmas = sql_array([t[2] for t in TOOLS])
    return f"""INSERT INTO {db}.bench_latency_calls
SELECT occurred_at, tenant_id, model_id, provider, tool, parameter_hash, parameters,
    response_time_ms, success, input_tokens, output_tokens
FROM
(
    SELECT
        toDateTime({day_start} + toUInt32(floor(u_time * 86400))) AS occurred_at,
        concat('tenant-', toString(tenant_i + 1)) AS tenant_id,
        {models}[model_i + 1] AS model_id,
        {providers}[model_i + 1] AS provider,
        {tools}[tool_i + 1] AS tool,
        toString(cityHash64(model_id, tool, tenant_i % 2)) AS parameter_hash,
        {sql_array(PARAMETER_SETS)}[tenant_i % 2 + 1] AS parameters,
        round({medians}[model_i + 1] * {factors}[tool_i + 1]
              * exp({sigmas}[tool_i + 1] * z1) * tail, 1) AS response_time_ms,
        toUInt8(u_err >= if(tail > 1, 0.3, 0.02)) AS success,
        toInt64(ceil(exp(6.0 + 0.9 * z2))) AS input_tokens,
        toInt64(if(tool_i = 3, 0, ceil(exp(5.0 + 0.8 * z3)))) AS output_tokens
    FROM
    (
        SELECT number + {offset} AS n,
            toUInt8(floor(10 * pow({uniform(day, 1)}, 2))) AS model_i,
            toUInt8(cityHash64({SEED}, {day}, n, 2) % 4) AS tool_i,
            toUInt8(cityHash64({SEED}, {day}, n, 3) % {TENANTS}) AS tenant_i,
            {uniform(day, 4)} AS u_time,
            sqrt(-2 * log({uniform(day, 5)})) AS r1,
            2 * pi() * {uniform(day, 6)} AS a1,
            r1 * cos(a1) AS z1,
            r1 * sin(a1) AS z2,
            sqrt(-2 * log({uniform(day, 7)})) * cos(2 * pi() * {uniform(day, 8)}) AS z3,
            if({uniform(day, 9)} < 0.01, 4 + 16 * {uniform(day, 10)}, 1) AS tail,
            {uniform(day, 11)} AS u_err
        FROM numbers({count})
    )
)"""


def usage_raw_sql(db, day, day_start, offset, count):
    # Usage hashes use day + 100000 so they are independent of the calls.
    uday = day + 100000
    models = sql_array([m[0] for m in MODELS])
    providers = sql_array([m[1] for m in MODELS])
    p_in = sql_array([m[3] for m in MODELS])
    p_out = sql_array([m[4] for m in MODELS])
    return f"""INSERT INTO {db}.bench_usage_events
SELECT occurred_at, tenant_id, model_id, provider, feature, input_tokens, output_tokens,
    toInt64(input_tokens * {p_in}[model_i + 1] + output_tokens * {p_out}[model_i + 1]) AS cost_usd_nanos
FROM
(
    SELECT model_i,
        toDateTime({day_start} + toUInt32(floor(u_time * 86400))) AS occurred_at,
        concat('tenant-', toString(tenant_i + 1)) AS tenant_id,
        {models}[model_i + 1] AS model_id,
        {providers}[model_i + 1] AS provider,
        {sql_array(FEATURES)}[feature_i + 1] AS feature,
        toInt64(ceil(exp(6.5 + 1.0 * z1))) AS input_tokens,
        toInt64(if(model_i = 9, 0, ceil(exp(5.0 + 0.8 * z2)))) AS output_tokens
    FROM
    (
        SELECT number + {offset} AS n,
            toUInt8(floor(10 * pow({uniform(uday, 1)}, 2))) AS model_i,
            toUInt8(cityHash64({SEED}, {uday}, n, 2) % {len(FEATURES)}) AS feature_i,
            toUInt8(cityHash64({SEED}, {uday}, n, 3) % {TENANTS}) AS tenant_i,
            {uniform(uday, 4)} AS u_time,
            sqrt(-2 * log({uniform(uday, 5)})) AS r1,
            2 * pi() * {uniform(uday, 6)} AS a1,
            r1 * cos(a1) AS z1,
            r1 * sin(a1) AS z2
        FROM numbers({count})
    )
)"""


def latency_panes_sql(db, start, end):
    return f"""INSERT INTO {db}.latency_panes (pane_id, version, granularity, window_start,
    window_end, tenant_id, model_id, provider, tool, parameter_hash, parameters,
    source_topic, source_partition, first_offset, last_offset, is_final, watermark_ms,
    calls, successes, errors, rt_sum, rt_min, rt_max, input_tokens_sum,
    input_tokens_count, output_tokens_sum, output_tokens_count, centroid_means,
    centroid_weights, emitted_at)
SELECT 'bench', toUInt64(1), 'minute', w, w + 60, tenant_id, model_id, provider, tool,
    parameter_hash, any(parameters), 'bench', toInt32(0), toInt64(0), toInt64(0),
    toUInt8(1), toInt64(toUInt32(w) + 60) * 1000,
    count(), sum(success), count() - sum(success), sum(response_time_ms),
    min(response_time_ms), max(response_time_ms), sum(input_tokens), count(),
    sum(output_tokens), count(), groupArray(response_time_ms), groupArray(toUInt64(1)),
    w + 60
FROM {db}.bench_latency_calls
WHERE occurred_at >= toDateTime({start}) AND occurred_at < toDateTime({end})
GROUP BY toStartOfMinute(occurred_at) AS w, tenant_id, model_id, provider, tool, parameter_hash"""


def usage_panes_sql(db, start, end):
    return f"""INSERT INTO {db}.usage_panes (pane_id, version, granularity, window_start,
    window_end, tenant_id, model_id, provider, feature, source_topic, source_partition,
    first_offset, last_offset, is_final, watermark_ms, requests, input_tokens_sum,
    output_tokens_sum, cost_usd_nanos_sum, emitted_at)
SELECT 'bench', toUInt64(1), 'minute', w, w + 60, tenant_id, model_id, provider, feature,
    'bench', toInt32(0), toInt64(0), toInt64(0), toUInt8(1),
    toInt64(toUInt32(w) + 60) * 1000, count(), sum(input_tokens), sum(output_tokens),
    sum(cost_usd_nanos), w + 60
FROM {db}.bench_usage_events
WHERE occurred_at >= toDateTime({start}) AND occurred_at < toDateTime({end})
GROUP BY toStartOfMinute(occurred_at) AS w, tenant_id, model_id, provider, feature"""


RAW_TABLES = [
    """CREATE TABLE {db}.bench_latency_calls
(
    occurred_at DateTime('UTC'), tenant_id String, model_id String, provider String,
    tool String, parameter_hash String, parameters String, response_time_ms Float64,
    success UInt8, input_tokens Int64, output_tokens Int64
)
ENGINE = MergeTree PARTITION BY toYYYYMMDD(occurred_at)
ORDER BY (tenant_id, model_id, occurred_at)""",
    """CREATE TABLE {db}.bench_usage_events
(
    occurred_at DateTime('UTC'), tenant_id String, model_id String, provider String,
    feature String, input_tokens Int64, output_tokens Int64, cost_usd_nanos Int64
)
ENGINE = MergeTree PARTITION BY toYYYYMMDD(occurred_at)
ORDER BY (tenant_id, model_id, occurred_at)""",
    "CREATE TABLE {db}.bench_meta (k String, v String) ENGINE = TinyLog",
]


# --------------------------------------------------------------------------
# the queries
# --------------------------------------------------------------------------

def quantile_sql(sketch, level):
    """Mirror of crates/sink/src/rollup/sql.rs quantile_sql."""
    counts = f"tupleElement({sketch}, 2)"
    sums = f"tupleElement({sketch}, 3)"
    index = (f"arrayFirstIndex(c -> c >= greatest(1, ceil({level} * arraySum({counts}))), "
             f"arrayCumSum({counts}))")
    return f"arrayElement({sums}, {index}) / arrayElement({counts}, {index})"


def sketch_quantiles(m="m"):
    return ", ".join("round(%s, 3)" % quantile_sql(m, q) for q in (0.5, 0.95, 0.99))


def exact_quantiles(values="response_time_ms"):
    """Exact nearest-rank percentiles (the sketch's definition)."""
    return ", ".join(
        f"arrayElement(arraySort(groupArray({values})), "
        f"toUInt64(greatest(1, ceil({q} * count()))))" for q in (0.5, 0.95, 0.99))


def queries(db, start, end):
    s, e = f"toDateTime({start})", f"toDateTime({end})"
    live = f"toDateTime({end - 3600})"
    lat_range = f"occurred_at >= {s} AND occurred_at < {e}"
    win_range = f"window_start >= {s} AND window_start < {e}"
    q = []
    # Columns: key columns first, then `count` (exact match expected), then
    # `close` columns (relative 1e-6), then the rest (not compared).
    q.append(dict(
        id="1", title=f"hourly trend of {Q1_MODEL} x {Q1_TOOL}, p50/p95/p99",
        views=f"""SELECT window_start AS time_bucket, call_count AS n_calls,
    success_rate AS ok_rate, avg_response_time AS mean_rt,
    p50_response_time, p95_response_time, p99_response_time
FROM {db}.performance_hourly
WHERE model_id = '{Q1_MODEL}' AND tool = '{Q1_TOOL}' AND {win_range}
ORDER BY time_bucket""",
        raw=f"""SELECT toStartOfHour(occurred_at) AS time_bucket, count() AS n_calls,
    sum(success) / n_calls AS ok_rate, avg(response_time_ms) AS mean_rt,
    quantiles(0.5, 0.95, 0.99)(response_time_ms) AS q
FROM {db}.bench_latency_calls
WHERE model_id = '{Q1_MODEL}' AND tool = '{Q1_TOOL}' AND {lat_range}
GROUP BY time_bucket ORDER BY time_bucket""",
        exact=f"""SELECT toStartOfHour(occurred_at) AS time_bucket, count(), {exact_quantiles()}
FROM {db}.bench_latency_calls
WHERE model_id = '{Q1_MODEL}' AND tool = '{Q1_TOOL}' AND {lat_range}
GROUP BY time_bucket ORDER BY time_bucket""",
        keys=1, close=(2, 3), views_pct=(4, 5, 6)))
    q.append(dict(
        id="2", title="top 10 models by calls, with cost",
        views=f"""SELECT model_id, provider, sum(call_count) AS n_calls,
    toFloat64(sum(total_cost_usd)) AS cost
FROM {db}.top_models_daily
WHERE {win_range}
GROUP BY model_id, provider ORDER BY n_calls DESC, model_id LIMIT 10""",
        raw=f"""SELECT model_id, provider, n_calls, cost
FROM
(
    SELECT model_id, provider, count() AS n_calls
    FROM {db}.bench_latency_calls WHERE {lat_range}
    GROUP BY model_id, provider
) AS lat
ANY LEFT JOIN
(
    SELECT model_id, provider, sum(cost_usd_nanos) / 1e9 AS cost
    FROM {db}.bench_usage_events WHERE {lat_range}
    GROUP BY model_id, provider
) AS usg
USING (model_id, provider)
ORDER BY n_calls DESC, model_id LIMIT 10""",
        keys=2, close=(3,)))
    q.append(dict(
        id="3", title="daily p99 per model",
        views=f"""SELECT window_start, model_id, call_count, p50_response_time,
    p95_response_time, p99_response_time
FROM {db}.top_models_daily
WHERE {win_range}
ORDER BY window_start, model_id""",
        raw=f"""SELECT toStartOfDay(occurred_at) AS day, model_id, count() AS n_calls,
    quantile(0.99)(response_time_ms) AS p99
FROM {db}.bench_latency_calls
WHERE {lat_range}
GROUP BY day, model_id ORDER BY day, model_id""",
        exact=f"""SELECT toStartOfDay(occurred_at) AS day, model_id, count(), {exact_quantiles()}
FROM {db}.bench_latency_calls
WHERE {lat_range}
GROUP BY day, model_id ORDER BY day, model_id""",
        keys=2, close=(), views_pct=(3, 4, 5)))
    q.append(dict(
        id="4", title="last hour by minute (live panel)",
        views=f"""SELECT window_start AS minute, call_count AS n_calls,
    success_rate AS ok_rate,
    p50_response_time, p95_response_time, p99_response_time
FROM {db}.overall_minute
WHERE window_start >= {live} AND window_start < {e}
ORDER BY minute""",
        raw=f"""SELECT toStartOfMinute(occurred_at) AS minute, count() AS n_calls,
    sum(success) / n_calls AS ok_rate,
    quantiles(0.5, 0.95, 0.99)(response_time_ms) AS q
FROM {db}.bench_latency_calls
WHERE occurred_at >= {live} AND occurred_at < {e}
GROUP BY minute ORDER BY minute""",
        keys=1, close=(2,)))
    q.append(dict(
        id="5", title="usage_daily by day (requests, cost)",
        views=f"""SELECT window_start AS day, sum(request_count) AS n_requests,
    toFloat64(sum(total_cost_usd)) AS cost
FROM {db}.usage_daily
WHERE {win_range}
GROUP BY day ORDER BY day""",
        raw=f"""SELECT toStartOfDay(occurred_at) AS day, count() AS n_requests,
    sum(cost_usd_nanos) / 1e9 AS cost
FROM {db}.bench_usage_events
WHERE {lat_range}
GROUP BY day ORDER BY day""",
        keys=1, close=(2,)))
    q.append(dict(
        id="6", title="usage by feature per day, 30 days (requests, cost)",
        views=f"""SELECT feature, sum(request_count) AS n_requests,
    toFloat64(sum(total_cost_usd)) AS cost
FROM {db}.usage_by_feature_daily
WHERE {win_range}
GROUP BY feature ORDER BY feature""",
        raw=f"""SELECT feature, count() AS n_requests, sum(cost_usd_nanos) / 1e9 AS cost
FROM {db}.bench_usage_events
WHERE {lat_range}
GROUP BY feature ORDER BY feature""",
        keys=1, close=(2,)))
    return q


# --------------------------------------------------------------------------
# engines
# --------------------------------------------------------------------------

class Http:
    def __init__(self, url, settings):
        self.base = url.rstrip("/") + "/"
        self.settings = settings
        self.version = self.query("SELECT version()").strip()
        self.label = "ClickHouse %s (HTTP)" % self.version

    def query(self, sql, timeout=3600):
        params = {"default_format": "TabSeparated"}
        params.update(self.settings)
        req = urllib.request.Request(self.base + "?" + urllib.parse.urlencode(params),
                                     data=sql.encode("utf-8"), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.read().decode("utf-8")
        except urllib.error.HTTPError as err:
            body = err.read().decode("utf-8", "replace").strip()
            raise RuntimeError("HTTP %d: %s\n-- in query:\n%s" % (err.code, body, sql[:3000]))

    def close(self):
        pass


class Chdb:
    def __init__(self, path):
        import chdb
        from chdb import session
        os.makedirs(path, exist_ok=True)
        self.sess = session.Session(path)
        self.version = self.query("SELECT version()").strip()
        self.label = "chdb %s (ClickHouse %s, in process)" % (
            getattr(chdb, "__version__", "?"), self.version)

    def query(self, sql):
        try:
            res = self.sess.query(sql, "TSV")
        except Exception as err:  # chdb raises with the server message
            raise RuntimeError("%s\n-- in query:\n%s" % (err, sql[:3000]))
        return res.bytes().decode("utf-8") if hasattr(res, "bytes") else str(res)

    def close(self):
        try:
            self.sess.close()
        except Exception:
            pass


def rows(text):
    return [line.split("\t") for line in text.splitlines() if line]


# --------------------------------------------------------------------------
# schema and loading
# --------------------------------------------------------------------------

def parse_version(text):
    return tuple(int(p) for p in re.findall(r"\d+", text)[:4])


# The migrator's statement splitter, shared with the SQL checks.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "sql"))
from check_modern_clickhouse import split_statements  # noqa: E402


def apply_schema(engine, sink_bin, db, log):
    tmp = tempfile.mkdtemp(prefix="centile-schema-")
    try:
        subprocess.run([sink_bin, "schema-sql", tmp], check=True)
        files = sorted(f for f in os.listdir(tmp) if f.endswith(".sql"))
        for name in files:
            with open(os.path.join(tmp, name), encoding="utf-8") as fh:
                text = fh.read()
            first = text.splitlines()[0] if text else ""
            m = VERSION_RE.match(first)
            if m and parse_version(engine.version) < parse_version(m.group(1)):
                log("  schema: skip %s (needs server >= %s)" % (name, m.group(1)))
                continue
            text = text.replace("${database}", db).replace("${raw_retention_days}", "3650")
            for stmt in split_statements(text):
                engine.query(stmt)
        log("  schema: %d migration files from `centile-sink schema-sql`" % len(files))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compaction_statements(sink_bin, db, minutes):
    listing = ",".join(str(m) for m in minutes)
    out = subprocess.run([sink_bin, "compact-sql", "--database", db,
                          "--latency-minutes", listing, "--usage-minutes", listing],
                         check=True, capture_output=True, text=True).stdout
    return split_statements(out)


def read_meta(engine, db):
    try:
        return dict((r[0], r[1]) for r in rows(engine.query(f"SELECT k, v FROM {db}.bench_meta")))
    except RuntimeError:
        return {}


def load(engine, args, end, timer_hook, log):
    """Drops and reloads `db`: raw events, panes, compaction; newest day first.
    `timer_hook(days_loaded)` runs after HISTORY_PROBE_DAYS days."""
    db = args.database
    engine.query(f"DROP DATABASE IF EXISTS {db}")
    engine.query(f"CREATE DATABASE {db}")
    apply_schema(engine, args.sink_bin, db, log)
    for ddl in RAW_TABLES:
        engine.query(ddl.format(db=db))
    days = args.days
    n_usage = int(args.calls * args.usage_ratio)
    stage = {"raw": 0.0, "panes": 0.0, "compaction": 0.0}
    t_all = time.perf_counter()
    statements = 0
    for i in range(days):
        day = days - 1 - i  # day index 0 is the oldest; load the newest first
        day_start = end - (days - day) * DAY
        n_lat = args.calls // days + (1 if day < args.calls % days else 0)
        n_usg = n_usage // days + (1 if day < n_usage % days else 0)
        t = time.perf_counter()
        for total, make in ((n_lat, latency_raw_sql), (n_usg, usage_raw_sql)):
            for off in range(0, total, CHUNK_ROWS):
                engine.query(make(db, day, day_start, off, min(CHUNK_ROWS, total - off)))
        stage["raw"] += time.perf_counter() - t
        t = time.perf_counter()
        engine.query(latency_panes_sql(db, day_start, day_start + DAY))
        engine.query(usage_panes_sql(db, day_start, day_start + DAY))
        stage["panes"] += time.perf_counter() - t
        t = time.perf_counter()
        stmts = compaction_statements(args.sink_bin, db,
                                      range(day_start, day_start + DAY, 60))
        for stmt in stmts:
            engine.query(stmt)
        statements += len(stmts)
        stage["compaction"] += time.perf_counter() - t
        log("  day %s loaded (%d/%d): %d calls, %d usage events; %.0f s so far" % (
            dt.datetime.utcfromtimestamp(day_start).strftime("%Y-%m-%d"), i + 1, days,
            n_lat, n_usg, time.perf_counter() - t_all))
        if i + 1 == HISTORY_PROBE_DAYS and days > HISTORY_PROBE_DAYS:
            timer_hook(i + 1)
    meta = {"days": days, "calls": args.calls, "usage": n_usage, "seed": SEED, "end": end}
    engine.query(f"INSERT INTO {db}.bench_meta VALUES " + ", ".join(
        "('%s', '%s')" % (k, v) for k, v in meta.items()))
    log("  loaded in %.0f s: raw generation %.0f s, panes %.0f s, compaction %.0f s "
        "(%d statements from `centile-sink compact-sql`)" % (
            time.perf_counter() - t_all, stage["raw"], stage["panes"], stage["compaction"],
            statements))
    return stage


def storage(engine, db):
    out = rows(engine.query(f"""SELECT table, sum(rows), sum(bytes_on_disk)
FROM system.parts WHERE database = '{db}' AND active
GROUP BY table ORDER BY table"""))
    return {r[0]: (int(r[1]), int(r[2])) for r in out}


# --------------------------------------------------------------------------
# timing and checks
# --------------------------------------------------------------------------

def time_pair(engine, vsql, rsql, runs):
    vres = engine.query(vsql)
    rres = engine.query(rsql)
    tv, tr = [], []
    for _ in range(runs):
        t = time.perf_counter()
        engine.query(vsql)
        tv.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        engine.query(rsql)
        tr.append((time.perf_counter() - t) * 1000)
    return statistics.median(tv), statistics.median(tr), rows(vres), rows(rres)


def rel(a, b):
    a, b = float(a), float(b)
    if a == b:
        return 0.0
    return abs(a - b) / max(abs(b), 1e-12)


def compare(q, vrows, rrows):
    """Counts equal per key, `close` columns within 1e-6; returns (ok, detail)."""
    k = q["keys"]
    v = {tuple(r[:k]): r for r in vrows}
    r = {tuple(x[:k]): x for x in rrows}
    if set(v) != set(r):
        return False, "groups differ: %d views vs %d raw (%s)" % (
            len(v), len(r), sorted(set(v) ^ set(r))[:3])
    worst = 0.0
    for key, vr in v.items():
        rr = r[key]
        if vr[k] != rr[k]:
            return False, "count differs at %s: views %s, raw %s" % (key, vr[k], rr[k])
        for c in q["close"]:
            worst = max(worst, rel(vr[c], rr[c]))
    if worst > 1e-6:
        return False, "value differs by %.2e" % worst
    total = sum(int(x[k]) for x in vrows)
    return True, "%d groups, %s counted identically" % (len(v), "{:,}".format(total))


def accuracy(engine, q, vrows):
    """Max relative error of the views' p50/p95/p99 against the exact
    nearest-rank percentile of the raw values, by group size."""
    k = q["keys"]
    exact = {tuple(r[:k]): r for r in rows(engine.query(q["exact"]))}
    out = {}
    for vr in vrows:
        er = exact[tuple(vr[:k])]
        n = int(er[k])
        for lvl, vc, ec in zip(("p50", "p95", "p99"), q["views_pct"], (k + 1, k + 2, k + 3)):
            err = rel(vr[vc], er[ec])
            for floor in (0, 1000, 10000):
                if n >= floor:
                    key = (lvl, floor)
                    g, worst = out.get(key, (0, 0.0))
                    out[key] = (g + 1, max(worst, err))
    return out


def fmt_ms(x):
    return "%.1f" % x if x < 100 else "%.0f" % x


def ensure_loaded(engine, args, log, probe=None):
    """The loaded history in `args.database`: reused when `--reuse` and it was
    generated with the same --days/--calls/--usage-ratio, else (re)loaded
    ending today 00:00 UTC. `probe(end, days_loaded)` runs during a load
    (see `load`). Returns (end, load stages or None when reused); also used
    by scripts/bench_api.py."""
    db = args.database
    meta = read_meta(engine, db) if args.reuse else {}
    want = {"days": str(args.days), "calls": str(args.calls),
            "usage": str(int(args.calls * args.usage_ratio)), "seed": str(SEED)}
    if meta and all(meta.get(k) == v for k, v in want.items()):
        log("%s: reusing %s (%s calls, %s days)" % (engine.label, db, meta["calls"], meta["days"]))
        return int(meta["end"]), None
    end = (int(time.time()) // DAY) * DAY  # today 00:00 UTC
    log("{}: loading {:,} calls and {:,} usage events over {} days into {}".format(
        engine.label, args.calls, int(args.calls * args.usage_ratio), args.days, db))
    return end, load(engine, args, end, lambda days_loaded: probe and probe(end, days_loaded),
                     log)


def run_engine(engine, args, log):
    db = args.database
    results = {"label": engine.label, "rows": [], "checks": [], "accuracy": [],
               "history": None, "storage": None, "load": None}
    history = {}

    def probe(end, days_loaded):
        q4 = [q for q in queries(db, end - args.days * DAY, end) if q["id"] == "4"][0]
        tv, tr, _, _ = time_pair(engine, q4["views"], q4["raw"], args.runs)
        history[days_loaded] = (tv, tr)
        log("  query 4 with %d days loaded: views %s ms, raw %s ms" % (
            days_loaded, fmt_ms(tv), fmt_ms(tr)))

    end, results["load"] = ensure_loaded(engine, args, log, probe)

    start = end - args.days * DAY
    results["window"] = (start, end)
    load_before = os.getloadavg()[0]
    for q in queries(db, start, end):
        tv, tr, vrows, rrows = time_pair(engine, q["views"], q["raw"], args.runs)
        ok, detail = compare(q, vrows, rrows)
        results["rows"].append((q, tv, tr))
        results["checks"].append((q["id"], ok, detail))
        log("  query %s (%s): views %s ms, raw %s ms, ratio %.1f; %s %s" % (
            q["id"], q["title"], fmt_ms(tv), fmt_ms(tr), tr / tv,
            "ok" if ok else "MISMATCH", detail))
        if "exact" in q:
            results["accuracy"].append((q, accuracy(engine, q, vrows)))
        if q["id"] == "4" and history:
            (d0, (tv0, tr0)), = history.items()
            results["history"] = (d0, tv0, tr0, args.days, tv, tr)
    results["loadavg"] = (load_before, os.getloadavg()[0])
    results["storage"] = storage(engine, db)
    return results


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------

def report(all_results, args, settings):
    lines = []
    w = lines.append
    w("## Query benchmark: {:,} calls, {:,} usage events, {} days".format(
        args.calls, int(args.calls * args.usage_ratio), args.days))
    w("")
    w("Medians of %d runs after 1 warm-up, views and raw alternating; "
      "ratio = raw / views." % args.runs)
    for res in all_results:
        if res["label"].startswith("ClickHouse"):
            w("ClickHouse over HTTP with settings: %s." % (
                ", ".join("%s=%s" % kv for kv in sorted(settings.items())) or "none"))
    w("")
    labels = [r["label"] for r in all_results]
    head = "| query |"
    sep = "|---|"
    for lab in labels:
        short = lab.split(" (")[0]
        head += " %s views ms | %s raw ms | ratio |" % (short, short)
        sep += "---:|---:|---:|"
    w(head)
    w(sep)
    for i, (q, _, _) in enumerate(all_results[0]["rows"]):
        line = "| %s. %s |" % (q["id"], q["title"])
        for res in all_results:
            _, tv, tr = res["rows"][i]
            line += " %s | %s | %.1f |" % (fmt_ms(tv), fmt_ms(tr), tr / tv)
        w(line)
    w("")
    for res in all_results:
        w("**%s**" % res["label"])
        w("")
        h = res["history"]
        if h:
            w("- query 4 vs history: %d days loaded: views %s ms, raw %s ms; "
              "%d days loaded: views %s ms, raw %s ms" % (
                  h[0], fmt_ms(h[1]), fmt_ms(h[2]), h[3], fmt_ms(h[4]), fmt_ms(h[5])))
        for qid, ok, detail in res["checks"]:
            w("- check query %s: %s, %s" % (qid, "ok" if ok else "MISMATCH", detail))
        for q, acc in res["accuracy"]:
            parts = []
            for floor, name in ((0, "all"), (1000, ">=1k calls"), (10000, ">=10k calls")):
                items = [(lvl, acc.get((lvl, floor))) for lvl in ("p50", "p95", "p99")]
                if items[0][1] is None:
                    parts.append("%s: no group" % name)
                    continue
                parts.append("%s (%d groups): %s" % (name, items[0][1][0], ", ".join(
                    "%s %.3f%%" % (lvl, v[1] * 100) for lvl, v in items)))
            w("- query %s percentile error vs exact nearest rank, max: %s" % (
                q["id"], "; ".join(parts)))
        st = res["storage"]
        if st:
            def size(names):
                r = sum(st.get(n, (0, 0))[0] for n in names)
                b = sum(st.get(n, (0, 0))[1] for n in names)
                return "%s rows, %.1f MiB" % ("{:,}".format(r), b / 2**20)
            w("- storage: raw calls %s; latency panes %s; latency tiers minute / hour / day "
              "/ week: %s rows" % (size(["bench_latency_calls"]), size(["latency_panes"]),
                                   " / ".join("{:,}".format(st.get("latency_rollup_" + t,
                                                                   (0, 0))[0])
                                              for t in ("minute", "hour", "day", "week"))))
        w("- machine load average (1 min) before / after the timed queries: %.1f / %.1f "
          "on %d cores" % (res["loadavg"][0], res["loadavg"][1], os.cpu_count()))
        if res["load"]:
            ld = res["load"]
            w("- load: raw generation %.0f s, panes %.0f s, compaction %.0f s" % (
                ld["raw"], ld["panes"], ld["compaction"]))
        w("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", choices=["18.16", "chdb", "both"], default="both")
    ap.add_argument("--url", default=os.environ.get("CENTILE_CLICKHOUSE_URL",
                                                    "http://127.0.0.1:8123"),
                    help="ClickHouse HTTP URL (default: the stack's, "
                         "`deploy/local/stack up`)")
    ap.add_argument("--setting", action="append", default=[], metavar="K=V",
                    help="extra setting on every HTTP query (repeatable)")
    ap.add_argument("--chdb-path", default=None,
                    help="chdb data directory (default: <repo>/.centile/bench-chdb)")
    ap.add_argument("--database", default="centile_bench")
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--calls", type=lambda s: int(s.replace("_", "")), default=10_000_000)
    ap.add_argument("--usage-ratio", type=float, default=0.2,
                    help="usage events per latency call (default 0.2)")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--reuse", action="store_true",
                    help="keep already loaded data if it was generated with the same "
                         "--days/--calls/--usage-ratio")
    ap.add_argument("--out", help="also write the markdown report here")
    ap.add_argument("--sink-bin", default="target/release/centile-sink")
    args = ap.parse_args()
    if args.days < 1 or args.calls < args.days:
        ap.error("need --days >= 1 and --calls >= --days")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    chdb_path = args.chdb_path or os.path.join(
        os.environ.get("CENTILE_STACK_DIR", os.path.join(repo, ".centile")), "bench-chdb")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    # The views are fast on 18.16 only when the caller's filter is pushed
    # into them (sql.rs); modern servers do it by default.
    settings = {"enable_optimize_predicate_expression": "1"}
    for kv in args.setting:
        k, _, v = kv.partition("=")
        settings[k] = v

    all_results = []
    if args.engine in ("18.16", "both"):
        eng = Http(args.url, settings)
        try:
            all_results.append(run_engine(eng, args, log))
        finally:
            eng.close()
    if args.engine in ("chdb", "both"):
        eng = Chdb(chdb_path)
        try:
            all_results.append(run_engine(eng, args, log))
        finally:
            eng.close()
    text = report(all_results, args, settings)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    bad = [c for r in all_results for c in r["checks"] if not c[1]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
