"""Alembic driven from Python on a connection the caller holds (no ``alembic.ini``).

``spark.db`` calls ``upgrade`` inside one transaction that holds the schema lock, so revisions,
the legacy stamp and the version-table write commit together or not at all.
"""

from __future__ import annotations

from pathlib import Path

import structlog
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from spark.errors import ConfigurationError
from spark.migrations import LEGACY_REVISION, VERSION_TABLE, head_revision

log = structlog.get_logger(__name__)

_SCRIPTS = Path(__file__).resolve().parent


def alembic_config(connection: Connection) -> Config:
    """An Alembic config for the scripts shipped in this package, bound to ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def script_head() -> str | None:
    """The newest revision among the scripts in ``versions/``."""
    return ScriptDirectory(str(_SCRIPTS)).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The revision recorded in Spark's version table, or None when it has none."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def upgrade(connection: Connection) -> None:
    """Bring the database to the head revision. A database made by ``create_all`` before
    migrations existed (Spark tables, no version table) is first stamped at ``0001``."""
    current = current_revision(connection)
    head = head_revision()
    if current == head:
        return
    config = alembic_config(connection)
    _check_known(current, head)
    if current is None and _made_by_create_all(connection):
        command.stamp(config, LEGACY_REVISION)
        log.info("database made before migrations stamped", revision=LEGACY_REVISION)
        current = LEGACY_REVISION
    command.upgrade(config, "head")
    log.info("database schema upgraded", from_revision=current, to_revision=head)


def downgrade(connection: Connection, revision: str) -> None:
    """Take the database back to ``revision`` (``"base"``: no Spark tables at all)."""
    command.downgrade(alembic_config(connection), revision)


def _check_known(current: str | None, head: str) -> None:
    if current is None:
        return
    try:
        ScriptDirectory(str(_SCRIPTS)).get_revision(current)
    except CommandError as exc:
        raise ConfigurationError(
            f"the database schema is at revision {current!r}, which this Spark does not know "
            f"(its newest is {head!r}): a newer Spark migrated it; upgrade spark-rsi"
        ) from exc


def _made_by_create_all(connection: Connection) -> bool:
    names = inspect(connection).get_table_names()
    return any(name.startswith("spark_") and name != VERSION_TABLE for name in names)
