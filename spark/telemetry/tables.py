"""Telemetry tables: traces, spans and feedback scores.

Definitions only, no side effects: ``spark.db.get_engine`` imports this module so that
``create_all`` sees the tables. Columns mirror the records of ``spark.telemetry.models``; times are
float epoch seconds (UTC). The store writes these tables in bulk through Core / COPY, never through
one ORM object per row.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    text,
)
from sqlmodel import Field, SQLModel

_HAS_OUTPUT = text("output_json IS NOT NULL")
_FAILED = text("status = 'error'")


class TraceRow(SQLModel, table=True):
    """One graph run (``TraceRecord``).

    On PostgreSQL traces and spans are partitioned by UTC day of ``started_at`` (migration
    0011, ``spark.telemetry.partitions``), and as a partitioned table's key must hold the
    partition key, the traces' primary key there is ``(trace_id, started_at)``: a retried trace
    (same id, same start) is still recognised, and lookups by id use its leading column.
    Alembic compares no primary keys; ``tests/telemetry/test_partitions.py`` checks both.
    """

    __tablename__ = "spark_traces"
    __table_args__ = (
        Index("ix_spark_traces_graph_version_started", "graph_id", "version_id", "started_at"),
        {"postgresql_partition_by": "RANGE (started_at)"},
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


# Spans have no primary key: a retried batch is recognised by its traces (a run's spans are
# written with its trace, in one transaction), and the spans that come through OTLP (an export
# can carry a run's root in a later request, or a span again in another split) by
# ``spark_span_keys``. Every insert
# then touches the table and the window index only (migration 0010 measured it).
# The window index: what raw span reads select, a time window, then a graph and a version. Spans
# arrive in time order, so keyed by time first every insert appends at the index's right edge
# (migration 0012: keyed by graph and version first, each pair written was an insertion point
# inside the tree). No node_id: node_stats groups by node over the whole window anyway
# (migration 0007). PostgreSQL keeps a BRIN index on the start time instead, a few pages
# maintained for almost nothing. Reads that must be fast read rollups; raw reads are windows.
# Partial indexes stay small and cheap to maintain: failures are rare (the error-type breakdown
# reads only them), and only side-effect spans carry an output (replay).
SPANS_TABLE = Table(
    "spark_spans",
    SQLModel.metadata,
    Column("span_id", String, nullable=False),
    Column("trace_id", String, nullable=False),
    Column("graph_id", String, nullable=False),
    Column("version_id", String, nullable=False),
    Column("node_id", String, nullable=False),
    Column("node_type", String, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("status", String, nullable=False),
    Column("error_type", String, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("cache_hit", Boolean, nullable=False),
    Column("tokens", Integer, nullable=False),
    Column("cost", Float, nullable=False),
    Column("input_fingerprint", String, nullable=True),
    Column("output_json", Text, nullable=True),
    Index("ix_spark_spans_started_graph_version", "started_at", "graph_id", "version_id").ddl_if(
        dialect="sqlite"
    ),
    Index("ix_spark_spans_started_brin", "started_at", postgresql_using="brin").ddl_if(
        dialect="postgresql"
    ),
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
    postgresql_partition_by="RANGE (started_at)",
)
"""One node execution inside a trace (``SpanRecord``)."""


class SpanKeyRow(SQLModel, table=True):
    """A span stored without its trace in the same batch, or any span that came through OTLP:
    its id, so that an export sent again is recognised however its spans are split between
    requests (the runtime's spans, always written with their trace, are recognised by the
    trace), and its trace and cost, so that the trace, when it arrives, costs what its spans
    cost without a scan of the span table."""

    __tablename__ = "spark_span_keys"

    span_id: str = Field(primary_key=True)
    trace_id: str = Field(index=True)
    cost: float = 0.0


class FeedbackRow(SQLModel, table=True):
    """A score attached to a trace after the fact (``FeedbackRecord``)."""

    __tablename__ = "spark_feedback"

    id: int | None = Field(default=None, primary_key=True)
    trace_id: str = Field(index=True)
    score: float
    created_at: float
    label: str | None = None
    source: str = "user"


class RollupRow(SQLModel, table=True):
    """Per-bucket aggregates of one graph version's telemetry, kept as rows are written.

    ``node_id`` is a node for span rollups and ``''`` for whole runs (traces); ``bucket_start``
    is the start of a ``spark.telemetry.rollups.BUCKET_SECONDS`` bucket of ``started_at``. Sums
    and sums of squares merge by addition, the sketches by ``spark.telemetry.sketch``.
    """

    __tablename__ = "spark_rollups"

    graph_id: str = Field(primary_key=True)
    version_id: str = Field(primary_key=True)
    node_id: str = Field(primary_key=True)
    routing_arm: str = Field(primary_key=True)
    bucket_start: float = Field(primary_key=True)
    n: int = 0
    errors: int = 0
    weight: float = 0.0  # sum of 1 / sampling_rate (traces only)
    lat_sum: float = 0.0
    lat_sq: float = 0.0
    log_n: int = 0
    log_sum: float = 0.0
    log_sq: float = 0.0
    cost_sum: float = 0.0
    cost_sq: float = 0.0
    err_lat: float = 0.0
    err_cost: float = 0.0
    lat_cost: float = 0.0
    tokens: int = Field(default=0, sa_type=BigInteger)
    attempts: int = 0
    cache_hits: int = 0
    fingerprinted: int = 0
    quality_n: int = 0
    quality_sum: float = 0.0
    quality_sq: float = 0.0
    first_at: float | None = None
    last_at: float | None = None
    error_types: str = Field(default="{}", sa_type=Text)
    latency_sketch: bytes = Field(default=b"", sa_type=LargeBinary)
    inputs_sketch: bytes = Field(default=b"", sa_type=LargeBinary)


class RollupCoverageRow(SQLModel, table=True):
    """A graph whose rollups cover all its telemetry (``graph_id='*'``: every graph), since
    ``complete_since`` (epoch seconds). Reads with ``source="auto"`` use the rollups only then."""

    __tablename__ = "spark_rollup_coverage"

    graph_id: str = Field(primary_key=True)
    complete_since: float


class RollupPendingRow(SQLModel, table=True):
    """A unit (graph, version, bucket) written since its rollups were last computed: reads take
    it from raw rows until the sealer recomputes it (``spark.telemetry.sealing``)."""

    __tablename__ = "spark_rollup_pending"

    graph_id: str = Field(primary_key=True)
    version_id: str = Field(primary_key=True)
    bucket_start: float = Field(primary_key=True)
