"""OTLP export requests of an application instrumented with OpenTelemetry (GenAI conventions):
one run of ``support-bot`` (a root span, a failing LLM call, a successful retry), in protobuf
and in OTLP/JSON."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

ERROR, OK = Status.STATUS_CODE_ERROR, Status.STATUS_CODE_OK


@dataclass
class FakeSpan:
    """A span as the app's tracer would end it."""

    span_id: str
    name: str
    start_ms: float
    end_ms: float
    parent: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    status: int = 0
    exception: str | None = None


def app_run(trace_id: str, version_id: str | None, base_ms: float | None = None) -> list[FakeSpan]:
    """One request: ``answer`` (root) → ``classify`` LLM call failing, then succeeding."""
    base = base_ms if base_ms is not None else time.time() * 1000
    root, failed, retried = (trace_id[:14] + suffix for suffix in ("a1", "b1", "b2"))
    run_attrs = {"spark.routing.arm": "active", "spark.routing.key": "cust-1"}
    if version_id is not None:
        run_attrs["spark.version.id"] = version_id
    llm = {
        "spark.node.id": "classify",
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
    }
    return [
        FakeSpan(root, "answer", base, base + 900, attributes=run_attrs, status=OK),
        FakeSpan(
            failed,
            "chat gpt-4o-mini",
            base + 10,
            base + 310,
            parent=root,
            attributes={**llm, "error.type": "RateLimitError"},
            status=ERROR,
        ),
        FakeSpan(
            retried,
            "chat gpt-4o-mini",
            base + 320,
            base + 820,
            parent=root,
            attributes={
                **llm,
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": 30,
                "spark.cost": 0.002,
            },
        ),
    ]


RESOURCE = {"service.name": "support-bot", "service.version": "app-1.4"}


def protobuf_request(
    trace_id: str, spans: list[FakeSpan], resource: dict[str, Any] = RESOURCE
) -> bytes:
    """The export request as ``application/x-protobuf``."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(_key_values(resource))
    scope = resource_spans.scope_spans.add()
    for item in spans:
        span = Span(
            trace_id=bytes.fromhex(trace_id),
            span_id=bytes.fromhex(item.span_id),
            parent_span_id=bytes.fromhex(item.parent) if item.parent else b"",
            name=item.name,
            start_time_unix_nano=int(item.start_ms * 1e6),
            end_time_unix_nano=int(item.end_ms * 1e6),
            status=Status(code=item.status),  # type: ignore[arg-type]
        )
        span.attributes.extend(_key_values(item.attributes))
        scope.spans.append(span)
    return request.SerializeToString()


def _key_values(values: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=_any_value(value)) for key, value in values.items()]


def _any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=str(value))


def json_request(
    trace_id: str, spans: list[FakeSpan], resource: dict[str, Any] = RESOURCE
) -> bytes:
    """The export request as OTLP/JSON (hex ids, camelCase, 64-bit integers as strings)."""
    document = {
        "resourceSpans": [
            {
                "resource": {"attributes": _json_attributes(resource)},
                "scopeSpans": [
                    {
                        "scope": {"name": "support-bot"},
                        "spans": [_json_span(trace_id, span) for span in spans],
                    }
                ],
            }
        ]
    }
    return json.dumps(document).encode()


def _json_span(trace_id: str, span: FakeSpan) -> dict[str, Any]:
    document: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": span.span_id,
        "name": span.name,
        "kind": 1,
        "startTimeUnixNano": str(int(span.start_ms * 1e6)),
        "endTimeUnixNano": str(int(span.end_ms * 1e6)),
        "attributes": _json_attributes(span.attributes),
        "status": {"code": span.status},
    }
    if span.parent:
        document["parentSpanId"] = span.parent
    return document


def _json_attributes(values: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, value in values.items():
        if isinstance(value, bool):
            typed: dict[str, Any] = {"boolValue": value}
        elif isinstance(value, int):
            typed = {"intValue": str(value)}
        elif isinstance(value, float):
            typed = {"doubleValue": value}
        else:
            typed = {"stringValue": str(value)}
        out.append({"key": key, "value": typed})
    return out
