#!/usr/bin/env python3
"""Apply schemas/clickhouse/*.sql to ClickHouse and check every analyst view
against hand-made rows.

Usage:
    python3 tests/sql/check_modern_clickhouse.py SCHEMA_DIR
        in-process modern ClickHouse (PyPI `chdb`), database centile_chk
    python3 tests/sql/check_modern_clickhouse.py SCHEMA_DIR --http http://127.0.0.1:8123
        a real server over its HTTP interface (standard library only), in a
        database centile_chk_<pid> that is dropped at the end

The migration logic mirrors the Rust migrator (crates/sink/src/migrate.rs):
  * ${database} -> the check database, ${raw_retention_days} -> 30
  * a first line `-- centile:min-server-version X.Y` skips the file on servers
    older than X.Y
  * statements end at a line whose last non-blank character is `;` (which is
    stripped); chunks that hold only comments/whitespace are skipped
Everything is applied twice to prove idempotency.

The data/assertion part (insert_* / run_checks) takes a plain
`query(sql, settings=None) -> str (TSV)` callable, so both drivers run exactly
the same fixtures and checks. Every expected value below is computed by hand
from the fixture rows (see the comments); nothing is read back from the
database to build an expectation.

Output: one `ok   name` / `FAIL name detail` line per check, then
`N passed, M failed`; the exit code is 0 only if nothing failed.
"""

import datetime as dt
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal

DB = "centile_chk"  # the HTTP driver makes it unique per run (main)
RETENTION_DAYS = "30"
VERSION_RE = re.compile(r"^--\s*centile:min-server-version\s+([0-9][0-9.]*)\s*$")


# --------------------------------------------------------------------------
# migrator emulation
# --------------------------------------------------------------------------

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
            query(stmt)
        applied += 1
    return applied, skipped


# --------------------------------------------------------------------------
# test data
# --------------------------------------------------------------------------
#
# Since 0005 the aggregator emits minute panes only and every view rolls the
# minute panes up, so every fixture pane below is a minute pane.  They sit on
# 2025-01-15 in minutes 10:00, 10:01, 10:02 (hour 10) and 11:30 (hour 11):
#
# latency panes (dims T1/gpt-4o/openai/chat/h1/P1 unless noted)
#   pane ver src  minute  calls succ err rt_sum  min  max  in/cnt   out/cnt  centroids          emitted
#   A    2   p0   10:00   50    48   2   5000    40   250  1000/4   400/4    50:20 100:20 200:10 10:01:05
#   A    1   p0   10:00   STALE (junk values, inserted later, emitted 10:59:59: must vanish)
#   B    1   p1   10:00   50    50   0   13700   120  950  600/3    300/3    150:20 300:23 400:5 900:2  10:01:10
#   C    1   p0   10:00   1     0    1   75      75   75   0/0      0/0      75:1   (h2/P2)      10:01:06
#   E    4   p0   10:01   20    18   2   3600    60   300  200/2    100/2    60:10 300:10       10:02:05
#   D3   1   p0   10:02   10    10   0   800     70   90   0/0      0/0      80:10  (claude-3/anthropic) 10:03:02
#   G    1   p1   11:30   30    27   3   15000   500  500  0/0      0/0      500:30             11:31:02
#   D2   1   p1   11:30   50    48   2   18500   250  1100 0/0      0/0      300:45 1000:5 (T2/embed/h3/{}) 11:31:04
#
# usage panes (dims T1/gpt-4o/openai/chat unless noted)
#   pane ver src  minute  req  in    out  cost_nanos        emitted
#   U0   2   p0   10:00   10   1000  500  123456789000000   10:01:05
#   U0   1   p0   10:00   STALE 3/3/3/999999999999 (inserted later)  10:00:50
#   U1   1   p1   10:00   5    100   50   12345             10:01:10
#   UE   1   p0   10:01   1    2     3    1                 10:02:05
#   UG   2   p1   11:30   7    70    35   2500000000        11:31:03
#   UG   0   p1   11:30   STALE 1000/1/1/1 (inserted later, emitted 11:59:00: must vanish)
#   UD2  1   p1   11:30   3    30    0    500000000  (T2/embed)  11:31:04
#
# Later, restating panes (new pane_ids in already-populated minutes):
#   R    1   p0   10:00   1    0    1   2000   2000 2000  0/0  0/0  2000:1  10:09:00  (latency, K1)
#   UR   1   p1   10:01   2    20   10   1000000000   10:09:30       (usage, T1)

DAY = "2025-01-15"
P1 = '{"temperature":0.2}'
P2 = '{"temperature":0.9}'
K1 = ("T1", "gpt-4o", "openai", "chat", "h1", P1)
K1_H2 = ("T1", "gpt-4o", "openai", "chat", "h2", P2)
K_CLAUDE = ("T1", "claude-3", "anthropic", "chat", "h1", P1)
K_T2 = ("T2", "gpt-4o", "openai", "embed", "h3", "{}")
U_T1 = ("T1", "gpt-4o", "openai", "chat")
U_T2 = ("T2", "gpt-4o", "openai", "embed")


def ts(hhmmss, day=DAY):
    """'10:01' or '10:01:05' on the fixture day -> 'YYYY-MM-DD HH:MM:SS'."""
    if hhmmss.count(":") == 1:
        hhmmss += ":00"
    return "%s %s" % (day, hhmmss)


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
              emitted, legacy=None):
    ws = ts(minute)
    gran, we = legacy or ("minute", _minute_end(ws))
    tenant, model, provider, feature = dims
    return ("('%s', %d, '%s', '%s', '%s', '%s', '%s', '%s', '%s', 'usage.events', %d, "
            "0, 99, 1, 0, %d, %d, %d, %d, '%s')" % (
                pane_id, version, gran, ws, we, tenant, model, provider, feature, part,
                requests, in_sum, out_sum, cost_nanos, ts(emitted)))


def insert_data(query):
    t = _yesterday_noon()
    lat_ev = "INSERT INTO %s.latency_events VALUES " % DB
    e1 = ("('e1', '{t}', 1, 'T1', 'gpt-4o', 'openai', 'chat', '{p}', 'h1', 120.5, 1, NULL, "
          "10, 20, 0, 100, '{t}')").format(t=t, p=P1)
    e2 = ("('e2', '{t}', 2, 'T1', 'gpt-4o', 'openai', 'chat', '{p}', 'h1', 300, 0, 'timeout', "
          "NULL, NULL, 0, 101, '{t}')").format(t=t, p=P1)
    e3 = ("('e3', '{t}', 3, 'T2', 'claude-3', 'anthropic', 'embed', '{{}}', 'h0', 80, 1, NULL, "
          "5, NULL, 1, 7, '{t}')").format(t=t)
    query(lat_ev + ", ".join([e1, e2, e3]))
    query(lat_ev + e2)  # Kafka redelivery of e2, separate part

    use_ev = "INSERT INTO %s.usage_events VALUES " % DB
    u1 = ("('u1', '{t}', 1, 'T1', 'alice', 'gpt-4o', 'openai', 'chat', 10, 20, 123456789012345, "
          "0, 5, '{t}')").format(t=t)
    u2 = ("('u2', '{t}', 2, 'T1', NULL, 'gpt-4o', 'openai', 'chat', 1, 2, 1, 0, 6, '{t}')").format(t=t)
    query(use_ev + ", ".join([u1, u2]))
    query(use_ev + u1)  # redelivery

    # Values: see the table at the top of this section.
    lp = "INSERT INTO %s.latency_panes VALUES " % DB
    a_v2 = _lat_pane("A", 2, "10:00", K1, 0, 50, 48, 2, 5000, 40, 250, 1000, 4, 400, 4,
                     [50, 100, 200], [20, 20, 10], "10:01:05")
    a_v1 = _lat_pane("A", 1, "10:00", K1, 0, 7, 1, 6, 9999, 1, 5000, 77777, 7, 77777, 7,
                     [1, 5000], [3, 4], "10:59:59")
    b_v1 = _lat_pane("B", 1, "10:00", K1, 1, 50, 50, 0, 13700, 120, 950, 600, 3, 300, 3,
                     [150, 300, 400, 900], [20, 23, 5, 2], "10:01:10")
    c_v1 = _lat_pane("C", 1, "10:00", K1_H2, 0, 1, 0, 1, 75, 75, 75, 0, 0, 0, 0,
                     [75], [1], "10:01:06")
    e_v4 = _lat_pane("E", 4, "10:01", K1, 0, 20, 18, 2, 3600, 60, 300, 200, 2, 100, 2,
                     [60, 300], [10, 10], "10:02:05")
    d3_v1 = _lat_pane("D3", 1, "10:02", K_CLAUDE, 0, 10, 10, 0, 800, 70, 90, 0, 0, 0, 0,
                      [80], [10], "10:03:02")
    g_v1 = _lat_pane("G", 1, "11:30", K1, 1, 30, 27, 3, 15000, 500, 500, 0, 0, 0, 0,
                     [500], [30], "11:31:02")
    d2_v1 = _lat_pane("D2", 1, "11:30", K_T2, 1, 50, 48, 2, 18500, 250, 1100, 0, 0, 0, 0,
                      [300, 1000], [45, 5], "11:31:04")
    # newest versions first, stale versions in a later insert (another part):
    # version, not insertion order, must win.
    query(lp + ", ".join([a_v2, b_v1, c_v1, e_v4, d3_v1, g_v1, d2_v1]))
    query(lp + a_v1)

    up = "INSERT INTO %s.usage_panes VALUES " % DB
    u0_v2 = _use_pane("U0", 2, "10:00", U_T1, 0, 10, 1000, 500, 123456789000000, "10:01:05")
    u0_v1 = _use_pane("U0", 1, "10:00", U_T1, 0, 3, 3, 3, 999999999999, "10:00:50")
    u1_v1 = _use_pane("U1", 1, "10:00", U_T1, 1, 5, 100, 50, 12345, "10:01:10")
    ue_v1 = _use_pane("UE", 1, "10:01", U_T1, 0, 1, 2, 3, 1, "10:02:05")
    ug_v2 = _use_pane("UG", 2, "11:30", U_T1, 1, 7, 70, 35, 2500000000, "11:31:03")
    ug_v0 = _use_pane("UG", 0, "11:30", U_T1, 1, 1000, 1, 1, 1, "11:59:00")
    ud2_v1 = _use_pane("UD2", 1, "11:30", U_T2, 1, 3, 30, 0, 500000000, "11:31:04")
    query(up + ", ".join([u0_v2, u1_v1, ue_v1, ug_v2, ud2_v1]))
    query(up + u0_v1)
    query(up + ug_v0)


def insert_restatement(query):
    """Late events: a new pane in minute 10:00 (latency K1) and in minute
    10:01 (usage T1), both already populated and already final."""
    query("INSERT INTO %s.latency_panes VALUES " % DB +
          _lat_pane("R", 1, "10:00", K1, 0, 1, 0, 1, 2000, 2000, 2000, 0, 0, 0, 0,
                    [2000], [1], "10:09:00"))
    query("INSERT INTO %s.usage_panes VALUES " % DB +
          _use_pane("UR", 1, "10:01", U_T1, 1, 2, 20, 10, 1000000000, "10:09:30"))


def insert_watermarks(query, marks):
    """marks: [(topic, source_partition, rollup_partition, 'HH:MM[:SS]' or full ts)]"""
    vals = []
    for topic, sp, rp, wm in marks:
        w = wm if " " in wm else ts(wm)
        vals.append("('%s', %d, %d, '%s', %d, '%s')" % (topic, sp, rp, w, 1000 + sp, w))
    query("INSERT INTO %s.source_watermarks VALUES %s" % (DB, ", ".join(vals)))


# --------------------------------------------------------------------------
# assertions
# --------------------------------------------------------------------------

LATENCY_COLS = ["window_start", "tenant_id", "model_id", "provider", "tool", "parameter_hash",
                "parameters", "call_count", "success_count", "error_count", "success_rate",
                "avg_response_time", "min_response_time", "max_response_time",
                "p50_response_time", "p95_response_time", "p99_response_time",
                "avg_input_tokens", "avg_output_tokens", "total_input_tokens",
                "total_output_tokens", "revision", "updated_at"]
USAGE_COLS = ["window_start", "tenant_id", "model_id", "provider", "feature", "request_count",
              "total_input_tokens", "total_output_tokens", "total_cost_usd",
              "revision", "updated_at"]
TOP_COLS = ["window_start", "model_id", "provider", "call_count", "error_rate",
            "p50_response_time", "p95_response_time", "p99_response_time",
            "total_cost_usd", "request_count"]
WINDOW_COLS = ["granularity", "window_start", "window_end", "panes", "low_watermark",
               "is_final"]
WATERMARK_COLS = ["source_topic", "source_partition", "rollup_partition", "watermark",
                  "next_offset", "emitted_at"]
LATENCY_TYPES = {"window_start": "DateTime('UTC')", "call_count": "UInt64",
                 "success_rate": "Float64", "p50_response_time": "Float64",
                 "p99_response_time": "Float64", "avg_input_tokens": "Float64",
                 "total_input_tokens": "Int64", "revision": "UInt64",
                 "updated_at": "DateTime('UTC')"}
USAGE_TYPES = {"window_start": "DateTime('UTC')", "request_count": "UInt64",
               "total_cost_usd": "Decimal(18, 9)", "total_input_tokens": "Int64",
               "revision": "UInt64", "updated_at": "DateTime('UTC')"}
TOP_TYPES = {"call_count": "UInt64", "error_rate": "Float64",
             "total_cost_usd": "Decimal(18, 9)", "request_count": "UInt64"}
# window_end is DateTime('UTC') on modern servers but plain DateTime on 18.16
# (there `DateTime('UTC') + 3600` drops the time zone); the server time zone
# does not matter for the checks because they compare with window_end <=
# low_watermark in the server and print UTC.  So it is not type-checked.
WINDOW_TYPES = {"granularity": "String", "window_start": "DateTime('UTC')",
                "panes": "UInt64", "low_watermark": "DateTime('UTC')", "is_final": "UInt8"}
WATERMARK_TYPES = {"source_partition": "Int32", "rollup_partition": "Int32",
                   "watermark": "DateTime('UTC')", "next_offset": "Int64",
                   "emitted_at": "DateTime('UTC')"}


class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0

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


def check_describe(c, query, view, cols, types):
    desc = rows(query, "DESCRIBE TABLE %s.%s" % (DB, view))
    names = [d[0] for d in desc]
    c.check("%s columns" % view, names == cols, "got %r" % names)
    got = {d[0]: unescape_tsv(d[1]) for d in desc}
    bad = ["%s=%s (want %s)" % (k, got.get(k), v) for k, v in types.items() if got.get(k) != v]
    c.check("%s column types" % view, not bad, "; ".join(bad))


def select_all(query, view, cols, key_len):
    """{key tuple: row} with the key = the first key_len columns."""
    r = rows(query, "SELECT %s FROM %s.%s" % (", ".join(cols), DB, view))
    return r, {tuple(unescape_tsv(v) for v in x[:key_len]): x for x in r}


def lat_key(window_start, dims):
    tenant, model, provider, tool, phash, _ = dims
    return (window_start, tenant, model, provider, tool, phash)


def lat_row(window_start, dims, *values):
    return [window_start] + list(dims) + list(values)


def use_row(window_start, dims, *values):
    return [window_start] + list(dims) + list(values)


# window_status, per phase --------------------------------------------------
#
# Surviving minute panes per window (latency + usage, stale versions gone):
#   minute 10:00-10:01: A B C + U0 U1 = 5      minute 10:01-10:02: E + UE = 2
#   minute 10:02-10:03: D3          = 1      minute 11:30-11:31: G D2 + UG UD2 = 4
#   hour 10:00-11:00: 5 + 2 + 1 = 8          hour 11:00-12:00: 4
#   day 01-15 00:00 - 01-16 00:00: 12
WINDOWS = [
    ("day", ts("00:00"), "2025-01-16 00:00:00", 12),
    ("hour", ts("10:00"), ts("11:00"), 8),
    ("hour", ts("11:00"), ts("12:00"), 4),
    ("minute", ts("10:00"), ts("10:01"), 5),
    ("minute", ts("10:01"), ts("10:02"), 2),
    ("minute", ts("10:02"), ts("10:03"), 1),
    ("minute", ts("11:30"), ts("11:31"), 4),
]


def check_window_status(c, query, label, low_unix, low_text, final, windows=WINDOWS):
    """final: the set of (granularity, window_start) that must be final; all
    other windows must not be.  low_unix/low_text: expected low_watermark."""
    r = rows(query, "SELECT granularity, window_start, window_end, panes, "
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
    c.check("latency_events_dedup column list",
            [d[0] for d in rows(query, "DESCRIBE TABLE %s.latency_events_dedup" % DB)] ==
            [d[0] for d in rows(query, "DESCRIBE TABLE %s.latency_events" % DB)])

    # --- latency views -------------------------------------------------------
    for view in ("latency_minute", "latency_hourly", "latency_daily"):
        check_describe(c, query, view, LATENCY_COLS, LATENCY_TYPES)

    r, by = select_all(query, "latency_minute", LATENCY_COLS, 6)
    # 10:00 K1 (A v2 + B), 10:00 h2 (C), 10:01 K1 (E), 10:02 claude (D3),
    # 11:30 K1 (G), 11:30 T2/h3 (D2)
    c.check("latency_minute row count (panes summed per minute, dims kept apart)",
            len(r) == 6, repr(r))
    # A(v2) + B from two source partitions; A(v1) ignored although inserted
    # later and emitted later.  calls 50+50, succ 48+50, err 2+0,
    # avg (5000+13700)/100 = 187, min(40,120), max(250,950).
    # Centroids 50:20 100:20 150:20 200:10 300:23 400:5 900:2 (total 100;
    # cumulative 20 40 60 70 93 98 100): p50 = first with cum >= 50 -> 150,
    # p95 (>= 95) -> 400, p99 (>= 99) -> 900.  Tokens 1600/7 and 700/7.
    # revision = 2 (A) + 1 (B) = 3; updated_at = max(10:01:05, 10:01:10).
    check_row(c, "latency_minute 10:00 h1 (2 partitions summed, latest version, revision 3)",
              LATENCY_COLS, by.get(lat_key(ts("10:00"), K1)),
              lat_row(ts("10:00"), K1, 100, 98, 2, 0.98, 187.0, 40.0, 950.0,
                      150.0, 400.0, 900.0, 1600 / 7, 100.0, 1600, 700, 3, ts("10:01:10")))
    check_row(c, "latency_minute 10:00 h2 (no token reports -> avg 0)", LATENCY_COLS,
              by.get(lat_key(ts("10:00"), K1_H2)),
              lat_row(ts("10:00"), K1_H2, 1, 0, 1, 0.0, 75.0, 75.0, 75.0, 75.0, 75.0, 75.0,
                      0.0, 0.0, 0, 0, 1, ts("10:01:06")))
    # E alone: version 4 -> revision 4
    check_row(c, "latency_minute 10:01 h1 (single pane, revision = its version)",
              LATENCY_COLS, by.get(lat_key(ts("10:01"), K1)),
              lat_row(ts("10:01"), K1, 20, 18, 2, 0.9, 180.0, 60.0, 300.0,
                      60.0, 300.0, 300.0, 100.0, 50.0, 200, 100, 4, ts("10:02:05")))

    r, by = select_all(query, "latency_hourly", LATENCY_COLS, 6)
    # hour 10: K1 (A+B+E), h2 (C), claude (D3); hour 11: K1 (G), T2/h3 (D2)
    c.check("latency_hourly row count", len(r) == 5, repr(r))
    # Hour 10, K1 = minute panes A(v2) + B (10:00) + E (10:01).
    # calls 50+50+20 = 120, succ 48+50+18 = 116, err 2+0+2 = 4,
    # avg (5000+13700+3600)/120 = 22300/120, min 40, max 950.
    # Centroids 50:20 60:10 100:20 150:20 200:10 300:33 400:5 900:2 (total
    # 120; cum 20 30 50 70 80 113 118 120): p50 (>= 60) -> 150,
    # p95 (>= 114) -> 400, p99 (>= 118.8) -> 900.
    # Tokens in 1000+600+200 = 1800 over 4+3+2 = 9 reports -> 200,
    # out 400+300+100 = 800 / 9.  revision 2+1+4 = 7; updated_at = E's
    # 10:02:05 (A v1's 10:59:59 is stale and must not count).
    check_row(c, "latency_hourly 10:00 h1 (3 minute panes rolled up, revision 7)",
              LATENCY_COLS, by.get(lat_key(ts("10:00"), K1)),
              lat_row(ts("10:00"), K1, 120, 116, 4, 116 / 120, 22300 / 120, 40.0, 950.0,
                      150.0, 400.0, 900.0, 200.0, 800 / 9, 1800, 800, 7, ts("10:02:05")))
    check_row(c, "latency_hourly 11:00 h1 (other hour kept apart)", LATENCY_COLS,
              by.get(lat_key(ts("11:00"), K1)),
              lat_row(ts("11:00"), K1, 30, 27, 3, 0.9, 500.0, 500.0, 500.0,
                      500.0, 500.0, 500.0, 0.0, 0.0, 0, 0, 1, ts("11:31:02")))
    check_row(c, "latency_hourly 10:00 claude-3 (minute 10:02)", LATENCY_COLS,
              by.get(lat_key(ts("10:00"), K_CLAUDE)),
              lat_row(ts("10:00"), K_CLAUDE, 10, 10, 0, 1.0, 80.0, 70.0, 90.0,
                      80.0, 80.0, 80.0, 0.0, 0.0, 0, 0, 1, ts("10:03:02")))

    r, by = select_all(query, "latency_daily", LATENCY_COLS, 6)
    c.check("latency_daily row count", len(r) == 4, repr(r))
    # Day, K1 = hour 10 (A+B+E) + hour 11 (G): calls 150, succ 143, err 7,
    # avg (22300+15000)/150 = 37300/150, min 40, max 950.
    # Centroids: hour-10 set + 500:30 (total 150; cum 20 30 50 70 80 113 118
    # 148 150 for 50 60 100 150 200 300 400 500 900): p50 (>= 75) -> 200,
    # p95 (>= 142.5) -> 500, p99 (>= 148.5) -> 900.  Tokens as hour 10 (G
    # has none).  revision 2+1+4+1 = 8; updated_at = G's 11:31:02.
    check_row(c, "latency_daily h1 (minute panes of two hours rolled up, revision 8)",
              LATENCY_COLS, by.get(lat_key(ts("00:00"), K1)),
              lat_row(ts("00:00"), K1, 150, 143, 7, 143 / 150, 37300 / 150, 40.0, 950.0,
                      200.0, 500.0, 900.0, 200.0, 800 / 9, 1800, 800, 8, ts("11:31:02")))
    # D2 alone: centroids 300:45 1000:5 -> p50 (>= 25) 300, p95 (>= 47.5)
    # 1000, p99 1000; avg 18500/50 = 370.
    check_row(c, "latency_daily T2/h3", LATENCY_COLS, by.get(lat_key(ts("00:00"), K_T2)),
              lat_row(ts("00:00"), K_T2, 50, 48, 2, 0.96, 370.0, 250.0, 1100.0,
                      300.0, 1000.0, 1000.0, 0.0, 0.0, 0, 0, 1, ts("11:31:04")))

    # --- usage views ---------------------------------------------------------
    for view in ("usage_minute", "usage_hourly", "usage_daily"):
        check_describe(c, query, view, USAGE_COLS, USAGE_TYPES)

    r, by = select_all(query, "usage_minute", USAGE_COLS, 5)
    # 10:00 T1 (U0 v2 + U1), 10:01 T1 (UE), 11:30 T1 (UG v2), 11:30 T2 (UD2)
    c.check("usage_minute row count", len(r) == 4, repr(r))
    # U0(v2) + U1: 10+5, 1000+100, 500+50, 123456789000000+12345 nanos;
    # revision 2+1 = 3.
    row = by.get((ts("10:00"),) + U_T1)
    check_row(c, "usage_minute 10:00 summed, latest version, exact decimal cost",
              USAGE_COLS, row,
              use_row(ts("10:00"), U_T1, 15, 1100, 550, Decimal("123456.789012345"),
                      3, ts("10:01:10")))
    if row:
        c.check("usage_minute cost text exact", row[8] == "123456.789012345", repr(row[8]))
    check_row(c, "usage_minute 10:01 1 nano -> 0.000000001", USAGE_COLS,
              by.get((ts("10:01"),) + U_T1),
              use_row(ts("10:01"), U_T1, 1, 2, 3, Decimal("0.000000001"), 1, ts("10:02:05")))
    # UG: version 2 wins over the later-inserted, later-emitted version 0.
    check_row(c, "usage_minute 11:30 latest version wins over later insert", USAGE_COLS,
              by.get((ts("11:30"),) + U_T1),
              use_row(ts("11:30"), U_T1, 7, 70, 35, Decimal("2.5"), 2, ts("11:31:03")))

    r, by = select_all(query, "usage_hourly", USAGE_COLS, 5)
    c.check("usage_hourly row count", len(r) == 3, repr(r))
    # Hour 10, T1 = U0(v2) + U1 + UE: 16 requests, 1102, 553,
    # 123456789000000 + 12345 + 1 = 123456789012346 nanos; revision 2+1+1 = 4.
    check_row(c, "usage_hourly 10:00 (3 minute panes rolled up, revision 4)", USAGE_COLS,
              by.get((ts("10:00"),) + U_T1),
              use_row(ts("10:00"), U_T1, 16, 1102, 553, Decimal("123456.789012346"),
                      4, ts("10:02:05")))
    check_row(c, "usage_hourly 11:00 T2", USAGE_COLS, by.get((ts("11:00"),) + U_T2),
              use_row(ts("11:00"), U_T2, 3, 30, 0, Decimal("0.5"), 1, ts("11:31:04")))

    r, by = select_all(query, "usage_daily", USAGE_COLS, 5)
    c.check("usage_daily row count", len(r) == 2, repr(r))
    # Day, T1 = hour 10 + UG(v2): 23 requests, 1172, 588,
    # 123456789012346 + 2500000000 = 123459289012346 nanos; revision 4+2 = 6;
    # updated_at = UG v2's 11:31:03 (UG v0's 11:59:00 is stale).
    check_row(c, "usage_daily T1 (two hours rolled up, revision 6)", USAGE_COLS,
              by.get((ts("00:00"),) + U_T1),
              use_row(ts("00:00"), U_T1, 23, 1172, 588, Decimal("123459.289012346"),
                      6, ts("11:31:03")))
    r = rows(query, "SELECT toString(total_cost_usd) FROM %s.usage_minute "
                    "WHERE window_start = toDateTime('%s', 'UTC') AND tenant_id = 'T1'"
                    % (DB, ts("10:00")))
    c.check("usage cost toString exact", r == [["123456.789012345"]], repr(r))

    # --- top_models_daily ----------------------------------------------------
    check_describe(c, query, "top_models_daily", TOP_COLS, TOP_TYPES)
    top_sql = "SELECT %s FROM %s.top_models_daily ORDER BY window_start, model_id" % (
        ", ".join(TOP_COLS), DB)
    r = rows(query, top_sql)
    c.check("top_models_daily row count", len(r) == 2, repr(r))
    # claude-3: D3 only, no usage panes -> cost 0, requests 0
    check_row(c, "top_models_daily claude-3 (no usage -> 0)", TOP_COLS, r[0] if r else None,
              [ts("00:00"), "claude-3", "anthropic", 10, 0.0, 80.0, 80.0, 80.0,
               Decimal("0"), 0])
    # gpt-4o: K1 day (150 calls, 7 err) + C (1, 1) + D2 (50, 2) across
    # tenants/tools/parameter sets = 201 calls, 10 errors.
    # Centroids (cum): 50:20 (20) 60:10 (30) 75:1 (31) 100:20 (51) 150:20 (71)
    # 200:10 (81) 300:33+45 (159) 400:5 (164) 500:30 (194) 900:2 (196)
    # 1000:5 (201): p50 (>= 100.5) -> 300, p95 (>= 190.95) -> 500,
    # p99 (>= 198.99) -> 1000.
    # Usage of the day: T1 123459289012346 + T2 500000000 nanos
    # = 123459.789012346 USD, 23 + 3 = 26 requests.
    check_row(c, "top_models_daily gpt-4o (merged across tenants/tools, cost joined)",
              TOP_COLS, r[1] if len(r) > 1 else None,
              [ts("00:00"), "gpt-4o", "openai", 201, 10 / 201, 300.0, 500.0, 1000.0,
               Decimal("123459.789012346"), 26])

    # Analyst sessions may run with join_use_nulls = 1; the view must still
    # return the same non-Nullable result.  Both drivers take the setting
    # out of band (chdb: SELECT ... SETTINGS, which 18.16 lacks; HTTP: URL
    # parameter, which every version understands).
    r2 = rows(query, top_sql, settings={"join_use_nulls": "1"})
    c.check("top_models_daily unchanged with join_use_nulls = 1", r2 == r, repr(r2))

    # --- percentile helper sanity (documents the exact semantics) -----------
    r = rows(query, "SELECT quantilesExactWeightedArray(0.5, 0.95, 0.99)(m, w) FROM "
                    "(SELECT [1., 2., 3., 4.] AS m, [toUInt64(1), 1, 1, 1] AS w)")
    c.check("quantilesExactWeightedArray semantics", r == [["[2,4,4]"]], repr(r))

    # --- source_watermarks + window_status ----------------------------------
    check_describe(c, query, "source_watermarks", WATERMARK_COLS, WATERMARK_TYPES)
    check_describe(c, query, "window_status", WINDOW_COLS, WINDOW_TYPES)

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
    # 11:00); minute 11:30, hour 11 and the day are not.
    insert_watermarks(query, [("usage.events", 0, 0, "11:10")])
    check_window_status(c, query, "low 11:00", None, ts("11:00"),
                        minutes_10 + [("hour", ts("10:00"))])

    # Every key at 2025-01-16 00:00 -> everything is final, the day included.
    end_of_day = "2025-01-16 00:00:00"
    insert_watermarks(query, [(tp, sp, rp, end_of_day)
                              for tp, sp in (("latency.events", 0), ("latency.events", 1),
                                             ("usage.events", 0))
                              for rp in (0, 1)])
    all_final = [(g, s) for g, s, _, _ in WINDOWS]
    check_window_status(c, query, "low end of day", None, end_of_day, all_final)

    # --- restatement: a late pane in an already-populated (and final) minute
    insert_restatement(query)
    # latency R in minute 10:00, K1: 1 call, 1 error, rt 2000.
    #   minute 10:00: calls 100+1, err 2+1, max 2000, revision 3+1 = 4
    #   hour 10:      calls 120+1, err 4+1,           revision 7+1 = 8
    #   day:          calls 150+1, err 7+1,           revision 8+1 = 9
    # updated_at: 10:09:00 for minute and hour; the day keeps 11:31:02.
    rc = ["window_start", "call_count", "error_count", "max_response_time", "revision",
          "updated_at"]
    for view, start, want in (
            ("latency_minute", ts("10:00"), [101, 3, 2000.0, 4, ts("10:09:00")]),
            ("latency_hourly", ts("10:00"), [121, 5, 2000.0, 8, ts("10:09:00")]),
            ("latency_daily", ts("00:00"), [151, 8, 2000.0, 9, ts("11:31:02")])):
        r = rows(query, "SELECT %s FROM %s.%s WHERE window_start = toDateTime('%s', 'UTC') "
                        "AND tenant_id = 'T1' AND model_id = 'gpt-4o' AND parameter_hash = 'h1'"
                        % (", ".join(rc), DB, view, start))
        check_row(c, "%s restated by a new pane (revision up, counts changed)" % view, rc,
                  r[0] if len(r) == 1 else None, [start] + want)
    # usage UR in minute 10:01, T1: 2 requests, 20 in, 10 out, 1 USD.
    #   minute 10:01: 1+2 req, 2+20, 3+10, 0.000000001+1, revision 1+1 = 2
    #   hour 10:      16+2, 1102+20, 553+10, 123456.789012346+1, revision 4+1 = 5
    #   day:          23+2, 1172+20, 588+10, 123459.289012346+1, revision 6+1 = 7
    uc = ["window_start", "request_count", "total_input_tokens", "total_output_tokens",
          "total_cost_usd", "revision", "updated_at"]
    for view, start, want in (
            ("usage_minute", ts("10:01"), [3, 22, 13, Decimal("1.000000001"), 2, ts("10:09:30")]),
            ("usage_hourly", ts("10:00"), [18, 1122, 563, Decimal("123457.789012346"), 5,
                                           ts("10:09:30")]),
            ("usage_daily", ts("00:00"), [25, 1192, 598, Decimal("123460.289012346"), 7,
                                          ts("11:31:03")])):
        r = rows(query, "SELECT %s FROM %s.%s WHERE window_start = toDateTime('%s', 'UTC') "
                        "AND tenant_id = 'T1' AND feature = 'chat'"
                        % (", ".join(uc), DB, view, start))
        check_row(c, "%s restated by a new pane (revision up, counts changed)" % view, uc,
                  r[0] if len(r) == 1 else None, [start] + want)
    # window_status: R adds a pane to minute 10:00 (5 -> 6), UR to minute 10:01
    # (2 -> 3), so hour 10 has 10 and the day 14.  The windows stay final
    # (the watermark is past them); revision is what shows the restatement.
    restated = [("day", ts("00:00"), end_of_day, 14),
                ("hour", ts("10:00"), ts("11:00"), 10),
                ("hour", ts("11:00"), ts("12:00"), 4),
                ("minute", ts("10:00"), ts("10:01"), 6),
                ("minute", ts("10:01"), ts("10:02"), 3),
                ("minute", ts("10:02"), ts("10:03"), 1),
                ("minute", ts("11:30"), ts("11:31"), 4)]
    check_window_status(c, query, "after restatement", None, end_of_day, all_final,
                        windows=restated)

    # --- legacy hour/day panes (written before 0005) must be ignored --------
    # A database upgraded from 0003 still holds hour and day panes; no view
    # may count them (they would double what the minute panes already say).
    query("INSERT INTO %s.latency_panes VALUES %s" % (DB, _lat_pane(
        "LEGACY-H", 9, "10:00", K1, 0, 1000, 1000, 0, 1000, 1, 1, 0, 0, 0, 0,
        [1], [1000], "11:00:01", legacy=("hour", ts("11:00")))))
    query("INSERT INTO %s.usage_panes VALUES %s" % (DB, _use_pane(
        "LEGACY-D", 9, "00:00", U_T1, 0, 1000, 1, 1, 1, "23:59:59",
        legacy=("day", end_of_day))))
    # unchanged from the restatement checks above
    r = rows(query, "SELECT call_count, revision FROM %s.latency_hourly WHERE "
                    "window_start = toDateTime('%s', 'UTC') AND tenant_id = 'T1' AND "
                    "model_id = 'gpt-4o' AND parameter_hash = 'h1'" % (DB, ts("10:00")))
    c.check("latency_hourly ignores a legacy hour pane", r == [["121", "8"]], repr(r))
    r = rows(query, "SELECT request_count, revision FROM %s.usage_daily WHERE "
                    "tenant_id = 'T1' AND feature = 'chat'" % DB)
    c.check("usage_daily ignores a legacy day pane", r == [["25", "7"]], repr(r))
    check_window_status(c, query, "legacy panes ignored", None, end_of_day, all_final,
                        windows=restated)

    # --- TTL (only where 0004 applies) --------------------------------------
    for t in ("latency_events", "usage_events"):
        ddl = query("SHOW CREATE TABLE %s.%s" % (DB, t))
        has_ttl = "TTL occurred_at + toIntervalDay(30)" in ddl
        if modern:
            c.check("%s has TTL" % t, has_ttl, ddl)
        else:
            c.check("%s has no TTL (file skipped)" % t, not has_ttl, ddl)
    return c


# --------------------------------------------------------------------------
# drivers
# --------------------------------------------------------------------------

def chdb_driver():
    import chdb
    from chdb import session

    sess = session.Session()

    def query(sql, settings=None):
        if settings:
            sql = "%s SETTINGS %s" % (sql, ", ".join(
                "%s = %s" % (k, v) for k, v in sorted(settings.items())))
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
    global DB
    args = sys.argv[1:]
    url = None
    if "--http" in args:
        i = args.index("--http")
        if i + 1 >= len(args):
            args = []
        else:
            url = args[i + 1]
            del args[i:i + 2]
    if len(args) != 1:
        print("usage: %s SCHEMA_DIR [--http http://HOST:8123]" % sys.argv[0], file=sys.stderr)
        return 2
    schema_dir = args[0]

    if url:
        DB = "centile_chk_%d" % os.getpid()
        query, close, label = http_driver(url)
    else:
        query, close, label = chdb_driver()

    c = Checker()
    created = False
    try:
        version = query("SELECT version()").strip()
        print("%s, engine %s, database %s" % (label, version, DB))
        server_version = parse_version(version)
        query("DROP DATABASE IF EXISTS %s" % DB)
        query("CREATE DATABASE %s" % DB)
        created = True
        for i in (1, 2):
            a, s = apply_migrations(query, schema_dir, server_version)
            print("migration pass %d: %d files applied, %d skipped" % (i, a, s))
        insert_data(query)
        run_checks(query, server_version, c)
    except Exception as e:  # any SQL error is a failure
        c.check("exception", False, str(e))
    finally:
        if created and url:
            try:
                query("DROP DATABASE IF EXISTS %s" % DB)
            except Exception as e:
                c.check("drop database %s" % DB, False, str(e))
        close()
    print("%d passed, %d failed" % (c.passed, c.failed))
    return 0 if c.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
