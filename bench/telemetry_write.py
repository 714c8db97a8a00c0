"""Telemetry write path: spans/s through the recorder and node_stats query time.

    python -m bench.telemetry_write --spans 200000

Runs on a fresh SQLite file and a fresh PostgreSQL database (created and dropped; admin DSN from
``SPARK_TEST_POSTGRES_DSN``, default ``host=127.0.0.1 port=5432 user=postgres dbname=test``).
Records are built before timing: the figures are the cost of queueing and writing, not of
building spans. Compare with ``shared/reference/physical-limits.md``.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg

from spark.db import dispose_engine, sqlite_url
from spark.telemetry import (
    RunTelemetry,
    SpanRecord,
    TelemetryConfig,
    TelemetryRecorder,
    TraceRecord,
    _bulk,
)

ADMIN_DSN = os.environ.get(
    "SPARK_TEST_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test"
)
VERSIONS = 8
T0 = 1_700_000_000.0


def make_runs(spans: int, spans_per_run: int) -> list[RunTelemetry]:
    """Runs of graph ``bench`` spread over VERSIONS versions, ``spans_per_run`` nodes each."""
    runs = []
    for i in range(spans // spans_per_run):
        version = f"v{i % VERSIONS}"
        trace = TraceRecord(f"t{i}", "bench", version, T0 + i * 0.01, 120.0 + i % 97, "ok")
        runs.append(RunTelemetry(trace, [_span(trace, i, n) for n in range(spans_per_run)]))
    return runs


def _span(trace: TraceRecord, i: int, node: int) -> SpanRecord:
    failed = (i + node) % 50 == 0
    return SpanRecord(
        span_id=f"s{i}-{node}",
        trace_id=trace.trace_id,
        graph_id=trace.graph_id,
        version_id=trace.version_id,
        node_id=f"node{node}",
        node_type="llm",
        started_at=trace.started_at + node * 0.001,
        duration_ms=float((i * 7919 + node * 104729) % 1000) / 3.0,
        status="error" if failed else "ok",
        error_type="Timeout" if failed else None,
        tokens=100 + node,
        cost=0.001 * node,
        input_fingerprint=f"fp{i % 500}",
    )


def measure_recorder(config: TelemetryConfig, runs: list[RunTelemetry]) -> dict[str, float]:
    """Submit every run, flush, and time both."""
    with config.open_recorder() as recorder:
        started = time.perf_counter()
        for run in runs:
            recorder.submit(run)
        submitted = time.perf_counter()
        recorder.flush()
        done = time.perf_counter()
        stats = recorder.stats
    return {
        "submit_ns": (submitted - started) / len(runs) * 1e9,
        "spans_per_s": stats.spans_written / (done - started),
        "batches": stats.batches,
        "dropped": stats.dropped,
    }


def measure_direct(config: TelemetryConfig, runs: list[RunTelemetry]) -> float:
    """Spans/s of ``TelemetryStore.write_runs`` called directly with recorder-sized batches."""
    store, spans = config.open_store(), sum(len(run.spans) for run in runs)
    renamed = [_renamed(run) for run in runs]
    started = time.perf_counter()
    for start in range(0, len(renamed), config.batch_size):
        store.write_runs(renamed[start : start + config.batch_size])
    return spans / (time.perf_counter() - started)


def _renamed(run: RunTelemetry) -> RunTelemetry:
    """The same run under new ids (and another graph), so it is inserted rather than skipped."""
    trace = run.trace._replace(trace_id="d" + run.trace.trace_id, graph_id="direct")
    spans = [
        span._replace(span_id="d" + span.span_id, trace_id=trace.trace_id, graph_id="direct")
        for span in run.spans
    ]
    return RunTelemetry(trace, spans)


def measure_ceiling(config: TelemetryConfig, runs: list[RunTelemetry]) -> float:
    """Spans/s of the bare driver path into an index-free temp copy of the span table, same
    batches: ``sqlite3`` executemany or psycopg binary COPY (physical-limits.md, side by side)."""
    store = config.open_store()
    rows = [tuple(span) for span in _bulk.span_rows(runs)]  # plain tuples: the driver's fast path
    names = ", ".join(_bulk.SPAN_COLUMNS)
    per_batch = config.batch_size * len(runs[0].spans)
    with store._raw_transaction() as conn:
        conn.execute(f"CREATE TEMP TABLE ceiling AS SELECT {names} FROM spark_spans WHERE 1 = 0")
    insert = _copy_rows if store.is_postgres else _executemany_rows
    started = time.perf_counter()
    for start in range(0, len(rows), per_batch):
        with store._raw_transaction() as conn:
            insert(conn, rows[start : start + per_batch])
    return len(rows) / (time.perf_counter() - started)


def _copy_rows(conn: psycopg.Connection, rows: list[tuple]) -> None:
    with conn.cursor() as cursor:
        _bulk._copy(cursor, "ceiling", _bulk.SPANS, _bulk.SPAN_COLUMNS, rows)


def _executemany_rows(conn: sqlite3.Connection, rows: list[tuple]) -> None:
    marks = ", ".join("?" for _ in _bulk.SPAN_COLUMNS)
    conn.executemany(f"INSERT INTO ceiling VALUES ({marks})", rows)


class _NullWriter:
    backend = "null"

    def write_runs(self, runs: Sequence[RunTelemetry]) -> None:
        """Discard the batch."""


def measure_submit_floor(runs: list[RunTelemetry]) -> float:
    """ns per ``submit`` with the writer idle (no database, no GIL contention)."""
    recorder = TelemetryRecorder(
        _NullWriter(), batch_size=len(runs) + 1, flush_interval_s=3600, max_queue=len(runs) + 1
    )
    started = time.perf_counter_ns()
    for run in runs:
        recorder.submit(run)
    elapsed = time.perf_counter_ns() - started
    recorder.close()
    return elapsed / len(runs)


def median_seconds(action: Callable[[], object], repeats: int = 3) -> float:
    """Median wall time of ``action`` over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench(label: str, url: str, runs: list[RunTelemetry]) -> dict[str, float | str]:
    """All figures for one database."""
    config = TelemetryConfig.from_url(url, max_queue=len(runs) + 1)
    recorded = measure_recorder(config, runs)
    direct = measure_direct(config, runs)
    ceiling = measure_ceiling(config, runs)
    store = config.open_store()
    return {
        "db": label,
        **recorded,
        "direct_spans_per_s": direct,
        "ceiling_spans_per_s": ceiling,
        "node_stats_all_s": median_seconds(lambda: store.node_stats("bench")),
        "node_stats_version_s": median_seconds(lambda: store.node_stats("bench", "v0")),
    }


@contextmanager
def sqlite_database() -> Iterator[str]:
    """A fresh SQLite file in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="spark-bench-") as folder:
        url = sqlite_url(Path(folder) / "bench.db")
        yield url
        dispose_engine(url)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    name = f"spark_bench_{uuid.uuid4().hex[:10]}"
    params = dict(part.split("=", 1) for part in ADMIN_DSN.split())
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://{params['user']}@{params.get('host', '127.0.0.1')}:"
    url += f"{params.get('port', '5432')}/{name}"
    try:
        yield url
    finally:
        dispose_engine(url)
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    """Parse arguments, run both databases, print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--spans-per-run", type=int, default=10)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    runs = make_runs(args.spans, args.spans_per_run)
    print(f"{len(runs)} runs, {sum(len(r.spans) for r in runs)} spans, {VERSIONS} versions")
    print(f"submit with the writer idle: {measure_submit_floor(runs):.0f} ns/run")
    print(
        "| db | submit ns/run | recorder spans/s | batches | dropped | write_runs spans/s "
        "| bare driver, no index, spans/s | node_stats all (s) | node_stats one version (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for label, database in (("sqlite", sqlite_database), ("postgres", postgres_database)):
        if args.only in (None, label):
            with database() as url:
                row = bench(label, url, runs)
            print(
                f"| {row['db']} | {row['submit_ns']:.0f} | {row['spans_per_s']:,.0f} "
                f"| {row['batches']:.0f} | {row['dropped']:.0f} | {row['direct_spans_per_s']:,.0f} "
                f"| {row['ceiling_spans_per_s']:,.0f} "
                f"| {row['node_stats_all_s']:.3f} | {row['node_stats_version_s']:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
