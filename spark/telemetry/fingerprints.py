"""Input fingerprints (and span ids) computed off the request path.

The runtime hands a sink that sets ``defers_fingerprints`` (the recorder) each run with the inputs
its nodes ran on (``RunTelemetry.captured``) and empty ``input_fingerprint`` fields; the recorder's
writer thread fills them in here, just before writing, so a request pays for no hashing. It
mints the spans' ids here too (``spark.telemetry.ids``; once per run, so a retried batch keeps
them).

The trace's fingerprint is the SHA-256 of its ``inputs_json`` (the canonical JSON the runtime
records on the request path, so replay keeps exactly the inputs the request had); a span's is the
fingerprint of its node's inputs, as ``spark.graphs.policies.input_fingerprint`` computes on the
request path for a cached node. Values a node or the caller mutates in place after the run (a
list appended to) can make a span's fingerprint differ from the one taken at call time; the
fingerprint only feeds repeat statistics (``NodeStats.distinct_input_ratio``).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

from spark.telemetry.ids import new_span_id
from spark.telemetry.models import RunTelemetry, SpanRecord

FINGERPRINT_DIGITS = 16


def fingerprint_of_json(text: str | None) -> str | None:
    """The fingerprint of an already canonical JSON text (``None`` stays ``None``)."""
    if text is None:
        return None
    return hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_DIGITS]


def complete_run(run: RunTelemetry) -> RunTelemetry:
    """``run`` with the fingerprints and span ids its capture allows filled in (unchanged without
    one). The spans are completed in place: a deferred run belongs to the sink it was handed to,
    and copying ten records per run would double the writer's share of the GIL."""
    captured = run.captured
    if captured is None:
        return run
    trace = run.trace
    if trace.input_fingerprint is None and trace.inputs_json is not None:
        trace = replace(trace, input_fingerprint=fingerprint_of_json(trace.inputs_json))
    for span in run.spans:
        _complete_span(span, captured.node_inputs)
    return RunTelemetry(trace, run.spans)


def _complete_span(span: SpanRecord, node_inputs: dict[str, dict[str, Any]]) -> None:
    inputs = node_inputs.get(span.node_id)
    if inputs is not None and span.input_fingerprint is None:
        span.input_fingerprint = _safe_fingerprint(inputs)
    if not span.span_id:
        span.span_id = new_span_id()


def _safe_fingerprint(inputs: dict[str, Any]) -> str | None:
    from spark.graphs.policies import input_fingerprint  # the runtime's own definition

    try:
        return input_fingerprint(inputs)
    except RuntimeError:  # a container changed size while the writer read it
        return None
