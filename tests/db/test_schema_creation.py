"""Several processes opening a brand-new database at once (worker, client, CLI) all succeed."""

from __future__ import annotations

import math
import multiprocessing

import pytest
from sqlalchemy import inspect

from spark.db import get_engine


def _open(url: str) -> None:
    get_engine(url)


def _open_concurrently(url: str, processes: int = 6) -> list[int | None]:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_open, args=(url,)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    return [worker.exitcode for worker in workers]


def test_concurrent_first_open_of_a_sqlite_file(sqlite_database_url: str) -> None:
    assert _open_concurrently(sqlite_database_url) == [0] * 6
    tables = set(inspect(get_engine(sqlite_database_url)).get_table_names())
    assert {"spark_spans", "spark_routing_events", "spark_versions"} <= tables


def test_concurrent_first_open_of_a_postgres_schema(postgres_database_url: str) -> None:
    assert _open_concurrently(postgres_database_url) == [0] * 6
    tables = set(inspect(get_engine(postgres_database_url)).get_table_names())
    assert {"spark_spans", "spark_routing_events", "spark_versions"} <= tables


def test_sqlite_log_fallback_follows_sql_semantics() -> None:
    """Where SQLite lacks its math functions, ``ln`` is registered with the same semantics."""
    from spark.db import _ln

    assert _ln(math.e) == pytest.approx(1.0)
    assert _ln(None) is None and _ln(0.0) is None and _ln(-1.0) is None
