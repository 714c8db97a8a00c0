"""Telemetry: rollups are sealed per closed bucket instead of merged into on every write.

``spark_rollup_pending`` holds the units, one ``(graph, version, bucket)`` each, written since
their rollups were last computed (``spark.telemetry.sealing``). Writes only mark units; the
sealer recomputes a unit from its raw rows once its bucket has closed, and reads take pending
units from raw rows. Rollup rows that earlier revisions kept up to date on every write stay
valid: no unit is pending after the upgrade, and the next write into a bucket marks it.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

_TABLE = "spark_rollup_pending"


def upgrade() -> None:
    """Create the pending-units table."""
    op.create_table(
        _TABLE,
        sa.Column("graph_id", sa.String(), nullable=False),
        sa.Column("version_id", sa.String(), nullable=False),
        sa.Column("bucket_start", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("graph_id", "version_id", "bucket_start"),
    )


def downgrade() -> None:
    """Drop the pending-units table (the rollups of pending units are then incomplete)."""
    op.drop_table(_TABLE)
