"""Telemetry: PostgreSQL partitions traces and spans by UTC day of their start time.

Retention then drops a day's partition (a catalog update) instead of deleting its rows one by
one, and each day's indexes stay the size of a day. Each table becomes ``PARTITION BY RANGE
(started_at)`` with one partition per UTC day holding rows, named ``<table>_pYYYYMMDD``, and a
DEFAULT partition (``<table>_default``) for rows of no partition: here the days more than one day
after today (``spark.telemetry.partitions.FUTURE_DAYS``). The rows are copied into the new
tables, the old ones dropped, and the indexes built after the copy (BRIN on spans' start time,
the partial indexes, traces' ``(graph_id, version_id, started_at)``). A partitioned table's
primary key must hold the partition key: traces' key becomes ``(trace_id, started_at)``, still
led by ``trace_id`` for lookups by id. SQLite is unchanged.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import op

revision = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None

_DAY = 86_400
_FUTURE_DAYS = 1
_TRACES, _SPANS = "spark_traces", "spark_spans"
_TRACE_COLUMNS = """
    trace_id VARCHAR NOT NULL, graph_id VARCHAR NOT NULL, version_id VARCHAR NOT NULL,
    started_at FLOAT NOT NULL, duration_ms FLOAT NOT NULL, status VARCHAR NOT NULL,
    routing_arm VARCHAR NOT NULL, routing_key VARCHAR, input_fingerprint VARCHAR,
    inputs_json TEXT, error_type VARCHAR, cost FLOAT NOT NULL, quality FLOAT,
    sampling_rate FLOAT DEFAULT 1.0 NOT NULL"""
_SPAN_COLUMNS = """
    span_id VARCHAR NOT NULL, trace_id VARCHAR NOT NULL, graph_id VARCHAR NOT NULL,
    version_id VARCHAR NOT NULL, node_id VARCHAR NOT NULL, node_type VARCHAR NOT NULL,
    started_at FLOAT NOT NULL, duration_ms FLOAT NOT NULL, status VARCHAR NOT NULL,
    error_type VARCHAR, attempts INTEGER NOT NULL, cache_hit BOOLEAN NOT NULL,
    tokens INTEGER NOT NULL, cost FLOAT NOT NULL, input_fingerprint VARCHAR, output_json TEXT"""
_NAMES = {
    _TRACES: (
        "trace_id, graph_id, version_id, started_at, duration_ms, status, routing_arm,"
        " routing_key, input_fingerprint, inputs_json, error_type, cost, quality, sampling_rate"
    ),
    _SPANS: (
        "span_id, trace_id, graph_id, version_id, node_id, node_type, started_at, duration_ms,"
        " status, error_type, attempts, cache_hit, tokens, cost, input_fingerprint, output_json"
    ),
}
_TRACE_WINDOW = "ix_spark_traces_graph_version_started"
_SPAN_BRIN = "ix_spark_spans_started_brin"
_SPAN_FAILED = "ix_spark_spans_failed"
_SPAN_WITH_OUTPUT = "ix_spark_spans_trace_with_output"


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    """Partition both tables by day with their rows (PostgreSQL; nothing on SQLite)."""
    if not _postgres():
        return
    days = _days_with_rows()
    for table, columns in ((_TRACES, _TRACE_COLUMNS), (_SPANS, _SPAN_COLUMNS)):
        op.execute(f"CREATE TABLE {table}_new ({columns}) PARTITION BY RANGE (started_at)")
        for day in days:
            name = f"{table}_p" + _date(day)
            low, high = day * _DAY, (day + 1) * _DAY
            op.execute(
                f"CREATE TABLE {name} PARTITION OF {table}_new FOR VALUES FROM ({low}) TO ({high})"
            )
        op.execute(f"CREATE TABLE {table}_default PARTITION OF {table}_new DEFAULT")
        _move_rows(table, f"{table}_new")
        op.execute(f"ALTER TABLE {table}_new RENAME TO {table}")
    _create_indexes(partitioned=True)


def downgrade() -> None:
    """Back to plain tables with their rows (a trace id stored under two start times keeps one)."""
    if not _postgres():
        return
    for table, columns in ((_TRACES, _TRACE_COLUMNS), (_SPANS, _SPAN_COLUMNS)):
        op.execute(f"CREATE TABLE {table}_new ({columns})")
        distinct = " DISTINCT ON (trace_id)" if table == _TRACES else ""
        names = _NAMES[table]
        op.execute(f"INSERT INTO {table}_new ({names}) SELECT{distinct} {names} FROM {table}")
        op.execute(f"DROP TABLE {table}")  # with its partitions
        op.execute(f"ALTER TABLE {table}_new RENAME TO {table}")
    _create_indexes(partitioned=False)


def _days_with_rows() -> list[int]:
    """UTC day numbers holding traces or spans, up to ``_FUTURE_DAYS`` after today."""
    rows = op.get_bind().exec_driver_sql(
        f"SELECT DISTINCT floor(started_at / {_DAY})::bigint AS day FROM {_TRACES}"
        f" UNION SELECT DISTINCT floor(started_at / {_DAY})::bigint FROM {_SPANS}"
    )
    today = op.get_bind().exec_driver_sql(f"SELECT floor(extract(epoch FROM now()) / {_DAY})")
    last = int(today.scalar_one()) + _FUTURE_DAYS
    return sorted(int(day) for (day,) in rows if day <= last)


def _date(day: int) -> str:
    return f"{datetime.fromtimestamp(day * _DAY, UTC):%Y%m%d}"


def _move_rows(table: str, target: str) -> None:
    names = _NAMES[table]
    op.execute(f"INSERT INTO {target} ({names}) SELECT {names} FROM {table}")
    op.execute(f"DROP TABLE {table}")


def _create_indexes(partitioned: bool) -> None:
    """The indexes of both tables (built after the rows are in: faster than row by row)."""
    key = "trace_id, started_at" if partitioned else "trace_id"
    op.execute(f"ALTER TABLE {_TRACES} ADD CONSTRAINT {_TRACES}_pkey PRIMARY KEY ({key})")
    op.create_index(_TRACE_WINDOW, _TRACES, ["graph_id", "version_id", "started_at"])
    op.create_index(_SPAN_BRIN, _SPANS, ["started_at"], postgresql_using="brin")
    failed_key = ["graph_id", "version_id", "node_id", "started_at"]
    op.execute(
        f"CREATE INDEX {_SPAN_FAILED} ON {_SPANS} ({', '.join(failed_key)}) WHERE status = 'error'"
    )
    op.execute(
        f"CREATE INDEX {_SPAN_WITH_OUTPUT} ON {_SPANS} (trace_id) WHERE output_json IS NOT NULL"
    )
