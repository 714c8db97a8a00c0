"""Telemetry on SQLite: the span window index leads with the start time.

``(graph_id, version_id, started_at)`` becomes ``(started_at, graph_id, version_id)``. Spans
arrive in time order, so every insert now lands at the right edge of the index, where SQLite
appends to full pages; keyed by graph and version first, each (graph, version) pair being
written was an insertion point of its own inside the tree, with half-empty pages split at each
(four versions of one graph: +0.63 µs a span over a plain table, against +0.17-0.27 µs now;
500 graphs make 500+ such points). In ``bench.telemetry``, 1M spans, the recorder's ingest
ratio went from 0.59-0.62 to 0.69-0.75 in alternated runs. Reads select a time window and
check graph and version in the index entries, as PostgreSQL's BRIN on ``started_at`` does;
a read without a window (one version over all time) scans the table, which the graph-first index
did too for a graph that filled it. PostgreSQL is unchanged.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None

_SPANS = "spark_spans"
_GRAPH_FIRST = "ix_spark_spans_graph_version_started"
_GRAPH_FIRST_COLUMNS = ["graph_id", "version_id", "started_at"]
_TIME_FIRST = "ix_spark_spans_started_graph_version"
_TIME_FIRST_COLUMNS = ["started_at", "graph_id", "version_id"]


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    """Swap SQLite's graph-first span index for the time-first one."""
    if _sqlite():
        op.drop_index(_GRAPH_FIRST, table_name=_SPANS)
        op.create_index(_TIME_FIRST, _SPANS, _TIME_FIRST_COLUMNS)


def downgrade() -> None:
    """Restore the graph-first index."""
    if _sqlite():
        op.drop_index(_TIME_FIRST, table_name=_SPANS)
        op.create_index(_GRAPH_FIRST, _SPANS, _GRAPH_FIRST_COLUMNS)
