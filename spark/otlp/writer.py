"""Stores an ``OTLPBatch`` in the telemetry tables: one transaction, idempotent.

A retried export (the same ids) adds nothing; a run's cost is recomputed from every stored span
of its trace, so spans that arrive before or after their root are counted either way.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from spark.db import get_engine, is_postgres, normalize_url
from spark.otlp.mapping import OTLPBatch
from spark.telemetry.tables import SpanRow, TraceRow

TRACES: Table = TraceRow.__table__  # type: ignore[attr-defined]
SPANS: Table = SpanRow.__table__  # type: ignore[attr-defined]


class OTLPWriter:
    """Writes mapped OTLP batches to the telemetry tables at ``database_url``."""

    def __init__(self, database_url: str) -> None:
        self.database_url = normalize_url(database_url)
        self._engine = get_engine(self.database_url)
        self._dialect = postgresql if is_postgres(self.database_url) else sqlite

    def write(self, batch: OTLPBatch) -> None:
        """Store every run and span of ``batch`` (or, on any failure, none of them)."""
        if not batch.traces and not batch.spans:
            return
        with self._engine.begin() as conn:
            self._insert(conn, SPANS, [asdict(span) for span in batch.spans])
            self._insert(conn, TRACES, [asdict(trace) for trace in batch.traces])
            _recompute_costs(conn, batch.trace_ids)

    def _insert(self, conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
        if rows:
            conn.execute(self._dialect.insert(table).on_conflict_do_nothing(), rows)


def _recompute_costs(conn: Connection, trace_ids: list[str]) -> None:
    """A run costs the sum of its stored spans."""
    total = (
        select(func.coalesce(func.sum(SPANS.c.cost), 0.0))
        .where(SPANS.c.trace_id == TRACES.c.trace_id)
        .scalar_subquery()
    )
    statement = update(TRACES).where(TRACES.c.trace_id.in_(bindparam("ids", expanding=True)))
    conn.execute(statement.values(cost=total), {"ids": trace_ids})
