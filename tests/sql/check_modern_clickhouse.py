#!/usr/bin/env python3
"""Apply the ClickHouse migrations, land hand-made minute panes, run the
sink's tier compaction and check every analyst view against hand-computed
values.

Usage:
    python3 tests/sql/check_modern_clickhouse.py [--sink-bin PATH]
        in-process modern ClickHouse (PyPI `chdb`), database centile_chk
    python3 tests/sql/check_modern_clickhouse.py [--sink-bin PATH] --http http://127.0.0.1:8123
        a real server over its HTTP interface (standard library only), in a
        database centile_chk_<pid> that is dropped at the end

All SQL under test comes from the sink binary (`--sink-bin`, or the
CENTILE_SINK_BIN environment variable; tests/clickhouse_schema.rs passes the
one cargo built):
  * `centile-sink schema-sql DIR` writes every migration, the generated
    0006 (stored rollup tiers and the views over them) included, as
    DIR/*.sql; this script applies them like the Rust migrator
    (crates/sink/src/migrate.rs):
      - ${database} -> the check database, ${raw_retention_days} -> 30
      - a first line `-- centile:min-server-version X.Y` skips the file on
        servers older than X.Y
      - `ALTER TABLE db.t ADD COLUMN c ...` runs only when t has no column c
        yet (18.16 has no ADD COLUMN IF NOT EXISTS)
      - statements end at a line whose last non-blank character is `;`
        (which is stripped); chunks that hold only comments are skipped
  * `centile-sink compact-sql --database DB --latency-minutes M,...
    --usage-minutes M,...` prints the INSERT ... SELECT statements (each
    ending with `;` and a blank line) that recompute the minute, hour, day
    and ISO-week tier rows holding those minutes, in the order they must
    run: what the sink runs after landing a batch's panes.
Migrations are applied twice and every compaction is run at least twice,
to prove both idempotent.

The data/assertion part (insert_* / run_checks) takes a plain
`query(sql, settings=None) -> str (TSV)` callable, so both drivers run exactly
the same fixtures and checks. Every expected value below is computed by hand
from the fixture rows (see the comments; `sketch()` only regroups fixture
centroids by the documented bucket function, for the stored sketch arrays);
nothing is read back from the database to build an expectation.

View queries run with enable_optimize_predicate_expression = 1 (what 18.16
needs for the views to be fast; the default on modern servers) and again
with 0: the results must be the same either way.

Output: one `ok   name` / `FAIL name detail` line per check, then
`N passed, M failed`; the exit code is 0 only if nothing failed.
"""

import datetime as dt
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal

DB = "centile_chk"  # the HTTP driver makes it unique per run (main)
RETENTION_DAYS = "30"
VERSION_RE = re.compile(r"^--\s*centile:min-server-version\s+([0-9][0-9.]*)\s*$")
CLASS_COLS = ["total_cache_read_input_tokens", "total_cache_write_input_tokens",
              "total_reasoning_output_tokens"]
# The price book's columns (migration 0008), checked apart.
PRICE_COLS = ["reported_cost_usd", "computed_cost_usd", "computed_request_count",
              "price_versions"]
ADD_COLUMN_RE = re.compile(r"^ALTER TABLE [A-Za-z0-9_]+\.([A-Za-z0-9_]+) ADD COLUMN ([A-Za-z0-9_]+) ")
SINK_BIN = None  # set by main

# Pushdown on: how analysts' sessions (and 18.16 clients of the views) run.
PUSHDOWN = {"enable_optimize_predicate_expression": "1"}
NO_PUSHDOWN = {"enable_optimize_predicate_expression": "0"}


# --------------------------------------------------------------------------
# SQL from the sink binary, migrator emulation
# --------------------------------------------------------------------------

def sink(*args):
    out = subprocess.run([SINK_BIN] + list(args), check=True, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=120)
    return out.stdout.decode("utf-8")


def write_schema(dir_):
    sink("schema-sql", dir_)


def unix(when):
    """'YYYY-MM-DD HH:MM[:SS]' (UTC) -> Unix seconds."""
    if when.count(":") == 1:
        when += ":00"
    t = dt.datetime.strptime(when, "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.timezone.utc)
    return int(t.timestamp())


def compact_statements(latency_minutes=(), usage_minutes=(), prices=None):
    args = ["compact-sql", "--database", DB]
    if prices:
        args += ["--prices", prices]
    if latency_minutes:
        args += ["--latency-minutes", ",".join(str(unix(m)) for m in latency_minutes)]
    if usage_minutes:
        args += ["--usage-minutes", ",".join(str(unix(m)) for m in usage_minutes)]
    return [s.strip() for s in sink(*args).split(";\n\n") if s.strip()]


def compact(query, latency_minutes=(), usage_minutes=(), times=2, prices=None):
    """Runs the compaction `times` times over (it must be idempotent)."""
    statements = compact_statements(latency_minutes, usage_minutes, prices)
    # Each kind's tiers are recomputed from the bottom (other stored
    # groupings may follow them).
    targets = [re.match(r"INSERT INTO %s\.(\w+)" % DB, s) for s in statements]
    targets = [m.group(1) for m in targets if m]
    for kind, minutes in (("latency", latency_minutes), ("usage", usage_minutes)):
        tiers = [t for t in targets if t.startswith(kind + "_rollup_")]
        want = ["%s_rollup_%s" % (kind, t) for t in ("minute", "hour", "day", "week")]
        if tiers != (want if minutes else []):
            raise RuntimeError("compact-sql recomputes %r for %s, want %r"
                               % (tiers, kind, want if minutes else []))
    for _ in range(times):
        for s in statements:
            query(s)


def parse_version(text):
    return tuple(int(p) for p in text.strip().split(".") if p != "")


def version_at_least(server, minimum):
    n = max(len(server), len(minimum))
    return server + (0,) * (n - len(server)) >= minimum + (0,) * (n - len(minimum))


def split_statements(text):
    stmts, cur = [], []
    for line in text.splitlines():
        cur.append(line)
        if line.rstrip().endswith(";"):
            stmts.append("\n".join(cur))
            cur = []
    if cur:
        stmts.append("\n".join(cur))
    out = []
    for s in stmts:
        meaningful = [l for l in s.splitlines()
                      if l.strip() and not l.strip().startswith("--")]
        if meaningful:
            # like the Rust migrator: trim, drop the final `;`
            out.append(s.strip().rstrip(";").rstrip())
    return out


def migration_files(schema_dir):
    return sorted(os.path.join(schema_dir, f) for f in os.listdir(schema_dir)
                  if f.endswith(".sql"))


def apply_migrations(query, schema_dir, server_version, log=print):
    applied = skipped = 0
    for path in migration_files(schema_dir):
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        first = text.splitlines()[0] if text else ""
        m = VERSION_RE.match(first)
        if m and not version_at_least(server_version, parse_version(m.group(1))):
            log("  skip %s (needs server >= %s)" % (os.path.basename(path), m.group(1)))
            skipped += 1
            continue
        text = text.replace("${database}", DB).replace("${raw_retention_days}", RETENTION_DAYS)
        if "${" in text:
            raise RuntimeError("unsubstituted placeholder in %s" % path)
        for stmt in split_statements(text):
            added = ADD_COLUMN_RE.match(stmt.strip())
            if added and query(
                "SELECT count() FROM system.columns WHERE database = '%s' AND table = '%s' "
                "AND name = '%s'" % (DB, added.group(1), added.group(2))
            ).strip() != "0":
                continue
            query(stmt)
        applied += 1
    return applied, skipped


# --------------------------------------------------------------------------
# test data
# --------------------------------------------------------------------------
#
# The aggregator emits minute panes only; the sink compacts them into the
# stored minute, hour, day and ISO-week tiers the views read.  Fixture panes
# sit on Wednesday 2025-01-15 in minutes 10:00, 10:01, 10:02 (hour 10) and
# 11:30 (hour 11), on Sunday 2025-01-19 23:59 (the last minute of the ISO
# week starting Monday 01-13) and on Monday 2025-01-20 00:00 (the first
# minute of the next ISO week):
#
# latency panes (dims T1/gpt-4o/openai/chat/h1/P1 unless noted)
#   pane ver src  minute  calls succ err rt_sum  min  max   in/cnt  out/cnt  centroids (mean:weight)      emitted
#   A    2   p0   10:00   50    48   2   5000    40   250   1000/4  400/4    50:20 100:20 200:10          10:01:05
#   A    1   p0   10:00   STALE (junk values, inserted later, emitted 10:59:59: must vanish)
#   B    1   p1   10:00   50    50   0   13600   120  950   600/3   300/3    150:20 300:24 400:4 900:2    10:01:10
#   C    1   p0   10:00   1     0    1   75      75   75    0/0     0/0      75:1  (h2/P2)              10:01:06
#   E    4   p0   10:01   20    18   2   3605    60   300.5 200/2   100/2    60:10 300.5:10             10:02:05
#   D3   1   p0   10:02   10    10   0   800     70   90    0/0     0/0      80:10 (claude-3/anthropic) 10:03:02
#   G    1   p1   11:30   30    27   3   15000   500  500   0/0     0/0      500:30                     11:31:02
#   D2   1   p1   11:30   50    48   2   18500   250  1100  0/0     0/0      300:45 1000:5 (T2/embed/h3/{}) 11:31:04
#   W1   1   p0   01-19 23:59  4  4    0   240     0    120   8/2     0/0      0:2 120:2                  01-20 00:00:30
#   W2   1   p1   01-20 00:00  2  1    1   1000    500  500   0/0     0/0      500:2                      01-20 00:01:05
#
# usage panes (dims T1/gpt-4o/openai/chat unless noted)
#   pane ver src  minute       req  in    out  cost_nanos        emitted
#   U0   2   p0   10:00        10   1000  500  123456789000000   10:01:05
#   U0   1   p0   10:00        STALE 3/3/3/999999999999 (inserted later)  10:00:50
#   U1   1   p1   10:00        5    100   50   12345             10:01:10
#   UE   1   p0   10:01        1    2     3    1                 10:02:05
#   UG   2   p1   11:30        7    70    35   2500000000        11:31:03
#   UG   0   p1   11:30        STALE 1000/1/1/1 (inserted later, emitted 11:59:00: must vanish)
#   UD2  1   p1   11:30        3    30    0    500000000  (T2/embed)  11:31:04
#   UW1  1   p0   01-19 23:59  4    40    20   4000000000        01-20 00:00:30
#   UW2  3   p1   01-20 00:00  1    1     1    1                 01-20 00:01:05
#
# Later, restating panes (new pane_ids in already-populated minutes):
#   R    1   p0   10:00   1    0    1   2000   2000 2000  0/0  0/0  2000:1  10:09:00  (latency, K1)
#   UR   1   p1   10:01   2    20   10   1000000000   10:09:30       (usage, T1)
#
# The response-time sketch: bucket(v) = floor(ln v / ln 1.005), and every
# v <= 1e-6 in bucket -2147483648; a bucket keeps the count and the sum of
# its values (a centroid adds weight and mean * weight), and a percentile is
# the mean of the bucket holding the value of rank ceil(q * n).  Buckets of
# the fixture values (computed once with Python's math.log):
#   0 -> -2147483648   50 -> 784    60 -> 820    75 -> 865    80 -> 878
#   100 -> 923   120 -> 959   150 -> 1004   200 -> 1062   300 -> 1143
#   300.5 -> 1143 (same bucket as 300: 300 * 1.005^0.394 > 300.5)
#   400 -> 1201   500 -> 1246   900 -> 1363   1000 -> 1385   2000 -> 1523
# so every percentile is one of the fixture values exactly, except where
# the rank lands in the shared 300/300.5 bucket: then it is that bucket's
# mean.
#
# `revision` of a minute row is the sum of (version + 1) over its panes; of
# an hour, day or week row the sum of the revisions of the rows below.

DAY = "2025-01-15"
SUNDAY = "2025-01-19"
MONDAY = "2025-01-20"
ZERO_KEY = -2147483648
P1 = '{"temperature":0.2}'
P2 = '{"temperature":0.9}'
K1 = ("T1", "gpt-4o", "openai", "chat", "h1", P1)
K1_H2 = ("T1", "gpt-4o", "openai", "chat", "h2", P2)
K_CLAUDE = ("T1", "claude-3", "anthropic", "chat", "h1", P1)
K_T2 = ("T2", "gpt-4o", "openai", "embed", "h3", "{}")
U_T1 = ("T1", "gpt-4o", "openai", "chat")
U_T2 = ("T2", "gpt-4o", "openai", "embed")

# Minutes holding fixture panes: what the sink would compact.
LATENCY_MINUTES = ["%s 10:00" % DAY, "%s 10:01" % DAY, "%s 10:02" % DAY, "%s 11:30" % DAY,
                   "%s 23:59" % SUNDAY, "%s 00:00" % MONDAY]
USAGE_MINUTES = ["%s 10:00" % DAY, "%s 10:01" % DAY, "%s 11:30" % DAY,
                 "%s 23:59" % SUNDAY, "%s 00:00" % MONDAY]


def ts(hhmmss, day=DAY):
    """'10:01' or '10:01:05' on the fixture day, or a full
    'YYYY-MM-DD HH:MM[:SS]' -> 'YYYY-MM-DD HH:MM:SS'."""
    if hhmmss.count(":") == 1:
        hhmmss += ":00"
    return hhmmss if "-" in hhmmss else "%s %s" % (day, hhmmss)


def _minute_end(start):
    t = dt.datetime.strptime(start, "%Y-%m-%d %H:%M:%S") + dt.timedelta(minutes=1)
    return t.strftime("%Y-%m-%d %H:%M:%S")


def _yesterday_noon():
    d = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    return "%s 12:00:00" % d.isoformat()


def _lat_pane(pane_id, version, minute, dims, part, calls, succ, errs, rt_sum, rt_min,
              rt_max, in_sum, in_cnt, out_sum, out_cnt, means, weights, emitted,
              legacy=None):
    """legacy=(granularity, window_end): a pre-0005 hour/day pane starting at
    `minute` instead of a minute pane."""
    ws = ts(minute)
    gran, we = legacy or ("minute", _minute_end(ws))
    tenant, model, provider, tool, phash, params = dims
    return ("('%s', %d, '%s', '%s', '%s', '%s', '%s', '%s', '%s', '%s', '%s', "
            "'latency.events', %d, 0, 99, 1, 0, %d, %d, %d, %r, %r, %r, %d, %d, %d, %d, "
            "[%s], [%s], '%s')" % (
                pane_id, version, gran, ws, we, tenant, model, provider, tool, phash,
                params, part, calls, succ, errs, float(rt_sum), float(rt_min), float(rt_max),
                in_sum, in_cnt, out_sum, out_cnt,
                ", ".join(repr(float(m)) for m in means),
                ", ".join(str(int(w)) for w in weights), ts(emitted)))


def _use_pane(pane_id, version, minute, dims, part, requests, in_sum, out_sum, cost_nanos,
              emitted, legacy=None, classes=(0, 0, 0), unpriced=(0, 0, 0, 0, 0, 0)):
    ws = ts(minute)
    gran, we = legacy or ("minute", _minute_end(ws))
    tenant, model, provider, feature = dims
    return ("('%s', %d, '%s', '%s', '%s', '%s', '%s', '%s', '%s', 'usage.events', %d, "
            "0, 99, 1, 0, %d, %d, %d, %d, '%s', %d, %d, %d, %d, %d, %d, %d, %d, %d)" % (
                pane_id, version, gran, ws, we, tenant, model, provider, feature, part,
                requests, in_sum, out_sum, cost_nanos, ts(emitted), *classes, *unpriced))


def insert_events(query):
    t = _yesterday_noon()
    lat_ev = "INSERT INTO %s.latency_events VALUES " % DB
    e1 = ("('e1', '{t}', 1, 'T1', 'gpt-4o', 'openai', 'chat', '{p}', 'h1', 120.5, 1, NULL, "
          "10, 20, 0, 100, '{t}', 'conv-1')").format(t=t, p=P1)
    e2 = ("('e2', '{t}', 2, 'T1', 'gpt-4o', 'openai', 'chat', '{p}', 'h1', 300, 0, 'timeout', "
          "NULL, NULL, 0, 101, '{t}', NULL)").format(t=t, p=P1)
    e3 = ("('e3', '{t}', 3, 'T2', 'claude-3', 'anthropic', 'embed', '{{}}', 'h0', 80, 1, NULL, "
          "5, NULL, 1, 7, '{t}', NULL)").format(t=t)
    query(lat_ev + ", ".join([e1, e2, e3]))
    query(lat_ev + e2)  # Kafka redelivery of e2, separate part

    use_ev = "INSERT INTO %s.usage_events VALUES " % DB
    u1 = ("('u1', '{t}', 1, 'T1', 'alice', 'gpt-4o', 'openai', 'chat', 10, 20, 123456789012345, "
          "0, 5, '{t}', 8, 1, 5, 1, 'conv-1')").format(t=t)
    u2 = ("('u2', '{t}', 2, 'T1', NULL, 'gpt-4o', 'openai', 'chat', 1, 2, 1, 0, 6, '{t}', "
          "NULL, NULL, NULL, 0, NULL)").format(t=t)
    query(use_ev + ", ".join([u1, u2]))
    query(use_ev + u1)  # redelivery


def insert_panes(query):
    """The newest version of every fixture pane (see the table above)."""
    lp = "INSERT INTO %s.latency_panes VALUES " % DB
    query(lp + ", ".join([
        _lat_pane("A", 2, "10:00", K1, 0, 50, 48, 2, 5000, 40, 250, 1000, 4, 400, 4,
                  [50, 100, 200], [20, 20, 10], "10:01:05"),
        _lat_pane("B", 1, "10:00", K1, 1, 50, 50, 0, 13600, 120, 950, 600, 3, 300, 3,
                  [150, 300, 400, 900], [20, 24, 4, 2], "10:01:10"),
        _lat_pane("C", 1, "10:00", K1_H2, 0, 1, 0, 1, 75, 75, 75, 0, 0, 0, 0,
                  [75], [1], "10:01:06"),
        _lat_pane("E", 4, "10:01", K1, 0, 20, 18, 2, 3605, 60, 300.5, 200, 2, 100, 2,
                  [60, 300.5], [10, 10], "10:02:05"),
        _lat_pane("D3", 1, "10:02", K_CLAUDE, 0, 10, 10, 0, 800, 70, 90, 0, 0, 0, 0,
                  [80], [10], "10:03:02"),
        _lat_pane("G", 1, "11:30", K1, 1, 30, 27, 3, 15000, 500, 500, 0, 0, 0, 0,
                  [500], [30], "11:31:02"),
        _lat_pane("D2", 1, "11:30", K_T2, 1, 50, 48, 2, 18500, 250, 1100, 0, 0, 0, 0,
                  [300, 1000], [45, 5], "11:31:04"),
        _lat_pane("W1", 1, ts("23:59", SUNDAY), K1, 0, 4, 4, 0, 240, 0, 120, 8, 2, 0, 0,
                  [0, 120], [2, 2], ts("00:00:30", MONDAY)),
        _lat_pane("W2", 1, ts("00:00", MONDAY), K1, 1, 2, 1, 1, 1000, 500, 500, 0, 0, 0, 0,
                  [500], [2], ts("00:01:05", MONDAY)),
    ]))

    up = "INSERT INTO %s.usage_panes VALUES " % DB
    query(up + ", ".join([
        _use_pane("U0", 2, "10:00", U_T1, 0, 10, 1000, 500, 123456789000000, "10:01:05",
                  classes=(400, 100, 50)),
        _use_pane("U1", 1, "10:00", U_T1, 1, 5, 100, 50, 12345, "10:01:10",
                  classes=(10, 0, 5)),
        _use_pane("UE", 1, "10:01", U_T1, 0, 1, 2, 3, 1, "10:02:05", classes=(1, 0, 2)),
        _use_pane("UG", 2, "11:30", U_T1, 1, 7, 70, 35, 2500000000, "11:31:03",
                  classes=(7, 0, 0)),
        _use_pane("UD2", 1, "11:30", U_T2, 1, 3, 30, 0, 500000000, "11:31:04",
                  classes=(30, 0, 0)),
        _use_pane("UW1", 1, ts("23:59", SUNDAY), U_T1, 0, 4, 40, 20, 4000000000,
                  ts("00:00:30", MONDAY), classes=(4, 2, 0)),
        _use_pane("UW2", 3, ts("00:00", MONDAY), U_T1, 1, 1, 1, 1, 1, ts("00:01:05", MONDAY)),
    ]))


def insert_stale_panes(query):
    """Older versions of A, U0 and UG, inserted after the newest ones (other
    parts) and emitted later: version, not insertion order, must win."""
    query("INSERT INTO %s.latency_panes VALUES " % DB +
          _lat_pane("A", 1, "10:00", K1, 0, 7, 1, 6, 9999, 1, 5000, 77777, 7, 77777, 7,
                    [1, 5000], [3, 4], "10:59:59"))
    query("INSERT INTO %s.usage_panes VALUES " % DB +
          _use_pane("U0", 1, "10:00", U_T1, 0, 3, 3, 3, 999999999999, "10:00:50",
                    classes=(3, 3, 3)))
    query("INSERT INTO %s.usage_panes VALUES " % DB +
          _use_pane("UG", 0, "11:30", U_T1, 1, 1000, 1, 1, 1, "11:59:00", classes=(1, 1, 1)))


def insert_restatement(query):
    """Late events: a new pane in minute 10:00 (latency K1) and in minute
    10:01 (usage T1), both already populated, compacted and final."""
    query("INSERT INTO %s.latency_panes VALUES " % DB +
          _lat_pane("R", 1, "10:00", K1, 0, 1, 0, 1, 2000, 2000, 2000, 0, 0, 0, 0,
                    [2000], [1], "10:09:00"))
    query("INSERT INTO %s.usage_panes VALUES " % DB +
          _use_pane("UR", 1, "10:01", U_T1, 1, 2, 20, 10, 1000000000, "10:09:30",
                    classes=(20, 0, 10)))


def insert_watermarks(query, marks):
    """marks: [(topic, source_partition, rollup_partition, 'HH:MM[:SS]' or full ts)]"""
    vals = []
    for topic, sp, rp, wm in marks:
        w = ts(wm)
        vals.append("('%s', %d, %d, '%s', %d, '%s')" % (topic, sp, rp, w, 1000 + sp, w))
    query("INSERT INTO %s.source_watermarks VALUES %s" % (DB, ", ".join(vals)))


def bucket(v):
    """The sketch bucket of a value (crates/events/src/sketch.rs)."""
    return ZERO_KEY if v <= 1e-6 else math.floor(math.log(v) / math.log(1.005))


def sketch(centroids):
    """(keys, counts, sums) of fixture centroids [(mean, weight)], keys
    ascending: the stored sketch arrays."""
    acc = {}
    for mean, weight in centroids:
        n, s = acc.get(bucket(mean), (0, 0.0))
        acc[bucket(mean)] = (n + weight, s + mean * weight)
    keys = sorted(acc)
    return keys, [acc[k][0] for k in keys], [acc[k][1] for k in keys]


# --------------------------------------------------------------------------
# assertions
# --------------------------------------------------------------------------

DT = "DateTime('UTC')"
# (name, type) of every view column.  The leading ones are the columns the
# views had before the stored tiers (0005, same on 18.16 and modern
# servers), the trailing ones were added with the tiers (0006).
LATENCY_DESC = [("window_start", DT), ("tenant_id", "String"), ("model_id", "String"),
                ("provider", "String"), ("tool", "String"), ("parameter_hash", "String"),
                ("parameters", "String"), ("call_count", "UInt64"), ("success_count", "UInt64"),
                ("error_count", "UInt64"), ("success_rate", "Float64"),
                ("avg_response_time", "Float64"), ("min_response_time", "Float64"),
                ("max_response_time", "Float64"), ("p50_response_time", "Float64"),
                ("p95_response_time", "Float64"), ("p99_response_time", "Float64"),
                ("avg_input_tokens", "Float64"), ("avg_output_tokens", "Float64"),
                ("total_input_tokens", "Int64"), ("total_output_tokens", "Int64"),
                ("revision", "UInt64"), ("updated_at", DT),
                # new
                ("window_end", DT), ("sketch_keys", "Array(Int32)"),
                ("sketch_counts", "Array(UInt64)"), ("sketch_sums", "Array(Float64)")]
USAGE_DESC = [("window_start", DT), ("tenant_id", "String"), ("model_id", "String"),
              ("provider", "String"), ("feature", "String"), ("request_count", "UInt64"),
              ("total_input_tokens", "Int64"), ("total_output_tokens", "Int64"),
              # token classes (migration 0007)
              ("total_cache_read_input_tokens", "Int64"),
              ("total_cache_write_input_tokens", "Int64"),
              ("total_reasoning_output_tokens", "Int64"),
              ("total_cost_usd", "Decimal(18, 9)"),
              # the price book (migration 0008)
              ("reported_cost_usd", "Decimal(18, 9)"), ("computed_cost_usd", "Decimal(18, 9)"),
              ("computed_request_count", "Int64"), ("price_versions", "Array(String)"),
              ("revision", "UInt64"), ("updated_at", DT),
              # new
              ("window_end", DT)]
TOP_DESC = [("window_start", DT), ("model_id", "String"), ("provider", "String"),
            ("call_count", "UInt64"), ("error_rate", "Float64"),
            ("p50_response_time", "Float64"), ("p95_response_time", "Float64"),
            ("p99_response_time", "Float64"), ("total_cost_usd", "Decimal(18, 9)"),
            ("request_count", "UInt64")]
WINDOW_DESC = [("granularity", "String"), ("window_start", DT), ("window_end", DT),
               ("panes", "UInt64"), ("low_watermark", DT), ("is_final", "UInt8")]
WATERMARK_DESC = [("source_topic", "String"), ("source_partition", "Int32"),
                  ("rollup_partition", "Int32"), ("watermark", DT), ("next_offset", "Int64"),
                  ("emitted_at", DT)]

# The columns the value checks read (the sketch arrays are checked apart).
LATENCY_COLS = [n for n, _ in LATENCY_DESC if not n.startswith("sketch_")]
# (token classes are checked apart, see CLASS_COLS)
USAGE_COLS = [n for n, _ in USAGE_DESC if n not in CLASS_COLS + PRICE_COLS]
TOP_COLS = [n for n, _ in TOP_DESC]
SKETCH_COLS = ["sketch_keys", "sketch_counts", "sketch_sums"]


class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.pushdown_queries = 0
        self.pushdown_diffs = []

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print("ok   %s" % name)
        else:
            self.failed += 1
            print("FAIL %s %s" % (name, detail))


def rows(query, sql, settings=None):
    out = query(sql, settings) if settings else query(sql)
    return [line.split("\t") for line in out.splitlines() if line != ""]


def view_rows(c, query, sql):
    """Rows of a query on the views, with predicate pushdown; the same query
    without it must return the same rows (compared in the final check)."""
    with_pd = rows(query, sql, PUSHDOWN)
    without = rows(query, sql, NO_PUSHDOWN)
    c.pushdown_queries += 1
    if with_pd != without:
        c.pushdown_diffs.append("%s\n  with: %r\n  without: %r" % (sql, with_pd, without))
    return with_pd


def unescape_tsv(v):
    return v.replace("\\'", "'").replace("\\t", "\t").replace("\\n", "\n").replace("\\\\", "\\")


def same(actual, expected):
    """Compare one TSV cell to a typed expectation."""
    if isinstance(expected, Decimal):
        return Decimal(actual) == expected
    if isinstance(expected, float):
        a = float(actual)
        return abs(a - expected) <= 1e-9 * max(1.0, abs(expected))
    if isinstance(expected, int):
        return int(actual) == expected
    if isinstance(expected, list):
        try:
            a = json.loads(actual)
        except ValueError:
            return False
        return len(a) == len(expected) and all(
            abs(x - y) <= 1e-9 * max(1.0, abs(y)) for x, y in zip(a, expected))
    if expected is None:
        return actual == "\\N"
    return unescape_tsv(actual) == expected


def check_row(c, name, cols, actual, expected):
    if actual is None:
        c.check(name, False, "row missing")
        return
    bad = []
    for col, a, e in zip(cols, actual, expected):
        if not same(a, e):
            bad.append("%s: got %r want %r" % (col, a, e))
    if len(actual) != len(expected):
        bad.append("got %d columns want %d" % (len(actual), len(expected)))
    c.check(name, not bad, "; ".join(bad))


def check_describe(c, query, view, desc):
    got = [(d[0], unescape_tsv(d[1])) for d in rows(query, "DESCRIBE TABLE %s.%s" % (DB, view))]
    c.check("%s column names and types" % view, got == desc,
            "got %r want %r" % (got, desc))


def select_all(c, query, view, cols, key_len):
    """{key tuple: row} with the key = the first key_len columns."""
    r = view_rows(c, query, "SELECT %s FROM %s.%s ORDER BY %s" % (
        ", ".join(cols), DB, view, ", ".join(cols[:key_len])))
    return r, {tuple(unescape_tsv(v) for v in x[:key_len]): x for x in r}


def lat_key(window_start, dims):
    tenant, model, provider, tool, phash, _ = dims
    return (window_start, tenant, model, provider, tool, phash)


def lat_row(window_start, dims, *values):
    return [window_start] + list(dims) + list(values)


def use_row(window_start, dims, *values):
    return [window_start] + list(dims) + list(values)


def check_sketch(c, query, view, window_start, dims, centroids, name):
    tenant, model, provider, tool, phash, _ = dims
    r = view_rows(c, query, "SELECT %s FROM %s.%s WHERE window_start = toDateTime('%s', 'UTC') "
                            "AND tenant_id = '%s' AND model_id = '%s' AND provider = '%s' "
                            "AND tool = '%s' AND parameter_hash = '%s'" % (
                                ", ".join(SKETCH_COLS), DB, view, window_start, tenant, model,
                                provider, tool, phash))
    keys, counts, sums = sketch(centroids)
    check_row(c, name, SKETCH_COLS, r[0] if len(r) == 1 else None, [keys, counts, sums])


# window_status, per phase --------------------------------------------------
#
# Surviving minute panes per window (latency + usage, stale versions gone):
#   minute 01-15 10:00: A B C + U0 U1 = 5     minute 10:01: E + UE = 2
#   minute 01-15 10:02: D3 = 1                minute 11:30: G D2 + UG UD2 = 4
#   minute 01-19 23:59: W1 + UW1 = 2          minute 01-20 00:00: W2 + UW2 = 2
#   hour 01-15 10: 5 + 2 + 1 = 8   hour 01-15 11: 4
#   hour 01-19 23: 2               hour 01-20 00: 2
#   day 01-15: 12   day 01-19: 2   day 01-20: 2
#   week 01-13 (Mon) .. 01-20: 12 + 2 = 14   week 01-20 .. 01-27: 2
# Sorted by granularity name, then start.
WINDOWS = [
    ("day", ts("00:00"), ts("00:00", "2025-01-16"), 12),
    ("day", ts("00:00", SUNDAY), ts("00:00", MONDAY), 2),
    ("day", ts("00:00", MONDAY), ts("00:00", "2025-01-21"), 2),
    ("hour", ts("10:00"), ts("11:00"), 8),
    ("hour", ts("11:00"), ts("12:00"), 4),
    ("hour", ts("23:00", SUNDAY), ts("00:00", MONDAY), 2),
    ("hour", ts("00:00", MONDAY), ts("01:00", MONDAY), 2),
    ("minute", ts("10:00"), ts("10:01"), 5),
    ("minute", ts("10:01"), ts("10:02"), 2),
    ("minute", ts("10:02"), ts("10:03"), 1),
    ("minute", ts("11:30"), ts("11:31"), 4),
    ("minute", ts("23:59", SUNDAY), ts("00:00", MONDAY), 2),
    ("minute", ts("00:00", MONDAY), ts("00:01", MONDAY), 2),
    ("week", ts("00:00", "2025-01-13"), ts("00:00", MONDAY), 14),
    ("week", ts("00:00", MONDAY), ts("00:00", "2025-01-27"), 2),
]


def check_window_status(c, query, label, low_unix, low_text, final, windows=WINDOWS):
    """final: the set of (granularity, window_start) that must be final; all
    other windows must not be.  low_unix/low_text: expected low_watermark."""
    r = view_rows(c, query, "SELECT granularity, window_start, window_end, panes, "
                            "toUnixTimestamp(low_watermark), low_watermark, is_final "
                            "FROM %s.window_status ORDER BY granularity, window_start" % DB)
    got_windows = [(x[0], x[1], x[2], int(x[3])) for x in r]
    c.check("window_status %s: windows and pane counts" % label, got_windows == windows,
            "got %r want %r" % (got_windows, windows))
    if low_text is not None:
        lows, want_low = sorted(set(x[5] for x in r)), [low_text]
    else:
        lows, want_low = sorted(set(int(x[4]) for x in r)), [low_unix]
    c.check("window_status %s: low_watermark" % label, lows == want_low,
            "got %r want %r" % (lows, want_low))
    got_final = sorted((x[0], x[1]) for x in r if x[6] == "1")
    want_final = sorted(final)
    bad_flags = [x for x in r if x[6] not in ("0", "1")]
    c.check("window_status %s: is_final" % label, got_final == want_final and not bad_flags,
            "final %r want %r" % (got_final, want_final))



PRICE_BOOK = """
[[prices]]
model = "gpt-4o"
provider = "openai"
effective_from = 2025-02-01
input = "2.50"
output = "10"
cache_read = "1.25"
cache_write = "3.125"
reasoning = "12"

[[prices]]
model = "gpt-4o"
provider = "openai"
effective_from = "2025-02-05"
input = "5"
output = "20"
cache_read = "2.5"
cache_write = "6.25"
reasoning = "24"
"""


def run_pricing_checks(query, c):
    """The price book in the compaction, on its own tenant and week (after
    every other check, which counts all rows): panes on Tuesday 02-04 and
    Thursday 02-06 with 4 of 5 requests unpriced; a new version starts on
    Wednesday 02-05, inside the week.

    By hand, each pane's unpriced tokens: 400 input (100 cache read, 50
    cache write), 200 output (20 reasoning). At the first version (USD per
    million: 2.50, 1.25, 3.125, 10, 12) that is 250 x 2500 + 100 x 1250 +
    50 x 3125 + 180 x 10000 + 20 x 12000 = 2,946,250 nano-dollars; at the
    second (every price doubled) 5,892,500. The week sums its days:
    8,838,750."""
    book = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    book.write(PRICE_BOOK)
    book.close()
    tp = ("TP", "gpt-4o", "openai", "chat")
    up = "INSERT INTO %s.usage_panes VALUES " % DB
    panes = []
    for pane_id, day in (("P1", "2025-02-04"), ("P2", "2025-02-06")):
        panes.append(_use_pane(pane_id, 1, ts("10:00", day), tp, 0, 5, 500, 250, 7,
                               ts("10:01:05", day), classes=(125, 60, 25),
                               unpriced=(4, 400, 200, 100, 50, 20)))
    query(up + ", ".join(panes))
    try:
        compact(query, (), ["2025-02-04 10:00", "2025-02-06 10:00"], times=2,
                prices=book.name)
    finally:
        os.unlink(book.name)
    cols = ["toString(total_cost_usd)", "toString(reported_cost_usd)",
            "toString(computed_cost_usd)", "computed_request_count",
            "length(price_versions)", "arrayStringConcat(price_versions, ',')"]
    for view, start, computed, versions in [
            ("usage_minute", "2025-02-04 10:00:00", "0.002946250", ["2025-02-01"]),
            ("usage_hourly", "2025-02-06 10:00:00", "0.005892500", ["2025-02-05"]),
            ("usage_daily", "2025-02-04 00:00:00", "0.002946250", ["2025-02-01"]),
            ("usage_daily", "2025-02-06 00:00:00", "0.005892500", ["2025-02-05"]),
            ("usage_weekly", "2025-02-03 00:00:00", "0.008838750",
             ["2025-02-01", "2025-02-05"])]:
        r = rows(query, "SELECT %s FROM %s.%s WHERE tenant_id = 'TP' AND window_start = "
                        "toDateTime('%s', 'UTC')" % (", ".join(cols), DB, view, start))
        reported = "0.000000014" if view == "usage_weekly" else "0.000000007"
        total = Decimal(computed) + Decimal(reported)
        unpriced = "8" if view == "usage_weekly" else "4"
        ok = (len(r) == 1 and Decimal(r[0][0]) == total
              and Decimal(r[0][1]) == Decimal(reported)
              and Decimal(r[0][2]) == Decimal(computed) and r[0][3] == unpriced
              and r[0][4] == str(len(versions))
              and [v.split(":")[0] for v in r[0][5].split(",")] == versions)
        c.check("price book: %s %s costs %s by hand, versions %s" % (
            view, start, computed, versions), ok, repr(r))


def run_checks(query, server_version, c=None):
    c = c or Checker()
    modern = version_at_least(server_version, (19, 6))

    # --- dedup views ---------------------------------------------------------
    r = rows(query, "SELECT event_id, count() FROM %s.latency_events_dedup "
                    "GROUP BY event_id ORDER BY event_id" % DB)
    c.check("latency_events_dedup one row per event",
            r == [["e1", "1"], ["e2", "1"], ["e3", "1"]], repr(r))
    r = rows(query, "SELECT event_id, error_type, input_tokens, output_tokens, success "
                    "FROM %s.latency_events_dedup ORDER BY event_id" % DB)
    c.check("latency_events_dedup nullable columns",
            r == [["e1", "\\N", "10", "20", "1"], ["e2", "timeout", "\\N", "\\N", "0"],
                  ["e3", "\\N", "5", "\\N", "1"]], repr(r))
    r = rows(query, "SELECT count(), sum(cost_usd_nanos), countIf(user_id IS NULL) "
                    "FROM %s.usage_events_dedup" % DB)
    c.check("usage_events_dedup counts/sums", r == [["2", "123456789012346", "1"]], repr(r))
    for table in ("latency_events", "usage_events"):
        c.check("%s_dedup column list" % table,
                [d[0] for d in rows(query, "DESCRIBE TABLE %s.%s_dedup" % (DB, table))] ==
                [d[0] for d in rows(query, "DESCRIBE TABLE %s.%s" % (DB, table))])
    # session_id (migration 0010) is kept with the raw events.
    r = rows(query, "SELECT event_id, session_id FROM %s.latency_events_dedup "
                    "ORDER BY event_id" % DB)
    c.check("latency_events_dedup session_id",
            r == [["e1", "conv-1"], ["e2", "\\N"], ["e3", "\\N"]], repr(r))
    r = rows(query, "SELECT event_id, session_id FROM %s.usage_events_dedup "
                    "ORDER BY event_id" % DB)
    c.check("usage_events_dedup session_id", r == [["u1", "conv-1"], ["u2", "\\N"]], repr(r))

    # --- view columns --------------------------------------------------------
    for suffix in ("minute", "hourly", "daily", "weekly"):
        check_describe(c, query, "latency_" + suffix, LATENCY_DESC)
        check_describe(c, query, "usage_" + suffix, USAGE_DESC)
    check_describe(c, query, "top_models_daily", TOP_DESC)
    check_describe(c, query, "window_status", WINDOW_DESC)
    check_describe(c, query, "source_watermarks", WATERMARK_DESC)

    # --- latency_minute ------------------------------------------------------
    r, by = select_all(c, query, "latency_minute", LATENCY_COLS, 6)
    # 10:00 K1 (A v2 + B), 10:00 h2 (C), 10:01 K1 (E), 10:02 claude (D3),
    # 11:30 K1 (G), 11:30 T2/h3 (D2), 01-19 23:59 K1 (W1), 01-20 00:00 K1 (W2)
    c.check("latency_minute row count (panes merged per minute, dims kept apart)",
            len(r) == 8, repr(r))
    # A(v2) + B from two source partitions; A(v1) ignored although inserted
    # later and emitted later.  calls 50+50, succ 48+50, err 2+0,
    # avg (5000+13600)/100 = 186, min(40,120), max(250,950).
    # Sketch 50:20 100:20 150:20 200:10 300:24 400:4 900:2 (n = 100; cum 20
    # 40 60 70 94 98 100): p50 rank 50 -> 150, p95 rank 95 -> 400, p99 rank
    # 99 -> 900.  Tokens 1600/7 and 700/7.  revision (2+1) + (1+1) = 5;
    # updated_at = max(10:01:05, 10:01:10).
    check_row(c, "latency_minute 10:00 h1 (2 partitions merged, latest version, revision 5)",
              LATENCY_COLS, by.get(lat_key(ts("10:00"), K1)),
              lat_row(ts("10:00"), K1, 100, 98, 2, 0.98, 186.0, 40.0, 950.0,
                      150.0, 400.0, 900.0, 1600 / 7, 100.0, 1600, 700, 5, ts("10:01:10"),
                      ts("10:01")))
    check_sketch(c, query, "latency_minute", ts("10:00"), K1,
                 [(50, 20), (100, 20), (200, 10), (150, 20), (300, 24), (400, 4), (900, 2)],
                 "latency_minute 10:00 h1 sketch (keys ascending, counts, sums = mean*weight)")
    check_row(c, "latency_minute 10:00 h2 (no token reports -> avg 0)", LATENCY_COLS,
              by.get(lat_key(ts("10:00"), K1_H2)),
              lat_row(ts("10:00"), K1_H2, 1, 0, 1, 0.0, 75.0, 75.0, 75.0, 75.0, 75.0, 75.0,
                      0.0, 0.0, 0, 0, 2, ts("10:01:06"), ts("10:01")))
    # E alone: version 4 -> revision 5.  Sketch 60:10 300.5:10: p50 rank 10
    # -> 60, p95 rank 19 and p99 rank 20 -> 300.5.  avg 3605/20.
    check_row(c, "latency_minute 10:01 h1 (single pane, revision = its version + 1)",
              LATENCY_COLS, by.get(lat_key(ts("10:01"), K1)),
              lat_row(ts("10:01"), K1, 20, 18, 2, 0.9, 180.25, 60.0, 300.5,
                      60.0, 300.5, 300.5, 100.0, 50.0, 200, 100, 5, ts("10:02:05"),
                      ts("10:02")))
    # W1: zero response times fall in the zero bucket (mean 0): p50 rank 2 -> 0.
    check_row(c, "latency_minute Sunday 23:59 (zero bucket)", LATENCY_COLS,
              by.get(lat_key(ts("23:59", SUNDAY), K1)),
              lat_row(ts("23:59", SUNDAY), K1, 4, 4, 0, 1.0, 60.0, 0.0, 120.0,
                      0.0, 120.0, 120.0, 4.0, 0.0, 8, 0, 2, ts("00:00:30", MONDAY),
                      ts("00:00", MONDAY)))
    check_sketch(c, query, "latency_minute", ts("23:59", SUNDAY), K1, [(0, 2), (120, 2)],
                 "latency_minute Sunday 23:59 sketch (zero bucket key -2147483648 first)")

    # --- latency_hourly ------------------------------------------------------
    r, by = select_all(c, query, "latency_hourly", LATENCY_COLS, 6)
    # 01-15 hour 10: K1 (A+B+E), h2 (C), claude (D3); hour 11: K1 (G), T2/h3
    # (D2); Sunday hour 23: K1 (W1); Monday hour 0: K1 (W2)
    c.check("latency_hourly row count", len(r) == 7, repr(r))
    # Hour 10, K1 = minute rows 10:00 (A v2 + B) and 10:01 (E).
    # calls 100+20 = 120, succ 98+18 = 116, err 2+2 = 4,
    # avg (18600+3605)/120 = 22205/120, min 40, max 950.
    # Sketch 50:20 60:10 100:20 150:20 200:10, bucket 1143 = 300:24 + 300.5:10
    # (count 34, sum 7200 + 3005 = 10205), 400:4 900:2 (n = 120; cum 20 30 50
    # 70 80 114 118 120): p50 rank 60 -> 150, p95 rank 114 -> the shared
    # bucket's mean 10205/34, p99 rank 119 -> 900.
    # Tokens in 1000+600+200 = 1800 over 4+3+2 = 9 reports -> 200,
    # out 400+300+100 = 800 / 9.  revision 5+5 = 10; updated_at = E's
    # 10:02:05 (A v1's 10:59:59 is stale and must not count).
    check_row(c, "latency_hourly 10:00 h1 (2 minute rows merged, bucket mean, revision 10)",
              LATENCY_COLS, by.get(lat_key(ts("10:00"), K1)),
              lat_row(ts("10:00"), K1, 120, 116, 4, 116 / 120, 22205 / 120, 40.0, 950.0,
                      150.0, 10205 / 34, 900.0, 200.0, 800 / 9, 1800, 800, 10, ts("10:02:05"),
                      ts("11:00")))
    check_sketch(c, query, "latency_hourly", ts("10:00"), K1,
                 [(50, 20), (100, 20), (200, 10), (150, 20), (300, 24), (400, 4), (900, 2),
                  (60, 10), (300.5, 10)],
                 "latency_hourly 10:00 h1 sketch (300 and 300.5 share bucket 1143)")
    check_row(c, "latency_hourly 11:00 h1 (other hour kept apart)", LATENCY_COLS,
              by.get(lat_key(ts("11:00"), K1)),
              lat_row(ts("11:00"), K1, 30, 27, 3, 0.9, 500.0, 500.0, 500.0,
                      500.0, 500.0, 500.0, 0.0, 0.0, 0, 0, 2, ts("11:31:02"), ts("12:00")))
    check_row(c, "latency_hourly 10:00 claude-3 (minute 10:02)", LATENCY_COLS,
              by.get(lat_key(ts("10:00"), K_CLAUDE)),
              lat_row(ts("10:00"), K_CLAUDE, 10, 10, 0, 1.0, 80.0, 70.0, 90.0,
                      80.0, 80.0, 80.0, 0.0, 0.0, 0, 0, 2, ts("10:03:02"), ts("11:00")))

    # --- latency_daily -------------------------------------------------------
    r, by = select_all(c, query, "latency_daily", LATENCY_COLS, 6)
    # 01-15: K1, h2, claude, T2/h3; 01-19: K1; 01-20: K1
    c.check("latency_daily row count", len(r) == 6, repr(r))
    # Day, K1 = hour 10 + hour 11 (G): calls 150, succ 143, err 7,
    # avg (22205+15000)/150 = 37205/150, min 40, max 950.
    # Sketch: hour 10's + 500:30 (n = 150; cum 20 30 50 70 80 114 118 148 150
    # for 50 60 100 150 200 300b 400 500 900): p50 rank 75 -> 200, p95 rank
    # 143 -> 500, p99 rank 149 -> 900.  Tokens as hour 10 (G has none).
    # revision 10+2 = 12; updated_at = G's 11:31:02.
    check_row(c, "latency_daily 01-15 h1 (two hours merged, revision 12)",
              LATENCY_COLS, by.get(lat_key(ts("00:00"), K1)),
              lat_row(ts("00:00"), K1, 150, 143, 7, 143 / 150, 37205 / 150, 40.0, 950.0,
                      200.0, 500.0, 900.0, 200.0, 800 / 9, 1800, 800, 12, ts("11:31:02"),
                      ts("00:00", "2025-01-16")))
    # D2 alone: sketch 300:45 1000:5 -> p50 rank 25 -> 300, p95 rank 48 and
    # p99 rank 50 -> 1000; avg 18500/50 = 370.
    check_row(c, "latency_daily 01-15 T2/h3", LATENCY_COLS, by.get(lat_key(ts("00:00"), K_T2)),
              lat_row(ts("00:00"), K_T2, 50, 48, 2, 0.96, 370.0, 250.0, 1100.0,
                      300.0, 1000.0, 1000.0, 0.0, 0.0, 0, 0, 2, ts("11:31:04"),
                      ts("00:00", "2025-01-16")))
    check_row(c, "latency_daily 01-20 h1 (W2 alone)", LATENCY_COLS,
              by.get(lat_key(ts("00:00", MONDAY), K1)),
              lat_row(ts("00:00", MONDAY), K1, 2, 1, 1, 0.5, 500.0, 500.0, 500.0,
                      500.0, 500.0, 500.0, 0.0, 0.0, 0, 0, 2, ts("00:01:05", MONDAY),
                      ts("00:00", "2025-01-21")))

    # --- latency_weekly (ISO weeks, Monday) ----------------------------------
    r, by = select_all(c, query, "latency_weekly", LATENCY_COLS, 6)
    # week of Monday 01-13: K1 (01-15 + Sunday 01-19), h2, claude, T2/h3;
    # week of Monday 01-20: K1 (W2)
    c.check("latency_weekly row count", len(r) == 5, repr(r))
    # Week 01-13, K1 = day 01-15 + day 01-19 (W1): calls 154, succ 147, err 7,
    # avg (37205+240)/154 = 37445/154, min 0 (W1), max 950.
    # Sketch 0:2 50:20 60:10 100:20 120:2 150:20 200:10 300b:34 400:4 500:30
    # 900:2 (n = 154; cum 2 22 32 52 54 74 84 118 122 152 154): p50 rank 77 ->
    # 200, p95 rank 147 -> 500, p99 rank 153 -> 900.  Tokens in 1800+8 over
    # 9+2 reports, out 800/9.  revision 12+2 = 14; updated_at = W1's Monday
    # 00:00:30; window_end Monday 01-20.
    check_row(c, "latency_weekly 01-13 h1 (Wednesday + Sunday, revision 14)",
              LATENCY_COLS, by.get(lat_key(ts("00:00", "2025-01-13"), K1)),
              lat_row(ts("00:00", "2025-01-13"), K1, 154, 147, 7, 147 / 154, 37445 / 154,
                      0.0, 950.0, 200.0, 500.0, 900.0, 1808 / 11, 800 / 9, 1808, 800, 14,
                      ts("00:00:30", MONDAY), ts("00:00", MONDAY)))
    check_sketch(c, query, "latency_weekly", ts("00:00", "2025-01-13"), K1,
                 [(50, 20), (100, 20), (200, 10), (150, 20), (300, 24), (400, 4), (900, 2),
                  (60, 10), (300.5, 10), (500, 30), (0, 2), (120, 2)],
                 "latency_weekly 01-13 h1 sketch")
    check_row(c, "latency_weekly 01-20 h1 (Monday starts the next week)", LATENCY_COLS,
              by.get(lat_key(ts("00:00", MONDAY), K1)),
              lat_row(ts("00:00", MONDAY), K1, 2, 1, 1, 0.5, 500.0, 500.0, 500.0,
                      500.0, 500.0, 500.0, 0.0, 0.0, 0, 0, 2, ts("00:01:05", MONDAY),
                      ts("00:00", "2025-01-27")))
    check_row(c, "latency_weekly 01-13 claude-3", LATENCY_COLS,
              by.get(lat_key(ts("00:00", "2025-01-13"), K_CLAUDE)),
              lat_row(ts("00:00", "2025-01-13"), K_CLAUDE, 10, 10, 0, 1.0, 80.0, 70.0, 90.0,
                      80.0, 80.0, 80.0, 0.0, 0.0, 0, 0, 2, ts("10:03:02"),
                      ts("00:00", MONDAY)))

    # Which lower rows a stored row merged (not in the views): bit i = the
    # i-th minute of the hour / hour of the day / day of the week.
    # Hour 10 K1: minutes 0, 1 -> 3; day 01-15 K1: hours 10, 11 -> 3072;
    # week 01-13 K1: Wednesday (day 2) and Sunday (day 6) -> 4 + 64 = 68.
    for tier, start, want in (("hour", ts("10:00"), 3), ("day", ts("00:00"), 3072),
                              ("week", ts("00:00", "2025-01-13"), 68)):
        r = rows(query, "SELECT argMax(coverage, revision) FROM %s.latency_rollup_%s "
                        "WHERE window_start = toDateTime('%s', 'UTC') AND tenant_id = 'T1' "
                        "AND model_id = 'gpt-4o' AND parameter_hash = 'h1'" % (DB, tier, start))
        c.check("latency_rollup_%s coverage of K1 at %s" % (tier, start), r == [[str(want)]],
                repr(r))

    # --- usage views ---------------------------------------------------------
    r, by = select_all(c, query, "usage_minute", USAGE_COLS, 5)
    # 01-15 10:00 T1 (U0 v2 + U1), 10:01 T1 (UE), 11:30 T1 (UG v2), 11:30 T2
    # (UD2), 01-19 23:59 T1 (UW1), 01-20 00:00 T1 (UW2)
    c.check("usage_minute row count", len(r) == 6, repr(r))
    # U0(v2) + U1: 10+5, 1000+100, 500+50, 123456789000000+12345 nanos;
    # revision 3+2 = 5.
    row = by.get((ts("10:00"),) + U_T1)
    check_row(c, "usage_minute 10:00 merged, latest version, exact decimal cost",
              USAGE_COLS, row,
              use_row(ts("10:00"), U_T1, 15, 1100, 550, Decimal("123456.789012345"),
                      5, ts("10:01:10"), ts("10:01")))
    if row:
        c.check("usage_minute cost text exact", row[8] == "123456.789012345", repr(row[8]))
    check_row(c, "usage_minute 10:01 1 nano -> 0.000000001", USAGE_COLS,
              by.get((ts("10:01"),) + U_T1),
              use_row(ts("10:01"), U_T1, 1, 2, 3, Decimal("0.000000001"), 2, ts("10:02:05"),
                      ts("10:02")))
    # UG: version 2 wins over the later-inserted, later-emitted version 0.
    check_row(c, "usage_minute 11:30 latest version wins over later insert", USAGE_COLS,
              by.get((ts("11:30"),) + U_T1),
              use_row(ts("11:30"), U_T1, 7, 70, 35, Decimal("2.5"), 3, ts("11:31:03"),
                      ts("11:31")))

    r, by = select_all(c, query, "usage_hourly", USAGE_COLS, 5)
    # 01-15 hour 10 T1, hour 11 T1, hour 11 T2, 01-19 hour 23 T1, 01-20 hour 0 T1
    c.check("usage_hourly row count", len(r) == 5, repr(r))
    # Hour 10, T1 = minute 10:00 + minute 10:01: 16 requests, 1102, 553,
    # 123456789000000 + 12345 + 1 = 123456789012346 nanos; revision 5+2 = 7.
    check_row(c, "usage_hourly 10:00 (2 minute rows merged, revision 7)", USAGE_COLS,
              by.get((ts("10:00"),) + U_T1),
              use_row(ts("10:00"), U_T1, 16, 1102, 553, Decimal("123456.789012346"),
                      7, ts("10:02:05"), ts("11:00")))
    check_row(c, "usage_hourly 11:00 T2", USAGE_COLS, by.get((ts("11:00"),) + U_T2),
              use_row(ts("11:00"), U_T2, 3, 30, 0, Decimal("0.5"), 2, ts("11:31:04"),
                      ts("12:00")))

    r, by = select_all(c, query, "usage_daily", USAGE_COLS, 5)
    c.check("usage_daily row count", len(r) == 4, repr(r))
    # Day 01-15, T1 = hour 10 + hour 11 (UG v2): 23 requests, 1172, 588,
    # 123456789012346 + 2500000000 = 123459289012346 nanos; revision 7+3 = 10;
    # updated_at = UG v2's 11:31:03 (UG v0's 11:59:00 is stale).
    check_row(c, "usage_daily 01-15 T1 (two hours merged, revision 10)", USAGE_COLS,
              by.get((ts("00:00"),) + U_T1),
              use_row(ts("00:00"), U_T1, 23, 1172, 588, Decimal("123459.289012346"),
                      10, ts("11:31:03"), ts("00:00", "2025-01-16")))
    check_row(c, "usage_daily 01-19 T1", USAGE_COLS, by.get((ts("00:00", SUNDAY),) + U_T1),
              use_row(ts("00:00", SUNDAY), U_T1, 4, 40, 20, Decimal("4"), 2,
                      ts("00:00:30", MONDAY), ts("00:00", MONDAY)))
    r = view_rows(c, query, "SELECT toString(total_cost_usd) FROM %s.usage_minute "
                            "WHERE window_start = toDateTime('%s', 'UTC') AND tenant_id = 'T1'"
                            % (DB, ts("10:00")))
    c.check("usage cost toString exact", r == [["123456.789012345"]], repr(r))

    r, by = select_all(c, query, "usage_weekly", USAGE_COLS, 5)
    c.check("usage_weekly row count", len(r) == 3, repr(r))
    # Week 01-13, T1 = day 01-15 + day 01-19: 27 requests, 1212, 608,
    # 123459289012346 + 4000000000 = 123463289012346 nanos; revision 10+2 = 12.
    check_row(c, "usage_weekly 01-13 T1 (two days merged, revision 12)", USAGE_COLS,
              by.get((ts("00:00", "2025-01-13"),) + U_T1),
              use_row(ts("00:00", "2025-01-13"), U_T1, 27, 1212, 608,
                      Decimal("123463.289012346"), 12, ts("00:00:30", MONDAY),
                      ts("00:00", MONDAY)))
    check_row(c, "usage_weekly 01-13 T2", USAGE_COLS,
              by.get((ts("00:00", "2025-01-13"),) + U_T2),
              use_row(ts("00:00", "2025-01-13"), U_T2, 3, 30, 0, Decimal("0.5"), 2,
                      ts("11:31:04"), ts("00:00", MONDAY)))
    # UW2 (version 3) alone -> revision 4.
    check_row(c, "usage_weekly 01-20 T1 (Monday starts the next week)", USAGE_COLS,
              by.get((ts("00:00", MONDAY),) + U_T1),
              use_row(ts("00:00", MONDAY), U_T1, 1, 1, 1, Decimal("0.000000001"), 4,
                      ts("00:01:05", MONDAY), ts("00:00", "2025-01-27")))

    # --- token classes (cache read, cache write, reasoning) at every tier ---
    # Fixture panes: U0 v2 400/100/50, U1 10/0/5, UE 1/0/2, UG v2 7/0/0,
    # UD2 (T2) 30/0/0, UW1 4/2/0, UW2 0/0/0; the stale U0 v1 (3/3/3) and
    # UG v0 (1/1/1) must vanish.
    #   minute 10:00 T1: U0+U1 = 410/100/55;  minute 10:01: UE = 1/0/2
    #   hour 10: 411/100/57;  hour 11: 7/0/0;  day 01-15: 418/100/57
    #   day 01-19: 4/2/0;  week 01-13 T1: 422/102/57, T2: 30/0/0;  week 01-20: 0/0/0
    for view, start, dims, want in (
            ("usage_minute", ts("10:00"), U_T1, [410, 100, 55]),
            ("usage_minute", ts("10:01"), U_T1, [1, 0, 2]),
            ("usage_hourly", ts("10:00"), U_T1, [411, 100, 57]),
            ("usage_hourly", ts("11:00"), U_T1, [7, 0, 0]),
            ("usage_daily", ts("00:00"), U_T1, [418, 100, 57]),
            ("usage_daily", ts("00:00", SUNDAY), U_T1, [4, 2, 0]),
            ("usage_weekly", ts("00:00", "2025-01-13"), U_T1, [422, 102, 57]),
            ("usage_weekly", ts("00:00", "2025-01-13"), U_T2, [30, 0, 0]),
            ("usage_weekly", ts("00:00", MONDAY), U_T1, [0, 0, 0])):
        r = view_rows(c, query, "SELECT %s FROM %s.%s WHERE window_start = toDateTime('%s', "
                                "'UTC') AND tenant_id = '%s' AND feature = '%s'"
                                % (", ".join(CLASS_COLS), DB, view, start, dims[0], dims[3]))
        check_row(c, "%s %s %s token classes" % (view, start, dims[0]), CLASS_COLS,
                  r[0] if len(r) == 1 else None, want)

    # --- top_models_daily ----------------------------------------------------
    top_sql = "SELECT %s FROM %s.top_models_daily ORDER BY window_start, model_id" % (
        ", ".join(TOP_COLS), DB)
    r = view_rows(c, query, top_sql)
    c.check("top_models_daily row count", len(r) == 4, repr(r))
    # claude-3: D3 only, no usage panes -> cost 0, requests 0
    check_row(c, "top_models_daily 01-15 claude-3 (no usage -> 0)", TOP_COLS,
              r[0] if r else None,
              [ts("00:00"), "claude-3", "anthropic", 10, 0.0, 80.0, 80.0, 80.0,
               Decimal("0"), 0])
    # gpt-4o on 01-15: K1 day (150 calls, 7 err) + C (1, 1) + D2 (50, 2)
    # across tenants/tools/parameter sets = 201 calls, 10 errors.
    # Merged sketch (cum): 50:20 (20) 60:10 (30) 75:1 (31) 100:20 (51)
    # 150:20 (71) 200:10 (81) bucket 1143 = 300:24 + 300.5:10 + 300:45 (79;
    # sum 7200 + 3005 + 13500 = 23705) (160) 400:4 (164) 500:30 (194) 900:2
    # (196) 1000:5 (201): p50 rank 101 -> 23705/79, p95 rank 191 -> 500,
    # p99 rank 199 -> 1000.
    # Usage of the day: T1 123459289012346 + T2 500000000 nanos
    # = 123459.789012346 USD, 23 + 3 = 26 requests.
    check_row(c, "top_models_daily 01-15 gpt-4o (sketches merged across rows, cost joined)",
              TOP_COLS, r[1] if len(r) > 1 else None,
              [ts("00:00"), "gpt-4o", "openai", 201, 10 / 201, 23705 / 79, 500.0, 1000.0,
               Decimal("123459.789012346"), 26])
    # 01-19: W1 (zero bucket: p50 rank 2 -> 0) and UW1; 01-20: W2 and UW2.
    check_row(c, "top_models_daily 01-19 gpt-4o", TOP_COLS, r[2] if len(r) > 2 else None,
              [ts("00:00", SUNDAY), "gpt-4o", "openai", 4, 0.0, 0.0, 120.0, 120.0,
               Decimal("4"), 4])
    check_row(c, "top_models_daily 01-20 gpt-4o", TOP_COLS, r[3] if len(r) > 3 else None,
              [ts("00:00", MONDAY), "gpt-4o", "openai", 2, 0.5, 500.0, 500.0, 500.0,
               Decimal("0.000000001"), 1])

    # Analyst sessions may run with join_use_nulls = 1; the view must still
    # return the same non-Nullable result.  Both drivers take the setting
    # out of band (chdb: SELECT ... SETTINGS, which 18.16 lacks; HTTP: URL
    # parameter, which every version understands).
    r2 = rows(query, top_sql, settings=dict(PUSHDOWN, join_use_nulls="1"))
    c.check("top_models_daily unchanged with join_use_nulls = 1", r2 == r, repr(r2))

    # --- source_watermarks + window_status ----------------------------------
    # No watermark yet: the low watermark is the DateTime default (epoch;
    # printed 1970-01-01 by modern servers, 0000-00-00 by 18.16, hence the
    # numeric comparison) and nothing is final.
    check_window_status(c, query, "no watermarks", 0, None, [])

    # Topic latency.events, 2 source partitions x 2 rollup partitions:
    #   (p0, r0) 11:00   (p0, r1) 10:40, then a stale 10:01 in a later part
    #   (p1, r0) 10:02   (p1, r1) 10:30
    # FINAL keeps 10:40 for (p0, r1).  Per source partition the lowest rollup
    # partition counts: p0 -> min(11:00, 10:40) = 10:40, p1 -> 10:02; low
    # watermark = min(10:40, 10:02) = 10:02.  Final: minutes ending <= 10:02,
    # i.e. 10:00 (ends 10:01) and 10:01 (ends exactly 10:02).  With the stale
    # row the low watermark would be 10:01 (minute 10:01 not final); with max
    # instead of min over rollup partitions it would be 10:30 (minute 10:02
    # final).
    insert_watermarks(query, [("latency.events", 0, 0, "11:00"),
                              ("latency.events", 0, 1, "10:40"),
                              ("latency.events", 1, 0, "10:02"),
                              ("latency.events", 1, 1, "10:30")])
    insert_watermarks(query, [("latency.events", 0, 1, "10:01")])
    r = rows(query, "SELECT source_partition, rollup_partition, watermark FROM "
                    "%s.source_watermarks FINAL WHERE source_topic = 'latency.events' "
                    "ORDER BY source_partition, rollup_partition" % DB)
    c.check("source_watermarks FINAL keeps the highest watermark per key",
            r == [["0", "0", ts("11:00")], ["0", "1", ts("10:40")],
                  ["1", "0", ts("10:02")], ["1", "1", ts("10:30")]], repr(r))
    check_window_status(c, query, "low 10:02", None, ts("10:02"),
                        [("minute", ts("10:00")), ("minute", ts("10:01"))])

    # Advance: (p0, r1) 11:05, (p1, r0) 11:00, (p1, r1) 11:20 -> p0 =
    # min(11:00, 11:05) = 11:00, p1 = min(11:00, 11:20) = 11:00.  A second
    # topic arrives: usage.events p0 with r0 10:59, r1 12:00 -> 10:59.  Low
    # watermark = 10:59: every hour-10 minute is final, hour 10 (ends 11:00)
    # is not, held back by the usage topic alone.
    insert_watermarks(query, [("latency.events", 0, 1, "11:05"),
                              ("latency.events", 1, 0, "11:00"),
                              ("latency.events", 1, 1, "11:20"),
                              ("usage.events", 0, 0, "10:59"),
                              ("usage.events", 0, 1, "12:00")])
    minutes_10 = [("minute", ts("10:00")), ("minute", ts("10:01")), ("minute", ts("10:02"))]
    check_window_status(c, query, "low 10:59 (second topic holds back)", None, ts("10:59"),
                        minutes_10)

    # usage.events (p0, r0) -> 11:10: usage p0 = min(11:10, 12:00) = 11:10,
    # low = min(11:00, 11:00, 11:10) = 11:00 -> hour 10 final (ends exactly
    # 11:00); minute 11:30, hour 11, the day and the week are not.
    insert_watermarks(query, [("usage.events", 0, 0, "11:10")])
    check_window_status(c, query, "low 11:00", None, ts("11:00"),
                        minutes_10 + [("hour", ts("10:00"))])

    def advance_all(to):
        insert_watermarks(query, [(tp, sp, rp, to)
                                  for tp, sp in (("latency.events", 0), ("latency.events", 1),
                                                 ("usage.events", 0))
                                  for rp in (0, 1)])

    # Every key at 2025-01-16 00:00 -> every 01-15 window is final, the day
    # included; the Sunday/Monday windows and both weeks are not.
    advance_all(ts("00:00", "2025-01-16"))
    day_15 = minutes_10 + [("minute", ts("11:30")), ("hour", ts("10:00")),
                           ("hour", ts("11:00")), ("day", ts("00:00"))]
    check_window_status(c, query, "low end of 01-15", None, ts("00:00", "2025-01-16"), day_15)
    # Monday 00:00: Sunday's minute, hour and day end exactly then, and so
    # does the week of 01-13; Monday's windows are not final.
    advance_all(ts("00:00", MONDAY))
    week_13 = day_15 + [("minute", ts("23:59", SUNDAY)), ("hour", ts("23:00", SUNDAY)),
                        ("day", ts("00:00", SUNDAY)), ("week", ts("00:00", "2025-01-13"))]
    check_window_status(c, query, "low Monday 01-20 00:00 (week 01-13 final)", None,
                        ts("00:00", MONDAY), week_13)
    end = ts("00:00", "2025-01-27")
    advance_all(end)
    all_final = [(g, s) for g, s, _, _ in WINDOWS]
    check_window_status(c, query, "low 01-27 (everything final)", None, end, all_final)

    # --- restatement: a late pane in an already-compacted (and final) minute
    insert_restatement(query)
    # The tiers are stored: the views change only once the sink compacts.
    r = view_rows(c, query, "SELECT call_count, revision FROM %s.latency_minute WHERE "
                            "window_start = toDateTime('%s', 'UTC') AND tenant_id = 'T1' AND "
                            "model_id = 'gpt-4o' AND parameter_hash = 'h1'" % (DB, ts("10:00")))
    c.check("latency_minute unchanged before the restating pane is compacted",
            r == [["100", "5"]], repr(r))
    compact(query, ["%s 10:00" % DAY], ["%s 10:01" % DAY])
    # latency R in minute 10:00, K1: 1 call, 1 error, rt 2000, revision 1+1.
    #   minute 10:00: calls 100+1, err 2+1, max 2000, revision 5+2 = 7;
    #     sketch + 2000:1 (n = 101): p50 rank 51 -> 150, p95 rank 96 -> 400,
    #     p99 rank 100 -> 900
    #   hour 10:  calls 120+1, err 4+1, revision 10+2 = 12; n = 121: p50 rank
    #     61 -> 150, p95 rank 115 -> 400, p99 rank 120 -> 900
    #   day:      calls 150+1, err 7+1, revision 12+2 = 14; n = 151: p50 rank
    #     76 -> 200, p95 rank 144 -> 500, p99 rank 150 -> 900
    #   week:     calls 154+1, err 7+1, revision 14+2 = 16; n = 155: p50 rank
    #     78 -> 200, p95 rank 148 -> 500, p99 rank 154 -> 900
    # updated_at: 10:09:00 for minute and hour; the day keeps 11:31:02, the
    # week Monday 00:00:30.
    rc = ["window_start", "call_count", "error_count", "max_response_time",
          "p50_response_time", "p95_response_time", "p99_response_time", "revision",
          "updated_at"]
    for view, start, want in (
            ("latency_minute", ts("10:00"), [101, 3, 2000.0, 150.0, 400.0, 900.0, 7,
                                             ts("10:09:00")]),
            ("latency_hourly", ts("10:00"), [121, 5, 2000.0, 150.0, 400.0, 900.0, 12,
                                             ts("10:09:00")]),
            ("latency_daily", ts("00:00"), [151, 8, 2000.0, 200.0, 500.0, 900.0, 14,
                                            ts("11:31:02")]),
            ("latency_weekly", ts("00:00", "2025-01-13"),
             [155, 8, 2000.0, 200.0, 500.0, 900.0, 16, ts("00:00:30", MONDAY)])):
        r = view_rows(c, query, "SELECT %s FROM %s.%s WHERE window_start = toDateTime('%s', "
                                "'UTC') AND tenant_id = 'T1' AND model_id = 'gpt-4o' AND "
                                "parameter_hash = 'h1'" % (", ".join(rc), DB, view, start))
        check_row(c, "%s restated by a new pane (revision up, counts changed)" % view, rc,
                  r[0] if len(r) == 1 else None, [start] + want)
    # usage UR in minute 10:01, T1: 2 requests, 20 in, 10 out, 1 USD, rev 1+1.
    #   minute 10:01: 1+2 req, 2+20, 3+10, 0.000000001+1, revision 2+2 = 4
    #   hour 10:      16+2, 1102+20, 553+10, 123456.789012346+1, revision 7+2 = 9
    #   day:          23+2, 1172+20, 588+10, 123459.289012346+1, revision 10+2 = 12
    #   week:         27+2, 1212+20, 608+10, 123463.289012346+1, revision 12+2 = 14
    uc = ["window_start", "request_count", "total_input_tokens", "total_output_tokens",
          "total_cost_usd", "revision", "updated_at"]
    for view, start, want in (
            ("usage_minute", ts("10:01"), [3, 22, 13, Decimal("1.000000001"), 4, ts("10:09:30")]),
            ("usage_hourly", ts("10:00"), [18, 1122, 563, Decimal("123457.789012346"), 9,
                                           ts("10:09:30")]),
            ("usage_daily", ts("00:00"), [25, 1192, 598, Decimal("123460.289012346"), 12,
                                          ts("11:31:03")]),
            ("usage_weekly", ts("00:00", "2025-01-13"),
             [29, 1232, 618, Decimal("123464.289012346"), 14, ts("00:00:30", MONDAY)])):
        r = view_rows(c, query, "SELECT %s FROM %s.%s WHERE window_start = toDateTime('%s', "
                                "'UTC') AND tenant_id = 'T1' AND feature = 'chat'"
                                % (", ".join(uc), DB, view, start))
        check_row(c, "%s restated by a new pane (revision up, counts changed)" % view, uc,
                  r[0] if len(r) == 1 else None, [start] + want)
    # UR adds 20/0/10 token classes to minute 10:01 and what holds it.
    for view, start, want in (
            ("usage_minute", ts("10:01"), [21, 0, 12]),
            ("usage_hourly", ts("10:00"), [431, 100, 67]),
            ("usage_daily", ts("00:00"), [438, 100, 67]),
            ("usage_weekly", ts("00:00", "2025-01-13"), [442, 102, 67])):
        r = view_rows(c, query, "SELECT %s FROM %s.%s WHERE window_start = toDateTime('%s', "
                                "'UTC') AND tenant_id = 'T1' AND feature = 'chat'"
                                % (", ".join(CLASS_COLS), DB, view, start))
        check_row(c, "%s token classes restated" % view, CLASS_COLS,
                  r[0] if len(r) == 1 else None, want)
    # window_status: R adds a pane to minute 10:00 (5 -> 6), UR to minute 10:01
    # (2 -> 3), so hour 10 has 10, the day 14 and the week 16.  The windows
    # stay final (the watermark is past them); revision is what shows the
    # restatement.
    restated = [(g, s, e, n + {("minute", ts("10:00")): 1, ("minute", ts("10:01")): 1,
                               ("hour", ts("10:00")): 2, ("day", ts("00:00")): 2,
                               ("week", ts("00:00", "2025-01-13")): 2}.get((g, s), 0))
                for g, s, e, n in WINDOWS]
    check_window_status(c, query, "after restatement", None, end, all_final, windows=restated)

    # --- legacy hour/day panes (written before 0005) must be ignored --------
    # A database upgraded from 0003 still holds hour and day panes; the
    # compaction reads minute panes only (they would double what the minute
    # panes already say).
    query("INSERT INTO %s.latency_panes VALUES %s" % (DB, _lat_pane(
        "LEGACY-H", 9, "10:00", K1, 0, 1000, 1000, 0, 1000, 1, 1, 0, 0, 0, 0,
        [1], [1000], "11:00:01", legacy=("hour", ts("11:00")))))
    query("INSERT INTO %s.usage_panes VALUES %s" % (DB, _use_pane(
        "LEGACY-D", 9, "00:00", U_T1, 0, 1000, 1, 1, 1, "23:59:59",
        legacy=("day", ts("00:00", "2025-01-16")), classes=(999, 999, 999))))
    compact(query, ["%s 10:00" % DAY], ["%s 00:00" % DAY])
    # unchanged from the restatement checks above
    r = view_rows(c, query, "SELECT call_count, revision FROM %s.latency_hourly WHERE "
                            "window_start = toDateTime('%s', 'UTC') AND tenant_id = 'T1' AND "
                            "model_id = 'gpt-4o' AND parameter_hash = 'h1'" % (DB, ts("10:00")))
    c.check("latency_hourly ignores a legacy hour pane", r == [["121", "12"]], repr(r))
    r = view_rows(c, query, "SELECT window_start, request_count, revision FROM %s.usage_daily "
                            "WHERE tenant_id = 'T1' AND feature = 'chat' ORDER BY window_start"
                            % DB)
    c.check("usage_daily ignores a legacy day pane",
            r == [[ts("00:00"), "25", "12"], [ts("00:00", SUNDAY), "4", "2"],
                  [ts("00:00", MONDAY), "1", "4"]], repr(r))
    check_window_status(c, query, "legacy panes ignored", None, end, all_final,
                        windows=restated)

    # --- TTL (only where 0004 applies) --------------------------------------
    for t in ("latency_events", "usage_events"):
        ddl = query("SHOW CREATE TABLE %s.%s" % (DB, t))
        has_ttl = "TTL occurred_at + toIntervalDay(30)" in ddl
        if modern:
            c.check("%s has TTL" % t, has_ttl, ddl)
        else:
            c.check("%s has no TTL (file skipped)" % t, not has_ttl, ddl)

    check_day_filter_reads_one_day(c, query, modern)

    c.check("every view query returns the same rows with and without "
            "enable_optimize_predicate_expression (%d queries)" % c.pushdown_queries,
            not c.pushdown_diffs, "\n".join(c.pushdown_diffs))
    return c


def check_day_filter_reads_one_day(c, query, modern):
    """A filter on one day of latency_daily reaches the stored day table
    (through the view's argMax ... GROUP BY), so the query reads only the
    parts holding that day.  Runs last: it adds 400 day rows (2023-01-01 ..
    2024-02-04) straight into latency_rollup_day, partitioned by the month of
    the week's Monday (none in 2025-01), far more than the limit, then
    merges every partition into one part (OPTIMIZE ... FINAL, which the
    views' result does not depend on), so the fixture days of 2025-01 are
    one part of a few rows.

    The limit is checked before reading, from the selected marks.  Modern
    servers count the rows those marks hold; 18.16 counts index_granularity
    (8192) rows per selected mark however few rows a part holds, so there
    the smallest meaningful limit is one granule.  18.16 does enforce it:
    with the filter pushed it selects the one mark of partition 202501;
    without the filter (the control below), or with
    enable_optimize_predicate_expression = 0, it selects the marks of every
    partition and throws."""
    query("INSERT INTO %s.latency_rollup_day (window_start, window_end, tenant_id, model_id, "
          "provider, tool, parameter_hash, calls, revision, updated_at) "
          "SELECT toDateTime('2023-01-01 00:00:00', 'UTC') + number * 86400, "
          "toDateTime('2023-01-01 00:00:00', 'UTC') + (number + 1) * 86400, 'T9', 'filler', "
          "'p', 't', 'x', 1, 1, toDateTime('2023-01-01 00:00:00', 'UTC') "
          "FROM system.numbers LIMIT 400" % DB)
    query("OPTIMIZE TABLE %s.latency_rollup_day FINAL" % DB)
    max_rows = 100 if modern else 8192
    limit = {"max_rows_to_read": str(max_rows), "read_overflow_mode": "throw"}
    day_sql = ("SELECT window_start, tenant_id, model_id, parameter_hash, call_count FROM "
               "%s.latency_daily WHERE window_start = toDateTime('%s', 'UTC') "
               "ORDER BY tenant_id, model_id, parameter_hash" % (DB, ts("00:00")))
    # Control: without a filter the view reads all 400+ rows, over the limit.
    try:
        query("SELECT count() FROM %s.latency_daily" % DB, dict(limit, **PUSHDOWN))
        control = "no error"
    except Exception as e:  # the limit must be enforced at all
        control = str(e)
    c.check("latency_daily without a filter exceeds max_rows_to_read = %d (control)" % max_rows,
            "max_rows_to_read" in control or "Limit for rows" in control, control[:300])
    try:
        r = rows(query, day_sql, dict(limit, **PUSHDOWN))
        err = None
    except Exception as e:
        r, err = None, str(e)
    # The 01-15 rows as restated above (K1: 151 calls).
    want = [[ts("00:00"), "T1", "claude-3", "h1", "10"],
            [ts("00:00"), "T1", "gpt-4o", "h1", "151"],
            [ts("00:00"), "T1", "gpt-4o", "h2", "1"],
            [ts("00:00"), "T2", "gpt-4o", "h3", "50"]]
    c.check("latency_daily WHERE window_start = one day reads at most %d rows (filter pushed "
            "through the view)" % max_rows, err is None and r == want,
            err[:300] if err else repr(r))


# --------------------------------------------------------------------------
# drivers
# --------------------------------------------------------------------------

def _sql_value(v):
    return v if re.fullmatch(r"-?[0-9]+", v) else "'%s'" % v


def chdb_driver():
    import chdb
    from chdb import session

    sess = session.Session()

    def query(sql, settings=None):
        if settings:
            sql = "%s SETTINGS %s" % (sql, ", ".join(
                "%s = %s" % (k, _sql_value(v)) for k, v in sorted(settings.items())))
        res = sess.query(sql, "TSV")
        return res.bytes().decode("utf-8") if hasattr(res, "bytes") else str(res)

    def close():
        try:
            sess.close()
        except Exception:
            pass

    return query, close, "chdb %s" % getattr(chdb, "__version__", "?")


def http_driver(url):
    """POST each statement as the request body; settings go in the URL."""
    base = url.rstrip("/") + "/"

    def query(sql, settings=None):
        params = {"default_format": "TabSeparated"}
        params.update(settings or {})
        sep = "&" if "?" in base else "?"
        req = urllib.request.Request(base + sep + urllib.parse.urlencode(params),
                                     data=sql.encode("utf-8"), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return resp.read().decode("utf-8")
        except urllib.error.HTTPError as e:
            body = e.read().decode("utf-8", "replace").strip()
            raise RuntimeError("HTTP %d: %s\n-- in query:\n%s" % (e.code, body, sql))

    return query, (lambda: None), "http %s" % url


def main():
    global DB, SINK_BIN
    args = sys.argv[1:]
    opts = {}
    for flag in ("--http", "--sink-bin"):
        if flag in args:
            i = args.index(flag)
            if i + 1 >= len(args):
                args = ["?"]
                break
            opts[flag] = args[i + 1]
            del args[i:i + 2]
    url = opts.get("--http")
    SINK_BIN = opts.get("--sink-bin") or os.environ.get("CENTILE_SINK_BIN")
    if args or not SINK_BIN:
        print("usage: %s [--sink-bin PATH] [--http http://HOST:8123]\n"
              "  (or CENTILE_SINK_BIN=PATH: the centile-sink binary that prints the SQL)"
              % sys.argv[0], file=sys.stderr)
        return 2

    if url:
        DB = "centile_chk_%d" % os.getpid()
        query, close, label = http_driver(url)
    else:
        query, close, label = chdb_driver()

    c = Checker()
    created = False
    schema_dir = tempfile.mkdtemp(prefix="centile-schema-")
    try:
        write_schema(schema_dir)
        version = query("SELECT version()").strip()
        print("%s, engine %s, database %s, SQL from %s" % (label, version, DB, SINK_BIN))
        server_version = parse_version(version)
        query("DROP DATABASE IF EXISTS %s" % DB)
        query("CREATE DATABASE %s" % DB)
        created = True
        for i in (1, 2):
            a, s = apply_migrations(query, schema_dir, server_version)
            print("migration pass %d: %d files applied, %d skipped" % (i, a, s))
        insert_events(query)
        insert_panes(query)
        compact(query, LATENCY_MINUTES, USAGE_MINUTES, times=1)
        # Older versions arrive after the first compaction; recompacting
        # (twice) must change nothing.
        insert_stale_panes(query)
        compact(query, LATENCY_MINUTES, USAGE_MINUTES, times=2)
        run_checks(query, server_version, c)
        run_pricing_checks(query, c)
    except Exception as e:  # any SQL error is a failure
        c.check("exception", False, str(e))
    finally:
        if created and url:
            try:
                query("DROP DATABASE IF EXISTS %s" % DB)
            except Exception as e:
                c.check("drop database %s" % DB, False, str(e))
        close()
        shutil.rmtree(schema_dir, ignore_errors=True)
    print("%d passed, %d failed" % (c.passed, c.failed))
    return 0 if c.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
