"""The telemetry store: bulk writes of finished runs, feedback, and SQL aggregations for RSI.

Writes take whole batches (COPY on PostgreSQL, ``executemany`` on SQLite) and are idempotent.
Reads aggregate in the database and return the small pydantic views of
``spark.telemetry.aggregates``; rows are never loaded into Python to be summarised.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal, NamedTuple

import psycopg
import structlog
from sqlalchemy import bindparam, delete, insert, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Row

from spark.db import get_engine, is_postgres, normalize_url
from spark.errors import InvalidInputError, TelemetryBusyError
from spark.telemetry import (
    _bulk,
    _queries,
    _statistics,
    checkpoints,
    partitions,
    rollups,
    sealing,
)
from spark.telemetry._queries import Window
from spark.telemetry.aggregates import (
    ArmMoments,
    Moments,
    NodeStats,
    RecordedRun,
    TraceMetrics,
    VersionStats,
)
from spark.telemetry.models import FeedbackRecord, RunTelemetry
from spark.telemetry.tables import FeedbackRow

log = structlog.get_logger(__name__)

Timestamp = float | datetime
StatsSource = Literal["exact", "rollups", "auto"]
"""Where aggregates are read: raw spans, rollups, or rollups where they are complete."""
COVERAGE_TTL_S = 30.0
"""How long a store trusts what it read of a graph's rollup coverage."""
FEEDBACK = FeedbackRow.__table__  # type: ignore[attr-defined]
_IN_CHUNK = 500


class SealCounts(NamedTuple):
    """What one ``seal_rollups`` call did: units sealed, rollup rows they now hold, seconds."""

    units: int
    rows: int
    seconds: float


class PurgeCounts(NamedTuple):
    """Rows removed by a retention purge, per table."""

    traces: int
    spans: int
    feedback: int


class TelemetryStore:
    """Traces, spans and feedback in one database (SQLite file or PostgreSQL)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = normalize_url(database_url)
        self.is_postgres = is_postgres(self.database_url)
        self._engine = get_engine(self.database_url)
        self.backend: str = self._engine.dialect.name
        if not self.is_postgres:
            _queries.install_sqlite_functions(self._engine)
        self._analyze = None if self.is_postgres else self._analyze_schedule()
        database_path = None if self.is_postgres else self._engine.url.database
        self._checkpointer = (
            checkpoints.BackgroundCheckpointer(database_path)
            if database_path and database_path != ":memory:"
            else None
        )
        self._partitions = partitions.DayPartitions(self._engine) if self.is_postgres else None
        self._coverage: dict[str, tuple[bool, float]] = {}
        self._next_seal_check = time.monotonic() + sealing.SEAL_CHECK_INTERVAL_S
        self._sealer: threading.Thread | None = None
        self._sealer_lock = threading.Lock()
        self._log = log.bind(backend=self.backend)

    # -- writes -----------------------------------------------------------------------------

    def write_runs(self, runs: Sequence[RunTelemetry]) -> None:
        """Store the traces and spans of ``runs`` in one transaction; already stored ids are kept."""
        if not runs:
            return
        traces, spans = _bulk.trace_rows(runs), _bulk.span_rows(runs)
        writer = _bulk.write_postgres if self.is_postgres else _bulk.write_sqlite
        if self._partitions is not None:
            self._partitions.ensure(traces, spans, now=None)
        with self._raw_transaction() as connection:
            stored_traces, stored_spans = writer(connection, traces, spans)
            units = sealing.touched_units(stored_traces, stored_spans)
            sealing.mark_pending(connection, self.is_postgres, units)
        if self._checkpointer is not None:
            self._checkpointer.written()
        if self._analyze is not None and self._analyze.due(len(stored_spans)):
            self._analyze_after_load()
        if time.monotonic() >= self._next_seal_check:
            self._start_sealer()

    def seal_rollups(
        self, now: float | None = None, budget_s: float | None = None, graph_id: str | None = None
    ) -> SealCounts:
        """Compute the rollups of every pending unit whose bucket closed at least
        ``sealing.SEAL_GRACE_S`` before ``now`` (default: the clock; ``math.inf`` seals all),
        of ``graph_id`` only if given, each unit in its own transaction, until ``budget_s``
        seconds have passed (default: no limit). Writes call this on their own every
        ``sealing.SEAL_CHECK_INTERVAL_S``; see ``spark.telemetry.sealing``."""
        cutoff = (time.time() if now is None else now) - sealing.SEAL_GRACE_S
        deadline = math.inf if budget_s is None else time.monotonic() + budget_s
        units = rows = 0
        started = time.perf_counter()
        while time.monotonic() < deadline:
            with self._raw_transaction() as connection:
                due = sealing.due_units(connection, self.is_postgres, cutoff, 256, graph_id)
            sealed_before = units
            for group in sealing.by_bucket(due, sealing.UNITS_PER_SEAL):
                with self._raw_transaction() as connection:
                    sealed, written = sealing.seal_units(connection, self.is_postgres, group)
                units, rows = units + sealed, rows + written
                if time.monotonic() >= deadline:
                    break
            if units == sealed_before:  # nothing due, or sealed by others meanwhile
                break
        counts = SealCounts(units, rows, round(time.perf_counter() - started, 3))
        if units:
            self._log.info("telemetry.rollups_sealed", **counts._asdict())
        return counts

    def _start_sealer(self) -> None:
        """Seal due units in a daemon thread, so the writer goes on writing meanwhile (one
        sealer per store at a time)."""
        self._next_seal_check = time.monotonic() + sealing.SEAL_CHECK_INTERVAL_S
        with self._sealer_lock:
            if self._sealer is not None and self._sealer.is_alive():
                return
            self._sealer = threading.Thread(
                target=self._seal_in_background, name="spark-rollup-sealer", daemon=True
            )
            self._sealer.start()

    def wait_for_sealer(self, timeout: float | None = None) -> None:
        """Until the background sealer started by a write (if any) has finished."""
        sealer = self._sealer
        if sealer is not None:
            sealer.join(timeout)

    def _seal_in_background(self) -> None:
        """Sealing is upkeep: the batches are stored; a failed seal is logged, retried later."""
        try:
            self.seal_rollups(budget_s=sealing.SEAL_BUDGET_S)
        except Exception as exc:  # the writes succeeded; sealing retries at the next check
            self._log.warning(
                "telemetry.seal_failed", error_type=type(exc).__name__, error=str(exc)[:200]
            )

    def refresh_statistics(self) -> None:
        """``ANALYZE`` the database (SQLite's planner has no statistics until asked; the store
        asks on its own after bulk loads, see ``spark.telemetry._statistics``)."""
        started = time.perf_counter()
        with self._raw_transaction() as connection:
            connection.execute("ANALYZE")
        _statistics.statistics_changed()
        self._log.info("telemetry.analyzed", seconds=round(time.perf_counter() - started, 3))

    def _analyze_schedule(self) -> _statistics.AnalyzeSchedule:
        with self._raw_transaction() as connection:
            return _statistics.AnalyzeSchedule(_statistics.analysed_spans(connection))

    def _analyze_after_load(self) -> None:
        """Statistics are an optimisation: the batch is stored, a failed ANALYZE is only logged."""
        try:
            self.refresh_statistics()
        except sqlite3.Error as exc:
            self._log.warning("telemetry.analyze_failed", error=str(exc))

    def rebuild_rollups(self, graph_id: str) -> int:
        """Recompute the graph's rollups from its raw telemetry and mark them complete (needed
        once for a graph with telemetry stored before migration 0008; afterwards ``write_runs``
        keeps them, and ``source="auto"`` reads them). Returns the rollup rows written."""
        if graph_id == rollups.WHOLE_DATABASE:
            raise InvalidInputError(f"{graph_id!r} is not a graph id: it marks every graph")
        with self._raw_transaction() as connection:
            marked = sealing.mark_graph_pending(connection, self.is_postgres, graph_id)
        written = self.seal_rollups(now=math.inf, graph_id=graph_id).rows
        with self._raw_transaction() as connection:
            cursor = connection.cursor()
            try:
                rollups.mark_complete(cursor, "%s" if self.is_postgres else "?", graph_id)
            finally:
                cursor.close()
        self._coverage[graph_id] = (True, time.monotonic())
        self._log.info("telemetry.rollups_rebuilt", graph_id=graph_id, units=marked, rows=written)
        return written

    def rollups_complete(self, graph_id: str) -> bool:
        """Whether the graph's rollups cover all its telemetry (``spark_rollup_coverage``); read
        at most once per ``COVERAGE_TTL_S`` per graph."""
        known = self._coverage.get(graph_id)
        if known is not None and time.monotonic() - known[1] < COVERAGE_TTL_S:
            return known[0]
        complete = bool(self._fetch(rollups.coverage_sql(), {"graph_id": graph_id})[0][0])
        self._coverage[graph_id] = (complete, time.monotonic())
        return complete

    def _reads_rollups(self, source: StatsSource, graph_id: str) -> bool:
        return source == "rollups" or (source == "auto" and self.rollups_complete(graph_id))

    def add_feedback(
        self, trace_id: str, score: float, label: str | None = None, source: str = "user"
    ) -> FeedbackRecord:
        """Attach a score to a trace (the trace may not be written yet: no foreign key)."""
        if not math.isfinite(score):
            raise InvalidInputError(f"feedback score for trace {trace_id!r} must be finite")
        record = FeedbackRecord(trace_id, float(score), time.time(), label, source)
        with self._engine.begin() as conn:
            conn.execute(insert(FEEDBACK).values(**_feedback_values(record)))
        self._log.debug("telemetry.feedback_added", trace_id=trace_id, source=source)
        return record

    def write_feedback(self, records: Sequence[FeedbackRecord]) -> None:
        """Store a batch of scores in one transaction (the recorder's path; scores are checked
        when taken, see ``spark.telemetry.feedback``)."""
        if not records:
            return
        with self._engine.begin() as conn:
            conn.execute(insert(FEEDBACK), [_feedback_values(record) for record in records])

    def purge_older_than(self, cutoff: Timestamp) -> PurgeCounts:
        """Delete traces and spans started before ``cutoff``, the feedback of those traces, and
        the rollup buckets that end by ``cutoff`` (the bucket holding it keeps its totals).

        On PostgreSQL the day partitions that end by ``cutoff`` are dropped whole (their rows
        counted first); only the rows of the day holding ``cutoff`` and of the default
        partition are deleted one by one (``spark.telemetry.partitions``)."""
        before = _epoch(cutoff)
        assert before is not None  # a Timestamp is a float or a datetime
        try:
            return self._purge(before)
        except (psycopg.errors.LockNotAvailable, sa_exc.OperationalError) as exc:
            orig = exc.orig if isinstance(exc, sa_exc.OperationalError) else exc
            if not isinstance(orig, psycopg.errors.LockNotAvailable):
                raise
            raise TelemetryBusyError(
                "purge could not lock spark_traces and spark_spans within "
                f"{partitions.PURGE_LOCK_TIMEOUT_MS} ms: another session holds them (a long "
                "query or a transaction left open); nothing was deleted, run it again later"
            ) from exc

    def _purge(self, before: float) -> PurgeCounts:
        old_traces = select(_bulk.TRACES.c.trace_id).where(_bulk.TRACES.c.started_at < before)
        with self._engine.begin() as conn:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            # on PostgreSQL, the day partitions before the cutoff, both tables locked
            old_days = partitions.old_partitions(cursor, before) if self.is_postgres else {}
            feedback = conn.execute(delete(FEEDBACK).where(FEEDBACK.c.trace_id.in_(old_traces)))
            conn.execute(_queries.PURGE_SPAN_KEYS_SQL, {"cutoff": before})
            dropped = {
                table: partitions.drop_partitions(cursor, old_days[table]) for table in old_days
            }
            spans = conn.execute(delete(_bulk.SPANS).where(_bulk.SPANS.c.started_at < before))
            traces = conn.execute(delete(_bulk.TRACES).where(_bulk.TRACES.c.started_at < before))
            conn.execute(rollups.purge_sql(), {"cutoff": before})
            conn.execute(rollups.purge_pending_sql(), {"cutoff": before})
        if self._partitions is not None:
            self._partitions.forget(day for days in old_days.values() for _, day in days)
        counts = PurgeCounts(
            traces.rowcount + dropped.get(_bulk.TRACES.name, 0),
            spans.rowcount + dropped.get(_bulk.SPANS.name, 0),
            feedback.rowcount,
        )
        self._log.info(
            "telemetry.purged",
            cutoff=before,
            partitions_dropped=sum(map(len, old_days.values())),
            **counts._asdict(),
        )
        return counts

    # -- aggregations -----------------------------------------------------------------------

    def node_stats(
        self,
        graph_id: str,
        version_id: str | None = None,
        since: Timestamp | None = None,
        until: Timestamp | None = None,
        source: StatsSource = "exact",
    ) -> list[NodeStats]:
        """Per-node statistics of the window's non-skipped spans, ordered by node id.

        ``source="rollups"`` reads ``spark.telemetry.rollups`` (cost independent of how many
        spans the window holds; counts, sums and error types equal the exact ones, percentiles
        within 1% relative error, the distinct-input ratio estimated); ``"exact"`` scans spans;
        ``"auto"`` reads the rollups when ``rollups_complete(graph_id)``, else scans spans.
        """
        window = _window(graph_id, version_id, since, until)
        if self._reads_rollups(source, graph_id):
            merged = rollups.node_rollups(self._fetch, window)
            return [rollups.to_node_stats(window, node, r) for node, r in merged.items()]
        rows = self._fetch(_queries.node_stats_sql(window, self.is_postgres), window.params())
        error_types = self._error_types(window)
        return [_node_stats(window, row, error_types.get(row.node_id, {})) for row in rows]

    def version_stats(
        self,
        graph_id: str,
        version_id: str | None = None,
        since: Timestamp | None = None,
        until: Timestamp | None = None,
        routing_arm: str | None = None,
    ) -> VersionStats:
        """Whole-run statistics of the window's traces (zeros when there are none)."""
        window = _window(graph_id, version_id, since, until, routing_arm)
        sql = _queries.version_stats_sql(window, self.is_postgres)
        return _version_stats(window, self._fetch(sql, window.params())[0])

    def trace_metrics(
        self,
        graph_id: str,
        version_id: str | None = None,
        since: Timestamp | None = None,
        until: Timestamp | None = None,
        limit: int | None = None,
        routing_arm: str | None = None,
    ) -> TraceMetrics:
        """Per-trace metric arrays, oldest first; with ``limit``, the most recent ``limit`` traces."""
        window = _window(graph_id, version_id, since, until, routing_arm)
        params = window.params() | ({"limit": limit} if limit is not None else {})
        rows = self._fetch(_queries.trace_metrics_sql(window, limit), params)[::-1]
        return TraceMetrics(
            graph_id=graph_id,
            version_id=version_id,
            trace_ids=[row.trace_id for row in rows],
            latency_ms=[float(row.duration_ms) for row in rows],
            error=[float(row.error) for row in rows],
            cost=[float(row.cost) for row in rows],
            quality=[_optional_float(row.quality) for row in rows],
            started_at=[float(row.started_at) for row in rows],
        )

    def arm_moments(
        self,
        graph_id: str,
        version_id: str | None = None,
        since: Timestamp | None = None,
        until: Timestamp | None = None,
        routing_arm: str | None = None,
        source: StatsSource = "exact",
    ) -> ArmMoments:
        """The window's test metrics as aggregates: constant memory however many runs it holds
        (what an A/B look reads; ``trace_metrics`` gives the same as per-run arrays).

        ``source="rollups"`` gives the same sums (up to float rounding) from the rollups, the
        raw traces of the window's partial edge buckets and the window's feedback: its cost
        does not grow with the number of runs in the window. ``"auto"``: rollups when
        ``rollups_complete(graph_id)``, else exact."""
        window = _window(graph_id, version_id, since, until, routing_arm)
        if self._reads_rollups(source, graph_id):
            scored = self._fetch(rollups.feedback_quality_sql(window), window.params())
            return rollups.to_arm_moments(rollups.run_rollup(self._fetch, window), scored)
        row = self._fetch(_queries.arm_moments_sql(window), window.params())[0]
        return ArmMoments(
            runs=int(row.runs),
            errors=int(row.errors or 0),
            log_latency=_moments(row.lat_n, row.lat_sum, row.lat_sq),
            latency=_moments(row.runs, row.raw_lat_sum, row.raw_lat_sq),
            cost=_moments(row.runs, row.cost_sum, row.cost_sq),
            quality=_moments(row.q_n, row.q_sum, row.q_sq),
            error_latency=float(row.err_lat or 0.0),
            error_cost=float(row.err_cost or 0.0),
            latency_cost=float(row.lat_cost or 0.0),
        )

    def recorded_runs(
        self,
        graph_id: str,
        version_id: str | None = None,
        since: Timestamp | None = None,
        limit: int = 200,
    ) -> list[RecordedRun]:
        """The most recent runs that kept their inputs, newest first, with side-effect outputs."""
        window = _window(graph_id, version_id, since)
        traces = self._fetch(_queries.recorded_runs_sql(window), window.params() | {"limit": limit})
        outputs = self._side_effect_outputs([row.trace_id for row in traces])
        runs = (_recorded_run(row, outputs.get(row.trace_id, {})) for row in traces)
        return [run for run in runs if run is not None]

    def count_traces(
        self,
        graph_id: str,
        version_id: str | None = None,
        since: Timestamp | None = None,
        routing_arm: str | None = None,
    ) -> int:
        """How many traces of the graph (and version, arm) started since ``since``."""
        window = _window(graph_id, version_id, since, routing_arm=routing_arm)
        return int(self._fetch(_queries.count_traces_sql(window), window.params())[0][0])

    def assignment_counts(
        self, graph_id: str, since: Timestamp, until: Timestamp
    ) -> dict[str, int]:
        """Units of assignment per routing arm in ``[since, until)``, for sample-ratio-mismatch
        checks: distinct routing keys (sticky: a popular key's runs all land in one arm, so
        counting runs would flag a fair split as a mismatch), plus runs without a key."""
        window = _window(graph_id, since=since, until=until)
        rows = self._fetch(_queries.assignment_counts_sql(window), window.params())
        return {row.routing_arm: int(row.n) for row in rows}

    # -- plumbing ---------------------------------------------------------------------------

    def _error_types(self, window: Window) -> dict[str, dict[str, int]]:
        breakdown: dict[str, dict[str, int]] = {}
        for row in self._fetch(_queries.error_types_sql(window), window.params()):
            breakdown.setdefault(row.node_id, {})[row.error_type] = int(row.n)
        return breakdown

    def _side_effect_outputs(self, trace_ids: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
        outputs: dict[str, dict[str, dict[str, Any]]] = {}
        query = text(_queries.SIDE_EFFECT_OUTPUTS_SQL).bindparams(
            bindparam("trace_ids", expanding=True)
        )
        for start in range(0, len(trace_ids), _IN_CHUNK):
            chunk = trace_ids[start : start + _IN_CHUNK]
            with self._engine.connect() as conn:
                for row in conn.execute(query, {"trace_ids": chunk}):
                    output = _decode(row.output_json, row.trace_id)
                    if output is not None:
                        outputs.setdefault(row.trace_id, {})[row.node_id] = output
        return outputs

    def _fetch(self, sql: str, params: dict[str, Any]) -> Sequence[Row[Any]]:
        with self._engine.connect() as conn:
            return conn.execute(text(sql), params).all()

    @contextmanager
    def _raw_transaction(self) -> Iterator[Any]:
        """The driver connection (sqlite3 / psycopg) in a transaction committed on success."""
        pooled = self._engine.raw_connection()
        try:
            yield pooled.driver_connection
            pooled.commit()
        except BaseException:
            pooled.rollback()
            raise
        finally:
            pooled.close()


def _window(
    graph_id: str,
    version_id: str | None = None,
    since: Timestamp | None = None,
    until: Timestamp | None = None,
    routing_arm: str | None = None,
) -> Window:
    return Window(graph_id, version_id, _epoch(since), _epoch(until), routing_arm)


def _epoch(moment: Timestamp | None) -> float | None:
    """Epoch seconds from a float or an aware datetime."""
    if moment is None or not isinstance(moment, datetime):
        return moment
    if moment.tzinfo is None:
        raise InvalidInputError(f"naive datetime {moment.isoformat()!r}: give a UTC-aware one")
    return moment.timestamp()


def _node_stats(window: Window, row: Row[Any], error_types: dict[str, int]) -> NodeStats:
    profile = dict(
        zip(
            _queries.LATENCY_PROFILE,
            _queries.parse_percentiles(row.pct, len(_queries.LATENCY_PROFILE)),
            strict=True,
        )
    )
    p50, p95, p99 = profile[0.5], profile[0.95], profile[0.99]
    return NodeStats(
        graph_id=window.graph_id,
        version_id=window.version_id,
        node_id=row.node_id,
        count=row.n,
        error_count=row.errors,
        error_rate=row.errors / row.n,
        mean_ms=float(row.mean_ms),
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        latency_quantiles=tuple(profile.items()),
        total_cost=float(row.total_cost),
        mean_cost=float(row.mean_cost),
        total_tokens=int(row.total_tokens),
        mean_attempts=float(row.mean_attempts),
        cache_hit_rate=float(row.cache_hit_rate),
        distinct_input_ratio=row.distinct_inputs / row.fingerprinted if row.fingerprinted else 1.0,
        error_types=error_types,
    )


def _moments(count: Any, total: Any, squares: Any) -> Moments:
    return Moments(
        count=int(count or 0), sum=float(total or 0.0), sum_squares=float(squares or 0.0)
    )


def _version_stats(window: Window, row: Row[Any]) -> VersionStats:
    p50, p95, p99 = _queries.parse_percentiles(row.pct)
    count, errors = int(row.n), int(row.errors or 0)
    return VersionStats(
        graph_id=window.graph_id,
        version_id=window.version_id,
        count=count,
        estimated_count=float(row.estimated_n or 0.0),
        error_count=errors,
        error_rate=errors / count if count else 0.0,
        mean_ms=float(row.mean_ms or 0.0),
        mean_ok_ms=_optional_float(row.mean_ok_ms),
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        mean_cost=float(row.mean_cost or 0.0),
        mean_quality=_optional_float(row.mean_quality),
        quality_count=int(row.quality_count),
        first_started_at=_optional_float(row.first_started_at),
        last_started_at=_optional_float(row.last_started_at),
    )


def _recorded_run(row: Row[Any], outputs: dict[str, dict[str, Any]]) -> RecordedRun | None:
    inputs = _decode(row.inputs_json, row.trace_id)
    if inputs is None:
        return None
    return RecordedRun(
        trace_id=row.trace_id,
        version_id=row.version_id,
        started_at=float(row.started_at),
        inputs=inputs,
        side_effect_outputs=outputs,
    )


def _decode(raw: str, trace_id: str) -> dict[str, Any] | None:
    """A stored JSON document as an object (others wrapped as ``{"value": ...}``); None if corrupt."""
    try:
        value = json.loads(raw)
    except ValueError:
        log.warning("telemetry.unreadable_json", trace_id=trace_id)
        return None
    return value if isinstance(value, dict) else {"value": value}


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _feedback_values(record: FeedbackRecord) -> dict[str, Any]:
    return {
        "trace_id": record.trace_id,
        "score": record.score,
        "created_at": record.created_at,
        "label": record.label,
        "source": record.source,
    }
