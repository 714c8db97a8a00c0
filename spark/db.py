"""Database engines for the three stores (telemetry, registry, experience).

One SQLAlchemy engine per URL. SQLite (the embedded default) runs in WAL mode so readers never
block the telemetry writer; PostgreSQL goes through psycopg 3 (``postgresql+psycopg://``).
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import SQLModel, create_engine

_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()
SCHEMA_LOCK_KEY = 0x5350_524B  # "SPRK": the advisory lock serialising schema creation
SCHEMA_ATTEMPTS = 6


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
    _import_all_tables()
    _create_schema(engine, url)
    return engine


def _create_schema(engine: Engine, url: str) -> None:
    """Create missing tables, safely when several processes (worker, client, CLI) open a new
    database at the same moment: PostgreSQL serialises them with an advisory lock; on SQLite a
    process that loses the race sees "already exists" and checks again."""
    if is_postgres(url):
        with engine.begin() as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            SQLModel.metadata.create_all(connection)
        return
    for attempt in range(1, SCHEMA_ATTEMPTS + 1):
        try:
            SQLModel.metadata.create_all(engine)
            return
        except OperationalError as exc:
            if "already exists" not in str(exc) or attempt == SCHEMA_ATTEMPTS:
                raise
            time.sleep(0.05 * attempt)


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
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


def _import_all_tables() -> None:
    """Import every table module so ``create_all`` sees the whole schema."""
    import importlib

    for module in (
        "spark.telemetry.tables",
        "spark.registry.tables",
        "spark.registry.loops",
        "spark.experience.tables",
    ):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
