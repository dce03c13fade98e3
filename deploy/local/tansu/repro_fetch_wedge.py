#!/usr/bin/env python3
"""Reproduces the Tansu 0.6.0 sqlite fetch wedge, for an upstream report.

Tansu's `record_fetch.sql` computes a running byte total as a window over
every record from the fetch offset up to the high watermark, keys and
values included, and only then keeps the rows under max_bytes. One fetch
therefore costs the partition's whole backlog, and draining a backlog of N
records costs O(N^2): a consumer that starts far behind (a new consumer
group on an old topic, a service catching up after a burst) pins the
broker at a full core, and every other request waits behind it.

For each size, this starts a fresh broker (sqlite storage, own directory,
free port), produces N records of --size bytes into a one-partition topic,
then drains it with one consumer from the earliest offset while a second
thread times Metadata requests (what `stack status` and every client
sends). Linear growth means drain time grows like N; the bug shows as
~4x drain time per 2x records and metadata requests stalling.

Usage: repro_fetch_wedge.py [--tansu BIN] [--sizes 50000,100000,200000]
Needs: python3 with confluent-kafka.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from broker_probe import probe  # noqa: E402  (the stack's own metadata probe)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(tansu, workdir, port):
    url = f"tcp://127.0.0.1:{port}"
    log = open(os.path.join(workdir, "tansu.log"), "ab")
    proc = subprocess.Popen(
        [tansu, "broker", "--cluster-id", "repro", "--listener-url", url,
         "--advertised-listener-url", url, "--storage-engine", "sqlite://tansu.db"],
        cwd=workdir, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        env={**os.environ, "RUST_LOG": "warn"})
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            probe("127.0.0.1", port, 2)
            return proc
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("broker did not start")


def run(tansu, n, size):
    workdir = tempfile.mkdtemp(prefix="tansu-wedge-")
    port = free_port()
    brokers = f"127.0.0.1:{port}"
    proc = start_broker(tansu, workdir, port)
    try:
        admin = AdminClient({"bootstrap.servers": brokers})
        for f in admin.create_topics([NewTopic("wedge", 1, 1)]).values():
            f.result(30)
        producer = Producer({"bootstrap.servers": brokers, "linger.ms": 20,
                             "compression.type": "lz4", "queue.buffering.max.messages": 1_000_000})
        value = os.urandom(size // 2).hex().encode()[:size]
        for i in range(n):
            while True:
                try:
                    producer.produce("wedge", value, str(i).encode())
                    break
                except BufferError:
                    producer.poll(0.05)
        assert producer.flush(300) == 0, "not every record was acknowledged"

        stalls, stop = [], threading.Event()

        def sample():
            while not stop.is_set():
                t = time.monotonic()
                try:
                    probe("127.0.0.1", port, 30)
                except Exception:  # noqa: BLE001 - a failed probe counts as its full wait
                    pass
                stalls.append(time.monotonic() - t)
                stop.wait(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        consumer = Consumer({"bootstrap.servers": brokers, "group.id": "wedge",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False,
                             "fetch.max.bytes": 1_048_576})
        consumer.subscribe(["wedge"])
        start, got = time.monotonic(), 0
        while got < n and time.monotonic() - start < 900:
            got += sum(1 for m in consumer.consume(10_000, 1.0) if not m.error())
        drain = time.monotonic() - start
        stop.set()
        sampler.join()
        consumer.close()
        return {"records": n, "consumed": got, "drain_s": round(drain, 2),
                "records_per_s": round(got / drain), "metadata_max_s": round(max(stalls), 2),
                "metadata_median_s": round(sorted(stalls)[len(stalls) // 2], 3)}
    finally:
        proc.terminate()
        proc.wait(20)
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tansu", default=shutil.which("tansu") or os.path.expanduser("~/.cargo/bin/tansu"))
    p.add_argument("--sizes", default="50000,100000,200000")
    p.add_argument("--size", type=int, default=200, help="bytes per record value")
    args = p.parse_args()
    print(f"tansu: {args.tansu}", flush=True)
    for n in (int(x) for x in args.sizes.split(",")):
        print(run(args.tansu, n, args.size), flush=True)


if __name__ == "__main__":
    main()
