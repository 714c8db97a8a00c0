"""Trace sampling: which runs telemetry keeps, decided per trace from its id alone.

The decision hashes the trace id (SHA-256, not Python's per-process salted ``hash``), so every
process, retry and replay takes the same decision for a trace, and a trace's spans are kept or
dropped together with it. Each kept trace records the rate it was sampled at, so counts can be
scaled back to traffic (``1 / sampling_rate`` runs per kept trace); means, proportions and
percentiles of kept traces are unbiased estimates of the whole traffic's, because the decision
is independent of everything a run does.
"""

from __future__ import annotations

import hashlib


def trace_sampled(trace_id: str, sampling_rate: float) -> bool:
    """Whether the trace ``trace_id`` is kept at ``sampling_rate`` (1: all, 0: none)."""
    if sampling_rate >= 1.0:
        return True
    if sampling_rate <= 0.0:
        return False
    return trace_point(trace_id) < sampling_rate


def trace_point(trace_id: str) -> float:
    """The trace's fixed point in [0, 1): kept at every rate above it (raising the rate keeps
    every trace kept before)."""
    digest = hashlib.sha256(trace_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64
