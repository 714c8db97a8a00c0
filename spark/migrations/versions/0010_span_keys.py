"""Telemetry: spans lose their primary key; PostgreSQL indexes their start time with BRIN.

A span's uniqueness guarded against retried batches only, and every insert paid a B-tree insert
for it. A retried batch is now recognised by its traces: a run's spans are written with its
trace, in one transaction, so a trace already stored means its spans are too. Spans written
without their trace (an OTLP export may carry a run's root in a later request) record their ids
in ``spark_span_keys`` (with their trace and cost, which the trace takes when it arrives). On PostgreSQL the ``(graph_id, version_id, started_at)`` B-tree gives way
to a BRIN index on ``started_at``: spans arrive in time order, so a few summary pages locate any
window, and maintaining them costs almost nothing (the B-tree cost more than half of COPY's
throughput in ``bench.telemetry``). SQLite, which has no BRIN, keeps the B-tree.

On SQLite the span table is rebuilt (SQLite cannot drop a primary key in place).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None

_SPANS = "spark_spans"
_KEYS = "spark_span_keys"
_WINDOW = "ix_spark_spans_graph_version_started"
_WINDOW_COLUMNS = ["graph_id", "version_id", "started_at"]
_BRIN = "ix_spark_spans_started_brin"
_FAILED = "ix_spark_spans_failed"
_WITH_OUTPUT = "ix_spark_spans_trace_with_output"
_COLUMNS = (
    "span_id, trace_id, graph_id, version_id, node_id, node_type, started_at, duration_ms,"
    " status, error_type, attempts, cache_hit, tokens, cost, input_fingerprint, output_json"
)


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    """Drop the span primary key, add ``spark_span_keys``, swap PostgreSQL's window index."""
    op.create_table(
        _KEYS,
        sa.Column("span_id", sa.String(), nullable=False),
        sa.Column("trace_id", sa.String(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("span_id"),
    )
    op.create_index("ix_spark_span_keys_trace_id", _KEYS, ["trace_id"])
    if _postgres():
        op.drop_constraint("spark_spans_pkey", _SPANS, type_="primary")
        op.drop_index(_WINDOW, table_name=_SPANS)
        op.create_index(_BRIN, _SPANS, ["started_at"], postgresql_using="brin")
        return
    _rebuild_sqlite_spans(primary_key=False)


def downgrade() -> None:
    """Restore the primary key (duplicate span ids, if any, keep their first row)."""
    if _postgres():
        op.drop_index(_BRIN, table_name=_SPANS)
        op.create_index(_WINDOW, _SPANS, _WINDOW_COLUMNS)
        op.execute(
            f"DELETE FROM {_SPANS} a USING {_SPANS} b WHERE a.span_id = b.span_id"
            " AND a.ctid > b.ctid"
        )
        op.create_primary_key("spark_spans_pkey", _SPANS, ["span_id"])
    else:
        _rebuild_sqlite_spans(primary_key=True)
    op.drop_table(_KEYS)


def _rebuild_sqlite_spans(primary_key: bool) -> None:
    """Copy the spans into a table made anew, with or without the primary key, and index it."""
    for index in (_WINDOW, _FAILED, _WITH_OUTPUT):
        op.drop_index(index, table_name=_SPANS)
    op.rename_table(_SPANS, f"{_SPANS}_old")
    op.create_table(
        _SPANS,
        *_span_columns(),
        *([sa.PrimaryKeyConstraint("span_id")] if primary_key else []),
    )
    insert = "INSERT OR IGNORE" if primary_key else "INSERT"
    op.execute(
        f"{insert} INTO {_SPANS} ({_COLUMNS}) SELECT {_COLUMNS} FROM {_SPANS}_old ORDER BY rowid"
    )
    op.drop_table(f"{_SPANS}_old")
    op.create_index(_WINDOW, _SPANS, _WINDOW_COLUMNS)
    failed_key = ["graph_id", "version_id", "node_id", "started_at"]
    op.create_index(_FAILED, _SPANS, failed_key, sqlite_where=sa.text("status = 'error'"))
    op.create_index(
        _WITH_OUTPUT, _SPANS, ["trace_id"], sqlite_where=sa.text("output_json IS NOT NULL")
    )


def _span_columns() -> list[sa.Column]:
    def string(name: str, nullable: bool = False) -> sa.Column:
        return sa.Column(name, sa.String(), nullable=nullable)

    return [
        string("span_id"),
        string("trace_id"),
        string("graph_id"),
        string("version_id"),
        string("node_id"),
        string("node_type"),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        string("status"),
        string("error_type", nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("cache_hit", sa.Boolean(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        string("input_fingerprint", nullable=True),
        sa.Column("output_json", sa.Text(), nullable=True),
    ]
