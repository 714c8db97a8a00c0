"""Telemetry: records from the runtime, a batching recorder, and a store that aggregates in SQL.

The records and aggregate views import eagerly (they are light and cross process boundaries);
the config, recorder and store load SQLAlchemy and the table definitions, so they import on first
use. That keeps ``from spark.telemetry import NodeStats`` safe inside the Temporal sandbox.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from spark.telemetry.aggregates import NodeStats, RecordedRun, TraceMetrics, VersionStats
from spark.telemetry.models import (
    FeedbackRecord,
    RoutingArm,
    RunStatus,
    RunTelemetry,
    SpanRecord,
    SpanStatus,
    TelemetrySink,
    TraceRecord,
)

if TYPE_CHECKING:
    from spark.telemetry.config import TelemetryConfig
    from spark.telemetry.recorder import RecorderStats, RunWriter, TelemetryRecorder
    from spark.telemetry.store import PurgeCounts, TelemetryStore

_LAZY = {
    "TelemetryConfig": "spark.telemetry.config",
    "RecorderStats": "spark.telemetry.recorder",
    "TelemetryRecorder": "spark.telemetry.recorder",
    "RunWriter": "spark.telemetry.recorder",
    "PurgeCounts": "spark.telemetry.store",
    "TelemetryStore": "spark.telemetry.store",
}

__all__ = [
    "FeedbackRecord",
    "NodeStats",
    "PurgeCounts",
    "RecordedRun",
    "RecorderStats",
    "RoutingArm",
    "RunStatus",
    "RunTelemetry",
    "RunWriter",
    "SpanRecord",
    "SpanStatus",
    "TelemetryConfig",
    "TelemetryRecorder",
    "TelemetrySink",
    "TelemetryStore",
    "TraceMetrics",
    "TraceRecord",
    "VersionStats",
]


def __getattr__(name: str) -> Any:
    """Import the config, recorder and store classes on first access."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
