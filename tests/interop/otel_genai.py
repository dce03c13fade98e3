#!/usr/bin/env python3
"""Exports spans to the gateway with the stock OpenTelemetry Python SDK.

An independent OTLP client for tests/otlp_ingest.rs: a TracerProvider with
a Resource, a BatchSpanProcessor and the SDK's own OTLPSpanExporter (HTTP
with protobuf, or gRPC), exactly as an instrumented application would run
them. Nothing here builds OTLP by hand. The only additions are:

- an IdGenerator that hands out the trace and span ids the test chose (the
  SDK's documented extension point), so the test knows every event id and
  a second run re-exports the very same spans;
- a thin subclass of the stock exporter that records the SpanExportResult
  of each export() call, since the SDK only logs failures.

Usage:
    python3 tests/interop/otel_genai.py --spans FILE --transport http|grpc \
        --endpoint URL [--key KEY] [--gzip]

FILE is JSON: {"resource": {attribute: value, ...}, "spans": [span, ...]}
where each span is {"name", "trace_id" (32 hex), "span_id" (16 hex),
"parent_span_id" (16 hex of an earlier span, optional), "kind" (client,
server, internal, producer, consumer), "start_ns", "end_ns",
"attributes": {...}, "error": bool, "status_message": str}. Spans are
started and ended in file order, each with its explicit start and end time.

Prints one JSON line: the spans sent, the number of export() calls and each
call's result. Exits 0 when every export succeeded, 1 otherwise.
"""

import argparse
import json
import sys

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode

KINDS = {
    "client": SpanKind.CLIENT,
    "server": SpanKind.SERVER,
    "internal": SpanKind.INTERNAL,
    "producer": SpanKind.PRODUCER,
    "consumer": SpanKind.CONSUMER,
}


class ChosenIds(IdGenerator):
    """Returns the ids set just before each start_span call."""

    def __init__(self):
        self.trace_id = None
        self.span_id = None

    def generate_trace_id(self) -> int:
        if self.trace_id is None:
            raise RuntimeError("no trace id chosen for this span")
        trace_id, self.trace_id = self.trace_id, None
        return trace_id

    def generate_span_id(self) -> int:
        if self.span_id is None:
            raise RuntimeError("no span id chosen for this span")
        span_id, self.span_id = self.span_id, None
        return span_id


def recording(exporter_class):
    """The stock exporter, recording the result of every export() call."""

    class Recording(exporter_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.results = []
            self.exported_spans = 0

        def export(self, spans):
            try:
                result = super().export(spans)
            except Exception as error:  # noqa: BLE001 - a failed export, whatever raised
                print(f"export raised {error!r}", file=sys.stderr)
                result = SpanExportResult.FAILURE
            self.results.append(result)
            if result == SpanExportResult.SUCCESS:
                self.exported_spans += len(spans)
            return result

    return Recording


def exporter(args):
    headers = {"authorization": f"Bearer {args.key}"} if args.key else None
    if args.transport == "http":
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )

        if not args.endpoint.endswith("/v1/traces"):
            raise SystemExit("the HTTP endpoint must be the full /v1/traces URL")
        return recording(OTLPSpanExporter)(
            endpoint=args.endpoint,
            headers=headers,
            timeout=args.timeout,
            compression=Compression.Gzip if args.gzip else Compression.NoCompression,
        )
    from grpc import Compression as GrpcCompression
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter,
    )

    return recording(OTLPSpanExporter)(
        endpoint=args.endpoint,
        insecure=True,
        headers=headers,
        timeout=args.timeout,
        compression=GrpcCompression.Gzip if args.gzip else GrpcCompression.NoCompression,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", required=True, help="JSON file of spans to emit")
    parser.add_argument("--transport", choices=["http", "grpc"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--key", help="API key, sent as authorization: Bearer KEY")
    parser.add_argument("--gzip", action="store_true", help="gzip-compress exports")
    parser.add_argument("--timeout", type=float, default=10.0, help="per export, seconds")
    parser.add_argument("--batch", type=int, default=64, help="max spans per export")
    args = parser.parse_args()

    with open(args.spans, encoding="utf-8") as f:
        plan = json.load(f)

    ids = ChosenIds()
    provider = TracerProvider(resource=Resource.create(plan["resource"]), id_generator=ids)
    span_exporter = exporter(args)
    provider.add_span_processor(
        BatchSpanProcessor(
            span_exporter,
            max_queue_size=max(2048, len(plan["spans"]) + 1),
            max_export_batch_size=args.batch,
            schedule_delay_millis=200,
        )
    )
    tracer = provider.get_tracer("centile.interop.genai", "1.0.0")

    started = {}
    for spec in plan["spans"]:
        trace_id = int(spec["trace_id"], 16)
        span_id = int(spec["span_id"], 16)
        context = None
        parent_id = spec.get("parent_span_id")
        if parent_id:
            parent = started[parent_id]
            if parent.get_span_context().trace_id != trace_id:
                raise SystemExit(f"span {spec['span_id']}: its parent is in another trace")
            context = trace.set_span_in_context(parent)
        else:
            ids.trace_id = trace_id
        ids.span_id = span_id
        span = tracer.start_span(
            spec["name"],
            context=context,
            kind=KINDS[spec.get("kind", "internal")],
            attributes=spec.get("attributes") or {},
            start_time=int(spec["start_ns"]),
        )
        got = span.get_span_context()
        if (got.trace_id, got.span_id) != (trace_id, span_id):
            raise SystemExit(f"span {spec['span_id']}: the SDK did not take the chosen ids")
        if spec.get("error"):
            span.set_status(Status(StatusCode.ERROR, spec.get("status_message")))
        started[spec["span_id"]] = span
        span.end(end_time=int(spec["end_ns"]))

    flushed = provider.force_flush(timeout_millis=int(args.timeout * 3000))
    provider.shutdown()

    results = [r.name for r in span_exporter.results]
    ok = flushed and bool(results) and all(r == "SUCCESS" for r in results)
    print(
        json.dumps(
            {
                "transport": args.transport,
                "gzip": args.gzip,
                "spans_sent": len(plan["spans"]),
                "spans_exported": span_exporter.exported_spans,
                "exports": len(results),
                "results": results,
                "flushed": flushed,
            }
        )
    )
    sys.stdout.flush()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
