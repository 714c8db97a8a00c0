"""Stores an ``OTLPBatch`` in the telemetry tables: one transaction, idempotent.

Rows go through the store's bulk writers (``spark.telemetry._bulk``), so a retried export (the
same ids) adds nothing, and mark their rollup units pending (``spark.telemetry.sealing``) like
any other write. A run's cost is recomputed from every stored span of its trace, so spans that
arrive before or after their root are counted either way.
"""

from __future__ import annotations

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Connection

from spark.db import get_engine, is_postgres, normalize_url
from spark.otlp.mapping import OTLPBatch
from spark.telemetry import _bulk, partitions, sealing

TRACES, SPANS = _bulk.TRACES, _bulk.SPANS


class OTLPWriter:
    """Writes mapped OTLP batches to the telemetry tables at ``database_url``."""

    def __init__(self, database_url: str) -> None:
        self.database_url = normalize_url(database_url)
        self._engine = get_engine(self.database_url)
        self._postgres = is_postgres(self.database_url)
        self._partitions = partitions.DayPartitions(self._engine) if self._postgres else None

    def write(self, batch: OTLPBatch) -> None:
        """Store every run and span of ``batch`` (or, on any failure, none of them)."""
        if not batch.traces and not batch.spans:
            return
        traces = [_bulk.trace_row(trace) for trace in batch.traces]
        spans = [_bulk.span_row(span) for span in batch.spans]
        writer = _bulk.write_postgres if self._postgres else _bulk.write_sqlite
        if self._partitions is not None:
            self._partitions.ensure(traces, spans, now=None)
        with self._engine.begin() as conn:
            driver = conn.connection.driver_connection
            stored_traces, stored_spans = writer(driver, traces, spans)  # type: ignore[arg-type]
            units = sealing.touched_units(stored_traces, stored_spans)
            sealing.mark_pending(driver, self._postgres, units)
            _recompute_costs(conn, batch.trace_ids)


def _recompute_costs(conn: Connection, trace_ids: list[str]) -> None:
    """A run costs the sum of its stored spans."""
    total = (
        select(func.coalesce(func.sum(SPANS.c.cost), 0.0))
        .where(SPANS.c.trace_id == TRACES.c.trace_id)
        .scalar_subquery()
    )
    statement = update(TRACES).where(TRACES.c.trace_id.in_(bindparam("ids", expanding=True)))
    conn.execute(statement.values(cost=total), {"ids": trace_ids})
