"""Rollups: per-node statistics from rollups against the exact query, and what keeping them costs.

    python -m bench.rollups --spans 1000000 --hours 24

For each database (fresh SQLite file, fresh PostgreSQL database): ``write_runs`` in recorder-sized
batches without any rollup upkeep (``sealing.mark_pending`` disabled, its own fresh database)
and with it (marking the units pending); then ``seal_rollups`` of every unit (the rollups'
whole computation, which the write path no longer does); then ``node_stats`` of the whole graph
and of one version, exact and from rollups, and the largest relative deviation of the rollup
percentiles from the exact ones (``percentile_cont``) on the same data. Runs spread evenly over
``--hours`` (buckets are ``BUCKET_SECONDS``).
"""

from __future__ import annotations

import argparse
import functools
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench.telemetry_write import (
    T0,
    VERSIONS,
    _span,
    median_seconds,
    postgres_database,
    sqlite_database,
)
from spark.telemetry import RunTelemetry, TelemetryConfig, TraceRecord, rollups, sealing
from spark.telemetry.aggregates import NodeStats

BATCH_RUNS = 1000


def make_runs(spans: int, spans_per_run: int, hours: float) -> list[RunTelemetry]:
    """Runs of graph ``bench`` over VERSIONS versions, evenly spread over ``hours``."""
    count = spans // spans_per_run
    step = hours * 3600 / count
    runs = []
    for i in range(count):
        trace = TraceRecord(
            f"t{i}", "bench", f"v{i % VERSIONS}", T0 + i * step, 120.0 + i % 97, "ok"
        )
        runs.append(RunTelemetry(trace, [_span(trace, i, n) for n in range(spans_per_run)]))
    return runs


@contextmanager
def rollups_disabled() -> Iterator[None]:
    """``write_runs`` without marking units pending (the baseline of the ingest overhead)."""
    original = sealing.mark_pending
    sealing.mark_pending = lambda *args, **kwargs: None
    try:
        yield
    finally:
        sealing.mark_pending = original


def seal_seconds(url: str) -> float:
    """Wall time of sealing every pending unit (computing all the rollups)."""
    store = TelemetryConfig.from_url(url).open_store()
    started = time.perf_counter()
    store.seal_rollups(now=math.inf)
    return time.perf_counter() - started


def ingest_seconds(url: str, runs: list[RunTelemetry]) -> float:
    """Wall time of ``write_runs`` over all runs in ``BATCH_RUNS`` batches. The runs lie in
    buckets closed long ago, which a write would start sealing in the background after a
    minute; the bench keeps that off and times the seal on its own (``seal_seconds``)."""
    store = TelemetryConfig.from_url(url).open_store()
    store._next_seal_check = math.inf
    started = time.perf_counter()
    for start in range(0, len(runs), BATCH_RUNS):
        store.write_runs(runs[start : start + BATCH_RUNS])
    return time.perf_counter() - started


def max_percentile_error(rolled: list[NodeStats], exact: list[NodeStats]) -> float:
    """The largest relative deviation of a rollup p50/p95/p99 from the exact one."""
    worst = 0.0
    for r, e in zip(rolled, exact, strict=True):
        for name in ("p50_ms", "p95_ms", "p99_ms"):
            reference = getattr(e, name)
            if reference:
                worst = max(worst, abs(getattr(r, name) - reference) / reference)
    return worst


def reads(url: str) -> dict[str, Any]:
    """Exact and rollup node statistics, whole graph and one version."""
    store = TelemetryConfig.from_url(url).open_store()
    figures: dict[str, Any] = {}
    for label, version in (("all", None), ("version", "v0")):
        exact = functools.partial(store.node_stats, "bench", version)
        rolled = functools.partial(store.node_stats, "bench", version, source="rollups")
        figures[f"exact_{label}_s"] = median_seconds(exact)
        figures[f"rollups_{label}_s"] = median_seconds(rolled)
        figures[f"p_error_{label}"] = max_percentile_error(rolled(), exact())
        assert [s.count for s in rolled()] == [s.count for s in exact()]
    return figures


def bench(database: Callable[[], Any], runs: list[RunTelemetry]) -> dict[str, Any]:
    """All figures for one database."""
    spans = sum(len(run.spans) for run in runs)
    with database() as url, rollups_disabled():
        without = ingest_seconds(url, runs)
    with database() as url:
        with_rollups = ingest_seconds(url, runs)
        seal = seal_seconds(url)
        figures = reads(url)
    return {
        "spans_per_s_without": spans / without,
        "spans_per_s_with": spans / with_rollups,
        "overhead": with_rollups / without - 1,
        "seal_s": seal,
        "seal_spans_per_s": spans / seal,
        **figures,
    }


def main() -> None:
    """Parse arguments, run both databases, print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--spans-per-run", type=int, default=10)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    runs = make_runs(args.spans, args.spans_per_run, args.hours)
    buckets = args.hours * 3600 / rollups.BUCKET_SECONDS
    print(f"{len(runs)} runs, {args.spans} spans, {VERSIONS} versions, {buckets:.0f} buckets")
    print(
        "| db | write_runs spans/s, no rollup upkeep | marking units | ingest overhead "
        "| sealing all units: s (spans/s) "
        "| node_stats all: exact s | rollups s | one version: exact s | rollups s "
        "| max percentile deviation |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, database in (("sqlite", sqlite_database), ("postgres", postgres_database)):
        if args.only in (None, label):
            row = bench(database, runs)
            print(
                f"| {label} | {row['spans_per_s_without']:,.0f} | {row['spans_per_s_with']:,.0f} "
                f"| {row['overhead']:+.0%} "
                f"| {row['seal_s']:.2f} ({row['seal_spans_per_s']:,.0f}) "
                f"| {row['exact_all_s']:.3f} | {row['rollups_all_s']:.3f} "
                f"| {row['exact_version_s']:.3f} | {row['rollups_version_s']:.3f} "
                f"| {max(row['p_error_all'], row['p_error_version']):.2%} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
