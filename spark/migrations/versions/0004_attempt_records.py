"""Experience: each attempt's full record, the facets it is found by, and learned patterns.

``spark_attempt_records`` holds the record (hypothesis, diff, validation, A/B statistics with
their intervals, decision, deployment steps, monitoring, review, node characteristics) as JSON,
keyed like ``spark_attempts``; attempts recorded before it have no row. ``spark_attempt_facets``
lists the values (hypothesis type, change kind, node type, diagnosis) an attempt is queried by.
``spark_learned_patterns`` holds the success patterns and anti-patterns per graph and across
graphs, recomputed from all attempts by every cycle.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def _timestamp(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def _string(name: str) -> sa.Column:
    return sa.Column(name, sa.String(), nullable=False)


def upgrade() -> None:
    """Create the three tables and their indexes."""
    op.create_table(
        "spark_attempt_records",
        _string("attempt_id"),
        _string("graph_id"),
        _string("outcome"),
        sa.Column("record", sa.JSON(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("attempt_id"),
    )
    op.create_index("ix_spark_attempt_records_graph_id", "spark_attempt_records", ["graph_id"])
    op.create_table(
        "spark_attempt_facets",
        _string("attempt_id"),
        _string("facet"),
        _string("value"),
        _string("graph_id"),
        sa.PrimaryKeyConstraint("attempt_id", "facet", "value"),
    )
    op.create_index("ix_spark_attempt_facets_graph_id", "spark_attempt_facets", ["graph_id"])
    op.create_index(
        "ix_spark_attempt_facets_facet_value", "spark_attempt_facets", ["facet", "value"]
    )
    op.create_table(
        "spark_learned_patterns",
        _string("pattern_id"),
        _string("scope"),
        _string("diagnosis_kind"),
        _string("change_kind"),
        _string("node_type"),
        _string("verdict"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("pattern", sa.JSON(), nullable=False),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("pattern_id"),
    )
    op.create_index("ix_spark_learned_patterns_scope", "spark_learned_patterns", ["scope"])


def downgrade() -> None:
    """Drop the three tables (their indexes go with them)."""
    for table in ("spark_learned_patterns", "spark_attempt_facets", "spark_attempt_records"):
        op.drop_table(table)
