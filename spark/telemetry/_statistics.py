"""When the SQLite store refreshes the query planner's statistics (``ANALYZE``) after bulk loads.

Without statistics SQLite walks the ``graph_id`` index even when one graph is the whole table.
A full ``ANALYZE`` costs 0.2-0.5 µs per stored span (0.1 s at 500k, 0.3 s at 1.5M under load)
and a sampled one (``analysis_limit``) mis-estimates a graph that fills the table, so the store
runs a full one each time the span table has grown tenfold since the last: at 50k, 500k, 5M...
(a store opened on an analysed table starts from the row count the statistics recorded), a few
percent of the ingest in all. PostgreSQL's autovacuum analyses on its own.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

FIRST_ANALYZE_SPANS = 50_000
GROWTH = 10


class AnalyzeSchedule:
    """Tracks the span table's size from the writes and says when statistics are due
    (thread-safe)."""

    def __init__(
        self, analysed_spans: int = 0, first: int | None = None, growth: int = GROWTH
    ) -> None:
        floor = first if first is not None else FIRST_ANALYZE_SPANS
        self._spans = analysed_spans
        self._next = max(floor, analysed_spans * growth)
        self._growth = growth
        self._lock = threading.Lock()

    def due(self, spans_written: int) -> bool:
        """Add ``spans_written``; True when the table reaches the next threshold (then
        ``growth`` times its size)."""
        with self._lock:
            self._spans += spans_written
            if self._spans < self._next:
                return False
            self._next = self._spans * self._growth
            return True


def analysed_spans(connection: sqlite3.Connection | Any) -> int:
    """How many spans the table held when statistics were last gathered (0: never)."""
    # Each index has a row whose stat starts with its entry count; a partial index counts fewer.
    query = "SELECT max(CAST(stat AS INTEGER)) FROM sqlite_stat1 WHERE tbl = 'spark_spans'"
    try:
        row = connection.execute(query).fetchone()
    except sqlite3.OperationalError:  # no sqlite_stat1 before the first ANALYZE
        return 0
    return int(row[0]) if row and row[0] is not None else 0


_generation = 0


def statistics_changed() -> None:
    """Note that an ``ANALYZE`` ran: pooled connections reload statistics at their next checkout
    (SQLite keeps the statistics it read with the schema until told ``ANALYZE sqlite_schema``)."""
    global _generation
    _generation += 1


def generation() -> int:
    """How many times statistics changed in this process (compared at connection checkout)."""
    return _generation
