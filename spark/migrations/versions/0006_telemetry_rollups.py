"""Telemetry: ``spark_rollups``, per-bucket aggregates kept as telemetry is written.

One row per graph, version, node (``''`` for whole runs), routing arm and time bucket: counts,
sums, sums of squares and cross sums, and serialized latency and distinct-input sketches
(``spark.telemetry.rollups``). Telemetry stored before this revision has no rollups; the exact
queries over raw spans still read it.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

_TABLE = "spark_rollups"
_KEY = ("graph_id", "version_id", "node_id", "routing_arm")
_INTEGERS = ("n", "errors", "log_n")
_FLOATS = (
    "weight",
    "lat_sum",
    "lat_sq",
    "log_sum",
    "log_sq",
    "cost_sum",
    "cost_sq",
    "err_lat",
    "err_cost",
    "lat_cost",
)
_COUNTS = ("attempts", "cache_hits", "fingerprinted", "quality_n")


def _columns() -> list[sa.Column[Any]]:
    columns: list[sa.Column[Any]] = [sa.Column(name, sa.String(), nullable=False) for name in _KEY]
    columns.append(sa.Column("bucket_start", sa.Float(), nullable=False))
    columns += [sa.Column(name, sa.Integer(), nullable=False) for name in _INTEGERS]
    columns += [sa.Column(name, sa.Float(), nullable=False) for name in _FLOATS]
    columns.append(sa.Column("tokens", sa.BigInteger(), nullable=False))
    columns += [sa.Column(name, sa.Integer(), nullable=False) for name in _COUNTS]
    columns += [
        sa.Column(name, sa.Float(), nullable=False) for name in ("quality_sum", "quality_sq")
    ]
    columns += [sa.Column(name, sa.Float(), nullable=True) for name in ("first_at", "last_at")]
    columns.append(sa.Column("error_types", sa.Text(), nullable=False))
    columns += [
        sa.Column(name, sa.LargeBinary(), nullable=False)
        for name in ("latency_sketch", "inputs_sketch")
    ]
    return columns


def upgrade() -> None:
    """Create the rollup table keyed by graph, version, node, arm and bucket."""
    op.create_table(_TABLE, *_columns(), sa.PrimaryKeyConstraint(*_KEY, "bucket_start"))


def downgrade() -> None:
    """Drop the rollup table."""
    op.drop_table(_TABLE)
