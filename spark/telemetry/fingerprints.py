"""Completing a deferred run off the request path: its trace record, input fingerprints and span
ids.

The runtime hands a sink that sets ``defers_fingerprints`` (the recorder) each run as a
``PendingRun``: the raw fields, the inputs its nodes ran on and its spans' fields in one flat
list, without ids or fingerprints. The recorder's writer builds the ``RunTelemetry`` here, just
before writing, so a request pays for no hashing, no span id, no trace record and no record per
span. The writer completes a ``PendingRun`` once and retries the completed run, so a retried
batch keeps its ids.

The trace's inputs JSON is the canonical JSON of the request inputs: taken on the request path
when the inputs hold values that could change after the run (a list, a nested dict), otherwise
here (the runtime's own copy of inputs holding only strings, numbers, booleans and None cannot
change), so replay keeps exactly the inputs the request had. The trace's fingerprint is the
SHA-256 of that JSON; a span's is the fingerprint of its node's inputs, as
``spark.graphs.policies.input_fingerprint`` computes on the request path for a cached node. The
runtime captures inputs only for the nodes whose repeats telemetry measures (those a cache could
serve: ``spark.graphs.runtime.measures_repeats``); other spans keep no fingerprint.
Values a node or the caller mutates in place after the run (a list appended to) can make a span's
fingerprint differ from the one taken at call time; the fingerprint only feeds repeat statistics
(``NodeStats.distinct_input_ratio``).
"""

from __future__ import annotations

import functools
import hashlib
from types import ModuleType
from typing import Any

from spark.telemetry.ids import new_span_ids
from spark.telemetry.models import (
    PENDING_SPAN_FIELDS,
    PENDING_SPAN_WIDTH,
    PendingRun,
    RunTelemetry,
    SpanRecord,
    TraceRecord,
)

FINGERPRINT_DIGITS = 16


def fingerprint_of_json(text: str | None) -> str | None:
    """The fingerprint of an already canonical JSON text (``None`` stays ``None``)."""
    if text is None:
        return None
    return hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_DIGITS]


def complete_run(run: RunTelemetry | PendingRun) -> RunTelemetry:
    """The ``RunTelemetry`` of a pending run: a ``SpanRecord`` for each of its spans, with a
    new span id and, where the node's inputs were captured, their fingerprint, and the trace
    record (a ``RunTelemetry`` is returned as it is)."""
    if isinstance(run, RunTelemetry):
        return run
    node_inputs, fields = run.node_inputs, run.span_fields
    run_ids = (run.trace_id, run.graph_id, run.version_id)
    spans = []
    for span_id, at in zip(
        new_span_ids(len(fields) // PENDING_SPAN_WIDTH),
        range(0, len(fields), PENDING_SPAN_WIDTH),
        strict=True,
    ):
        values = fields[at : at + PENDING_SPAN_WIDTH]
        if values[_FINGERPRINT] is None:
            inputs = node_inputs.get(values[0])
            if inputs is not None:
                values[_FINGERPRINT] = _fingerprint(inputs)
        spans.append(_new_span(SpanRecord, (span_id, *run_ids, *values)))
    return RunTelemetry(trace_record(run), spans)


def _fingerprint(inputs: dict[str, Any]) -> str | None:
    try:
        return _policies().input_fingerprint(inputs)
    except RuntimeError:  # a container changed size while the writer read it
        return None


_new_span = _new_trace = tuple.__new__
_FINGERPRINT = PENDING_SPAN_FIELDS.index("input_fingerprint")
_COST = PENDING_SPAN_FIELDS.index("cost")


def trace_record(run: PendingRun) -> TraceRecord:
    """The trace of a pending run, as the request path would have recorded it (built
    positionally, in ``TraceRecord`` field order: keywords cost a namedtuple five times as
    much)."""
    inputs_json = run.inputs_json
    if inputs_json is None and run.inputs is not None:
        inputs_json = _try_canonical_json(run.inputs)
    return _new_trace(
        TraceRecord,
        (
            run.trace_id,
            run.graph_id,
            run.version_id,
            run.started_at,
            run.duration_ms,
            run.status,
            run.routing_arm,
            run.routing_key,
            fingerprint_of_json(inputs_json),
            inputs_json,
            run.error_type,
            sum(run.span_fields[_COST::PENDING_SPAN_WIDTH]),
            None,  # quality: set by feedback, never by the run
            run.sampling_rate,
        ),
    )


def _try_canonical_json(value: Any) -> str | None:
    return _policies().try_canonical_json(value)


@functools.cache
def _policies() -> ModuleType:
    """The runtime's own JSON and fingerprint definitions (``spark.graphs.policies``), imported
    on first use rather than with this module, and then kept: an ``import`` statement in the
    per-span function cost 2 us a span, twice the fingerprint itself."""
    from spark.graphs import policies

    return policies
