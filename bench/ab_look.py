"""The cost of one online A/B look at growing window sizes: ``python -m bench.ab_look``.

Fills a fresh database with ``--runs`` traces per arm (two versions of graph ``bench``, routing
arms ``active`` / ``candidate``, 5% errors, lognormal latency, cost, quality on 30% of runs),
then times what a look does: the per-arm SQL aggregates (``TelemetryStore.arm_moments``) and
the decision on them (``spark.rsi.online.decide_online_look``), against the per-run array
path it replaced (``trace_metrics`` + the same decision), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from bench.telemetry_write import median_seconds, postgres_database, sqlite_database
from spark.rsi.online import OnlinePlan, decide_online_look, moments_of
from spark.telemetry import RunTelemetry, TelemetryStore
from spark.telemetry.models import TraceRecord

T0 = 1_700_000_000.0
BATCH = 20_000


def fill(store: TelemetryStore, runs_per_arm: int, seed: int = 1) -> None:
    """Write ``runs_per_arm`` traces to each arm, in batches."""
    rng = random.Random(seed)
    batch: list[RunTelemetry] = []
    for i in range(2 * runs_per_arm):
        arm, version = ("candidate", "v1") if i % 2 else ("active", "v0")
        failed = rng.random() < 0.05
        trace = TraceRecord(
            trace_id=f"t{i}",
            graph_id="bench",
            version_id=version,
            started_at=T0 + i * 0.001,
            duration_ms=rng.lognormvariate(math.log(200.0), 0.5) * (0.95 if i % 2 else 1.0),
            status="error" if failed else "ok",
            cost=rng.uniform(0.001, 0.003),
            quality=rng.random() if rng.random() < 0.3 else None,
            routing_arm=arm,  # type: ignore[arg-type]
        )
        batch.append(RunTelemetry(trace))
        if len(batch) == BATCH:
            store.write_runs(batch)
            batch = []
    if batch:
        store.write_runs(batch)


def look(store: TelemetryStore, runs_per_arm: int, read: Callable[..., Any]) -> str:
    """One look: read both arms with ``read``, decide at look 2 of 5."""
    plan = OnlinePlan(
        runs_per_arm=runs_per_arm * 2,
        window_s=3600.0,
        look_interval_s=720.0,
        looks=5,
        limiting_metric="latency",
        metrics=["latency", "error_rate", "cost", "quality"],
        runs_per_hour=1.0,
    )
    arms = [read(store, v, a) for v, a in (("v0", "active"), ("v1", "candidate"))]
    decision, _ = decide_online_look(
        plan,
        "latency",
        arms[0],
        arms[1],
        assignment=(arms[0].runs, arms[1].runs),
        candidate_share=0.5,
        previous_fractions=[0.2],
        alpha=0.02,
        final=False,
    )
    return decision.outcome


def read_aggregates(store: TelemetryStore, version: str, arm: str) -> Any:
    """The SQL path."""
    return store.arm_moments("bench", version, since=T0, routing_arm=arm)


def read_arrays(store: TelemetryStore, version: str, arm: str) -> Any:
    """The per-run array path."""
    return moments_of(store.trace_metrics("bench", version, since=T0, routing_arm=arm))


def peak_python_mb(action: Callable[[], object]) -> float:
    """Peak Python heap allocated while ``action`` runs (tracemalloc), in MB."""
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def measure(url: str, runs_per_arm: int) -> dict[str, Any]:
    """Fill, then time both paths and measure the Python heap each one needs."""
    store = TelemetryStore(url)
    started = time.perf_counter()
    fill(store, runs_per_arm)
    filled_s = time.perf_counter() - started
    return {
        "runs_per_arm": runs_per_arm,
        "fill_s": round(filled_s, 2),
        "look_aggregates_s": round(
            median_seconds(lambda: look(store, runs_per_arm, read_aggregates)), 3
        ),
        "look_arrays_s": round(median_seconds(lambda: look(store, runs_per_arm, read_arrays)), 3),
        "peak_heap_aggregates_mb": round(
            peak_python_mb(lambda: look(store, runs_per_arm, read_aggregates)), 2
        ),
        "peak_heap_arrays_mb": round(
            peak_python_mb(lambda: look(store, runs_per_arm, read_arrays)), 1
        ),
        "outcome": look(store, runs_per_arm, read_aggregates),
    }


def main() -> None:
    """Parse arguments, run both databases, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[100_000, 500_000])
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    results: dict[str, list[dict[str, Any]]] = {}
    for label, database in (("sqlite", sqlite_database), ("postgres", postgres_database)):
        if args.only not in (None, label):
            continue
        for runs in args.runs:
            with database() as url:
                results.setdefault(label, []).append(measure(url, runs))
                print(json.dumps({label: results[label][-1]}), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
