"""The Spark schema's history as Alembic migrations, applied by ``spark.db.get_engine``.

Every database Spark opens is brought to the newest revision (``head_revision()``) on first use:
a new database gets every revision in order; one made by ``create_all`` before migrations
existed (tables, no version table) is stamped at ``0001`` and upgraded from there; one already at
the head costs a single read of the version table and never loads Alembic. Users need no
``alembic.ini``: ``spark.migrations.runner`` drives Alembic from Python with the scripts that
ship in this package (``env.py`` and ``versions/``).

Adding a revision (developers)
------------------------------
1. Change the table models (``spark/*/tables.py``, ``spark/registry/loops.py``; a new module of
   tables goes into ``TABLE_MODULES`` below).
2. Write ``versions/000N_<what>.py`` by hand, copying the shape of the newest one. The file
   starts with its revision number and the highest number is the head (read without Alembic);
   ``revision = "000N"``, ``down_revision`` = the previous number, explicit ``op.*`` calls in
   ``upgrade`` and their reverse in ``downgrade``. Alter or drop columns inside
   ``op.batch_alter_table`` so that SQLite, which cannot alter most columns, rebuilds the
   table; a new NOT NULL column needs a ``server_default`` for the rows already there. Never
   import the models in a revision: a revision must keep meaning what it meant.
3. ``pytest tests/db/test_migrations.py``: it compares the models with a database migrated to
   the head (Alembic's autogenerate comparison) on SQLite and PostgreSQL, so a model change
   without its migration, or a migration without its model change, fails CI; it also fails
   when two revisions share a number or the chain has a gap.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Index, MetaData

VERSIONS = Path(__file__).resolve().parent / "versions"
_REVISION_FILE = re.compile(r"^(\d{4})_\w+\.py$")

LEGACY_REVISION = "0001"
"""The schema ``create_all`` made before migrations existed (the release at commit 6c764c0)."""

VERSION_TABLE = "spark_alembic_version"
"""Spark's own version table, so an application that shares the database keeps its own
``alembic_version``."""

TABLE_MODULES = (
    "spark.telemetry.tables",
    "spark.registry.tables",
    "spark.registry.loops",
    "spark.experience.tables",
)
"""Every module that defines Spark tables."""


def target_metadata(dialect: str | None = None) -> MetaData:
    """The models' metadata with every Spark table loaded (what the head revision must match).

    With ``dialect`` (``"sqlite"``, ``"postgresql"``), a copy without the indexes that exist on
    other dialects only (``Index.ddl_if``), which Alembic's comparison does not know about."""
    from sqlmodel import SQLModel

    for module in TABLE_MODULES:
        importlib.import_module(module)
    if dialect is None:
        return SQLModel.metadata
    copy = MetaData()
    for table in SQLModel.metadata.sorted_tables:
        elsewhere = {index.name for index in table.indexes if not _exists_on(index, dialect)}
        copied = table.to_metadata(copy)
        for index in [index for index in copied.indexes if index.name in elsewhere]:
            copied.indexes.discard(index)
    return copy


_PARTITION = re.compile(r"^spark_(traces|spans)_(p\d{8}|default)$")


def include_name(name: str | None, type_: str, parent_names: Mapping[str, Any]) -> bool:
    """Alembic's ``include_name`` hook for comparisons with the models: the day partitions of
    PostgreSQL's telemetry tables (migration 0011) are tables to the catalog but no model's;
    they are made by the write path (``spark.telemetry.partitions``)."""
    return not (type_ == "table" and name is not None and _PARTITION.match(name))


def _exists_on(index: Index, dialect: str) -> bool:
    condition = index._ddl_if
    return condition is None or condition.dialect in (None, dialect)


@functools.cache
def head_revision() -> str:
    """The newest revision, read from the file names in ``versions/`` without loading Alembic
    (revisions are numbered in order and each file starts with its number)."""
    numbers = [m.group(1) for path in VERSIONS.iterdir() if (m := _REVISION_FILE.match(path.name))]
    return max(numbers)
