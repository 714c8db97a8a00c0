"""Telemetry: ``sampling_rate`` on each trace.

The share of traces kept when this one was (``spark.telemetry.sampling``), so counts scale back
to traffic (each trace stands for ``1 / sampling_rate`` runs). Existing rows were all kept: 1.0.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_TABLE = "spark_traces"
_COLUMN = "sampling_rate"


def upgrade() -> None:
    """Add the non-null rate, 1.0 for the traces already stored."""
    with op.batch_alter_table(_TABLE) as batch:
        batch.add_column(
            sa.Column(_COLUMN, sa.Float(), nullable=False, server_default=sa.text("1.0"))
        )


def downgrade() -> None:
    """Drop the rate again."""
    with op.batch_alter_table(_TABLE) as batch:
        batch.drop_column(_COLUMN)
