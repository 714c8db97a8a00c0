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
import operator
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import compress, repeat
from operator import itemgetter
from typing import Any

import numpy as np
from sqlalchemy import TextClause, text

from spark.telemetry._grouped import Grouped
from spark.telemetry._queries import LATENCY_PROFILE, Window
from spark.telemetry.aggregates import ArmMoments, Moments, NodeStats
from spark.telemetry.sketch import (
    DistinctSketch,
    LatencySketch,
    merge_all,
    merge_distinct,
)

BUCKET_SECONDS = 3600.0
TABLE = "spark_rollups"
COVERAGE_TABLE = "spark_rollup_coverage"
PENDING_TABLE = "spark_rollup_pending"
"""Units (graph, version, bucket) written since their last seal (``spark.telemetry.sealing``)."""
WHOLE_DATABASE = "*"
"""The coverage row saying every graph's rollups are complete (migration 0008)."""
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
    rows: Sequence[Sequence[Any]], names: Sequence[str], arms: Mapping[str, str], node: bool
) -> dict[Key, Rollup]:
    """Rollups of span rows (``node``, skipped spans left out) or trace rows, by key.

    ``names`` are the rows' column names; a span's routing arm is its trace's, from ``arms``
    (``direct`` when unknown). Keys are built column-wise by ``map``/``zip`` and numbered by a
    dict of the distinct keys, so no bytecode runs per row (this runs per span).
    """
    if node:
        skipped = list(map("skipped".__eq__, map(itemgetter(names.index("status")), rows)))
        if any(skipped):
            rows = list(compress(rows, map(operator.not_, skipped)))
    if not rows:
        return {}

    def column(name: str) -> Iterator[Any]:
        return map(itemgetter(names.index(name)), rows)

    started = np.fromiter(column("started_at"), np.float64, len(rows))
    buckets = (np.floor(started / BUCKET_SECONDS) * BUCKET_SECONDS).tolist()
    if node:
        arm_of: Iterator[Any] = map(arms.get, column("trace_id"), repeat("direct"))
        nodes = column("node_id")
        keys = list(
            zip(column("graph_id"), column("version_id"), nodes, arm_of, buckets, strict=True)
        )
    else:
        whole, arm_of = repeat(WHOLE_RUN, len(rows)), column("routing_arm")
        keys = list(
            zip(column("graph_id"), column("version_id"), whole, arm_of, buckets, strict=True)
        )
    numbers = {key: number for number, key in enumerate(dict.fromkeys(keys))}
    index = np.fromiter(map(numbers.__getitem__, keys), np.int64, len(keys))
    grouped = Grouped(_columns(names, rows), index, len(numbers))
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


def insert_rows(cursor: Any, mark: str, rollups: Mapping[Key, Rollup]) -> None:
    """Insert one ``spark_rollups`` row per key, in key order (the keys must have no row yet)."""
    columns = KEY_COLUMNS + VALUE_COLUMNS
    cursor.executemany(
        f"INSERT INTO {TABLE} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})",
        [(*key, *to_values(rollups[key])) for key in sorted(rollups)],
    )


# -- reads ---------------------------------------------------------------------------------------

Fetch = Callable[[str, dict[str, Any]], Sequence[Any]]
SPAN_SUMMARY_COLUMNS = _EDGE_COLUMNS = (
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
"""A span's node and the columns its rollup summarises (what a raw read of spans selects)."""


def node_rollups(fetch: Fetch, window: Window) -> dict[str, Rollup]:
    """Per node (in node id order), the rollup of the window's non-skipped spans: the sealed
    buckets wholly inside ``[since, until)`` from ``spark_rollups``; the partial edge buckets
    and the pending units (``spark.telemetry.sealing``) from the raw spans. The window's routing
    arm is not applied (spans have none; node statistics take every arm)."""
    parts: dict[str, list[Rollup]] = {}
    stored: dict[str, list[Sequence[Any]]] = {}
    raw: list[Window] = []
    for row in _sealed_rows(fetch, window, whole_runs=False, raw=raw):
        stored.setdefault(row[0], []).append(row[1:])
    parts = {node_id: [_merge_stored(rows)] for node_id, rows in stored.items()}
    for edge in raw:
        for node_id, rollup in _raw_nodes(fetch, edge).items():
            parts.setdefault(node_id, []).append(rollup)
    return {node_id: merge(parts[node_id]) for node_id in sorted(parts)}


def _sealed_rows(
    fetch: Fetch, window: Window, whole_runs: bool, raw: list[Window]
) -> list[Sequence[Any]]:
    """The stored rollup rows (first column, then ``VALUE_COLUMNS``) of the window's sealed
    whole buckets; appends to ``raw`` the windows to read from raw rows instead: the partial
    edge buckets and each pending unit."""
    low, high = _whole_buckets(window)
    if low is not None and high is not None and low > high:  # inside one bucket: all raw
        raw.append(window)
        return []
    for since, until in ((window.since, low), (high, window.until)):
        if since is not None and until is not None and since < until:
            raw.append(replace(window, since=since, until=until))
    params = _params(window, low, high)
    pending = {
        (version_id, bucket)
        for version_id, bucket in fetch(
            _pending_sql(window.version_id is not None, low is not None, high is not None),
            params,
        )
    }
    for version_id, bucket in sorted(pending, key=lambda unit: (unit[1], unit[0])):
        raw.append(
            replace(window, version_id=version_id, since=bucket, until=bucket + BUCKET_SECONDS)
        )
    sql = _rollups_sql(window, low, high, whole_runs)
    rows = fetch(sql, _run_params(window, low, high) if whole_runs else params)
    return [(row[0], *row[3:]) for row in rows if (row[1], row[2]) not in pending]


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
    columns = ", ".join(("node_id", "version_id", "bucket_start", *VALUE_COLUMNS))
    return f"SELECT {columns} FROM {TABLE} WHERE {' AND '.join(conditions)}"


def _params(window: Window, low: float | None, high: float | None) -> dict[str, Any]:
    bounds = {"low": low, "high": high, "version_id": window.version_id}
    return {"graph_id": window.graph_id} | {k: v for k, v in bounds.items() if v is not None}


def _raw_nodes(fetch: Fetch, window: Window) -> dict[str, Rollup]:
    """Rollups per node of the raw non-skipped spans of ``window`` (its arm not applied)."""
    edge = replace(window, routing_arm=None)
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
        latency_quantiles=tuple((q, rollup.latency.quantile(q)) for q in LATENCY_PROFILE),
        total_cost=sums["cost_sum"],
        mean_cost=sums["cost_sum"] / n,
        total_tokens=int(sums["tokens"]),
        mean_attempts=sums["attempts"] / n,
        cache_hit_rate=sums["cache_hits"] / n,
        distinct_input_ratio=min(distinct / fingerprinted, 1.0) if fingerprinted else 1.0,
        error_types=dict(rollup.error_types),
    )


# -- coverage ------------------------------------------------------------------------------------


def mark_complete(cursor: Any, mark: str, graph_id: str) -> None:
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


def purge_sql() -> TextClause:
    """Delete the rollup buckets that end at or before ``:cutoff``."""
    return text(f"DELETE FROM {TABLE} WHERE bucket_start + {BUCKET_SECONDS} <= :cutoff")


def purge_pending_sql() -> TextClause:
    """Forget the pending units of buckets that end at or before ``:cutoff`` (purged rows)."""
    return text(f"DELETE FROM {PENDING_TABLE} WHERE bucket_start + {BUCKET_SECONDS} <= :cutoff")


def _pending_sql(version: bool, low: bool, high: bool) -> str:
    """Pending units (``spark.telemetry.sealing``) of ``:graph_id`` (and ``:version_id``) with
    buckets in ``[:low, :high)``, each bound only if given: read from raw rows."""
    conditions = ["graph_id = :graph_id"]
    if version:
        conditions.append("version_id = :version_id")
    if low:
        conditions.append("bucket_start >= :low")
    if high:
        conditions.append("bucket_start < :high")
    return f"SELECT version_id, bucket_start FROM {PENDING_TABLE} WHERE {' AND '.join(conditions)}"


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
    """The rollup of the window's traces (arm and version filters applied): sealed whole
    buckets from ``spark_rollups``; partial edge buckets and pending units from raw traces."""
    raw: list[Window] = []
    rows = [row[1:] for row in _sealed_rows(fetch, window, whole_runs=True, raw=raw)]
    parts = [_merge_stored(rows)] if rows else []
    for edge in raw:
        parts.extend(_raw_runs(fetch, edge))
    return merge(parts) if parts else Rollup()


def _run_params(window: Window, low: float | None, high: float | None) -> dict[str, Any]:
    arm = {} if window.routing_arm is None else {"routing_arm": window.routing_arm}
    return _params(window, low, high) | arm


def _raw_runs(fetch: Fetch, window: Window) -> list[Rollup]:
    sql = f"SELECT {', '.join(_TRACE_EDGE_COLUMNS)} FROM spark_traces WHERE {window.where()}"
    rows = fetch(sql, window.params())
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
