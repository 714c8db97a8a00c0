"""SQLite WAL checkpoints run in a background thread of the telemetry store, not inside its
writes; the connections' own automatic checkpoint stays as a backstop."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from spark.db import WAL_AUTOCHECKPOINT_PAGES, get_engine
from spark.telemetry import TelemetryStore, checkpoints
from spark.telemetry.checkpoints import BackgroundCheckpointer
from tests.telemetry import factories


def _checkpointer(store: TelemetryStore) -> BackgroundCheckpointer:
    checkpointer = store._checkpointer
    assert checkpointer is not None
    return checkpointer


def test_a_write_is_followed_by_a_background_checkpoint(sqlite_database_url: str) -> None:
    """Each write wakes the checkpointer, which checkpoints the WAL on its own connection."""
    store = TelemetryStore(sqlite_database_url)
    checkpointer = _checkpointer(store)
    store.write_runs([factories.run(n_spans=3)])

    assert checkpointer.wait_idle(timeout=30)
    assert checkpointer.checkpoints >= 1
    store.write_runs([factories.run(n_spans=3)])
    assert checkpointer.wait_idle(timeout=30)
    assert checkpointer.checkpoints >= 2


def test_the_checkpointer_ends_when_idle_and_restarts_with_the_next_write(
    sqlite_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No thread lingers after the writes stop; the next write starts one again."""
    monkeypatch.setattr(checkpoints, "IDLE_EXIT_S", 0.05)
    store = TelemetryStore(sqlite_database_url)
    checkpointer = _checkpointer(store)
    store.write_runs([factories.run()])
    assert checkpointer.wait_idle(timeout=30)
    _until(lambda: not checkpointer.running)

    done = checkpointer.checkpoints
    store.write_runs([factories.run()])
    assert checkpointer.running or checkpointer.checkpoints > done
    assert checkpointer.wait_idle(timeout=30)
    assert checkpointer.checkpoints == done + 1


def test_a_deleted_database_is_never_created_again(tmp_path: Path) -> None:
    """A checkpoint asked for after the database files were removed creates no file."""
    path = tmp_path / "gone.db"
    checkpointer = BackgroundCheckpointer(str(path))
    checkpointer.written()
    assert checkpointer.wait_idle(timeout=30)
    _until(lambda: not checkpointer.running)
    assert os.listdir(tmp_path) == []
    assert checkpointer.checkpoints == 0


def test_connections_checkpoint_themselves_only_as_a_backstop(sqlite_database_url: str) -> None:
    """The automatic checkpoint of every connection waits for a much larger WAL."""
    with get_engine(sqlite_database_url).connect() as conn:
        pages = conn.execute(text("PRAGMA wal_autocheckpoint")).scalar_one()
    assert pages == WAL_AUTOCHECKPOINT_PAGES > 1_000


def test_postgres_stores_have_no_checkpointer(postgres_database_url: str) -> None:
    """PostgreSQL checkpoints on its own."""
    assert TelemetryStore(postgres_database_url)._checkpointer is None


def _until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)
