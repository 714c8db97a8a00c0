"""Scale benchmark: many continuous RSI loops on one small worker.

Run as ``python -m bench.scale --graphs 500 --json`` (``--graphs 50`` for a quick check). In a
temporary directory, on a fresh SQLite database:

1. start a headless Temporal dev server on a free port (SQLite persistence with the WAL pragmas
   of ``spark.devserver``) and the worker (``python -m spark.worker``); with ``--split`` a
   workflow worker (``SPARK_WORKER_ROLE=workflows``) and an activity worker, and the workflow
   worker is the one measured;
2. register ``--graphs`` support-triage graphs and read the worker's RSS before any workflow;
3. start one continuous loop per graph (long ``--idle-interval-s``: the first cycle finds no
   traffic and the loop sleeps) and wait until every loop sleeps on its timer: the start time,
   then the RSS idle and its increase per workflow;
4. restart the loops of a tenth of the graphs with short windows (online A/B, monitored direct
   deploy) and send them production traffic through ``SparkClient`` for ``--period-s``: the
   cycles completed per minute and their outcomes;
5. read those loops' histories: how long each ``online_ab_look`` and ``check_health`` activity
   waited between being scheduled and being started by the worker (p50, p95, max), and the same
   for every workflow task.

RSS is the worker process's resident set (``VmRSS`` of ``/proc/<pid>/status``), sampled a few
times and averaged. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from examples.support_triage.graph import NODE_MODULES, build_spec
from examples.support_triage.traffic import make_ticket
from spark.client import SparkClient
from spark.db import dispose_engine, sqlite_url
from spark.devserver import free_port, start_dev_server, stop
from spark.logging import configure_logging
from spark.settings import SparkSettings
from spark.temporal import rsi_workflow_id

ROOT = Path(__file__).resolve().parents[1]
TASK_QUEUE = "spark-scale"
WAITED_ACTIVITIES = ("online_ab_look", "check_health")
GOAL_RSS_MB = 150.0
GOAL_KIB_PER_WORKFLOW = 80.0

TRAFFIC_SETTINGS: dict[str, Any] = {
    "min_traces": 40,
    "analysis_window_s": 600,
    "replay_sample": 50,
    "ab_mode": "online",
    "ab_looks": 3,
    "ab_min_window_s": 10,
    "ab_max_window_s": 30,
    "routing_propagation_s": 1,
    "strategy": "direct",
    "monitor_window_s": 9,
    "monitor_checks": 3,
    "min_health_traces": 10,
    "review_timeout_s": 20,
    "interval_s": 5,
}
"""Loops with traffic: a cycle (analysis, an online window with looks, a monitored deploy)
takes about a minute; a change that waits for review is rejected after 20 s (no reviewer)."""


class WaitFigures(BaseModel):
    """Schedule-to-start waits of one kind of task, in milliseconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None


class ScaleReport(BaseModel):
    """What one run of the scale benchmark measured."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    graphs: int
    traffic_graphs: int
    split_workers: bool
    max_cached_workflows: int | None
    start_s: float
    all_idle_s: float
    rss_before_mb: float
    rss_idle_mb: float
    rss_per_workflow_kib: float
    rss_half_mb: float
    rss_marginal_kib_per_workflow: float
    activity_worker_rss_mb: float | None
    period_s: float
    requests_sent: int
    cycles: int
    cycles_per_minute: float
    outcomes: dict[str, int]
    look_and_health_wait: WaitFigures
    workflow_task_wait: WaitFigures
    goal_rss_mb: float = GOAL_RSS_MB
    goal_kib_per_workflow: float = GOAL_KIB_PER_WORKFLOW
    load_average: tuple[float, float, float]
    cpus: int
    wall_time_s: float


def emit(line: str) -> None:
    """A progress line on stderr."""
    print(f"[scale] {line}", file=sys.stderr, flush=True)


# ----- processes -----


@dataclass(frozen=True)
class Workers:
    """The measured worker process and, with ``--split``, the activity worker beside it."""

    measured: subprocess.Popen[bytes]
    activities: subprocess.Popen[bytes] | None


def rss_mb(pid: int) -> float:
    """The resident set of process ``pid`` in MiB (``VmRSS`` of ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def settled_rss_mb(pid: int, samples: int = 5, pause_s: float = 1.0) -> float:
    """The mean of a few RSS samples a second apart."""
    values = []
    for _ in range(samples):
        values.append(rss_mb(pid))
        await asyncio.sleep(pause_s)
    return statistics.fmean(values)


def start_worker(
    address: str, database_url: str, role: str, log_file: Path, max_cached: int | None = None
) -> subprocess.Popen[bytes]:
    """``python -m spark.worker`` in ``role`` (all / workflows / activities); ``max_cached``
    overrides its workflow cache size (``SPARK_MAX_CACHED_WORKFLOWS``)."""
    cache = {"SPARK_MAX_CACHED_WORKFLOWS": str(max_cached)} if max_cached is not None else {}
    env = {
        **os.environ,
        **cache,
        "TEMPORAL_ADDRESS": address,
        "SPARK_DATABASE_URL": database_url,
        "SPARK_TASK_QUEUE": TASK_QUEUE,
        "SPARK_GENERATOR": "rules",
        "SPARK_WORKER_ROLE": role,
    }
    log = open(log_file, "ab")  # noqa: SIM115 - owned by the worker process
    return subprocess.Popen(
        [sys.executable, "-m", "spark.worker"], cwd=ROOT, env=env, stdout=log, stderr=log
    )


async def wait_for_log(log_file: Path, text: str, timeout_s: float = 60) -> None:
    """Wait until ``text`` appears in ``log_file``."""
    deadline = time.monotonic() + timeout_s
    while not _log_has(log_file, text):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{text!r} not in {log_file} after {timeout_s} s")
        await asyncio.sleep(0.2)


def _log_has(log_file: Path, text: str) -> bool:
    return text in log_file.read_text(errors="replace")


@contextlib.contextmanager
def running_workers(
    address: str, database_url: str, workdir: Path, options: Options
) -> Iterator[Workers]:
    """The worker(s) for the run, stopped at the end."""
    split = options.split
    measured_role = "workflows" if split else "all"
    measured = start_worker(
        address, database_url, measured_role, workdir / "worker.log", options.max_cached
    )
    helper = (
        start_worker(address, database_url, "activities", workdir / "activities.log")
        if split
        else None
    )
    try:
        yield Workers(measured, helper)
    finally:
        stop(measured)
        if helper is not None:
            stop(helper)


# ----- graphs and loops -----


def graph_ids(count: int) -> list[str]:
    """``scale-0000`` ... one id per graph."""
    return [f"scale-{i:04d}" for i in range(count)]


def register_graphs(client: SparkClient, ids: Sequence[str], idle_interval_s: float) -> None:
    """Register one support-triage graph per id, its loop sleeping ``idle_interval_s``."""
    for graph_id in ids:
        rsi = {**TRAFFIC_SETTINGS, "interval_s": idle_interval_s}
        client.register_graph(build_spec(graph_id, rsi=rsi), NODE_MODULES)


async def start_loops(
    client: SparkClient, ids: Sequence[str], settings: dict[str, Any] | None = None
) -> None:
    """Start (or, with ``settings``, restart) the continuous loop of every graph, 16 at once."""
    gate = asyncio.Semaphore(16)

    async def one(graph_id: str) -> None:
        async with gate:
            await client.start_improvement(
                graph_id, continuous=True, settings=settings, replace_running=settings is not None
            )

    await asyncio.gather(*(one(graph_id) for graph_id in ids))


async def wait_all_sleeping(temporal: Client, count: int, timeout_s: float) -> None:
    """Wait until ``count`` running loops sleep on their interval timer (search attribute)."""
    query = 'RsiPhase = "sleeping" AND ExecutionStatus = "Running"'
    deadline = time.monotonic() + timeout_s
    while (sleeping := (await temporal.count_workflows(query)).count) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {sleeping} of {count} loops asleep after {timeout_s} s")
        await asyncio.sleep(1.0)


# ----- traffic and cycles -----


async def graph_traffic(
    client: SparkClient, graph_id: str, rate: float, stop_at: float, rng: random.Random
) -> int:
    """Requests to one graph at ``rate`` per second until ``stop_at``; returns how many."""
    sent = 0
    while time.monotonic() < stop_at:
        ticket = make_ticket(rng)
        await client.run(graph_id, ticket, routing_key=ticket["customer_id"])
        sent += 1
        await asyncio.sleep(rng.expovariate(rate))
    return sent


async def cycle_numbers(client: SparkClient, ids: Sequence[str]) -> dict[str, int]:
    """Each loop's current cycle number (status query)."""
    statuses = await asyncio.gather(*(client.status(graph_id) for graph_id in ids))
    return {graph_id: status.cycle for graph_id, status in zip(ids, statuses, strict=True)}


async def outcomes_since(client: SparkClient, start: dict[str, int]) -> dict[str, int]:
    """How the cycles ended from those under way at ``start`` on, counted by outcome (so one
    more per loop than the cycles counted from the cycle numbers, where it has ended)."""
    counts: dict[str, int] = {}
    for graph_id, first in start.items():
        for summary in (await client.status(graph_id)).history:
            if summary.cycle >= first:
                counts[summary.outcome] = counts.get(summary.outcome, 0) + 1
    return dict(sorted(counts.items()))


# ----- waits from histories -----


async def history_waits(temporal: Client, ids: Sequence[str]) -> tuple[list[float], list[float]]:
    """Schedule-to-start waits (ms) of look/health activities and of workflow tasks, over every
    run of the given loops."""
    looks: list[float] = []
    tasks: list[float] = []
    for graph_id in ids:
        query = f'WorkflowId = "{rsi_workflow_id(graph_id)}"'
        async for execution in temporal.list_workflows(query):
            handle = temporal.get_workflow_handle(execution.id, run_id=execution.run_id)
            run_looks, run_tasks = await run_waits(handle)
            looks += run_looks
            tasks += run_tasks
    return looks, tasks


async def run_waits(handle: Any) -> tuple[list[float], list[float]]:
    """The waits of one run's history. A look or health check waits from the moment the
    workflow task that schedules it is scheduled (its timer fired) until the activity starts:
    the workflow task's queueing and processing, then the activity's dispatch (the SDK starts
    activities eagerly, so Scheduled to Started alone reads 0 ms)."""
    at: dict[int, float] = {}
    task_scheduled: dict[int, int] = {}  # workflow task completed -> its scheduled event
    activity: dict[int, tuple[str, int]] = {}  # scheduled event -> (name, its workflow task)
    looks: list[float] = []
    tasks: list[float] = []
    async for event in handle.fetch_history_events():
        at[event.event_id] = event.event_time.ToMicroseconds() / 1000
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            scheduled = event.workflow_task_started_event_attributes.scheduled_event_id
            tasks.append(at[event.event_id] - at[scheduled])
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            attrs = event.workflow_task_completed_event_attributes
            task_scheduled[event.event_id] = attrs.scheduled_event_id
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            activity[event.event_id] = (
                attrs.activity_type.name,
                attrs.workflow_task_completed_event_id,
            )
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            name, completed = activity[
                event.activity_task_started_event_attributes.scheduled_event_id
            ]
            if name in WAITED_ACTIVITIES:
                looks.append(at[event.event_id] - at[task_scheduled[completed]])
    return looks, tasks


def wait_figures(waits_ms: Sequence[float]) -> WaitFigures:
    """p50, p95 and max of a list of waits (None when empty)."""
    if not waits_ms:
        return WaitFigures(count=0, p50_ms=None, p95_ms=None, max_ms=None)
    ordered = sorted(waits_ms)
    return WaitFigures(
        count=len(ordered),
        p50_ms=round(_quantile(ordered, 0.50), 1),
        p95_ms=round(_quantile(ordered, 0.95), 1),
        max_ms=round(ordered[-1], 1),
    )


def _quantile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank quantile of sorted values."""
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


# ----- the run -----


@dataclass(frozen=True)
class Options:
    """The command line."""

    graphs: int
    traffic_share: float
    period_s: float
    rate: float
    idle_interval_s: float
    split: bool
    idle_timeout_s: float
    max_cached: int | None


async def run(options: Options, workdir: Path) -> ScaleReport:
    """Start services, then measure idle loops and loops under traffic."""
    started = time.monotonic()
    port = free_port()
    server = start_dev_server(workdir / "temporal.db", port=port, ui_port=None)
    address, database_url = f"127.0.0.1:{port}", sqlite_url(workdir / "spark.db")
    client = SparkClient(
        SparkSettings(database_url=database_url, task_queue=TASK_QUEUE, temporal_address=address)
    )
    try:
        with running_workers(address, database_url, workdir, options) as workers:
            report = await measure(client, workers, options, workdir)
    finally:
        client.close()
        stop(server)
        dispose_engine(database_url)
    return report.model_copy(update={"wall_time_s": round(time.monotonic() - started, 1)})


async def measure(
    client: SparkClient, workers: Workers, options: Options, workdir: Path
) -> ScaleReport:
    """The measurements of one run (see the module docstring)."""
    ids = graph_ids(options.graphs)
    traffic_ids = ids[: max(1, round(options.graphs * options.traffic_share))]
    emit(f"registering {len(ids)} graphs")
    register_graphs(client, ids, options.idle_interval_s)
    await wait_for_log(workdir / "worker.log", "worker started")
    pid = workers.measured.pid
    rss_before = await settled_rss_mb(pid)
    emit(f"worker RSS before any workflow: {rss_before:.1f} MB; starting {len(ids)} loops")
    temporal = await client.temporal()
    half = len(ids) // 2
    begin = time.monotonic()
    await start_loops(client, ids[:half])
    start_s = time.monotonic() - begin
    await wait_all_sleeping(temporal, half, options.idle_timeout_s)
    all_idle_s = time.monotonic() - begin
    await asyncio.sleep(5)
    rss_half = await settled_rss_mb(pid)
    emit(f"{half} loops asleep; RSS {rss_half:.1f} MB")
    begin = time.monotonic()
    await start_loops(client, ids[half:])
    start_s += time.monotonic() - begin
    await wait_all_sleeping(temporal, len(ids), options.idle_timeout_s)
    all_idle_s += time.monotonic() - begin
    await asyncio.sleep(5)
    rss_idle = await settled_rss_mb(pid)
    emit(f"all {len(ids)} loops asleep after {all_idle_s:.1f} s; RSS {rss_idle:.1f} MB")
    helper_rss = rss_mb(workers.activities.pid) if workers.activities else None
    traffic = await traffic_phase(client, traffic_ids, options)
    looks, tasks = await history_waits(temporal, traffic_ids)
    return ScaleReport(
        graphs=len(ids),
        traffic_graphs=len(traffic_ids),
        split_workers=options.split,
        max_cached_workflows=options.max_cached,
        start_s=round(start_s, 1),
        all_idle_s=round(all_idle_s, 1),
        rss_before_mb=round(rss_before, 1),
        rss_idle_mb=round(rss_idle, 1),
        rss_per_workflow_kib=round((rss_idle - rss_before) * 1024 / len(ids), 1),
        rss_half_mb=round(rss_half, 1),
        rss_marginal_kib_per_workflow=round((rss_idle - rss_half) * 1024 / (len(ids) - half), 1),
        activity_worker_rss_mb=round(helper_rss, 1) if helper_rss is not None else None,
        period_s=options.period_s,
        requests_sent=traffic.requests,
        cycles=traffic.cycles,
        cycles_per_minute=round(traffic.cycles * 60 / options.period_s, 2),
        outcomes=traffic.outcomes,
        look_and_health_wait=wait_figures(looks),
        workflow_task_wait=wait_figures(tasks),
        load_average=os.getloadavg(),
        cpus=os.cpu_count() or 0,
        wall_time_s=0.0,
    )


@dataclass(frozen=True)
class Traffic:
    """What the traffic phase sent and what the loops did meanwhile."""

    requests: int
    cycles: int
    outcomes: dict[str, int]


async def traffic_phase(client: SparkClient, ids: Sequence[str], options: Options) -> Traffic:
    """Restart ``ids``' loops with short windows, send them traffic for the period, count
    the cycles they complete."""
    emit(f"traffic on {len(ids)} graphs for {options.period_s:.0f} s at {options.rate}/s each")
    await start_loops(client, ids, settings=TRAFFIC_SETTINGS)
    await asyncio.sleep(2)
    first = await cycle_numbers(client, ids)
    stop_at = time.monotonic() + options.period_s
    rng = random.Random(7)
    sent = await asyncio.gather(
        *(graph_traffic(client, graph_id, options.rate, stop_at, rng) for graph_id in ids)
    )
    client.flush()
    last = await cycle_numbers(client, ids)
    cycles = sum(last[graph_id] - first[graph_id] for graph_id in ids)
    emit(f"{sum(sent)} requests, {cycles} cycles completed")
    return Traffic(sum(sent), cycles, await outcomes_since(client, first))


def print_table(report: ScaleReport) -> None:
    """A human-readable summary."""
    per_wf = report.rss_per_workflow_kib
    print(
        f"graphs {report.graphs} (traffic on {report.traffic_graphs}), split {report.split_workers}"
    )
    print(f"start {report.start_s} s, all idle after {report.all_idle_s} s")
    print(
        f"RSS before {report.rss_before_mb} MB, idle {report.rss_idle_mb} MB "
        f"(goal <= {GOAL_RSS_MB}), per workflow {per_wf} KiB (goal <= {GOAL_KIB_PER_WORKFLOW})"
    )
    print(f"cycles/min {report.cycles_per_minute} over {report.period_s} s: {report.outcomes}")
    print(f"look/health wait {report.look_and_health_wait}")
    print(f"workflow task wait {report.workflow_task_wait}")


def main() -> None:
    """Parse arguments, run, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=int, default=500, help="continuous loops to start")
    parser.add_argument("--traffic-share", type=float, default=0.1, help="share with traffic")
    parser.add_argument("--period-s", type=float, default=180.0, help="traffic period")
    parser.add_argument("--rate", type=float, default=2.0, help="requests/s per traffic graph")
    parser.add_argument("--idle-interval-s", type=float, default=3600.0, help="idle loops' sleep")
    parser.add_argument("--idle-timeout-s", type=float, default=900.0, help="give up waiting")
    parser.add_argument("--split", action="store_true", help="workflow and activity workers")
    parser.add_argument(
        "--max-cached", type=int, help="the worker's workflow cache (default: the worker's, 100)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    configure_logging("WARNING")
    options = Options(
        graphs=args.graphs,
        traffic_share=args.traffic_share,
        period_s=args.period_s,
        rate=args.rate,
        idle_interval_s=args.idle_interval_s,
        split=args.split,
        max_cached=args.max_cached,
        idle_timeout_s=args.idle_timeout_s,
    )
    with tempfile.TemporaryDirectory(prefix="spark-scale-") as workdir:
        report = asyncio.run(run(options, Path(workdir)))
    if args.json:
        print(json.dumps(report.model_dump(mode="json"), indent=2))
    else:
        print_table(report)


if __name__ == "__main__":
    main()
