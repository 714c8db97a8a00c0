"""Telemetry: the span index covers the window, not the node.

``(graph_id, version_id, node_id, started_at)`` becomes ``(graph_id, version_id, started_at)``:
every span aggregation selects a graph, a version and a time window and groups by node itself,
so the node column only made each insert dearer (with time-ordered span ids and the narrower
index, ingest through the recorder gained about a third on SQLite in ``bench.telemetry``).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

_TABLE = "spark_spans"
_OLD = "ix_spark_spans_graph_version_node_started"
_OLD_COLUMNS = ["graph_id", "version_id", "node_id", "started_at"]
_NEW = "ix_spark_spans_graph_version_started"
_NEW_COLUMNS = ["graph_id", "version_id", "started_at"]


def upgrade() -> None:
    """Swap the four-column index for the window index."""
    op.drop_index(_OLD, table_name=_TABLE)
    op.create_index(_NEW, _TABLE, _NEW_COLUMNS)


def downgrade() -> None:
    """Restore the four-column index."""
    op.drop_index(_NEW, table_name=_TABLE)
    op.create_index(_OLD, _TABLE, _OLD_COLUMNS)
