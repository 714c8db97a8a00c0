"""Telemetry: ``spark_rollup_coverage``, which graphs' rollups cover all their telemetry.

A row per graph whose rollups are complete (``TelemetryStore.rebuild_rollups`` writes it), or
one ``'*'`` row for the whole database. Reads with ``source="auto"`` use the rollups only where
a row says they are complete. A database with no telemetry yet is complete from here on (every
later write maintains its rollups), so this revision marks it ``'*'``; one that already holds
telemetry may hold some stored before 0006, without rollups, so it is marked nothing and reads
exact until each graph is rebuilt.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

_TABLE = "spark_rollup_coverage"
_WHOLE_DATABASE = "*"


def upgrade() -> None:
    """Create the coverage table; mark the whole database complete if it holds no telemetry."""
    table = op.create_table(
        _TABLE,
        sa.Column("graph_id", sa.String(), nullable=False),
        sa.Column("complete_since", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("graph_id"),
    )
    if _holds_no_telemetry():
        op.bulk_insert(table, [{"graph_id": _WHOLE_DATABASE, "complete_since": time.time()}])


def _holds_no_telemetry() -> bool:
    connection = op.get_bind()
    for raw in ("spark_traces", "spark_spans"):
        if connection.execute(sa.text(f"SELECT 1 FROM {raw} LIMIT 1")).first() is not None:
            return False
    return True


def downgrade() -> None:
    """Drop the coverage table."""
    op.drop_table(_TABLE)
