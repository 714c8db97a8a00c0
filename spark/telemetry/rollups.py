"""Rollups: per-bucket aggregates maintained as telemetry is written, read instead of raw spans.

Each stored batch adds, in the same transaction as the raw insert, one ``spark_rollups`` row per
(graph, version, node, routing arm, ``BUCKET_SECONDS`` bucket): counts, sums, sums of squares and
cross sums of latency and cost, tokens, attempts, cache hits, error types, and sketches of latency
(DDSketch, 1% relative error) and of distinct input fingerprints (KMV). Whole runs are rolled up
under node ``''``. Only rows the raw insert really stored are counted, so a retried batch adds
nothing.

Reads over ``[since, until)`` merge the buckets wholly inside the window and add the raw spans of
the two partial edge buckets, so counts, sums and error types are exactly those of the exact
query, whatever the window's edges; only percentiles (sketch) and the distinct-input ratio (KMV)
are approximate. The cost of a read grows with the number of buckets, not of spans.

``spark_rollup_coverage`` records where the rollups are complete: ``'*'`` for a database that
had no telemetry when migration 0008 ran, else one row per graph that ``rebuild`` recomputed.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import numpy as np
from sqlalchemy import TextClause, text

from spark.telemetry import _bulk
from spark.telemetry._grouped import Grouped
from spark.telemetry._queries import Window
from spark.telemetry.aggregates import ArmMoments, Moments, NodeStats
from spark.telemetry.models import RunTelemetry
from spark.telemetry.sketch import (
    DistinctSketch,
    LatencySketch,
    merge_all,
    merge_distinct,
)

BUCKET_SECONDS = 3600.0
TABLE = "spark_rollups"
COVERAGE_TABLE = "spark_rollup_coverage"
WHOLE_DATABASE = "*"
"""The coverage row saying every graph's rollups are complete (migration 0008)."""
_KEYS_PER_SELECT = 1000  # 5 parameters a key: well under PostgreSQL's 65535
WHOLE_RUN = ""
KEY_COLUMNS = ("graph_id", "version_id", "node_id", "routing_arm", "bucket_start")
SUM_COLUMNS = (
    "n",
    "errors",
    "weight",
    "lat_sum",
    "lat_sq",
    "log_n",
    "log_sum",
    "log_sq",
    "cost_sum",
    "cost_sq",
    "err_lat",
    "err_cost",
    "lat_cost",
    "tokens",
    "attempts",
    "cache_hits",
    "fingerprinted",
    "quality_n",
    "quality_sum",
    "quality_sq",
)
VALUE_COLUMNS = (
    *SUM_COLUMNS,
    "first_at",
    "last_at",
    "error_types",
    "latency_sketch",
    "inputs_sketch",
)
Key = tuple[str, str, str, str, float]
Columns = Mapping[str, Sequence[Any]]


@dataclass(slots=True)
class Rollup:
    """The aggregates of one key's rows; ``merge`` adds two of them."""

    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SUM_COLUMNS, 0))
    first_at: float | None = None
    last_at: float | None = None
    error_types: Counter[str] = field(default_factory=Counter)
    latency: LatencySketch = field(default_factory=LatencySketch)
    inputs: DistinctSketch = field(default_factory=DistinctSketch)

    @property
    def n(self) -> int:
        """How many rows the rollup covers."""
        return int(self.sums["n"])


def merge(rollups: Sequence[Rollup]) -> Rollup:
    """One rollup of all the rows of ``rollups``."""
    sums = {name: sum(r.sums[name] for r in rollups) for name in SUM_COLUMNS}
    firsts = [r.first_at for r in rollups if r.first_at is not None]
    lasts = [r.last_at for r in rollups if r.last_at is not None]
    return Rollup(
        sums=sums,
        first_at=min(firsts, default=None),
        last_at=max(lasts, default=None),
        error_types=sum((r.error_types for r in rollups), Counter()),
        latency=merge_all([r.latency for r in rollups]),
        inputs=merge_distinct([r.inputs for r in rollups]),
    )


def summarise(columns: Columns) -> Rollup:
    """The rollup of rows given as columns (span or trace column names; missing ones are 0)."""
    duration = np.asarray(columns["duration_ms"], dtype=np.float64)
    cost = np.asarray(columns["cost"], dtype=np.float64)
    failed = np.array([status == "error" for status in columns["status"]], dtype=bool)
    logs = np.log(duration[duration > 0])
    fingerprints = [fp for fp in columns["input_fingerprint"] if fp is not None]
    sums = _moment_sums(duration, cost, failed, logs) | _optional_sums(columns)
    sums["fingerprinted"] = len(fingerprints)
    return Rollup(
        sums=sums,
        first_at=float(min(columns["started_at"])),
        last_at=float(max(columns["started_at"])),
        error_types=_error_types(columns),
        latency=LatencySketch.of(duration),
        inputs=DistinctSketch.of(fingerprints),
    )


def _moment_sums(
    duration: np.ndarray, cost: np.ndarray, failed: np.ndarray, logs: np.ndarray
) -> dict[str, float]:
    return {
        "n": duration.size,
        "errors": int(failed.sum()),
        "lat_sum": float(duration.sum()),
        "lat_sq": float(duration @ duration),
        "log_n": logs.size,
        "log_sum": float(logs.sum()),
        "log_sq": float(logs @ logs),
        "cost_sum": float(cost.sum()),
        "cost_sq": float(cost @ cost),
        "err_lat": float(duration[failed].sum()),
        "err_cost": float(cost[failed].sum()),
        "lat_cost": float(duration @ cost),
    }


def _optional_sums(columns: Columns) -> dict[str, float]:
    quality = [q for q in columns.get("quality", ()) if q is not None]
    return {
        "weight": sum(1.0 / rate for rate in columns.get("sampling_rate", ())),
        "tokens": sum(columns.get("tokens", ())),
        "attempts": sum(columns.get("attempts", ())),
        "cache_hits": sum(1 for hit in columns.get("cache_hit", ()) if hit),
        "quality_n": len(quality),
        "quality_sum": math.fsum(quality),
        "quality_sq": math.fsum(q * q for q in quality),
    }


def _error_types(columns: Columns) -> Counter[str]:
    pairs = zip(columns["status"], columns["error_type"], strict=True)
    return Counter(kind or "unknown" for status, kind in pairs if status == "error")


def bucket_of(started_at: float) -> float:
    """The start of the bucket holding ``started_at``."""
    return math.floor(started_at / BUCKET_SECONDS) * BUCKET_SECONDS


def group_rows(
    rows: Iterable[Sequence[Any]], names: Sequence[str], arms: Mapping[str, str], node: bool
) -> dict[Key, Rollup]:
    """Rollups of span rows (``node``, skipped spans left out) or trace rows, by key.

    ``names`` are the rows' column names; a span's routing arm is its trace's, from ``arms``.
    """
    numbers: dict[Key, int] = {}
    keyed = list(_keyed(rows, names, arms, node))
    index = [numbers.setdefault(key, len(numbers)) for key, _ in keyed]
    kept = [row for _, row in keyed]
    if not kept:
        return {}
    grouped = Grouped(_columns(names, kept), np.array(index, dtype=np.int64), len(numbers))
    return {key: _rollup_of(grouped, number) for key, number in numbers.items()}


def _rollup_of(grouped: Grouped, number: int) -> Rollup:
    sums, first_at, last_at = grouped.values(number)
    return Rollup(
        sums=sums,
        first_at=first_at,
        last_at=last_at,
        error_types=grouped.error_types[number],
        latency=grouped.latency[number],
        inputs=grouped.inputs[number],
    )


def _keyed(
    rows: Iterable[Sequence[Any]], names: Sequence[str], arms: Mapping[str, str], node: bool
) -> Iterator[tuple[Key, Sequence[Any]]]:
    """Each row with its key (one C-level ``itemgetter`` call a row: this runs per span)."""
    fields = ("graph_id", "version_id", "node_id" if node else "routing_arm", "trace_id")
    pick = itemgetter(*(names.index(name) for name in (*fields, "started_at", "status")))
    floor, size = math.floor, BUCKET_SECONDS
    for row in rows:
        graph_id, version_id, node_or_arm, trace_id, started_at, status = pick(row)
        bucket = floor(started_at / size) * size
        if not node:
            yield (graph_id, version_id, WHOLE_RUN, node_or_arm, bucket), row
        elif status != "skipped":
            yield (graph_id, version_id, node_or_arm, arms.get(trace_id, "direct"), bucket), row


_SUMMARISED = frozenset(
    {
        "started_at",
        "duration_ms",
        "status",
        "error_type",
        "cost",
        "input_fingerprint",
        "tokens",
        "attempts",
        "cache_hit",
        "quality",
        "sampling_rate",
    }
)


def _columns(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, Sequence[Any]]:
    """The summarised columns of ``rows`` (``map`` of an ``itemgetter``: no per-row bytecode)."""
    return {
        name: list(map(itemgetter(at), rows))
        for at, name in enumerate(names)
        if name in _SUMMARISED
    }


# -- storage -------------------------------------------------------------------------------------


def to_values(rollup: Rollup) -> tuple[Any, ...]:
    """The rollup as the values of ``VALUE_COLUMNS``."""
    return (
        *(rollup.sums[name] for name in SUM_COLUMNS),
        rollup.first_at,
        rollup.last_at,
        json.dumps(dict(rollup.error_types), sort_keys=True),
        rollup.latency.to_bytes(),
        rollup.inputs.to_bytes(),
    )


def from_values(values: Sequence[Any]) -> Rollup:
    """The rollup stored as ``VALUE_COLUMNS`` values."""
    sums = dict(zip(SUM_COLUMNS, values[: len(SUM_COLUMNS)], strict=True))
    first_at, last_at, error_types, latency, inputs = values[len(SUM_COLUMNS) :]
    return Rollup(
        sums=sums,
        first_at=first_at,
        last_at=last_at,
        error_types=Counter(json.loads(error_types)),
        latency=LatencySketch.from_bytes(bytes(latency)),
        inputs=DistinctSketch.from_bytes(bytes(inputs)),
    )


def record(
    connection: Any,
    postgres: bool,
    runs: Sequence[RunTelemetry],
    traces: Sequence[Sequence[Any]],
    spans: Sequence[Sequence[Any]],
) -> None:
    """Add the rows the raw insert stored (``traces``, ``spans``) to the rollups, in the caller's
    transaction on the driver connection (sqlite3 or psycopg)."""
    arms = {run.trace.trace_id: run.trace.routing_arm for run in runs}
    rollups = group_rows(spans, _bulk.SPAN_COLUMNS, arms, node=True)
    rollups |= group_rows(traces, _bulk.TRACE_COLUMNS, arms, node=False)
    if rollups:
        cursor = connection.cursor()
        try:
            _add(cursor, "%s" if postgres else "?", postgres, rollups)
        finally:
            cursor.close()


def _add(cursor: Any, mark: str, postgres: bool, rollups: Mapping[Key, Rollup]) -> None:
    """Ensure a row per key, lock the rows in key order, merge in Python, write the merged rows.

    Locking before reading keeps concurrent writers of one key from losing each other's counts
    (SQLite has one writer at a time anyway); the fixed order keeps them from deadlocking.
    """
    keys = sorted(rollups)
    empty = to_values(Rollup())
    cursor.executemany(_insert_sql(mark), [(*key, *empty) for key in keys])
    stored = _locked(cursor, keys, mark, postgres)
    merged = [(*to_values(_combined(stored[key], rollups[key])), *key) for key in keys]
    cursor.executemany(_update_sql(mark), merged)


def _combined(stored: Rollup, new: Rollup) -> Rollup:
    """``new`` added to ``stored`` (just ``new`` when the stored row is the empty one)."""
    return new if stored.n == 0 and stored.first_at is None else merge([stored, new])


def _locked(cursor: Any, keys: Sequence[Key], mark: str, postgres: bool) -> dict[Key, Rollup]:
    stored: dict[Key, Rollup] = {}
    for start in range(0, len(keys), _KEYS_PER_SELECT):
        chunk = keys[start : start + _KEYS_PER_SELECT]
        row_marks = ", ".join(f"({', '.join([mark] * len(KEY_COLUMNS))})" for _ in chunk)
        lock = " FOR UPDATE" if postgres else ""
        cursor.execute(
            f"SELECT {', '.join(KEY_COLUMNS + VALUE_COLUMNS)} FROM {TABLE}"
            f" WHERE ({', '.join(KEY_COLUMNS)}) IN (VALUES {row_marks})"
            f" ORDER BY {', '.join(KEY_COLUMNS)}{lock}",
            [value for key in chunk for value in key],
        )
        for row in cursor.fetchall():
            stored[tuple(row[: len(KEY_COLUMNS)])] = from_values(row[len(KEY_COLUMNS) :])
    return stored


def _insert_sql(mark: str) -> str:
    columns = KEY_COLUMNS + VALUE_COLUMNS
    marks = ", ".join([mark] * len(columns))
    return f"INSERT INTO {TABLE} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT DO NOTHING"


def _update_sql(mark: str) -> str:
    assignments = ", ".join(f"{name} = {mark}" for name in VALUE_COLUMNS)
    condition = " AND ".join(f"{name} = {mark}" for name in KEY_COLUMNS)
    return f"UPDATE {TABLE} SET {assignments} WHERE {condition}"


# -- reads ---------------------------------------------------------------------------------------

Fetch = Callable[[str, dict[str, Any]], Sequence[Any]]
_EDGE_COLUMNS = (
    "node_id",
    "started_at",
    "duration_ms",
    "status",
    "error_type",
    "attempts",
    "cache_hit",
    "tokens",
    "cost",
    "input_fingerprint",
)


def node_rollups(fetch: Fetch, window: Window) -> dict[str, Rollup]:
    """Per node (in node id order), the rollup of the window's non-skipped spans: the buckets
    wholly inside ``[since, until)`` from ``spark_rollups``, the partial edge buckets from the raw
    spans. The window's routing arm is not applied (spans have none; node statistics take
    every arm)."""
    low, high = _whole_buckets(window)
    parts: dict[str, list[Rollup]] = {}
    edges = [(window.since, window.until)]
    if low is None or high is None or low <= high:
        stored: dict[str, list[Sequence[Any]]] = {}
        for row in fetch(_rollups_sql(window, low, high), _params(window, low, high)):
            stored.setdefault(row[0], []).append(row[1:])
        parts = {node_id: [_merge_stored(rows)] for node_id, rows in stored.items()}
        edges = [(window.since, low), (high, window.until)]
    for since, until in edges:
        if since is not None and until is not None and since < until:
            for node_id, rollup in _raw_nodes(fetch, window, since, until).items():
                parts.setdefault(node_id, []).append(rollup)
    return {node_id: merge(parts[node_id]) for node_id in sorted(parts)}


def _merge_stored(rows: Sequence[Sequence[Any]]) -> Rollup:
    """One rollup of stored ``VALUE_COLUMNS`` rows, decoding each column once."""
    columns = dict(zip(VALUE_COLUMNS, zip(*rows, strict=True), strict=True))
    error_types: Counter[str] = Counter()
    for encoded in columns["error_types"]:
        if encoded != "{}":
            error_types.update(json.loads(encoded))
    firsts = [at for at in columns["first_at"] if at is not None]
    lasts = [at for at in columns["last_at"] if at is not None]
    return Rollup(
        sums={name: sum(columns[name]) for name in SUM_COLUMNS},
        first_at=min(firsts, default=None),
        last_at=max(lasts, default=None),
        error_types=error_types,
        latency=merge_all([LatencySketch.from_bytes(bytes(b)) for b in columns["latency_sketch"]]),
        inputs=merge_distinct(
            [DistinctSketch.from_bytes(bytes(b)) for b in columns["inputs_sketch"]]
        ),
    )


def _whole_buckets(window: Window) -> tuple[float | None, float | None]:
    """The first and past-the-last bucket boundaries inside the window (None: unbounded)."""
    low = None if window.since is None else math.ceil(window.since / BUCKET_SECONDS)
    high = None if window.until is None else math.floor(window.until / BUCKET_SECONDS)
    return (
        None if low is None else low * BUCKET_SECONDS,
        None if high is None else high * BUCKET_SECONDS,
    )


def _rollups_sql(
    window: Window, low: float | None, high: float | None, whole_runs: bool = False
) -> str:
    """Stored rollup rows of the window's whole buckets: node rows, or with ``whole_runs`` the
    run rows of the window's routing arm (their first column is then not the node id)."""
    node = f"node_id {'=' if whole_runs else '<>'} '{WHOLE_RUN}'"
    conditions = ["graph_id = :graph_id", node]
    if whole_runs and window.routing_arm is not None:
        conditions.append("routing_arm = :routing_arm")
    if window.version_id is not None:
        conditions.append("version_id = :version_id")
    if low is not None:
        conditions.append("bucket_start >= :low")
    if high is not None:
        conditions.append("bucket_start < :high")
    columns = ", ".join(("node_id", *VALUE_COLUMNS))
    return f"SELECT {columns} FROM {TABLE} WHERE {' AND '.join(conditions)}"


def _params(window: Window, low: float | None, high: float | None) -> dict[str, Any]:
    bounds = {"low": low, "high": high, "version_id": window.version_id}
    return {"graph_id": window.graph_id} | {k: v for k, v in bounds.items() if v is not None}


def _raw_nodes(fetch: Fetch, window: Window, since: float, until: float) -> dict[str, Rollup]:
    """Rollups per node of the raw non-skipped spans in ``[since, until)``."""
    edge = Window(window.graph_id, window.version_id, since, until)
    sql = (
        f"SELECT {', '.join(_EDGE_COLUMNS)} FROM spark_spans"
        f" WHERE {edge.where()} AND status <> 'skipped'"
    )
    by_node: dict[str, list[Sequence[Any]]] = {}
    for row in fetch(sql, edge.params()):
        by_node.setdefault(row[0], []).append(row)
    return {node: summarise(_columns(_EDGE_COLUMNS, rows)) for node, rows in by_node.items()}


def to_node_stats(window: Window, node_id: str, rollup: Rollup) -> NodeStats:
    """The ``NodeStats`` a node's rollup stands for (percentiles and distinct inputs sketched)."""
    sums, n = rollup.sums, max(rollup.n, 1)
    fingerprinted = sums["fingerprinted"]
    distinct = rollup.inputs.estimate()
    return NodeStats(
        graph_id=window.graph_id,
        version_id=window.version_id,
        node_id=node_id,
        count=rollup.n,
        error_count=int(sums["errors"]),
        error_rate=sums["errors"] / n,
        mean_ms=sums["lat_sum"] / n,
        p50_ms=rollup.latency.quantile(0.5),
        p95_ms=rollup.latency.quantile(0.95),
        p99_ms=rollup.latency.quantile(0.99),
        total_cost=sums["cost_sum"],
        mean_cost=sums["cost_sum"] / n,
        total_tokens=int(sums["tokens"]),
        mean_attempts=sums["attempts"] / n,
        cache_hit_rate=sums["cache_hits"] / n,
        distinct_input_ratio=min(distinct / fingerprinted, 1.0) if fingerprinted else 1.0,
        error_types=dict(rollup.error_types),
    )


# -- rebuild -------------------------------------------------------------------------------------

_REBUILD_CHUNK = 50_000


def rebuild(connection: Any, postgres: bool, graph_id: str) -> int:
    """Recompute one graph's rollups from its raw traces and spans, in the caller's transaction
    on the driver connection (for telemetry stored before the rollups existed). Returns the
    number of rollup rows written."""
    mark = "%s" if postgres else "?"
    cursor = connection.cursor()
    try:
        cursor.execute(f"DELETE FROM {TABLE} WHERE graph_id = {mark}", (graph_id,))
        totals = _raw_totals(cursor, mark, graph_id)
        if totals:
            _add(cursor, mark, postgres, totals)
        _mark_complete(cursor, mark, graph_id)
        return len(totals)
    finally:
        cursor.close()


def _mark_complete(cursor: Any, mark: str, graph_id: str) -> None:
    """Record that the graph's rollups now cover all its telemetry (kept on a second rebuild)."""
    cursor.execute(
        f"INSERT INTO {COVERAGE_TABLE} (graph_id, complete_since) VALUES ({mark}, {mark})"
        " ON CONFLICT (graph_id) DO NOTHING",
        (graph_id, time.time()),
    )


def coverage_sql() -> str:
    """How many coverage rows say ``:graph_id``'s rollups are complete (0: read exact)."""
    return (
        f"SELECT count(*) FROM {COVERAGE_TABLE} WHERE graph_id IN ('{WHOLE_DATABASE}', :graph_id)"
    )


def _raw_totals(cursor: Any, mark: str, graph_id: str) -> dict[Key, Rollup]:
    """Rollups of every stored trace and span of the graph, read in chunks."""
    trace_names = _bulk.TRACE_COLUMNS
    span_names = (*_bulk.SPAN_COLUMNS, "routing_arm")
    span_columns = ", ".join(f"s.{name}" for name in _bulk.SPAN_COLUMNS)
    queries = (
        (f"SELECT {', '.join(trace_names)} FROM spark_traces WHERE graph_id = {mark}", trace_names),
        (
            f"SELECT {span_columns}, COALESCE(t.routing_arm, 'direct') FROM spark_spans s"
            " LEFT JOIN spark_traces t ON t.trace_id = s.trace_id"
            f" WHERE s.graph_id = {mark}",
            span_names,
        ),
    )
    totals: dict[Key, list[Rollup]] = {}
    for sql, names in queries:
        cursor.execute(sql, (graph_id,))
        node = names is span_names
        arm_at = len(span_names) - 1
        while chunk := cursor.fetchmany(_REBUILD_CHUNK):
            arms = {row[1]: row[arm_at] for row in chunk} if node else {}
            for key, rollup in group_rows(chunk, names, arms, node).items():
                totals.setdefault(key, []).append(rollup)
    return {key: merge(parts) for key, parts in totals.items()}


def purge_sql() -> TextClause:
    """Delete the rollup buckets that end at or before ``:cutoff``."""
    return text(f"DELETE FROM {TABLE} WHERE bucket_start + {BUCKET_SECONDS} <= :cutoff")


# -- whole runs (A/B looks, health checks) -------------------------------------------------------

_TRACE_EDGE_COLUMNS = (
    "started_at",
    "duration_ms",
    "status",
    "error_type",
    "cost",
    "quality",
    "sampling_rate",
    "input_fingerprint",
)


def run_rollup(fetch: Fetch, window: Window) -> Rollup:
    """The rollup of the window's traces (arm and version filters applied): whole buckets from
    ``spark_rollups``, partial edge buckets from the raw traces."""
    low, high = _whole_buckets(window)
    parts: list[Rollup] = []
    edges = [(window.since, window.until)]
    if low is None or high is None or low <= high:
        sql = _rollups_sql(window, low, high, whole_runs=True)
        rows = [row[1:] for row in fetch(sql, _run_params(window, low, high))]
        parts = [_merge_stored(rows)] if rows else []
        edges = [(window.since, low), (high, window.until)]
    for since, until in edges:
        if since is not None and until is not None and since < until:
            parts.extend(_raw_runs(fetch, window, since, until))
    return merge(parts) if parts else Rollup()


def _run_params(window: Window, low: float | None, high: float | None) -> dict[str, Any]:
    arm = {} if window.routing_arm is None else {"routing_arm": window.routing_arm}
    return _params(window, low, high) | arm


def _raw_runs(fetch: Fetch, window: Window, since: float, until: float) -> list[Rollup]:
    edge = Window(window.graph_id, window.version_id, since, until, window.routing_arm)
    sql = f"SELECT {', '.join(_TRACE_EDGE_COLUMNS)} FROM spark_traces WHERE {edge.where()}"
    rows = fetch(sql, edge.params())
    return [summarise(_columns(_TRACE_EDGE_COLUMNS, rows))] if rows else []


def feedback_quality_sql(window: Window) -> str:
    """Each scored trace of the window: its own quality and its mean feedback since the window
    opened (what replaces the own quality in the exact query). Reads feedback, not all traces."""
    since = " WHERE created_at >= :since" if window.since is not None else ""
    return f"""
        SELECT t.quality, fb.score
        FROM (SELECT trace_id, avg(score) AS score FROM spark_feedback{since}
              GROUP BY trace_id) fb
        JOIN spark_traces t ON t.trace_id = fb.trace_id
        WHERE {window.where("t.")}"""


def to_arm_moments(rollup: Rollup, scored: Sequence[Sequence[Any]]) -> ArmMoments:
    """The ``ArmMoments`` a run rollup stands for, quality corrected by the ``scored`` rows
    (own quality, feedback score): each scored trace counts its feedback, not its own quality."""
    sums = rollup.sums
    own = [float(row[0]) for row in scored if row[0] is not None]
    feedback = [float(row[1]) for row in scored]
    return ArmMoments(
        runs=rollup.n,
        errors=int(sums["errors"]),
        log_latency=Moments(
            count=int(sums["log_n"]), sum=sums["log_sum"], sum_squares=sums["log_sq"]
        ),
        latency=Moments(count=rollup.n, sum=sums["lat_sum"], sum_squares=sums["lat_sq"]),
        cost=Moments(count=rollup.n, sum=sums["cost_sum"], sum_squares=sums["cost_sq"]),
        quality=Moments(
            count=int(sums["quality_n"]) - len(own) + len(feedback),
            sum=sums["quality_sum"] - math.fsum(own) + math.fsum(feedback),
            sum_squares=sums["quality_sq"]
            - math.fsum(q * q for q in own)
            + math.fsum(q * q for q in feedback),
        ),
        error_latency=sums["err_lat"],
        error_cost=sums["err_cost"],
        latency_cost=sums["lat_cost"],
    )
