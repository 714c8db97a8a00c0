"""Database engines for the three stores (telemetry, registry, experience).

One SQLAlchemy engine per URL. SQLite (the embedded default) runs in WAL mode so readers never
block the telemetry writer; PostgreSQL goes through psycopg 3 (``postgresql+psycopg://``). The
first engine for a URL brings its schema to the newest migration (``spark.migrations``).
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlmodel import create_engine

from spark.migrations import VERSION_TABLE, head_revision

_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()
SCHEMA_LOCK_KEY = 0x5350_524B  # "SPRK": the advisory lock serialising migrations


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` / ``postgres://`` and pin the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def is_postgres(url: str) -> bool:
    """Whether the URL points at PostgreSQL."""
    return normalize_url(url).startswith("postgresql")


def sqlite_url(path: str | Path) -> str:
    """The SQLAlchemy URL of a SQLite file, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def get_engine(url: str) -> Engine:
    """The shared engine for ``url``, created on first use with its tables."""
    url = normalize_url(url)
    with _LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            engine = _create(url)
            _ENGINES[url] = engine
    return engine


def dispose_engine(url: str) -> None:
    """Close and forget the engine for ``url`` (tests, shutdown)."""
    with _LOCK:
        engine = _ENGINES.pop(normalize_url(url), None)
    if engine is not None:
        engine.dispose()


def _create(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    _create_schema(engine, url)
    return engine


def _create_schema(engine: Engine, url: str) -> None:
    """Bring the schema to the newest migration (``spark.migrations``).

    At the head this is one read of the version table, and Alembic is never imported. Otherwise
    the migration runs in one transaction holding the schema lock, so several processes (worker,
    client, CLI) opening a new or older database at once migrate it once: the others wait, then
    find it at the head.
    """
    if _schema_revision(engine) == head_revision():
        return
    from spark.migrations.runner import upgrade

    with _schema_transaction(engine, url) as connection:
        upgrade(connection)


def _schema_revision(engine: Engine) -> str | None:
    """The revision in Spark's version table; None when there is no such table yet."""
    try:
        with engine.connect() as connection:
            return connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    except (OperationalError, ProgrammingError):
        return None


@contextmanager
def _schema_transaction(engine: Engine, url: str) -> Iterator[Connection]:
    """A transaction that holds the schema lock from its start and commits on success:
    an advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` (the write lock) on SQLite."""
    if is_postgres(url):
        with engine.begin() as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            yield connection
        return
    with engine.connect() as connection:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield connection
        connection.commit()


WAL_AUTOCHECKPOINT_PAGES = 10_000
"""The WAL size (4 KiB pages: 40 MiB) at which a committing connection checkpoints it itself:
a backstop, as the telemetry store checkpoints in the background (``spark.telemetry
.checkpoints``) instead of inside its writes (SQLite's default is 1,000)."""
WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
"""What the WAL file is truncated back to when it restarts after a long burst."""


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
    try:
        cursor.execute("SELECT ln(1.0)")
    except sqlite3.OperationalError:  # SQLite built without its math functions
        dbapi_connection.create_function("ln", 1, _ln, deterministic=True)  # type: ignore[attr-defined]
    cursor.close()


def _ln(value: float | None) -> float | None:
    """Natural log with SQL semantics: NULL for NULL and for non-positive input."""
    if value is None or value <= 0:
        return None
    return math.log(value)
