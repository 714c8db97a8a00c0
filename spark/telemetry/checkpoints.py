"""SQLite: WAL checkpoints off the telemetry write path.

In WAL mode SQLite copies the log back into the database file (a checkpoint) from inside the
commit that takes the log past ``wal_autocheckpoint`` pages, so every few batches one write
paid for copying (and syncing) megabytes of pages: 0.28 s of 1.86 s writing 300k spans through
the recorder (cProfile). The telemetry store instead has a thread of its own run a PASSIVE
checkpoint (it never blocks a writer or a reader) after its writes, at most every
``CHECKPOINT_INTERVAL_S``, while the writer goes on writing; the connections' automatic
checkpoint stays as a backstop at ``spark.db.WAL_AUTOCHECKPOINT_PAGES`` in case this thread falls
behind or the process writing has no telemetry store. The thread keeps one connection of its own,
opened read-write without the right to create the file (a database deleted meanwhile is never
created again), and ends, closing it, after ``IDLE_EXIT_S`` without writes; the next write
starts it again.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

CHECKPOINT_INTERVAL_S = 0.05
"""The shortest time between two background checkpoints (writes in between share one)."""
IDLE_EXIT_S = 30.0
"""How long the checkpointer thread waits for a write before it ends."""


class BackgroundCheckpointer:
    """Checkpoints one SQLite database file's WAL in a daemon thread when told a write
    committed."""

    def __init__(self, database_path: str) -> None:
        self._uri = f"{Path(database_path).resolve().as_uri()}?mode=rw"
        self._due = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._busy = False
        self.checkpoints = 0  # completed checkpoints, for tests and logs

    def written(self) -> None:
        """A write committed: checkpoint soon (starting the thread if it is not running)."""
        self._due.set()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="spark-wal-checkpointer", daemon=True
                )
                self._thread.start()

    def wait_idle(self, timeout: float) -> bool:
        """Until no checkpoint is due or running (False if ``timeout`` seconds pass first)."""
        deadline = time.monotonic() + timeout
        while self._due.is_set() or self._busy:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    @property
    def running(self) -> bool:
        """Whether the thread is alive (it ends after ``IDLE_EXIT_S`` without writes)."""
        with self._lock:
            return self._thread is not None

    def _run(self) -> None:
        connection = self._connect()
        try:
            while connection is not None:
                if not self._due.wait(IDLE_EXIT_S):
                    with self._lock:
                        if not self._due.is_set():  # a write arriving now starts a new thread
                            self._thread = None
                            return
                self._busy = True
                self._due.clear()
                try:
                    self._checkpoint(connection)
                finally:
                    self._busy = False
                time.sleep(CHECKPOINT_INTERVAL_S)
        finally:
            if connection is not None:
                connection.close()
            with self._lock:  # ended by a failure: the next write starts a new thread
                self._thread = None

    def _connect(self) -> sqlite3.Connection | None:
        try:
            return sqlite3.connect(self._uri, uri=True, isolation_level=None, timeout=0)
        except sqlite3.Error as exc:  # the file is gone: nothing to checkpoint
            log.debug("telemetry.checkpoint_unavailable", error_type=type(exc).__name__)
            self._due.clear()
            return None

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.checkpoints += 1
        except sqlite3.Error as exc:  # busy with another checkpoint; the automatic one still runs
            log.debug("telemetry.checkpoint_failed", error_type=type(exc).__name__)
