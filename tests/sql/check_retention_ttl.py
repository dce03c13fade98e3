#!/usr/bin/env python3
"""Retention TTLs on a modern ClickHouse (PyPI `chdb`, in-process).

Usage: check_retention_ttl.py CENTILE_SINK_BIN TTLS PLACEMENTS
  TTLS        `table=ttl expression;...` (empty expression: kept forever),
              exactly what the sink sets (centile_sink::retention::policies)
  PLACEMENTS  `table:column:young:old;...` Unix seconds of a row just younger
              than the table's tier and of one well past it

Applies the schema the sink generates (`centile-sink schema-sql`), inserts
both rows into every table, sets each TTL the way the sink does
(materialize_ttl_after_modify = 0), forces a merge, and checks that the young
row stays everywhere and the old row is gone exactly where a TTL is set.
Prints `ttl ok` on success; exit status 1 on any failure.
"""

import os
import subprocess
import sys
import tempfile

DB = "centile_ttl"


# The migrator's statement splitter, shared with the schema checks.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_modern_clickhouse import split_statements as statements  # noqa: E402


def main():
    sink, ttl_spec, place_spec = sys.argv[1:4]
    from chdb import session as chs

    work = tempfile.mkdtemp(prefix="centile-ttl-")
    sql_dir = os.path.join(work, "sql")
    subprocess.run([sink, "schema-sql", sql_dir], check=True)
    sess = chs.Session(os.path.join(work, "db"))
    q = lambda s: sess.query(s, "TSV").bytes().decode()
    q(f"CREATE DATABASE IF NOT EXISTS {DB}")
    for name in sorted(os.listdir(sql_dir)):
        text = open(os.path.join(sql_dir, name)).read()
        text = text.replace("${database}", DB).replace("${raw_retention_days}", "7")
        for st in statements(text):
            q(st)

    ttls = dict(item.split("=", 1) for item in ttl_spec.split(";") if item)
    failures = 0
    for item in place_spec.split(";"):
        table, column, young, old = item.split(":")
        for at in (young, old):
            q(f"INSERT INTO {DB}.{table} ({column}) VALUES (toDateTime({at}, 'UTC'))")
        ttl = ttls[table]
        if ttl:
            q(f"ALTER TABLE {DB}.{table} MODIFY TTL {ttl} SETTINGS materialize_ttl_after_modify = 0")
        q(f"OPTIMIZE TABLE {DB}.{table} FINAL")
        kept = q(f"SELECT toUInt32({column}) FROM {DB}.{table} ORDER BY 1").split()
        expected = [young] if ttl else sorted([young, old])
        status = "ok  " if kept == expected else "FAIL"
        failures += kept != expected
        print(f"{status} {table}: kept {kept}, expected {expected} (TTL {ttl or 'none'})")
    if failures:
        print(f"{failures} tables wrong")
        sys.exit(1)
    print("ttl ok")


if __name__ == "__main__":
    main()
