"""Telemetry tables: traces, spans and feedback scores.

Definitions only, no side effects: ``spark.db.get_engine`` imports this module so that
``create_all`` sees the tables. Columns mirror the records of ``spark.telemetry.models``; times are
float epoch seconds (UTC). The store writes these tables in bulk through Core / COPY, never through
one ORM object per row.
"""

from __future__ import annotations

from sqlalchemy import Index, Text, text
from sqlmodel import Field, SQLModel

_HAS_OUTPUT = text("output_json IS NOT NULL")
_FAILED = text("status = 'error'")


class TraceRow(SQLModel, table=True):
    """One graph run (``TraceRecord``)."""

    __tablename__ = "spark_traces"
    __table_args__ = (
        Index("ix_spark_traces_graph_version_started", "graph_id", "version_id", "started_at"),
    )

    trace_id: str = Field(primary_key=True)
    graph_id: str
    version_id: str
    started_at: float
    duration_ms: float
    status: str
    routing_arm: str = "direct"
    routing_key: str | None = None
    input_fingerprint: str | None = None
    inputs_json: str | None = Field(default=None, sa_type=Text)
    error_type: str | None = None
    cost: float = 0.0
    quality: float | None = None
    sampling_rate: float = Field(default=1.0, sa_column_kwargs={"server_default": text("1.0")})


class SpanRow(SQLModel, table=True):
    """One node execution inside a trace (``SpanRecord``)."""

    __tablename__ = "spark_spans"
    __table_args__ = (
        Index(
            "ix_spark_spans_graph_version_node_started",
            "graph_id",
            "version_id",
            "node_id",
            "started_at",
        ),
        # Partial indexes stay small and cheap to maintain: failures are rare (the error-type
        # breakdown reads only them), and only side-effect spans carry an output (replay).
        Index(
            "ix_spark_spans_failed",
            "graph_id",
            "version_id",
            "node_id",
            "started_at",
            sqlite_where=_FAILED,
            postgresql_where=_FAILED,
        ),
        Index(
            "ix_spark_spans_trace_with_output",
            "trace_id",
            sqlite_where=_HAS_OUTPUT,
            postgresql_where=_HAS_OUTPUT,
        ),
    )

    span_id: str = Field(primary_key=True)
    trace_id: str
    graph_id: str
    version_id: str
    node_id: str
    node_type: str
    started_at: float
    duration_ms: float
    status: str
    error_type: str | None = None
    attempts: int = 1
    cache_hit: bool = False
    tokens: int = 0
    cost: float = 0.0
    input_fingerprint: str | None = None
    output_json: str | None = Field(default=None, sa_type=Text)


class FeedbackRow(SQLModel, table=True):
    """A score attached to a trace after the fact (``FeedbackRecord``)."""

    __tablename__ = "spark_feedback"

    id: int | None = Field(default=None, primary_key=True)
    trace_id: str = Field(index=True)
    score: float
    created_at: float
    label: str | None = None
    source: str = "user"
