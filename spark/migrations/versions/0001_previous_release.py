"""The schema of the last release made without migrations (``create_all`` at commit 6c764c0).

Databases created by that release (or an earlier one opened by it) have exactly these tables and
no version table: ``spark.migrations.runner.upgrade`` stamps them at this revision instead of
running it. Written out column by column, never from the models, so that later edits to the
models cannot change what this revision means.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_FAILED = sa.text("status = 'error'")
_HAS_OUTPUT = sa.text("output_json IS NOT NULL")


def _timestamp(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _string(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(), nullable=nullable)


def _index(table: str, column: str) -> None:
    op.create_index(f"ix_{table}_{column}", table, [column])


def upgrade() -> None:
    """Create the telemetry, registry, loop-lease and experience tables with their indexes."""
    _telemetry()
    _registry()
    _loop_leases()
    _experience()


def downgrade() -> None:
    """Drop every table this revision created (their indexes go with them)."""
    for table in _TABLES:
        op.drop_table(table)


def _telemetry() -> None:
    op.create_table(
        "spark_traces",
        _string("trace_id"),
        _string("graph_id"),
        _string("version_id"),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        _string("status"),
        _string("routing_arm"),
        _string("routing_key", nullable=True),
        _string("input_fingerprint", nullable=True),
        sa.Column("inputs_json", sa.Text(), nullable=True),
        _string("error_type", nullable=True),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("quality", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("trace_id"),
    )
    op.create_index(
        "ix_spark_traces_graph_version_started",
        "spark_traces",
        ["graph_id", "version_id", "started_at"],
    )
    op.create_table(
        "spark_spans",
        _string("span_id"),
        _string("trace_id"),
        _string("graph_id"),
        _string("version_id"),
        _string("node_id"),
        _string("node_type"),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        _string("status"),
        _string("error_type", nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("cache_hit", sa.Boolean(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        _string("input_fingerprint", nullable=True),
        sa.Column("output_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("span_id"),
    )
    span_key = ["graph_id", "version_id", "node_id", "started_at"]
    op.create_index("ix_spark_spans_graph_version_node_started", "spark_spans", span_key)
    op.create_index(
        "ix_spark_spans_failed",
        "spark_spans",
        span_key,
        sqlite_where=_FAILED,
        postgresql_where=_FAILED,
    )
    op.create_index(
        "ix_spark_spans_trace_with_output",
        "spark_spans",
        ["trace_id"],
        sqlite_where=_HAS_OUTPUT,
        postgresql_where=_HAS_OUTPUT,
    )
    op.create_table(
        "spark_feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        _string("trace_id"),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        _string("label", nullable=True),
        _string("source"),
        sa.PrimaryKeyConstraint("id"),
    )
    _index("spark_feedback", "trace_id")


def _registry() -> None:
    op.create_table(
        "spark_graphs",
        _string("graph_id"),
        sa.Column("node_modules", sa.JSON(), nullable=False),
        _string("owner"),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("graph_id"),
    )
    op.create_table(
        "spark_versions",
        _string("version_id"),
        _string("graph_id"),
        _string("parent_id", nullable=True),
        sa.Column("spec_json", sa.Text(), nullable=False),
        _string("hypothesis_id", nullable=True),
        _string("author"),
        _string("note"),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("version_id"),
    )
    _index("spark_versions", "graph_id")
    _routing()
    op.create_table(
        "spark_deployments",
        _string("deployment_id"),
        _string("graph_id"),
        sa.Column("cycle", sa.Integer(), nullable=False),
        _string("from_version_id"),
        _string("to_version_id"),
        _string("strategy"),
        _string("status"),
        _string("reason"),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("deployment_id"),
    )
    _index("spark_deployments", "graph_id")
    op.create_table(
        "spark_reviews",
        _string("review_id"),
        _string("graph_id"),
        sa.Column("cycle", sa.Integer(), nullable=False),
        _string("hypothesis_id"),
        _string("risk"),
        _string("status"),
        _string("reviewer", nullable=True),
        _string("comment"),
        _timestamp("created_at"),
        _timestamp("decided_at", nullable=True),
        sa.PrimaryKeyConstraint("review_id"),
    )
    _index("spark_reviews", "graph_id")
    _index("spark_reviews", "status")


def _routing() -> None:
    op.create_table(
        "spark_routing",
        _string("graph_id"),
        _string("active_version_id"),
        _string("candidate_version_id", nullable=True),
        sa.Column("candidate_share", sa.Float(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("graph_id"),
    )
    op.create_table(
        "spark_routing_events",
        sa.Column("id", sa.Integer(), nullable=False),
        _string("graph_id"),
        _string("idempotency_key"),
        _string("action"),
        _string("active_version_id"),
        _string("candidate_version_id", nullable=True),
        sa.Column("candidate_share", sa.Float(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        _string("actor"),
        _string("reason"),
        _timestamp("at"),
        sa.PrimaryKeyConstraint("id"),
        # Unnamed, as create_all made it (PostgreSQL names it <table>_idempotency_key_key).
        sa.UniqueConstraint("idempotency_key"),
    )
    _index("spark_routing_events", "graph_id")


def _loop_leases() -> None:
    op.create_table(
        "spark_loop_leases",
        _string("graph_id"),
        _string("workflow_id"),
        _timestamp("acquired_at"),
        _timestamp("renewed_at"),
        sa.PrimaryKeyConstraint("graph_id"),
    )


def _experience() -> None:
    op.create_table(
        "spark_attempts",
        _string("attempt_id"),
        _string("graph_id"),
        sa.Column("cycle", sa.Integer(), nullable=False),
        _string("base_version_id"),
        _string("candidate_version_id", nullable=True),
        _string("hypothesis_id"),
        _string("title"),
        _string("diagnosis_kind"),
        sa.Column("change_kinds", sa.JSON(), nullable=False),
        sa.Column("target_nodes", sa.JSON(), nullable=False),
        _string("primary_metric"),
        _string("risk"),
        _string("outcome"),
        sa.Column("effect", sa.Float(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("attempt_id"),
    )
    _index("spark_attempts", "graph_id")
    _index("spark_attempts", "hypothesis_id")
    op.create_table(
        "spark_patterns",
        _string("pattern_id"),
        _string("diagnosis_kind"),
        _string("change_kind"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("successes", sa.Integer(), nullable=False),
        sa.Column("success_rate", sa.Float(), nullable=False),
        sa.Column("mean_effect", sa.Float(), nullable=True),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("pattern_id"),
    )
    op.create_table(
        "spark_proposals",
        _string("proposal_id"),
        _string("graph_id"),
        _string("base_version_id"),
        _string("hypothesis_id"),
        _string("title"),
        _string("change_signature"),
        _string("diagnosis_fingerprint"),
        _string("decision"),
        _string("reason"),
        sa.Column("prior_attempts", sa.Integer(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("proposal_id"),
    )
    _index("spark_proposals", "graph_id")
    _index("spark_proposals", "hypothesis_id")
    _index("spark_proposals", "change_signature")


_TABLES = (
    "spark_proposals",
    "spark_patterns",
    "spark_attempts",
    "spark_loop_leases",
    "spark_reviews",
    "spark_deployments",
    "spark_routing_events",
    "spark_routing",
    "spark_versions",
    "spark_graphs",
    "spark_feedback",
    "spark_spans",
    "spark_traces",
)
