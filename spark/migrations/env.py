"""Alembic's environment script: runs revisions on the connection ``spark.migrations.runner``
passes in ``config.attributes["connection"]`` (its caller holds the schema lock and commits)."""

from __future__ import annotations

from alembic import context

from spark.migrations import VERSION_TABLE


def run_migrations() -> None:
    """Run the requested revisions on the caller's connection, inside its transaction."""
    context.configure(
        connection=context.config.attributes["connection"],
        version_table=VERSION_TABLE,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
