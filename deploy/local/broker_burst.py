#!/usr/bin/env python3
"""Bursts of Centile latency events from a stock idempotent producer.

Reproduces what broke the local broker (issue 9): a stock Kafka client
(Python confluent-kafka, `enable.idempotence=true`, lz4) publishing a burst
of 150k events into topics that were created moments before, and topics
being deleted while another burst is in flight. Nothing here uses Centile
code: events are encoded with fastavro in the Avro single-object layout
(`C3 01` + the CRC-64-AVRO fingerprint bytes as fastavro gives them), the
way any application would.

Each burst:
  1. creates fresh topics (or waits for `--topic-prefix`'s topics created by
     the services, with --wait-for-topic),
  2. produces --events messages and waits for every acknowledgement,
  3. checks that the topic's log-end offsets add up to what was acknowledged,
  4. checks that the broker still answers a metadata request within 5 s,
  5. optionally deletes the previous burst's topics while the next one runs.

Prints one JSON line per burst and a summary; exits non-zero on the first
failed burst (lost acknowledgements, a delivery error, an unresponsive
broker, or a panic line in --broker-log).

Usage:
  broker_burst.py --brokers 127.0.0.1:9092 --bursts 10 --events 150000
"""

import argparse
import io
import json
import os
import random
import sys
import threading
import time
import uuid

import fastavro
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from fastavro.schema import fingerprint, load_schema, to_parsing_canonical_form

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = [("gpt-4o", "openai"), ("claude-3-5-sonnet", "anthropic"), ("gemini-1.5-pro", "google"),
          ("llama-3.1-70b", "meta"), ("mistral-large", "mistral")]
TOOLS = ["chat", "search", "code", "summarize"]


def encoder():
    schema = load_schema(os.path.join(REPO, "schemas/avro/latency_event.avsc"))
    header = b"\xc3\x01" + bytes.fromhex(
        fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))

    def encode(event):
        body = io.BytesIO()
        fastavro.schemaless_writer(body, schema, event)
        return header + body.getvalue()
    return encode


def events(n, seed):
    rng = random.Random(seed)
    now_ms = int(time.time() * 1000)
    for i in range(n):
        model, provider = rng.choice(MODELS)
        tenant = f"tenant-{rng.randrange(20)}"
        yield f"{tenant}/{model}", {
            "event_id": f"burst-{seed}-{i}",
            "occurred_at": now_ms - rng.randrange(120_000),
            "tenant_id": tenant, "model_id": model, "provider": provider,
            "tool": rng.choice(TOOLS), "parameters": {"streaming": rng.choice(["true", "false"])},
            "response_time_ms": rng.lognormvariate(6.0, 0.8), "success": rng.random() > 0.02,
            "error_type": None, "input_tokens": rng.randrange(10, 4000),
            "output_tokens": rng.randrange(1, 1000),
        }


def broker_answers(admin, timeout=5.0):
    try:
        admin.list_topics(timeout=timeout)
        return True
    except Exception:  # noqa: BLE001 - any failure means "did not answer"
        return False


def log_end_total(brokers, topic, partitions):
    c = Consumer({"bootstrap.servers": brokers, "group.id": f"burst-check-{uuid.uuid4()}",
                  "enable.auto.commit": False})
    try:
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in range(partitions))
    finally:
        c.close()


def panics_in(log_path, since):
    if not log_path or not os.path.exists(log_path):
        return []
    with open(log_path, "rb") as f:
        f.seek(since)
        text = f.read().decode("utf-8", "replace")
    return [line for line in text.splitlines() if "panicked" in line]


def create_topics(admin, topics, partitions):
    futures = admin.create_topics([NewTopic(t, partitions, 1) for t in topics])
    for topic, future in futures.items():
        future.result(timeout=30)


def delete_topics_async(admin, topics):
    """Deletes while the next burst produces: the deletion-under-load case."""
    def run():
        for topic, future in admin.delete_topics(topics, operation_timeout=30).items():
            try:
                future.result(timeout=60)
            except Exception as e:  # reported, and the broker check decides
                print(json.dumps({"delete_error": topic, "reason": str(e)}), flush=True)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def burst(args, admin, encode, index, topic):
    errors = []
    acked = [0]

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(str(err))
        else:
            acked[0] += 1

    producer = Producer({
        "bootstrap.servers": args.brokers, "enable.idempotence": True, "acks": "all",
        "compression.type": "lz4", "linger.ms": 5,
        "message.timeout.ms": int(args.timeout * 1000),
        "queue.buffering.max.messages": 1_000_000,
    })
    start = time.monotonic()
    for key, event in events(args.events, seed=index):
        while True:
            try:
                producer.produce(topic, encode(event), key.encode(), on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(args.timeout)
    seconds = time.monotonic() - start
    return {"acked": acked[0], "unacked": remaining, "errors": errors[:3],
            "error_count": len(errors), "seconds": round(seconds, 2),
            "events_per_s": round(args.events / seconds) if seconds else None}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--brokers", default="127.0.0.1:9092")
    p.add_argument("--bursts", type=int, default=10)
    p.add_argument("--events", type=int, default=150_000)
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for acks")
    p.add_argument("--topic-prefix", default=f"burst-{uuid.uuid4().hex[:8]}")
    p.add_argument("--topic-from-env", action="store_true",
                   help="burst into $CENTILE_TOPIC_LATENCY (created by the running services)")
    p.add_argument("--delete-previous", action="store_true",
                   help="delete the previous burst's topics while the next burst runs")
    p.add_argument("--broker-log", help="Tansu's log file, scanned for panics")
    args = p.parse_args()

    admin = AdminClient({"bootstrap.servers": args.brokers})
    encode = encoder()
    previous, deleter, failed = [], None, False
    log_offset = os.path.getsize(args.broker_log) if args.broker_log and os.path.exists(args.broker_log) else 0
    results = []
    for i in range(1, args.bursts + 1):
        if args.topic_from_env:
            topic = os.environ["CENTILE_TOPIC_LATENCY"]
            own = []
        else:
            topic = f"{args.topic_prefix}-{i}.latency"
            own = [topic, f"{args.topic_prefix}-{i}.usage"]
            create_topics(admin, own, args.partitions)
        if args.delete_previous and previous:
            deleter = delete_topics_async(admin, previous)
        result = burst(args, admin, encode, i, topic)
        if deleter:
            deleter.join(60)
        result["burst"] = i
        result["topic"] = topic
        result["log_end"] = log_end_total(args.brokers, topic, args.partitions) if not args.topic_from_env else None
        result["broker_answers"] = broker_answers(admin)
        result["panics"] = panics_in(args.broker_log, log_offset)[:3]
        ok = (result["acked"] == args.events and result["error_count"] == 0
              and result["broker_answers"] and not result["panics"]
              and (result["log_end"] is None or result["log_end"] == args.events))
        result["ok"] = ok
        print(json.dumps(result), flush=True)
        results.append(result)
        if not ok:
            failed = True
            break
        previous = own
    rates = sorted(r["events_per_s"] for r in results if r["events_per_s"])
    print(json.dumps({"summary": True, "bursts_ok": sum(r["ok"] for r in results),
                      "bursts": args.bursts, "events_per_burst": args.events,
                      "median_events_per_s": rates[len(rates) // 2] if rates else None}), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
