"""When the SQLite store refreshes the query planner's statistics (``ANALYZE``) after bulk loads.

Without statistics SQLite walks the ``graph_id`` index even when one graph is the whole table.
A full ``ANALYZE`` costs about 0.5 µs per stored span (0.15 s at 300k) and a sampled one
(``analysis_limit``) mis-estimates a graph that fills the table, so the store runs a full one each
time the spans it has written grow tenfold: 50k, 500k, 5M... which at 1M spans is under 0.3 s in
all, a few percent of the ingest. PostgreSQL's autovacuum analyses on its own.
"""

from __future__ import annotations

import threading

FIRST_ANALYZE_SPANS = 50_000
GROWTH = 10


class AnalyzeSchedule:
    """Counts spans written and says when statistics are due (thread-safe)."""

    def __init__(self, first: int | None = None, growth: int = GROWTH) -> None:
        self._written = 0
        self._next = first if first is not None else FIRST_ANALYZE_SPANS
        self._growth = growth
        self._lock = threading.Lock()

    def due(self, spans_written: int) -> bool:
        """Add ``spans_written``; True once each time the total crosses the next threshold."""
        with self._lock:
            self._written += spans_written
            if self._written < self._next:
                return False
            while self._next <= self._written:
                self._next *= self._growth
            return True


_generation = 0


def statistics_changed() -> None:
    """Note that an ``ANALYZE`` ran: pooled connections reload statistics at their next checkout
    (SQLite keeps the statistics it read with the schema until told ``ANALYZE sqlite_schema``)."""
    global _generation
    _generation += 1


def generation() -> int:
    """How many times statistics changed in this process (compared at connection checkout)."""
    return _generation
