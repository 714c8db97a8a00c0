"""Database engines for the three stores (telemetry, registry, experience).

One SQLAlchemy engine per URL. SQLite (the embedded default) runs in WAL mode so readers never
block the telemetry writer; PostgreSQL goes through psycopg 3 (``postgresql+psycopg://``).
"""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, create_engine

_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()


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
    SQLModel.metadata.create_all(engine)
    return engine


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _import_all_tables() -> None:
    """Import every table module so ``create_all`` sees the whole schema."""
    import importlib

    for module in ("spark.telemetry.tables", "spark.registry.tables", "spark.experience.tables"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
