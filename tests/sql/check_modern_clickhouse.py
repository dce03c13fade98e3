#!/usr/bin/env python3
"""Apply schemas/clickhouse/*.sql to an in-process modern ClickHouse (chdb)
and check every analyst view against hand-made rows.

Usage: python3 tests/sql/check_modern_clickhouse.py schemas/clickhouse

The migration logic mirrors the Rust migrator:
  * ${database} -> centile_chk, ${raw_retention_days} -> 30
  * a first line `-- centile:min-server-version X.Y` skips the file on servers
    older than X.Y
  * statements end at a line whose last non-blank character is `;`; chunks
    that hold only comments/whitespace are skipped
Everything is applied twice to prove idempotency.

The data/assertion part (run_checks) takes a plain `query(sql) -> str (TSV)`
callable so the same checks can be driven against a real server over HTTP
(this is how the 18.16 run was done).
"""

import datetime as dt
import os
import re
import sys
from decimal import Decimal

DB = "centile_chk"
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
            out.append(s)
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

def _yesterday_noon():
    d = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    return "%s 12:00:00" % d.isoformat()


def _lat_pane(pane_id, version, gran, ws, we, tenant, model, provider, tool, phash,
              params, part, calls, succ, errs, rt_sum, rt_min, rt_max,
              in_sum, in_cnt, out_sum, out_cnt, means, weights):
    return ("('%s', %d, '%s', '%s', '%s', '%s', '%s', '%s', '%s', '%s', '%s', "
            "'latency.events', %d, 0, 99, 1, 0, %d, %d, %d, %r, %r, %r, %d, %d, %d, %d, "
            "[%s], [%s], '2025-01-15 12:00:00')" % (
                pane_id, version, gran, ws, we, tenant, model, provider, tool, phash,
                params, part, calls, succ, errs, float(rt_sum), float(rt_min), float(rt_max),
                in_sum, in_cnt, out_sum, out_cnt,
                ", ".join(repr(float(m)) for m in means),
                ", ".join(str(int(w)) for w in weights)))


def _use_pane(pane_id, version, gran, ws, we, tenant, model, provider, feature, part,
              requests, in_sum, out_sum, cost_nanos):
    return ("('%s', %d, '%s', '%s', '%s', '%s', '%s', '%s', '%s', 'usage.events', %d, "
            "0, 99, 1, 0, %d, %d, %d, %d, '2025-01-15 12:00:00')" % (
                pane_id, version, gran, ws, we, tenant, model, provider, feature, part,
                requests, in_sum, out_sum, cost_nanos))


M0, M1 = "2025-01-15 10:00:00", "2025-01-15 10:01:00"
H0, H1 = "2025-01-15 10:00:00", "2025-01-15 11:00:00"
D0, D1 = "2025-01-15 00:00:00", "2025-01-16 00:00:00"
P1 = '{"temperature":0.2}'
P2 = '{"temperature":0.9}'


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

    lp = "INSERT INTO %s.latency_panes VALUES " % DB
    # minute window 10:00, dims T1/gpt-4o/openai/chat/h1: two panes (Kafka
    # partitions 0 and 1) that must be summed; pane A has two versions.
    a_v2 = _lat_pane("A", 2, "minute", M0, M1, "T1", "gpt-4o", "openai", "chat", "h1", P1, 0,
                     50, 48, 2, 5000, 40, 250, 1000, 4, 400, 4,
                     [50, 100, 200], [20, 20, 10])
    a_v1 = _lat_pane("A", 1, "minute", M0, M1, "T1", "gpt-4o", "openai", "chat", "h1", P1, 0,
                     7, 1, 6, 9999, 1, 5000, 77777, 7, 77777, 7,
                     [1, 5000], [3, 4])
    b_v1 = _lat_pane("B", 1, "minute", M0, M1, "T1", "gpt-4o", "openai", "chat", "h1", P1, 1,
                     50, 50, 0, 13700, 120, 950, 600, 3, 300, 3,
                     [150, 300, 400, 900], [20, 23, 5, 2])
    # same window, other parameter set: separate row, no token reports
    c_v1 = _lat_pane("C", 1, "minute", M0, M1, "T1", "gpt-4o", "openai", "chat", "h2", P2, 0,
                     1, 0, 1, 75, 75, 75, 0, 0, 0, 0, [75], [1])
    # hour pane
    h_v1 = _lat_pane("H", 1, "hour", H0, H1, "T1", "gpt-4o", "openai", "chat", "h1", P1, 0,
                     4, 4, 0, 60, 10, 20, 8, 2, 4, 2, [10, 20], [2, 2])
    # day panes: gpt-4o over two tenants/tools; claude-3 without usage
    d1_v1 = _lat_pane("D1", 1, "day", D0, D1, "T1", "gpt-4o", "openai", "chat", "h1", P1, 0,
                      1, 1, 0, 1, 1, 1, 0, 0, 0, 0, [99999], [1000])
    d1_v3 = _lat_pane("D1", 3, "day", D0, D1, "T1", "gpt-4o", "openai", "chat", "h1", P1, 0,
                      100, 97, 3, 14000, 90, 210, 0, 0, 0, 0, [100, 200], [60, 40])
    d2_v1 = _lat_pane("D2", 1, "day", D0, D1, "T2", "gpt-4o", "openai", "embed", "h3", "{}", 1,
                      50, 48, 2, 18500, 250, 1100, 0, 0, 0, 0, [300, 1000], [45, 5])
    d3_v1 = _lat_pane("D3", 1, "day", D0, D1, "T1", "claude-3", "anthropic", "chat", "h1", P1, 0,
                      10, 10, 0, 800, 70, 90, 0, 0, 0, 0, [80], [10])
    # newest version first, stale versions in later inserts: version, not
    # insertion order, must win.
    query(lp + ", ".join([a_v2, b_v1, c_v1, h_v1, d1_v3, d2_v1, d3_v1]))
    query(lp + a_v1)
    query(lp + d1_v1)

    up = "INSERT INTO %s.usage_panes VALUES " % DB
    p0_v2 = _use_pane("U0", 2, "minute", M0, M1, "T1", "gpt-4o", "openai", "chat", 0,
                      10, 1000, 500, 123456789000000)
    p0_v1 = _use_pane("U0", 1, "minute", M0, M1, "T1", "gpt-4o", "openai", "chat", 0,
                      3, 3, 3, 999999999999)
    p1_v1 = _use_pane("U1", 1, "minute", M0, M1, "T1", "gpt-4o", "openai", "chat", 1,
                      5, 100, 50, 12345)
    uh = _use_pane("UH", 1, "hour", H0, H1, "T1", "gpt-4o", "openai", "chat", 0, 1, 2, 3, 1)
    ud1 = _use_pane("UD1", 1, "day", D0, D1, "T1", "gpt-4o", "openai", "chat", 0,
                    7, 70, 35, 2500000000)
    ud1_v0 = _use_pane("UD1", 0, "day", D0, D1, "T1", "gpt-4o", "openai", "chat", 0,
                       1000, 1, 1, 1)
    ud2 = _use_pane("UD2", 1, "day", D0, D1, "T2", "gpt-4o", "openai", "embed", 1,
                    3, 30, 0, 500000000)
    query(up + ", ".join([p0_v2, p1_v1, uh, ud1, ud2]))
    query(up + p0_v1)
    query(up + ud1_v0)


# --------------------------------------------------------------------------
# assertions
# --------------------------------------------------------------------------

LATENCY_COLS = ["window_start", "tenant_id", "model_id", "provider", "tool", "parameter_hash",
                "parameters", "call_count", "success_count", "error_count", "success_rate",
                "avg_response_time", "min_response_time", "max_response_time",
                "p50_response_time", "p95_response_time", "p99_response_time",
                "avg_input_tokens", "avg_output_tokens", "total_input_tokens",
                "total_output_tokens"]
USAGE_COLS = ["window_start", "tenant_id", "model_id", "provider", "feature", "request_count",
              "total_input_tokens", "total_output_tokens", "total_cost_usd"]
TOP_COLS = ["window_start", "model_id", "provider", "call_count", "error_rate",
            "p50_response_time", "p95_response_time", "p99_response_time",
            "total_cost_usd", "request_count"]
LATENCY_TYPES = {"window_start": "DateTime('UTC')", "call_count": "UInt64",
                 "success_rate": "Float64", "p50_response_time": "Float64",
                 "p99_response_time": "Float64", "avg_input_tokens": "Float64",
                 "total_input_tokens": "Int64"}
USAGE_TYPES = {"window_start": "DateTime('UTC')", "request_count": "UInt64",
               "total_cost_usd": "Decimal(18, 9)", "total_input_tokens": "Int64"}
TOP_TYPES = {"call_count": "UInt64", "error_rate": "Float64",
             "total_cost_usd": "Decimal(18, 9)", "request_count": "UInt64"}


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


def rows(query, sql):
    out = query(sql)
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
    c.check(name, not bad and len(actual) == len(expected), "; ".join(bad))


def check_describe(c, query, view, cols, types):
    desc = rows(query, "DESCRIBE TABLE %s.%s" % (DB, view))
    names = [d[0] for d in desc]
    c.check("%s columns" % view, names == cols, "got %r" % names)
    got = {d[0]: unescape_tsv(d[1]) for d in desc}
    bad = ["%s=%s (want %s)" % (k, got.get(k), v) for k, v in types.items() if got.get(k) != v]
    c.check("%s column types" % view, not bad, "; ".join(bad))


def run_checks(query, server_version):
    c = Checker()
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
    sel = "SELECT %s FROM %s.%%s ORDER BY window_start, tenant_id, model_id, parameter_hash" % (
        ", ".join(LATENCY_COLS), DB)

    r = rows(query, sel % "latency_minute")
    c.check("latency_minute row count (panes summed, dims kept apart)", len(r) == 2, repr(r))
    # A(v2) + B summed; A(v1) ignored.  Centroids 50:20 100:20 150:20 200:10
    # 300:23 400:5 900:2 (total 100) -> p50=150, p95=400, p99=900.
    check_row(c, "latency_minute h1 (2 panes summed, latest version)", LATENCY_COLS,
              r[0] if r else None,
              [M0, "T1", "gpt-4o", "openai", "chat", "h1", P1,
               100, 98, 2, 0.98, 187.0, 40.0, 950.0, 150.0, 400.0, 900.0,
               1600 / 7, 100.0, 1600, 700])
    check_row(c, "latency_minute h2 (no token reports -> avg 0)", LATENCY_COLS,
              r[1] if len(r) > 1 else None,
              [M0, "T1", "gpt-4o", "openai", "chat", "h2", P2,
               1, 0, 1, 0.0, 75.0, 75.0, 75.0, 75.0, 75.0, 75.0, 0.0, 0.0, 0, 0])

    r = rows(query, sel % "latency_hourly")
    c.check("latency_hourly row count", len(r) == 1, repr(r))
    check_row(c, "latency_hourly values", LATENCY_COLS, r[0] if r else None,
              [H0, "T1", "gpt-4o", "openai", "chat", "h1", P1,
               4, 4, 0, 1.0, 15.0, 10.0, 20.0, 10.0, 20.0, 20.0, 4.0, 2.0, 8, 4])

    r = rows(query, sel % "latency_daily")
    c.check("latency_daily row count", len(r) == 3, repr(r))
    by_key = {(x[1], x[2]): x for x in r}
    check_row(c, "latency_daily T1/gpt-4o (latest of 2 versions)", LATENCY_COLS,
              by_key.get(("T1", "gpt-4o")),
              [D0, "T1", "gpt-4o", "openai", "chat", "h1", P1,
               100, 97, 3, 0.97, 140.0, 90.0, 210.0, 100.0, 200.0, 200.0, 0.0, 0.0, 0, 0])

    # --- usage views ---------------------------------------------------------
    for view in ("usage_minute", "usage_hourly", "usage_daily"):
        check_describe(c, query, view, USAGE_COLS, USAGE_TYPES)
    usel = "SELECT %s FROM %s.%%s ORDER BY window_start, tenant_id, model_id, feature" % (
        ", ".join(USAGE_COLS), DB)
    r = rows(query, usel % "usage_minute")
    c.check("usage_minute row count", len(r) == 1, repr(r))
    check_row(c, "usage_minute summed, latest version, exact decimal cost", USAGE_COLS,
              r[0] if r else None,
              [M0, "T1", "gpt-4o", "openai", "chat", 15, 1100, 550,
               Decimal("123456.789012345")])
    if r:
        c.check("usage_minute cost text exact", r[0][8] == "123456.789012345", repr(r[0][8]))
    r = rows(query, usel % "usage_hourly")
    check_row(c, "usage_hourly 1 nano -> 0.000000001", USAGE_COLS, r[0] if r else None,
              [H0, "T1", "gpt-4o", "openai", "chat", 1, 2, 3, Decimal("0.000000001")])
    r = rows(query, usel % "usage_daily")
    c.check("usage_daily row count", len(r) == 2, repr(r))
    check_row(c, "usage_daily T1 latest version", USAGE_COLS, r[0] if r else None,
              [D0, "T1", "gpt-4o", "openai", "chat", 7, 70, 35, Decimal("2.5")])
    r = rows(query, "SELECT toString(total_cost_usd) FROM %s.usage_minute" % DB)
    c.check("usage cost toString exact", r == [["123456.789012345"]], repr(r))

    # --- top_models_daily ----------------------------------------------------
    check_describe(c, query, "top_models_daily", TOP_COLS, TOP_TYPES)
    r = rows(query, "SELECT %s FROM %s.top_models_daily ORDER BY window_start, model_id" % (
        ", ".join(TOP_COLS), DB))
    c.check("top_models_daily row count", len(r) == 2, repr(r))
    # claude-3: no usage panes -> cost 0, requests 0
    check_row(c, "top_models_daily claude-3 (no usage -> 0)", TOP_COLS, r[0] if r else None,
              [D0, "claude-3", "anthropic", 10, 0.0, 80.0, 80.0, 80.0, Decimal("0"), 0])
    # gpt-4o: D1(v3) + D2 across tenants/tools. Centroids 100:60 200:40
    # 300:45 1000:5 (total 150) -> p50=200, p95=300, p99=1000.
    check_row(c, "top_models_daily gpt-4o (merged across tenants/tools, cost joined)",
              TOP_COLS, r[1] if len(r) > 1 else None,
              [D0, "gpt-4o", "openai", 150, 5 / 150, 200.0, 300.0, 1000.0, Decimal("3"), 10])

    # Analyst sessions may run with join_use_nulls = 1; the view must still
    # return the same non-Nullable result (18.16 has no SELECT ... SETTINGS;
    # there the HTTP driver passes the setting as a URL parameter instead).
    if version_at_least(server_version, (20, 1)):
        r2 = rows(query, "SELECT %s FROM %s.top_models_daily ORDER BY window_start, model_id "
                         "SETTINGS join_use_nulls = 1" % (", ".join(TOP_COLS), DB))
        c.check("top_models_daily unchanged with join_use_nulls = 1", r2 == r, repr(r2))

    # --- percentile helper sanity (documents the exact semantics) -----------
    r = rows(query, "SELECT quantilesExactWeightedArray(0.5, 0.95, 0.99)(m, w) FROM "
                    "(SELECT [1., 2., 3., 4.] AS m, [toUInt64(1), 1, 1, 1] AS w)")
    c.check("quantilesExactWeightedArray semantics", r == [["[2,4,4]"]], repr(r))

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

def main():
    if len(sys.argv) != 2:
        print("usage: %s SCHEMA_DIR" % sys.argv[0], file=sys.stderr)
        return 2
    schema_dir = sys.argv[1]
    import chdb
    from chdb import session

    sess = session.Session()

    def query(sql):
        res = sess.query(sql, "TSV")
        return res.bytes().decode("utf-8") if hasattr(res, "bytes") else str(res)

    version = query("SELECT version()").strip()
    print("chdb %s, engine %s" % (getattr(chdb, "__version__", "?"), version))
    server_version = parse_version(version)
    try:
        query("DROP DATABASE IF EXISTS %s" % DB)
        query("CREATE DATABASE %s" % DB)
        for i in (1, 2):
            a, s = apply_migrations(query, schema_dir, server_version)
            print("migration pass %d: %d files applied, %d skipped" % (i, a, s))
        insert_data(query)
        c = run_checks(query, server_version)
    except Exception as e:  # any SQL error is a failure
        print("FAIL exception: %s" % e)
        print("0 passed, 1 failed")
        return 1
    finally:
        try:
            sess.close()
        except Exception:
            pass
    print("%d passed, %d failed" % (c.passed, c.failed))
    return 0 if c.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
