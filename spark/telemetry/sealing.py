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

Sealing is opportunistic: ``TelemetryStore.write_runs`` starts a background sealer at most
every ``SEAL_CHECK_INTERVAL_S`` (it stops starting new seals after ``SEAL_BUDGET_S``; each
seal covers at most ``UNITS_PER_SEAL`` units of one bucket), and ``spark rollups seal`` seals
everything due.
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
    SPAN_SUMMARY_COLUMNS,
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
UNITS_PER_SEAL = 16
Unit = tuple[str, str, float]
"""``(graph_id, version_id, bucket_start)``: what one seal recomputes."""

_CHUNK = 50_000
# What a seal reads: the key and summarised columns only (not ids, inputs or outputs), trace id
# first.
_TRACE_COLUMNS = (
    "trace_id",
    "graph_id",
    "version_id",
    "routing_arm",
    "started_at",
    "duration_ms",
    "status",
    "error_type",
    "cost",
    "quality",
    "sampling_rate",
    "input_fingerprint",
)
_SPAN_COLUMNS = ("trace_id", "graph_id", "version_id", *SPAN_SUMMARY_COLUMNS)
RECENT_TRACE_S = 86_400.0
"""How far before a bucket the traces of its spans are looked for first (runs last less)."""
_IDS_PER_SELECT = 500
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
    """Record ``units`` as pending in the caller's write transaction (driver connection).

    On PostgreSQL only the units not pending yet are inserted: a busy graph's open buckets are
    pending already, so a batch usually costs one read instead of an insert per unit (with two
    writer threads, 0.30-0.39 s instead of 0.53 s of marking per 600k spans, each statement
    being another wait for the GIL). Reading under the shared unit locks, taken in a statement
    of their own first, is safe: a seal (exclusive lock) cannot remove a pending row between
    this read and this transaction's commit."""
    if not units:
        return
    cursor = connection.cursor()
    try:
        if postgres:
            cursor.execute(
                "SELECT pg_advisory_xact_lock_shared(k) FROM unnest(%s::bigint[]) AS k",
                ([lock_key(unit) for unit in units],),
            )
            units = _not_pending(cursor, units)
            if not units:
                return
        mark = "%s" if postgres else "?"
        cursor.executemany(
            f"INSERT INTO {PENDING_TABLE} (graph_id, version_id, bucket_start)"
            f" VALUES ({mark}, {mark}, {mark}) ON CONFLICT DO NOTHING",
            units,
        )
    finally:
        cursor.close()


def _not_pending(cursor: Any, units: Sequence[Unit]) -> list[Unit]:
    """The units of ``units`` without a pending row (PostgreSQL)."""
    graphs, versions, buckets = (list(column) for column in zip(*units, strict=True))
    cursor.execute(
        f"SELECT graph_id, version_id, bucket_start FROM {PENDING_TABLE}"
        " WHERE (graph_id, version_id, bucket_start) IN"
        " (SELECT * FROM unnest(%s::text[], %s::text[], %s::float8[]))",
        (graphs, versions, buckets),
    )
    pending = {(str(g), str(v), float(b)) for g, v, b in cursor.fetchall()}
    return [unit for unit in units if unit not in pending]


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


def by_bucket(units: Sequence[Unit], size: int) -> list[list[Unit]]:
    """``units`` grouped by bucket, at most ``size`` a group (each group is sealed in one
    transaction with one read: a bound on how long a seal holds its locks)."""
    groups: dict[float, list[Unit]] = {}
    for unit in units:
        groups.setdefault(unit[2], []).append(unit)
    return [group[at : at + size] for group in groups.values() for at in range(0, len(group), size)]


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


def seal_units(connection: Any, postgres: bool, units: Sequence[Unit]) -> tuple[int, int]:
    """Recompute the rollups of ``units`` (all of one bucket) from their raw rows in the
    caller's transaction, reading the bucket's rows once for all of them; how many of them were
    still pending (the others were sealed by someone else meanwhile) and the rollup rows they
    now have."""
    bucket = units[0][2]
    if any(unit[2] != bucket for unit in units):
        raise ValueError("seal_units takes units of one bucket")
    mark = "%s" if postgres else "?"
    cursor = connection.cursor()
    try:
        if postgres:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k",
                ([lock_key(unit) for unit in sorted(units)],),
            )
        elif not connection.in_transaction:
            cursor.execute("BEGIN IMMEDIATE")  # the write lock before reading: no stale read
        cursor.execute(
            f"SELECT graph_id, version_id FROM {PENDING_TABLE} WHERE bucket_start = {mark}",
            (bucket,),
        )
        wanted = {(unit[0], unit[1]) for unit in units}
        pending = {(str(g), str(v)) for g, v in cursor.fetchall()} & wanted
        if not pending:
            return 0, 0
        totals = _bucket_totals(connection, postgres, bucket, pending)
        keys = [(g, v, bucket) for g, v in sorted(pending)]
        unit_where = f"graph_id = {mark} AND version_id = {mark} AND bucket_start = {mark}"
        cursor.executemany(f"DELETE FROM {TABLE} WHERE {unit_where}", keys)
        insert_rows(cursor, mark, totals)
        cursor.executemany(f"DELETE FROM {PENDING_TABLE} WHERE {unit_where}", keys)
        return len(pending), len(totals)
    finally:
        cursor.close()


def _bucket_totals(
    connection: Any, postgres: bool, bucket: float, pending: set[tuple[str, str]]
) -> dict[Key, Rollup]:
    """Rollups of every stored trace and span of the ``pending`` (graph, version) pairs in
    ``bucket``: one read of each table, filtered by the pairs' graphs and versions (an index
    range each on SQLite, the bucket's BRIN range on PostgreSQL), in chunks."""
    mark = "%s" if postgres else "?"
    graphs = sorted({graph for graph, _ in pending})
    versions = sorted({version for _, version in pending})
    where = (
        f"started_at >= {mark} AND started_at < {mark}"
        f" AND graph_id IN ({', '.join([mark] * len(graphs))})"
        f" AND version_id IN ({', '.join([mark] * len(versions))})"
    )
    params = (bucket, bucket + BUCKET_SECONDS, *graphs, *versions)
    arms: dict[str, str] = {}
    parts: dict[Key, list[Rollup]] = {}
    every_pair_pending = len(pending) == len(graphs) * len(versions)
    for table, names in (("spark_traces", _TRACE_COLUMNS), ("spark_spans", _SPAN_COLUMNS)):
        node = table == "spark_spans"
        pick = itemgetter(names.index("graph_id"), names.index("version_id"))
        # PostgreSQL streams through a server-side cursor; its client cursor would hold the
        # whole bucket in memory.
        rows_cursor = (
            connection.cursor(name=f"spark_seal_{table}") if postgres else connection.cursor()
        )
        try:
            rows_cursor.execute(f"SELECT {', '.join(names)} FROM {table} WHERE {where}", params)
            while chunk := rows_cursor.fetchmany(_CHUNK):
                rows = chunk if every_pair_pending else [r for r in chunk if pick(r) in pending]
                if not node:
                    arms.update((row[0], row[names.index("routing_arm")]) for row in rows)
                else:
                    _add_arms_of_earlier_traces(connection, mark, rows, arms, bucket)
                for key, rollup in group_rows(rows, names, arms, node).items():
                    parts.setdefault(key, []).append(rollup)
        finally:
            rows_cursor.close()
    return {key: pieces[0] if len(pieces) == 1 else merge(pieces) for key, pieces in parts.items()}


def _add_arms_of_earlier_traces(
    connection: Any, mark: str, spans: Sequence[Sequence[Any]], arms: dict[str, str], bucket: float
) -> None:
    """The routing arms of the spans' traces that started before the bucket (a run going on
    across the bucket's start), read by trace id; a span whose trace is not stored (OTLP, root
    not yet received) counts as ``direct``.

    Traces that started in the day before the bucket are looked for first: on PostgreSQL that
    reads two or three day partitions, where a lookup by id alone probes every partition's key
    index (500 ids: 15 ms with 30 partitions, 214 ms with 365). Only ids not found there are
    looked up everywhere."""
    recent = (
        f" AND started_at >= {mark} AND started_at < {mark}",
        (bucket - RECENT_TRACE_S, bucket + BUCKET_SECONDS),
    )
    for window, bounds in (recent, ("", ())):
        missing = sorted({row[0] for row in spans} - arms.keys())
        _read_arms(connection, mark, missing, window, bounds, arms)


def _read_arms(
    connection: Any,
    mark: str,
    trace_ids: list[str],
    window: str,
    bounds: tuple[float, ...],
    arms: dict[str, str],
) -> None:
    cursor = connection.cursor()
    try:
        for start in range(0, len(trace_ids), _IDS_PER_SELECT):
            chunk = trace_ids[start : start + _IDS_PER_SELECT]
            cursor.execute(
                "SELECT trace_id, routing_arm FROM spark_traces"
                f" WHERE trace_id IN ({', '.join([mark] * len(chunk))}){window}",
                (*chunk, *bounds),
            )
            arms.update((str(trace_id), str(arm)) for trace_id, arm in cursor.fetchall())
    finally:
        cursor.close()
