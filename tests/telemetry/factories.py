"""Builders of telemetry records with sensible defaults, for the telemetry tests."""

from __future__ import annotations

import itertools
from typing import Any

from spark.telemetry.models import PendingRun, RunTelemetry, SpanRecord, TraceRecord

T0 = 1_700_000_000.0
_ids = itertools.count()


def new_id(prefix: str) -> str:
    """A process-unique id such as ``trace-17``."""
    return f"{prefix}-{next(_ids)}"


def trace(**overrides: Any) -> TraceRecord:
    """A successful trace of graph ``g`` version ``v1`` unless overridden."""
    values: dict[str, Any] = {
        "trace_id": new_id("trace"),
        "graph_id": "g",
        "version_id": "v1",
        "started_at": T0,
        "duration_ms": 100.0,
        "status": "ok",
    }
    return TraceRecord(**(values | overrides))


def span(parent: TraceRecord, node_id: str = "n1", **overrides: Any) -> SpanRecord:
    """A successful span of ``node_id`` inside ``parent``, starting with it."""
    values: dict[str, Any] = {
        "span_id": new_id("span"),
        "trace_id": parent.trace_id,
        "graph_id": parent.graph_id,
        "version_id": parent.version_id,
        "node_id": node_id,
        "node_type": "llm",
        "started_at": parent.started_at,
        "duration_ms": 10.0,
        "status": "ok",
    }
    return SpanRecord(**(values | overrides))


def run(n_spans: int = 2, **trace_overrides: Any) -> RunTelemetry:
    """A run with ``n_spans`` spans over nodes ``n0``, ``n1``, ..."""
    parent = trace(**trace_overrides)
    return RunTelemetry(parent, [span(parent, f"n{i}") for i in range(n_spans)])


def pending_run(
    node_inputs: dict[str, dict[str, Any]], inputs: dict[str, Any], **trace_overrides: Any
) -> PendingRun:
    """A run as the request path leaves it for a deferring sink: one span per node of
    ``node_inputs`` (no span id, no fingerprint), ``inputs`` not yet serialised."""
    parent = trace(**trace_overrides)
    span_fields = [
        value for node_id in node_inputs for value in span(parent, node_id)[4:]
    ]  # each span's fields from node_id on, as the runtime lists them
    return PendingRun(
        parent.trace_id,
        parent.graph_id,
        parent.version_id,
        parent.started_at,
        parent.duration_ms,
        parent.status,
        parent.routing_arm,
        parent.routing_key,
        parent.error_type,
        inputs,
        None,
        span_fields,
        node_inputs,
    )
