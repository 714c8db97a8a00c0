"""The SQL of the telemetry aggregations, for PostgreSQL and SQLite.

Aggregation happens in the database: PostgreSQL computes exact percentiles with
``percentile_cont(ARRAY[...]) WITHIN GROUP``; SQLite gets the same numbers from a Python aggregate
(``spark_percentiles``, registered on each connection) that sorts once in ``finalize``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from spark.telemetry import _statistics

QUANTILES = (0.5, 0.95, 0.99)
LATENCY_PROFILE = (0.5, 0.75, 0.9, 0.95, 0.975, 0.99, 0.995, 0.999)
"""The quantiles of a node's latency that ``NodeStats.latency_quantiles`` holds: enough of the
upper tail to price cutting it (``spark.rsi.tail``). One sort yields them all."""
PURGE_SPAN_KEYS_SQL = text(
    "DELETE FROM spark_span_keys WHERE span_id IN"
    " (SELECT span_id FROM spark_spans WHERE started_at < :cutoff)"
)
"""Forget the recorded ids of spans a purge is about to delete."""
_SQLITE_FUNCTIONS_READY = "spark_percentiles_ready"
_SQLITE_STATISTICS_SEEN = "spark_statistics_generation"
_SQLITE_MMAP_BYTES = 256 * 1024 * 1024
_ERRORS = "sum(CASE WHEN {p}status = 'error' THEN 1 ELSE 0 END)"
_QUALITY = (
    "COALESCE((SELECT avg(f.score) FROM spark_feedback f WHERE f.trace_id = t.trace_id), t.quality)"
)
"""A trace's quality for per-trace reads: its mean feedback score, else its own quality."""
_JOINED_QUALITY = "COALESCE(fb.score, t.quality)"


def _feedback_join(window: Window) -> str:
    """Mean feedback per trace as a join, for whole-window aggregates (a correlated subquery
    per row is 5-10x slower there). Feedback comes after its run (``add_feedback`` stamps the
    time it is given), so only feedback given since the window opened is grouped."""
    since = " WHERE created_at >= :since" if window.since is not None else ""
    return (
        "LEFT JOIN (SELECT trace_id, avg(score) AS score FROM spark_feedback"
        f"{since} GROUP BY trace_id) fb ON fb.trace_id = t.trace_id"
    )


@dataclass(frozen=True, slots=True)
class Window:
    """Which rows an aggregation reads: one graph, optionally one version, arm and time range.

    ``since`` is inclusive and ``until`` exclusive, both epoch seconds.
    """

    graph_id: str
    version_id: str | None = None
    since: float | None = None
    until: float | None = None
    routing_arm: str | None = None

    def where(self, prefix: str = "") -> str:
        """The SQL condition selecting the window (columns qualified with ``prefix``)."""
        conditions = [f"{prefix}graph_id = :graph_id"]
        if self.version_id is not None:
            conditions.append(f"{prefix}version_id = :version_id")
        if self.since is not None:
            conditions.append(f"{prefix}started_at >= :since")
        if self.until is not None:
            conditions.append(f"{prefix}started_at < :until")
        if self.routing_arm is not None:
            conditions.append(f"{prefix}routing_arm = :routing_arm")
        return " AND ".join(conditions)

    def params(self) -> dict[str, Any]:
        """The bind parameters used by ``where``."""
        values = {
            "graph_id": self.graph_id,
            "version_id": self.version_id,
            "since": self.since,
            "until": self.until,
            "routing_arm": self.routing_arm,
        }
        return {key: value for key, value in values.items() if value is not None}


def percentiles_sql(column: str, postgres: bool, quantiles: tuple[float, ...] = QUANTILES) -> str:
    """An aggregate expression yielding ``quantiles`` of ``column`` (``QUANTILES`` or
    ``LATENCY_PROFILE``)."""
    if postgres:
        listed = ", ".join(str(q) for q in quantiles)
        return f"percentile_cont(ARRAY[{listed}]) WITHIN GROUP (ORDER BY {column})"
    return f"{_SQLITE_AGGREGATES[quantiles]}({column})"


def parse_percentiles(value: object, size: int = len(QUANTILES)) -> tuple[float, ...]:
    """The ``size`` quantiles from either dialect's result (array or text); zeros for no rows."""
    if value is None:
        return (0.0,) * size
    parts = value.split() if isinstance(value, str) else value
    found = tuple(float(part) for part in parts)  # type: ignore[attr-defined]
    if len(found) != size:
        raise ValueError(f"expected {size} quantiles, got {len(found)}")
    return found


def node_stats_sql(window: Window, postgres: bool) -> str:
    """Per-node count, errors, latency percentiles, cost, tokens, attempts, cache and inputs.

    On PostgreSQL the grouping and the distinct count compare bytes (``COLLATE "C"``): node ids
    and hex fingerprints need no linguistic order, and the distinct count's sort was 40% of the
    query under the database's default collation. The count stays exact.
    """
    node = 'node_id COLLATE "C"' if postgres else "node_id"
    fingerprint = 'input_fingerprint COLLATE "C"' if postgres else "input_fingerprint"
    return f"""
        SELECT {node} AS node_id, count(*) AS n, {_ERRORS.format(p="")} AS errors,
               avg(duration_ms) AS mean_ms,
               {percentiles_sql("duration_ms", postgres, LATENCY_PROFILE)} AS pct,
               sum(cost) AS total_cost, avg(cost) AS mean_cost, sum(tokens) AS total_tokens,
               avg(attempts) AS mean_attempts,
               avg(CASE WHEN cache_hit THEN 1.0 ELSE 0.0 END) AS cache_hit_rate,
               count(DISTINCT {fingerprint}) AS distinct_inputs,
               count(input_fingerprint) AS fingerprinted
        FROM spark_spans
        WHERE {window.where()} AND status <> 'skipped'
        GROUP BY 1 ORDER BY 1"""


def error_types_sql(window: Window) -> str:
    """Failed spans by node and error type (a missing type counts as ``unknown``)."""
    return f"""
        SELECT node_id, COALESCE(error_type, 'unknown') AS error_type, count(*) AS n
        FROM spark_spans
        WHERE {window.where()} AND status = 'error'
        GROUP BY 1, 2"""


def version_stats_sql(window: Window, postgres: bool) -> str:
    """Whole-run statistics; quality is the mean feedback score, else the trace's own quality."""
    return f"""
        WITH scored AS (
            SELECT t.status, t.duration_ms, t.cost, t.started_at, t.sampling_rate,
                   {_JOINED_QUALITY} AS quality
            FROM spark_traces t {_feedback_join(window)} WHERE {window.where("t.")}
        )
        SELECT count(*) AS n, sum(1.0 / sampling_rate) AS estimated_n, {_ERRORS.format(p="")} AS errors, avg(duration_ms) AS mean_ms,
               avg(CASE WHEN status = 'error' THEN NULL ELSE duration_ms END) AS mean_ok_ms,
               {percentiles_sql("duration_ms", postgres)} AS pct, avg(cost) AS mean_cost,
               avg(quality) AS mean_quality, count(quality) AS quality_count,
               min(started_at) AS first_started_at, max(started_at) AS last_started_at
        FROM scored"""


def trace_metrics_sql(window: Window, limit: int | None) -> str:
    """Per-trace latency, error flag, cost, quality and start, newest first (the caller
    reverses)."""
    return f"""
        SELECT t.trace_id, t.duration_ms, CASE WHEN t.status = 'error' THEN 1.0 ELSE 0.0 END AS error,
               t.cost, {_QUALITY} AS quality, t.started_at
        FROM spark_traces t WHERE {window.where("t.")}
        ORDER BY t.started_at DESC, t.trace_id DESC{" LIMIT :limit" if limit is not None else ""}"""


def arm_moments_sql(window: Window) -> str:
    """Counts, sums, sums of squares and cross products of each test metric over the window's
    traces. Latency and cost cover every request, failed ones included (what the caller waited
    and paid for); the cross products let a weighted objective's variance be computed later."""
    err = "CASE WHEN status = 'error' THEN 1.0 ELSE 0.0 END"
    return f"""
        SELECT count(*) AS runs,
               sum(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors,
               sum(CASE WHEN duration_ms > 0 THEN 1 ELSE 0 END) AS lat_n,
               sum(CASE WHEN duration_ms > 0 THEN ln(duration_ms) END) AS lat_sum,
               sum(CASE WHEN duration_ms > 0 THEN ln(duration_ms) * ln(duration_ms) END)
                   AS lat_sq,
               sum(duration_ms) AS raw_lat_sum, sum(duration_ms * duration_ms) AS raw_lat_sq,
               sum(cost) AS cost_sum, sum(cost * cost) AS cost_sq,
               sum({err} * duration_ms) AS err_lat, sum({err} * cost) AS err_cost,
               sum(duration_ms * cost) AS lat_cost,
               count(quality) AS q_n, sum(quality) AS q_sum, sum(quality * quality) AS q_sq
        FROM (SELECT t.status, t.duration_ms, t.cost, {_JOINED_QUALITY} AS quality
              FROM spark_traces t {_feedback_join(window)} WHERE {window.where("t.")}) AS arm"""


def recorded_runs_sql(window: Window) -> str:
    """The newest traces that kept their inputs."""
    return f"""
        SELECT trace_id, version_id, started_at, inputs_json FROM spark_traces
        WHERE {window.where()} AND inputs_json IS NOT NULL
        ORDER BY started_at DESC, trace_id DESC LIMIT :limit"""


SIDE_EFFECT_OUTPUTS_SQL = """
    SELECT trace_id, node_id, output_json FROM spark_spans
    WHERE output_json IS NOT NULL AND trace_id IN :trace_ids"""


def count_traces_sql(window: Window) -> str:
    """How many traces fall in the window."""
    return f"SELECT count(*) FROM spark_traces WHERE {window.where()}"


def assignment_counts_sql(window: Window) -> str:
    """Units of assignment per routing arm in the window: each distinct routing key once (a
    sticky key sends all its runs to one arm, so runs are not independent draws), each run
    without a key on its own."""
    return f"""
        SELECT routing_arm,
               count(DISTINCT routing_key)
                   + sum(CASE WHEN routing_key IS NULL THEN 1 ELSE 0 END) AS n
        FROM spark_traces
        WHERE {window.where()} GROUP BY routing_arm"""


class _Percentiles:
    """SQLite aggregate: collects values, sorts once, returns "p50 p95 p99" as text."""

    quantiles: tuple[float, ...] = QUANTILES

    def __init__(self) -> None:
        self.values: list[float] = []

    def step(self, value: float | None) -> None:
        if value is not None:
            self.values.append(value)

    def finalize(self) -> str | None:
        if not self.values:
            return None
        self.values.sort()
        return " ".join(repr(interpolate(self.values, q)) for q in self.quantiles)


class _LatencyProfile(_Percentiles):
    """SQLite aggregate: the ``LATENCY_PROFILE`` quantiles as text."""

    quantiles = LATENCY_PROFILE


_SQLITE_AGGREGATES = {QUANTILES: "spark_percentiles", LATENCY_PROFILE: "spark_latency_profile"}


def interpolate(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of sorted values by linear interpolation (``percentile_cont``)."""
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def install_sqlite_functions(engine: Engine) -> None:
    """Give every connection of a SQLite engine ``spark_percentiles`` and memory-mapped reads.

    Aggregations read many pages in index order; mapping the file (rather than copying pages into
    SQLite's 2 MB cache) roughly halves a whole-graph ``node_stats``. Once per engine.
    """
    if not event.contains(engine, "checkout", _register_on_checkout):
        event.listen(engine, "checkout", _register_on_checkout)


def _register_on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    # On checkout rather than connect: the pool may hold connections opened before the listener.
    if not record.info.get(_SQLITE_FUNCTIONS_READY):
        dbapi_connection.create_aggregate("spark_percentiles", 1, _Percentiles)
        dbapi_connection.create_aggregate("spark_latency_profile", 1, _LatencyProfile)
        dbapi_connection.execute(f"PRAGMA mmap_size={_SQLITE_MMAP_BYTES}")
        record.info[_SQLITE_FUNCTIONS_READY] = True
    _reload_statistics_if_changed(dbapi_connection, record)


def _reload_statistics_if_changed(dbapi_connection: Any, record: Any) -> None:
    """A pooled connection plans with the statistics it read at open; after an ``ANALYZE``
    elsewhere it must reload them or keep walking the index a stale plan chose."""
    current = _statistics.generation()
    if record.info.setdefault(_SQLITE_STATISTICS_SEEN, current) != current:
        dbapi_connection.execute("ANALYZE sqlite_schema")
        record.info[_SQLITE_STATISTICS_SEEN] = current
