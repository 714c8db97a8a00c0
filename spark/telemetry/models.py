"""Telemetry records produced by the runtime and consumed by the telemetry store.

Spans and traces are named tuples: built on the request path, they stay cheap, and a tuple is
already the row the bulk writers hand the driver (``executemany`` and binary COPY take them as
they are: no per-row conversion on the write path). The other records are slotted dataclasses.
Pydantic models appear at the boundaries that need validation (API, Temporal payloads), not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

RunStatus = Literal["ok", "error"]
SpanStatus = Literal["ok", "error", "skipped"]
RoutingArm = Literal["active", "candidate", "replay", "direct"]


class SpanRecord(NamedTuple):
    """One node execution inside a trace; its fields are the span table's columns, in order
    (``_replace`` makes a changed copy)."""

    span_id: str
    trace_id: str
    graph_id: str
    version_id: str
    node_id: str
    node_type: str
    started_at: float  # epoch seconds, UTC
    duration_ms: float
    status: SpanStatus
    error_type: str | None = None
    attempts: int = 1
    cache_hit: bool = False
    tokens: int = 0
    cost: float = 0.0
    input_fingerprint: str | None = None  # hash of the node's inputs (repeat detection)
    output_json: str | None = None  # recorded only for nodes tagged side_effects (for replay)


class TraceRecord(NamedTuple):
    """One graph run; its fields are the trace table's columns, in order (``_replace`` makes a
    changed copy)."""

    trace_id: str
    graph_id: str
    version_id: str
    started_at: float  # epoch seconds, UTC
    duration_ms: float
    status: RunStatus
    routing_arm: RoutingArm = "direct"
    routing_key: str | None = None
    input_fingerprint: str | None = None
    inputs_json: str | None = None  # the request inputs, kept for offline replay
    error_type: str | None = None
    cost: float = 0.0
    quality: float | None = None
    sampling_rate: float = 1.0  # the share of traces kept when this one was (see sampling.py)


@dataclass(slots=True, frozen=True)
class FeedbackRecord:
    """A score attached to a trace after the fact (user rating, grader, label)."""

    trace_id: str
    score: float
    created_at: float
    label: str | None = None
    source: str = "user"


@dataclass(slots=True)
class RunTelemetry:
    """A finished run: the trace and its spans, handed to a sink in one call."""

    trace: TraceRecord
    spans: list[SpanRecord] = field(default_factory=list)


PENDING_SPAN_FIELDS = SpanRecord._fields[4:]
"""The fields a ``PendingRun`` keeps of each span: ``SpanRecord``'s from ``node_id`` on (the
span id is minted by the writer; the trace, graph and version ids are the run's)."""
PENDING_SPAN_WIDTH = len(PENDING_SPAN_FIELDS)


@dataclass(slots=True)
class PendingRun:
    """A finished run as the request path hands it to a sink that ``defers_fingerprints``: the
    raw fields, from which ``spark.telemetry.fingerprints.complete_run`` builds the
    ``RunTelemetry`` off the request path (the trace record, its inputs JSON when the request
    left it to do, every input fingerprint and span id). One object per run instead of a trace
    record, an inputs JSON and a capture; built positionally, in this field order.

    ``inputs`` is set instead of ``inputs_json`` only when serialising it later gives the same
    text (see ``spark.graphs.runtime``); ``node_inputs`` holds the inputs each executed node ran
    on, by node id. ``span_fields`` holds the spans one after another in a single flat list,
    ``PENDING_SPAN_WIDTH`` values each (``PENDING_SPAN_FIELDS``; input fingerprints None):
    plain values in one list, where a record per span would be ten objects more per queued run
    for the garbage collector to count and walk. Owned by the sink once submitted.
    """

    trace_id: str
    graph_id: str
    version_id: str
    started_at: float  # epoch seconds, UTC
    duration_ms: float
    status: RunStatus
    routing_arm: RoutingArm
    routing_key: str | None
    error_type: str | None
    inputs: dict[str, Any] | None  # the request inputs, still to serialise
    inputs_json: str | None  # or already serialised on the request path
    span_fields: list[Any]  # PENDING_SPAN_WIDTH values a span, in PENDING_SPAN_FIELDS order
    node_inputs: dict[str, dict[str, Any]]
    sampling_rate: float = 1.0

    @property
    def span_count(self) -> int:
        """How many spans the run has."""
        return len(self.span_fields) // PENDING_SPAN_WIDTH


class TelemetrySink(Protocol):
    """Where the runtime hands finished runs. Must not block the request path.

    A sink with a true ``defers_fingerprints`` attribute receives ``PendingRun``s (to complete
    with ``spark.telemetry.fingerprints.complete_run``); others receive ``RunTelemetry`` with
    every field filled in.
    """

    def submit(self, run: RunTelemetry | PendingRun) -> None:
        """Accept a finished run for (asynchronous) persistence."""
        ...
