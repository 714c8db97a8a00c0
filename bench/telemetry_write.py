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
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from spark.db import dispose_engine, sqlite_url
from spark.telemetry import RunTelemetry, SpanRecord, TelemetryConfig, TraceRecord

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
    trace = TraceRecord(**{**_fields(run.trace), "trace_id": "d" + run.trace.trace_id})
    trace = TraceRecord(**{**_fields(trace), "graph_id": "direct"})
    spans = [
        SpanRecord(**{**_fields(s), "span_id": "d" + s.span_id, "graph_id": "direct"})
        for s in run.spans
    ]
    return RunTelemetry(trace, spans)


def _fields(record: object) -> dict[str, object]:
    return {name: getattr(record, name) for name in record.__slots__}  # type: ignore[attr-defined]


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
    store = config.open_store()
    return {
        "db": label,
        **recorded,
        "direct_spans_per_s": direct,
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
    print("| db | submit ns/run | recorder spans/s | batches | dropped | direct write_runs spans/s "
          "| node_stats all (s) | node_stats one version (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for label, database in (("sqlite", sqlite_database), ("postgres", postgres_database)):
        if args.only in (None, label):
            with database() as url:
                row = bench(label, url, runs)
            print(
                f"| {row['db']} | {row['submit_ns']:.0f} | {row['spans_per_s']:,.0f} "
                f"| {row['batches']:.0f} | {row['dropped']:.0f} | {row['direct_spans_per_s']:,.0f} "
                f"| {row['node_stats_all_s']:.3f} | {row['node_stats_version_s']:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
