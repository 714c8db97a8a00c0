"""Reviews: the hypothesis' ``title`` and the ``dossier`` the reviewer was shown.

The RSI workflow now stores each review it opens (``open_review``) with what the reviewer decides
on: changes, diff, risk and why, rationale, expected effects, evidence. Existing rows (there are
none: the table was never written before) get an empty title and dossier.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add ``title`` and ``dossier`` to ``spark_reviews``."""
    with op.batch_alter_table("spark_reviews") as batch:
        batch.add_column(sa.Column("title", sa.String(), nullable=False, server_default=""))
        batch.add_column(sa.Column("dossier", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    """Drop both columns again (SQLite rebuilds the table in batch mode, keeping its data)."""
    with op.batch_alter_table("spark_reviews") as batch:
        batch.drop_column("dossier")
        batch.drop_column("title")
