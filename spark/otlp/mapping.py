"""OTLP spans as Spark runs: one OTLP trace is one run (its root span), its other spans nodes.

Pure: no I/O. ``map_request`` validates everything before anything is written, raising
``InvalidInputError`` naming the span at fault. The attribute rules are in ``spark.otlp``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, get_args

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from spark.errors import InvalidInputError
from spark.otlp import attributes as attr
from spark.otlp.attributes import Attributes
from spark.telemetry.models import RoutingArm, SpanRecord, TraceRecord

VersionResolver = Callable[[str], str | None]
UNVERSIONED = "unversioned"
DEFAULT_NODE_TYPE = "otlp"
ROUTING_ARMS: tuple[str, ...] = get_args(RoutingArm)
# Run-level attributes a span without its own takes from its trace's root span.
_RUN_KEYS = (attr.GRAPH_ID, attr.VERSION_ID, attr.ROUTING_ARM, attr.ROUTING_KEY)


@dataclass(frozen=True, slots=True)
class _Span:
    """One OTLP span with its resource's attributes, ids in hex."""

    span: Span
    trace_id: str
    span_id: str
    resource: dict[str, Any]
    attrs: dict[str, Any]

    @property
    def is_root(self) -> bool:
        return not self.span.parent_span_id

    @property
    def label(self) -> str:
        return f"span {self.span.name!r} ({self.span_id}) of trace {self.trace_id}"


@dataclass
class OTLPBatch:
    """What one export request stores: the runs whose root span it carries, and node spans."""

    traces: list[TraceRecord] = field(default_factory=list)
    spans: list[SpanRecord] = field(default_factory=list)

    @property
    def trace_ids(self) -> list[str]:
        """Every trace this batch touches (runs and node spans), sorted."""
        return sorted({t.trace_id for t in self.traces} | {s.trace_id for s in self.spans})


def map_request(
    request: ExportTraceServiceRequest, version_of: VersionResolver = lambda _: None
) -> OTLPBatch:
    """The runs and node spans of ``request``; ``version_of(graph_id)`` supplies the version of
    spans that name none (the graph's active version, when registered)."""
    by_trace: dict[str, list[_Span]] = {}
    for item in _spans(request):
        by_trace.setdefault(item.trace_id, []).append(item)
    batch = OTLPBatch()
    for items in by_trace.values():
        _map_trace(items, version_of, batch)
    return batch


def _spans(request: ExportTraceServiceRequest) -> Iterator[_Span]:
    seen: set[str] = set()
    for resource_spans in request.resource_spans:
        resource = attr.to_dict(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                item = _parse(span, resource)
                if item.span_id not in seen:
                    seen.add(item.span_id)
                    yield item


def _parse(span: Span, resource: dict[str, Any]) -> _Span:
    trace_id, span_id = _hex_id(span.trace_id, 16, "trace id"), _hex_id(span.span_id, 8, "span id")
    item = _Span(span, trace_id, span_id, resource, attr.to_dict(span.attributes))
    if span.parent_span_id and len(span.parent_span_id) != 8:
        raise InvalidInputError(f"{item.label}: parent span id must be 8 bytes")
    if span.start_time_unix_nano == 0 or span.end_time_unix_nano < span.start_time_unix_nano:
        raise InvalidInputError(f"{item.label}: needs a start time and an end time after it")
    return item


def _hex_id(raw: bytes, size: int, what: str) -> str:
    if len(raw) != size or not any(raw):
        raise InvalidInputError(f"a {what} must be {size} bytes, not all zero (got {raw.hex()!r})")
    return raw.hex()


def _map_trace(items: list[_Span], version_of: VersionResolver, batch: OTLPBatch) -> None:
    roots = sorted((i for i in items if i.is_root), key=lambda i: i.span.start_time_unix_nano)
    root = roots[0] if roots else None
    run_attrs = {k: root.attrs[k] for k in _RUN_KEYS if k in root.attrs} if root else {}
    spans = [_span_record(i, run_attrs, version_of) for i in items if _is_node(i, root)]
    batch.spans.extend(spans)
    if root is not None:
        batch.traces.append(_trace_record(root, version_of, spans))


def _is_node(item: _Span, root: _Span | None) -> bool:
    """Every span but the run's root is a node execution; the root too when it names its node."""
    return item is not root or attr.NODE_ID in item.attrs


def _lookup(item: _Span, run_attrs: Attributes, name: str) -> str | None:
    """The attribute on the span, else on its run's root span, else on its resource."""
    for source in (item.attrs, run_attrs, item.resource):
        value = attr.text(source, name)
        if value is not None:
            return value
    return None


def _graph_id(item: _Span, run_attrs: Attributes) -> str:
    graph_id = _lookup(item, run_attrs, attr.GRAPH_ID) or attr.text(
        item.resource, attr.SERVICE_NAME
    )
    if graph_id is None:
        raise InvalidInputError(
            f"{item.label}: no graph id (set {attr.GRAPH_ID!r} or the resource's "
            f"{attr.SERVICE_NAME!r})"
        )
    return graph_id


def _version_id(
    item: _Span, run_attrs: Attributes, graph_id: str, version_of: VersionResolver
) -> str:
    return (
        _lookup(item, run_attrs, attr.VERSION_ID)
        or version_of(graph_id)
        or attr.text(item.resource, attr.SERVICE_VERSION)
        or UNVERSIONED
    )


def _timing(span: Span) -> tuple[float, float]:
    """Start (epoch seconds) and duration (ms)."""
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    return start / 1e9, (end - start) / 1e6


def _error_type(item: _Span) -> str | None:
    """The error of a failed span (status ERROR or an ``error.type``), else None."""
    declared = attr.text(item.attrs, attr.ERROR_TYPE)
    if item.span.status.code != Status.STATUS_CODE_ERROR and declared is None:
        return None
    if declared is not None:
        return declared
    for event in item.span.events:
        if event.name == "exception":
            raised = attr.text(attr.to_dict(event.attributes), attr.EXCEPTION_TYPE)
            if raised is not None:
                return raised
    return "Error"


def _span_record(item: _Span, run_attrs: Attributes, version_of: VersionResolver) -> SpanRecord:
    graph_id = _graph_id(item, run_attrs)
    started_at, duration_ms = _timing(item.span)
    error_type = _error_type(item)
    return SpanRecord(
        span_id=item.span_id,
        trace_id=item.trace_id,
        graph_id=graph_id,
        version_id=_version_id(item, run_attrs, graph_id, version_of),
        node_id=attr.text(item.attrs, attr.NODE_ID) or item.span.name,
        node_type=_node_type(item.attrs),
        started_at=started_at,
        duration_ms=duration_ms,
        status="error" if error_type else "ok",
        error_type=error_type,
        attempts=_number(item, attr.ATTEMPTS, int, 1),
        cache_hit=bool(item.attrs.get(attr.CACHE_HIT, False)),
        tokens=_tokens(item),
        cost=_number(item, attr.COST, float, 0.0),
    )


def _node_type(attrs: Attributes) -> str:
    return (
        attr.text(attrs, attr.NODE_TYPE)
        or attr.text(attrs, attr.GEN_AI_OPERATION)
        or DEFAULT_NODE_TYPE
    )


def _tokens(item: _Span) -> int:
    """Input plus output tokens (the GenAI names, or their older ``prompt``/``completion``)."""
    total = 0
    for names in (attr.INPUT_TOKENS, attr.OUTPUT_TOKENS):
        name = next((n for n in names if n in item.attrs), None)
        total += _number(item, name, int, 0) if name else 0
    return total


def _number(item: _Span, name: str, kind: type[int] | type[float], default: Any) -> Any:
    value = item.attrs.get(name)
    if value is None:
        return default
    try:
        number = kind(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{item.label}: {name} must be a number, got {value!r}") from exc
    if number < 0:
        raise InvalidInputError(f"{item.label}: {name} must not be negative, got {value!r}")
    return number


def _trace_record(root: _Span, version_of: VersionResolver, spans: list[SpanRecord]) -> TraceRecord:
    graph_id = _graph_id(root, root.attrs)
    started_at, duration_ms = _timing(root.span)
    error_type = _error_type(root)
    return TraceRecord(
        trace_id=root.trace_id,
        graph_id=graph_id,
        version_id=_version_id(root, root.attrs, graph_id, version_of),
        started_at=started_at,
        duration_ms=duration_ms,
        status="error" if error_type else "ok",
        routing_arm=_arm(root),
        routing_key=_lookup(root, {}, attr.ROUTING_KEY),
        error_type=error_type,
        cost=sum(span.cost for span in spans),
    )


def _arm(root: _Span) -> RoutingArm:
    arm = _lookup(root, {}, attr.ROUTING_ARM) or "direct"
    if arm not in ROUTING_ARMS:
        raise InvalidInputError(
            f"{root.label}: {attr.ROUTING_ARM} {arm!r} is not one of {', '.join(ROUTING_ARMS)}"
        )
    return arm  # type: ignore[return-value]
