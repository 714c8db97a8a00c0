"""Stores an ``OTLPBatch`` in the telemetry tables: one transaction, idempotent.

Rows go through the store's bulk writers (``spark.telemetry._bulk``) and mark their rollup
units pending (``spark.telemetry.sealing``) like any other write. Every span is recorded by id in
``spark_span_keys``, so an export sent again adds nothing however its spans are split between
requests (a child before its root and again with it, or with its root and again alone). A run
costs the sum of its stored spans, whether they arrive before, with or after its root
(``_settle_costs``: no scan of the span table).
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
        traces, spans = batch.traces, batch.spans
        writer = _bulk.write_postgres if self._postgres else _bulk.write_sqlite
        if self._partitions is not None:
            self._partitions.ensure(traces, spans, now=None)
        with self._engine.begin() as conn:
            driver = conn.connection.driver_connection
            stored_traces, stored_spans = writer(
                driver,  # type: ignore[arg-type]
                traces,
                spans,
                key_every_span=True,
            )
            units = sealing.touched_units(stored_traces, stored_spans)
            sealing.mark_pending(driver, self._postgres, units)
            _settle_costs(conn, stored_traces, stored_spans)


def _settle_costs(
    conn: Connection, stored_traces: Sequence[Row], stored_spans: Sequence[Row]
) -> None:
    """A run costs the sum of its stored spans, kept without scanning the span table. A run
    stored now costs what its recorded span keys cost (every span of it stored so far, in this
    batch or earlier, each once); a span stored now for a run stored earlier adds its cost to
    it (a run not stored yet takes it from ``spark_span_keys`` when it comes)."""
    new_runs = [row[0] for row in stored_traces]
    if new_runs:
        costs = dict.fromkeys(new_runs, 0.0)
        for trace_id, cost in conn.execute(_KEYED_COSTS, {"ids": new_runs}):
            costs[trace_id] = float(cost)
        conn.execute(_SET_COST, [{"id": trace_id, "cost": c} for trace_id, c in costs.items()])
    fresh = set(new_runs)
    additions: dict[str, float] = {}
    for span in stored_spans:
        if span[1] not in fresh:
            additions[span[1]] = additions.get(span[1], 0.0) + float(span[_COST])
    if additions:
        conn.execute(_ADD_COST, [{"id": trace_id, "cost": c} for trace_id, c in additions.items()])


_COST = _bulk.SPAN_COLUMNS.index("cost")
_KEYED_COSTS = text(
    "SELECT trace_id, sum(cost) FROM spark_span_keys WHERE trace_id IN :ids GROUP BY trace_id"
).bindparams(bindparam("ids", expanding=True))
_SET_COST = text("UPDATE spark_traces SET cost = :cost WHERE trace_id = :id")
_ADD_COST = text("UPDATE spark_traces SET cost = cost + :cost WHERE trace_id = :id")
