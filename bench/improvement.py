"""End-to-end improvement benchmark: does the RSI loop make real graphs better?

Run as ``python -m bench.improvement --json``. For each scenario (``support_triage``,
``research_brief``), on a fresh SQLite database in a temporary directory:

1. start a Temporal dev server on free ports (never 7233) and ``python worker.py`` against it;
2. register the graph with short-window RSI settings and send warm-up production traffic;
3. start the graph's RSI workflow (continuous, ``--cycles`` cycles) and keep live traffic
   flowing until it finishes; a hypothesis that waits for human review is approved in the
   name of ``bench-operator`` (the harness plays the reviewer);
4. run the same fresh requests pinned to the original and to the finally deployed version.

Prints one JSON object keyed by scenario (``--json``) or a short table: cycles and outcomes,
the deployed lineage, before/after error rate, p50, p95, mean cost per run, and wall time.
Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from examples.harness import (
    SCENARIOS,
    SHORT_WINDOW_SETTINGS,
    Measurement,
    Scenario,
    background_traffic,
    follow,
    fresh_inputs,
    measure,
    send_traffic,
)
from spark.client import SparkClient
from spark.db import dispose_engine, sqlite_url
from spark.devserver import free_port, start_dev_server, stop
from spark.logging import configure_logging
from spark.rsi.contracts import CycleSummary, RSIStatus
from spark.settings import SparkSettings

ROOT = Path(__file__).resolve().parents[1]
TASK_QUEUE = "spark-bench"
REVIEWER = "bench-operator"
WARMUP_REQUESTS = 400
FRESH_REQUESTS = 300
BENCH_RSI_SETTINGS: dict[str, Any] = {**SHORT_WINDOW_SETTINGS, "review_timeout_s": 120}
"""The demo's short windows; a review the harness somehow misses is rejected after 2 minutes."""


class CycleReport(BaseModel):
    """What one RSI cycle did."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cycle: int
    outcome: str
    hypothesis: str | None
    candidate_version_id: str | None
    reasons: list[str]


class ScenarioReport(BaseModel):
    """The end-to-end result of one scenario."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    graph_id: str
    cycles: list[CycleReport]
    reviews_approved: list[str]
    lineage: list[str]
    before: Measurement
    after: Measurement
    relative_change: dict[str, float | None]
    warmup_requests: int
    live_requests: int
    telemetry_dropped: int
    workflow_s: float
    wall_time_s: float


@dataclass(frozen=True)
class Services:
    """A dev server and a worker bound to one database, for one scenario."""

    address: str
    database_url: str


# ----- services -----


@contextlib.contextmanager
def running_services(workdir: Path) -> Iterator[Services]:
    """A headless dev server on a free port and a worker subprocess on a fresh SQLite file."""
    port = free_port()
    server = start_dev_server(workdir / "temporal.db", port=port, ui_port=None)
    services = Services(f"127.0.0.1:{port}", sqlite_url(workdir / "spark.db"))
    worker = _start_worker(services, workdir / "worker.log")
    try:
        yield services
    finally:
        stop(worker)
        stop(server)
        dispose_engine(services.database_url)


def _start_worker(services: Services, log_file: Path) -> subprocess.Popen[bytes]:
    """``python worker.py`` configured through the environment (rule-based generator)."""
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": services.address,
        "SPARK_DATABASE_URL": services.database_url,
        "SPARK_TASK_QUEUE": TASK_QUEUE,
        "SPARK_GENERATOR": "rules",
    }
    log = open(log_file, "ab")  # noqa: SIM115 - owned by the worker process
    return subprocess.Popen(
        [sys.executable, "-m", "spark.worker"], cwd=ROOT, env=env, stdout=log, stderr=log
    )


def progress(scenario: Scenario) -> Callable[[str], None]:
    """A printer of progress lines on stderr, prefixed with the scenario's name."""

    def emit(line: str) -> None:
        print(f"[{scenario.name}] {line}", file=sys.stderr, flush=True)

    return emit


# ----- one scenario -----


async def run_scenario(scenario: Scenario, cycles: int, workdir: Path) -> ScenarioReport:
    """Start services, improve the scenario's graph, measure original vs deployed."""
    started = time.monotonic()
    with running_services(workdir) as services:
        client = SparkClient(
            SparkSettings(
                database_url=services.database_url,
                task_queue=TASK_QUEUE,
                temporal_address=services.address,
            )
        )
        try:
            report = await _improve_and_measure(client, scenario, cycles)
        finally:
            client.close()
    return report.model_copy(update={"wall_time_s": round(time.monotonic() - started, 1)})


async def _improve_and_measure(
    client: SparkClient, scenario: Scenario, cycles: int
) -> ScenarioReport:
    emit, rng = progress(scenario), random.Random()
    spec = scenario.build_spec(rsi=BENCH_RSI_SETTINGS)
    original = client.register_graph(spec, scenario.node_modules)
    emit(f"registered {original.version_id}; {WARMUP_REQUESTS} warm-up requests")
    await send_traffic(client, scenario, WARMUP_REQUESTS, rng)
    client.flush()
    workflow_started = time.monotonic()
    final, approved, live = await _run_workflow(client, scenario, cycles, rng)
    workflow_s = time.monotonic() - workflow_started
    deployed = client.routing.get(scenario.graph_id).active_version_id
    emit(f"measuring {original.version_id} (original) and {deployed} (deployed)")
    inputs = fresh_inputs(scenario, FRESH_REQUESTS, rng)
    before = await measure(client, scenario, original.version_id, inputs)
    after = await measure(client, scenario, deployed, inputs)
    return ScenarioReport(
        graph_id=scenario.graph_id,
        cycles=[_cycle_report(c) for c in final.history],
        reviews_approved=approved,
        lineage=[v.version_id for v in client.registry.lineage(deployed)],
        before=before,
        after=after,
        relative_change=relative_change(before, after),
        warmup_requests=WARMUP_REQUESTS,
        live_requests=live,
        telemetry_dropped=client.telemetry_dropped,
        workflow_s=round(workflow_s, 1),
        wall_time_s=0.0,
    )


async def _run_workflow(
    client: SparkClient, scenario: Scenario, cycles: int, rng: random.Random
) -> tuple[RSIStatus, list[str], int]:
    """Run the RSI workflow to completion under live traffic; returns its final status, the
    reviews approved and the number of live requests sent."""
    handle = await client.start_improvement(scenario.graph_id, continuous=True, max_cycles=cycles)
    stop_traffic = asyncio.Event()
    traffic = asyncio.create_task(background_traffic(client, scenario, stop_traffic, rng))
    result = asyncio.create_task(handle.result())
    try:
        approved = await follow(
            client, scenario.graph_id, result, progress(scenario), reviewer=REVIEWER
        )
    finally:
        stop_traffic.set()
        live = await traffic
    return await result, approved, live


def _cycle_report(summary: CycleSummary) -> CycleReport:
    return CycleReport(
        cycle=summary.cycle,
        outcome=summary.outcome,
        hypothesis=summary.hypothesis_title,
        candidate_version_id=summary.candidate_version_id,
        reasons=list(summary.reasons),
    )


def relative_change(before: Measurement, after: Measurement) -> dict[str, float | None]:
    """(after - before) / before for each figure; None when either is missing or the baseline
    figure is zero."""
    figures = ("error_rate", "p50_ms", "p95_ms", "mean_cost", "cost_per_success")
    return {name: _relative(getattr(before, name), getattr(after, name)) for name in figures}


def _relative(before: float | None, after: float | None) -> float | None:
    if before is None or after is None or before == 0:
        return None
    return round((after - before) / before, 4)


# ----- entry point -----


async def run_all(names: list[str], cycles: int) -> dict[str, ScenarioReport]:
    """Each named scenario in turn, each in its own temporary directory."""
    reports = {}
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"spark-bench-{name}-") as workdir:
            reports[name] = await run_scenario(SCENARIOS[name], cycles, Path(workdir))
    return reports


def print_table(reports: dict[str, ScenarioReport]) -> None:
    """A human-readable summary of the reports."""
    header = f"{'scenario':<16}{'':<8}{'error rate':>11}{'p50 ms':>9}{'p95 ms':>9}{'cost/run':>11}"
    print(header)
    for name, report in reports.items():
        for label, m in (("before", report.before), ("after", report.after)):
            print(
                f"{name:<16}{label:<8}{m.error_rate:>11.1%}{m.p50_ms:>9.1f}{m.p95_ms:>9.1f}"
                f"{m.mean_cost:>11.6f}"
            )
        outcomes = ", ".join(f"{c.cycle}: {c.outcome}" for c in report.cycles)
        print(f"{'':<16}cycles {outcomes}; wall time {report.wall_time_s:.0f} s")


def main() -> None:
    """Parse arguments, run the scenarios, print the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--cycles", type=int, default=2, help="RSI cycles per scenario")
    parser.add_argument(
        "--scenario", action="append", choices=sorted(SCENARIOS), help="default: all"
    )
    args = parser.parse_args()
    configure_logging("WARNING")
    names = args.scenario or list(SCENARIOS)
    reports = asyncio.run(run_all(names, args.cycles))
    if args.json:
        print(json.dumps({n: r.model_dump(mode="json") for n, r in reports.items()}, indent=2))
    else:
        print_table(reports)


if __name__ == "__main__":
    main()
