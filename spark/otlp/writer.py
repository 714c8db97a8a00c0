"""Stores an ``OTLPBatch`` in the telemetry tables: one transaction, idempotent.

Rows go through the store's bulk writers (``spark.telemetry._bulk``), so a retried export (the
same ids) adds nothing, and mark their rollup units pending (``spark.telemetry.sealing``) like
any other write. A run costs the sum of its stored spans, whether they arrive before, with or
after its root (``_add_costs``: no scan of the span table).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection

from spark.db import get_engine, is_postgres, normalize_url
from spark.otlp.mapping import OTLPBatch
from spark.telemetry import _bulk, partitions, sealing

TRACES, SPANS = _bulk.TRACES, _bulk.SPANS
Row = tuple[Any, ...]


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
            _add_costs(conn, stored_traces, stored_spans, traces)


def _add_costs(
    conn: Connection, stored_traces: Sequence[Row], stored_spans: Sequence[Row], runs: Sequence[Row]
) -> None:
    """A run costs the sum of its stored spans, kept without scanning the span table. A run
    stored now (``stored_traces``, costed by the mapping with the spans it came with) adds the
    spans stored earlier without it (``spark_span_keys``); spans stored now without their run
    (their trace is not among the batch's ``runs``) add their cost to the run if it is stored
    already (if not, it takes them from ``spark_span_keys`` when it comes)."""
    additions: dict[str, float] = {}
    new_runs = [row[0] for row in stored_traces]
    if new_runs:
        for trace_id, cost in conn.execute(_EARLIER_ORPHANS, {"ids": new_runs}):
            additions[trace_id] = float(cost)
    in_batch = {row[0] for row in runs}
    for span in stored_spans:
        if span[1] not in in_batch:
            additions[span[1]] = additions.get(span[1], 0.0) + float(span[_COST])
    if additions:
        conn.execute(_ADD_COST, [{"id": trace_id, "cost": c} for trace_id, c in additions.items()])


_COST = _bulk.SPAN_COLUMNS.index("cost")
_EARLIER_ORPHANS = text(
    "SELECT trace_id, sum(cost) FROM spark_span_keys WHERE trace_id IN :ids GROUP BY trace_id"
).bindparams(bindparam("ids", expanding=True))
_ADD_COST = text("UPDATE spark_traces SET cost = cost + :cost WHERE trace_id = :id")
