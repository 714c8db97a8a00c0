"""Routing: ``candidate_expires_at`` on the routing row and on each routing event.

Past this instant clients stop routing to the candidate by themselves (an A/B window's cap holds
even when no worker is alive to close it). Nullable: existing rows mean "no expiry".

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_TABLES = ("spark_routing", "spark_routing_events")
_COLUMN = "candidate_expires_at"


def upgrade() -> None:
    """Add the nullable, time-zone-aware expiry to both routing tables."""
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column(_COLUMN, sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop the expiry again (SQLite rebuilds each table in batch mode, keeping its data)."""
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column(_COLUMN)
