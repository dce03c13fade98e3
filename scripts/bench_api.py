#!/usr/bin/env python3
"""The API benchmark's history (scripts/bench-api): loads, or reuses, the
query benchmark's 30-day history (scripts/bench_queries.py: the same
generator, schema and compaction, one loader) into a database on a
ClickHouse server over HTTP, and prints the history's end (Unix seconds,
exclusive) on stdout.

Loaded data is reused when it was generated with the same --days, --calls
and --usage-ratio, and ends today or yesterday (UTC): older history would
leave `/v1/usage/top-models?days=30` and `/v1/windows/status`, which count
back from now, short of data. --reload always reloads.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_queries as bq  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--database", default="centile_bench")
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--calls", type=lambda s: int(s.replace("_", "")), default=10_000_000)
    ap.add_argument("--usage-ratio", type=float, default=0.2)
    ap.add_argument("--reload", action="store_true")
    ap.add_argument("--sink-bin", default="target/release/centile-sink")
    args = ap.parse_args()
    if args.days < 1 or args.calls < args.days:
        ap.error("need --days >= 1 and --calls >= --days")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    # The settings bench_queries loads with (its HTTP engine's defaults).
    engine = bq.Http(args.url, {"enable_optimize_predicate_expression": "1"})
    today = (int(time.time()) // bq.DAY) * bq.DAY
    meta = bq.read_meta(engine, args.database)
    args.reuse = not args.reload and int(meta.get("end", 0)) >= today - bq.DAY
    if meta and not args.reload and not args.reuse:
        log("%s: the loaded history ends %s, more than a day ago: reloading" % (
            args.database, time.strftime("%Y-%m-%d", time.gmtime(int(meta["end"])))))
    end, _ = bq.ensure_loaded(engine, args, log)
    print(end)
    return 0


if __name__ == "__main__":
    sys.exit(main())
