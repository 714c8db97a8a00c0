"""A real database per fault test, on SQLite and on PostgreSQL, that can be taken away."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spark.db import get_engine
from tests.faults.outage import DatabaseOutage, PostgresOutage, SqliteOutage


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DatabaseOutage]:
    """A fresh database with the Spark schema, on each backend; always given back and dropped."""
    db: DatabaseOutage = SqliteOutage(tmp_path) if request.param == "sqlite" else PostgresOutage()
    yield from _given_back(db)


@pytest.fixture
def postgres_outage() -> Iterator[DatabaseOutage]:
    """The PostgreSQL one alone: its outage reaches every process's connections (the SQLite
    one closes only this process's pooled connections)."""
    yield from _given_back(PostgresOutage())


def _given_back(db: DatabaseOutage) -> Iterator[DatabaseOutage]:
    get_engine(db.url)  # create the schema while the database is there
    try:
        yield db
    finally:
        db.end()
        db.drop()
