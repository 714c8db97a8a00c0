"""Real database outages for the fault tests: a SQLite file that cannot be opened, a PostgreSQL
database that refuses every connection.

Both cut the live connections too, so the next statement of every pooled connection fails the
way it does in production, and both restore the database exactly as it was.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import psycopg

from spark.db import dispose_engine, get_engine, sqlite_url

POSTGRES_ADMIN_DSN = os.environ.get(
    "SPARK_TEST_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test"
)


class DatabaseOutage(Protocol):
    """A database that can be taken away and given back."""

    url: str
    backend: str

    def begin(self) -> None:
        """Make every new and existing connection fail."""
        ...

    def end(self) -> None:
        """Accept connections again; harmless when the database is there."""
        ...

    def drop(self) -> None:
        """Remove the database for good (teardown)."""
        ...


class SqliteOutage:
    """A SQLite file whose folder is moved away: opening it fails with "unable to open database
    file" (as after an unmounted volume), and pooled connections are closed so none survives."""

    backend = "sqlite"

    def __init__(self, root: Path) -> None:
        self._folder, self._away = root / "db", root / "db-away"
        self.url = sqlite_url(self._folder / "spark.db")

    def begin(self) -> None:
        """Move the folder away and close the pooled connections."""
        self._folder.rename(self._away)
        get_engine(self.url).dispose()

    def end(self) -> None:
        """Put the folder back (nothing to do when it is there)."""
        if self._away.exists():
            self._away.rename(self._folder)

    def drop(self) -> None:
        """Forget the engine (the folder goes with the test's tmp_path)."""
        dispose_engine(self.url)


class PostgresOutage:
    """A dedicated PostgreSQL database: ``ALLOW_CONNECTIONS false`` refuses new connections
    ("database ... is not currently accepting connections") and ``pg_terminate_backend`` ends
    the live ones, as a failover or a restart does."""

    backend = "postgresql"

    def __init__(self) -> None:
        self._name = f"spark_outage_{uuid.uuid4().hex[:12]}"
        params = dict(part.split("=", 1) for part in POSTGRES_ADMIN_DSN.split())
        host, port = params.get("host", "127.0.0.1"), params.get("port", "5432")
        self.url = f"postgresql+psycopg://{params['user']}@{host}:{port}/{self._name}"
        self._admin(f'CREATE DATABASE "{self._name}"')

    def begin(self) -> None:
        """Refuse new connections, then terminate the open ones."""
        self._admin(f'ALTER DATABASE "{self._name}" ALLOW_CONNECTIONS false')
        self._admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{self._name}' AND pid <> pg_backend_pid()"
        )

    def end(self) -> None:
        """Accept connections again."""
        self._admin(f'ALTER DATABASE "{self._name}" ALLOW_CONNECTIONS true')

    def drop(self) -> None:
        """Drop the database and forget its engine."""
        dispose_engine(self.url)
        self._admin(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)')

    @staticmethod
    def _admin(sql: str) -> None:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(sql)  # our own identifiers only


@contextmanager
def outage(database: DatabaseOutage) -> Iterator[None]:
    """The database is away inside the block and back after it, whatever happens inside."""
    database.begin()
    try:
        yield
    finally:
        database.end()
