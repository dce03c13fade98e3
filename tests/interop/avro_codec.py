#!/usr/bin/env python3
"""Avro single-object messages written and read by implementations other
than Centile's, for the interoperability tests (crates/events/tests/
avro_interop.rs and tests/avro_interop_e2e.rs).

fastavro and Apache's `avro` package compute every fingerprint here; nothing
is taken from Centile. Commands read JSON on stdin and print JSON on stdout:

  fingerprints              {kind: {"canonical": str, "fingerprint": hex}} of
                            the bundled schemas, by fastavro
  encode                    {"kind": k, "records": [...]} -> [hex message]
                            written by fastavro (timestamps as epoch millis)
  decode                    [hex message] -> [{"kind": k, "record": {...}}]:
                            the header must be C3 01 + fastavro's fingerprint
                            of a bundled schema, the datum is read by
                            fastavro's schemaless_reader and must be whole
  apache-fingerprint        {"avsc": str} -> {"fingerprint": hex,
                            "canonical": str} by Apache avro
  apache-encode             {"avsc": str, "records": [...]} -> [hex message]
                            written by Apache avro's DatumWriter
"""

import datetime
import io
import json
import pathlib
import sys

import fastavro
from fastavro.schema import fingerprint, load_schema, to_parsing_canonical_form

ROOT = pathlib.Path(__file__).resolve().parents[2]
KINDS = ["latency_event", "usage_event", "latency_pane", "usage_pane", "watermark"]
MAGIC = b"\xc3\x01"
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def schema(kind):
    return load_schema(str(ROOT / "schemas" / "avro" / f"{kind}.avsc"))


def fastavro_fingerprint(parsed):
    """The 8 header bytes, exactly as fastavro's documentation builds them."""
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


def to_millis(value):
    if isinstance(value, datetime.datetime):
        return (value - EPOCH) // datetime.timedelta(milliseconds=1)
    if isinstance(value, dict):
        return {k: to_millis(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_millis(v) for v in value]
    return value


def fingerprints(_):
    out = {}
    for kind in KINDS:
        parsed = schema(kind)
        out[kind] = {
            "canonical": to_parsing_canonical_form(parsed),
            "fingerprint": fastavro_fingerprint(parsed).hex(),
        }
    return out


def encode(request):
    parsed = schema(request["kind"])
    header = MAGIC + fastavro_fingerprint(parsed)
    out = []
    for record in request["records"]:
        body = io.BytesIO()
        fastavro.schemaless_writer(body, parsed, record)
        out.append((header + body.getvalue()).hex())
    return out


def decode(messages):
    known = {}
    for kind in KINDS:
        parsed = schema(kind)
        known[MAGIC + fastavro_fingerprint(parsed)] = (kind, parsed)
    out = []
    for message in messages:
        raw = bytes.fromhex(message)
        header = raw[:10]
        if header not in known:
            raise SystemExit(
                f"header {header.hex()} is not C3 01 + the fastavro fingerprint of any bundled schema "
                f"(known: {[h.hex() for h in known]})"
            )
        kind, parsed = known[header]
        body = io.BytesIO(raw[10:])
        record = fastavro.schemaless_reader(body, parsed)
        if body.tell() != len(raw) - 10:
            raise SystemExit(f"{len(raw) - 10 - body.tell()} bytes left after the {kind} datum")
        out.append({"kind": kind, "record": to_millis(record)})
    return out


def apache_schema(avsc):
    import avro.schema

    return avro.schema.parse(avsc)


def apache_fingerprint(request):
    parsed = apache_schema(request["avsc"])
    return {
        "fingerprint": parsed.fingerprint("CRC-64-AVRO").hex(),
        "canonical": parsed.canonical_form,
    }


def apache_encode(request):
    import avro.io

    parsed = apache_schema(request["avsc"])
    header = MAGIC + parsed.fingerprint("CRC-64-AVRO")
    writer = avro.io.DatumWriter(parsed)
    out = []
    for record in request["records"]:
        body = io.BytesIO()
        writer.write(record, avro.io.BinaryEncoder(body))
        out.append((header + body.getvalue()).hex())
    return out


COMMANDS = {
    "fingerprints": fingerprints,
    "encode": encode,
    "decode": decode,
    "apache-fingerprint": apache_fingerprint,
    "apache-encode": apache_encode,
}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        raise SystemExit(f"usage: {sys.argv[0]} {'|'.join(COMMANDS)} < request.json")
    text = sys.stdin.read()
    request = json.loads(text) if text.strip() else None
    json.dump(COMMANDS[sys.argv[1]](request), sys.stdout)
