"""Sealing rollups: each bucket's rollups are computed once, from its raw rows, after it closes.

The write path does no rollup arithmetic. In the transaction that stores a batch it records the
*units* the batch touched, one ``(graph, version, bucket)`` each, in ``spark_rollup_pending``
(a handful of rows per batch, whatever its size). The sealer takes a unit once its bucket has
been closed for ``SEAL_GRACE_S``: it recomputes the unit's rollup rows from its raw traces and
spans, replaces the stored ones, and deletes the pending row, all in one transaction. A row
written later into a sealed bucket (a late span, a backlog after an outage) marks the unit
pending again, and the next seal recomputes it; nothing is ever counted twice or missed, because
a seal is a recomputation, not an increment.

Reads (``spark.telemetry.rollups``) take the rollups of every sealed unit in the window and the
raw rows of the pending ones, so a read is exact in its counts whatever has been sealed yet; its
cost grows with the pending units (about an hour per live version, the current bucket and the
grace period), not with history.

Writers and the sealer of one unit are serialised without blocking writers among themselves: on
PostgreSQL each writer holds a shared advisory lock per unit it touches and the sealer an
exclusive one, so a seal sees every batch committed before it, and a batch that commits after
it re-marks the unit. SQLite has one writer at a time anyway; the sealer takes the write lock
before it reads.

Sealing is opportunistic: ``TelemetryStore.write_runs`` seals due units at most every
``SEAL_CHECK_INTERVAL_S`` (bounded by ``SEAL_BUDGET_S`` a check), and ``spark rollups seal``
seals everything due.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import numpy as np

from spark.telemetry import _bulk
from spark.telemetry.rollups import (
    BUCKET_SECONDS,
    PENDING_TABLE,
    TABLE,
    Key,
    Rollup,
    group_rows,
    insert_rows,
    merge,
)

SEAL_GRACE_S = 600.0
"""How long after its bucket ends a unit waits before it is sealed: spans of runs still going
at the bucket's end land in the meantime instead of re-opening it."""
SEAL_CHECK_INTERVAL_S = 60.0
SEAL_BUDGET_S = 5.0
Unit = tuple[str, str, float]
"""``(graph_id, version_id, bucket_start)``: what one seal recomputes."""

_CHUNK = 50_000
_LOCK_KEY = struct.Struct("<q")


def touched_units(traces: Sequence[Sequence[Any]], spans: Sequence[Sequence[Any]]) -> list[Unit]:
    """The units of the stored ``traces`` and ``spans`` rows, each once, in sorted order (the
    order every writer locks them in)."""
    units: set[Unit] = set()
    for rows, names in ((traces, _bulk.TRACE_COLUMNS), (spans, _bulk.SPAN_COLUMNS)):
        if rows:
            units.update(_units_of(rows, names))
    return sorted(units)


def _units_of(rows: Sequence[Sequence[Any]], names: Sequence[str]) -> set[Unit]:
    """Distinct units of ``rows``: columns pulled by ``map`` and the buckets computed by NumPy,
    so no bytecode runs per row."""
    graphs = map(itemgetter(names.index("graph_id")), rows)
    versions = map(itemgetter(names.index("version_id")), rows)
    started = np.fromiter(map(itemgetter(names.index("started_at")), rows), np.float64, len(rows))
    buckets = (np.floor(started / BUCKET_SECONDS) * BUCKET_SECONDS).tolist()
    return set(zip(graphs, versions, buckets, strict=True))


def lock_key(unit: Unit) -> int:
    """The signed 64-bit advisory lock key of ``unit`` (a collision only serialises more)."""
    digest = hashlib.blake2b(repr(unit).encode(), digest_size=8).digest()
    return int(_LOCK_KEY.unpack(digest)[0])


def mark_pending(connection: Any, postgres: bool, units: Sequence[Unit]) -> None:
    """Record ``units`` as pending in the caller's write transaction (driver connection)."""
    if not units:
        return
    cursor = connection.cursor()
    try:
        if postgres:
            cursor.execute(
                "SELECT pg_advisory_xact_lock_shared(k) FROM unnest(%s::bigint[]) AS k",
                ([lock_key(unit) for unit in units],),
            )
        mark = "%s" if postgres else "?"
        cursor.executemany(
            f"INSERT INTO {PENDING_TABLE} (graph_id, version_id, bucket_start)"
            f" VALUES ({mark}, {mark}, {mark}) ON CONFLICT DO NOTHING",
            units,
        )
    finally:
        cursor.close()


def due_units(
    connection: Any, postgres: bool, cutoff: float, limit: int, graph_id: str | None = None
) -> list[Unit]:
    """Pending units whose bucket ended by ``cutoff`` (of ``graph_id`` only, if given), oldest
    first, at most ``limit``."""
    mark = "%s" if postgres else "?"
    graph = f" AND graph_id = {mark}" if graph_id is not None else ""
    cursor = connection.cursor()
    try:
        cursor.execute(
            f"SELECT graph_id, version_id, bucket_start FROM {PENDING_TABLE}"
            f" WHERE bucket_start + {BUCKET_SECONDS} <= {mark}{graph}"
            f" ORDER BY bucket_start, graph_id, version_id LIMIT {mark}",
            (cutoff, graph_id, limit) if graph_id is not None else (cutoff, limit),
        )
        return [(str(g), str(v), float(b)) for g, v, b in cursor.fetchall()]
    finally:
        cursor.close()


def mark_graph_pending(connection: Any, postgres: bool, graph_id: str) -> int:
    """Mark every unit holding telemetry of ``graph_id`` pending (to recompute all of its
    rollups: ``TelemetryStore.rebuild_rollups``); how many units that is."""
    mark = "%s" if postgres else "?"
    # CAST truncates toward zero: the floor of a positive epoch, as ``bucket_of`` computes it.
    bucket = f"CAST(started_at / {BUCKET_SECONDS} AS INTEGER) * {BUCKET_SECONDS}"
    if postgres:
        bucket = f"floor(started_at / {BUCKET_SECONDS}) * {BUCKET_SECONDS}"
    units = " UNION ".join(
        f"SELECT DISTINCT graph_id, version_id, {bucket} FROM {table} WHERE graph_id = {mark}"
        for table in ("spark_traces", "spark_spans")
    )
    cursor = connection.cursor()
    try:
        cursor.execute(f"SELECT * FROM ({units}) AS units", (graph_id, graph_id))
        found = sorted((str(g), str(v), float(b)) for g, v, b in cursor.fetchall())
    finally:
        cursor.close()
    mark_pending(connection, postgres, found)
    return len(found)


def seal_unit(connection: Any, postgres: bool, unit: Unit) -> int | None:
    """Recompute ``unit``'s rollups from its raw rows in the caller's transaction; the number
    of rollup rows it now has, or None if it was no longer pending (sealed by someone else)."""
    mark = "%s" if postgres else "?"
    cursor = connection.cursor()
    try:
        if postgres:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(unit),))
        elif not connection.in_transaction:
            cursor.execute("BEGIN IMMEDIATE")  # the write lock before reading: no stale read
        unit_where = f"graph_id = {mark} AND version_id = {mark} AND bucket_start = {mark}"
        cursor.execute(f"SELECT 1 FROM {PENDING_TABLE} WHERE {unit_where}", unit)
        if cursor.fetchone() is None:
            return None
        totals = _unit_totals(cursor, mark, unit)
        cursor.execute(f"DELETE FROM {TABLE} WHERE {unit_where}", unit)
        insert_rows(cursor, mark, totals)
        cursor.execute(f"DELETE FROM {PENDING_TABLE} WHERE {unit_where}", unit)
        return len(totals)
    finally:
        cursor.close()


def _unit_totals(cursor: Any, mark: str, unit: Unit) -> dict[Key, Rollup]:
    """Rollups of every stored trace and span of ``unit``, read in chunks."""
    graph_id, version_id, bucket = unit
    params = (graph_id, version_id, bucket, bucket + BUCKET_SECONDS)
    window = (
        f"graph_id = {mark} AND version_id = {mark}"
        f" AND started_at >= {mark} AND started_at < {mark}"
    )
    trace_names = _bulk.TRACE_COLUMNS
    span_names = (*_bulk.SPAN_COLUMNS, "routing_arm")
    span_columns = ", ".join(f"s.{name}" for name in _bulk.SPAN_COLUMNS)
    span_window = " AND ".join(f"s.{part}" for part in window.split(" AND "))
    queries = (
        (f"SELECT {', '.join(trace_names)} FROM spark_traces WHERE {window}", trace_names),
        (
            f"SELECT {span_columns}, COALESCE(t.routing_arm, 'direct') FROM spark_spans s"
            f" LEFT JOIN spark_traces t ON t.trace_id = s.trace_id WHERE {span_window}",
            span_names,
        ),
    )
    parts: dict[Key, list[Rollup]] = {}
    for sql, names in queries:
        cursor.execute(sql, params)
        node = names is span_names
        arm_at = len(span_names) - 1
        while chunk := cursor.fetchmany(_CHUNK):
            arms = {row[1]: row[arm_at] for row in chunk} if node else {}
            for key, rollup in group_rows(chunk, names, arms, node).items():
                parts.setdefault(key, []).append(rollup)
    return {key: pieces[0] if len(pieces) == 1 else merge(pieces) for key, pieces in parts.items()}
