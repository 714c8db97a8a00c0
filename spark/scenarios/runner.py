"""Run a scenario on the real RSI workflow and measure what the loop did.

``run_scenario`` starts a private Temporal dev server (free ports) and ``worker.py`` on a fresh
SQLite database, both knowing the scenario (the worker replays production's simulated code),
registers the scenario's graph, sends warm-up traffic, starts the graph's RSI workflow for
``cycles`` cycles with live traffic at the scenario's rate, answers every review as the
``reviewer`` mode says, and finally runs the same fresh requests pinned to every version of the
deployed lineage (and the oracle) to build a ``BenchReport``. Each run's quality (as the
scenario simulates it) is recorded as feedback on its trace, as a grader would.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from spark.client import SparkClient
from spark.db import dispose_engine, sqlite_url
from spark.devserver import start_on_free_ports, stop
from spark.graphs.runtime import RunResult
from spark.registry.versions import GraphVersion
from spark.rsi.changes import apply_changes
from spark.rsi.contracts import CycleSummary, RSIStatus
from spark.scenarios import report as rep
from spark.scenarios.behaviour import Simulation
from spark.scenarios.inputs import InputSampler
from spark.scenarios.model import Scenario
from spark.scenarios.nodes import MODULE, SCENARIO_ENV, STATE_ENV, install
from spark.settings import SparkSettings

Reviewer = Literal["approve-all", "reject-all"]
Emit = Callable[[str], None]

ROOT = Path(__file__).resolve().parents[2]
TASK_QUEUE = "spark-scenario"
REVIEWER_NAME = "scenario-harness"
POLL_S = 0.5
WORKFLOW_TIMEOUT_PER_CYCLE_S = 600.0


@dataclass(frozen=True)
class Services:
    """A dev server and a worker bound to one database, for one scenario."""

    address: str
    database_url: str


@dataclass(frozen=True)
class Served:
    """A finished run and its quality as judged when it was served."""

    result: RunResult
    quality: float | None


@dataclass
class Harness:
    """What a scenario run drives: the client, the simulation and the request sampler."""

    scenario: Scenario
    client: SparkClient
    simulation: Simulation
    sampler: InputSampler
    emit: Emit
    feedback: asyncio.Queue[tuple[str, float]]


# ----- entry point -----


async def run_scenario(
    scenario: Scenario,
    *,
    cycles: int = 3,
    reviewer: Reviewer = "approve-all",
    source_file: str | None = None,
    emit: Emit | None = None,
    seed: int | None = None,
) -> rep.BenchReport:
    """Run ``scenario`` end to end in a temporary directory; returns its report."""
    started = time.monotonic()
    emit = emit or _stderr(scenario.name)
    with tempfile.TemporaryDirectory(prefix=f"spark-scenario-{scenario.name}-") as tmp:
        workdir = Path(tmp)
        scenario_file, state_file = _scenario_files(scenario, workdir)
        with running_services(workdir, scenario_file, state_file) as services:
            client = _client(services)
            harness = Harness(
                scenario,
                client,
                install(scenario, state_file),
                InputSampler(scenario.inputs, random.Random(seed)),
                emit,
                asyncio.Queue(),
            )
            try:
                report = await _improve_and_measure(harness, cycles, reviewer)
            finally:
                client.close()
    return report.model_copy(
        update={"file": source_file, "wall_time_s": round(time.monotonic() - started, 1)}
    )


def _scenario_files(scenario: Scenario, workdir: Path) -> tuple[Path, Path]:
    """The scenario as JSON for the worker, and the shared cycle file (cycle 0)."""
    scenario_file, state_file = workdir / "scenario.json", workdir / "state.json"
    scenario_file.write_text(scenario.model_dump_json(), encoding="utf-8")
    state_file.write_text('{"cycle": 0}', encoding="utf-8")
    return scenario_file, state_file


def _client(services: Services) -> SparkClient:
    return SparkClient(
        SparkSettings(
            database_url=services.database_url,
            task_queue=TASK_QUEUE,
            temporal_address=services.address,
        )
    )


def _stderr(name: str) -> Emit:
    def emit(line: str) -> None:
        print(f"[{name}] {line}", file=sys.stderr, flush=True)

    return emit


# ----- services -----


def _dev_server_on_a_free_port(workdir: Path) -> tuple[int, subprocess.Popen[bytes]]:
    """A headless dev server on a free port (``start_on_free_ports``)."""
    server, port, _ = start_on_free_ports(workdir / "temporal.db", with_ui=False)
    return port, server


@contextlib.contextmanager
def running_services(workdir: Path, scenario_file: Path, state_file: Path) -> Iterator[Services]:
    """A headless dev server on a free port and a worker subprocess that knows the scenario."""
    port, server = _dev_server_on_a_free_port(workdir)
    services = Services(f"127.0.0.1:{port}", sqlite_url(workdir / "spark.db"))
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": services.address,
        "SPARK_DATABASE_URL": services.database_url,
        "SPARK_TASK_QUEUE": TASK_QUEUE,
        "SPARK_GENERATOR": "rules",
        SCENARIO_ENV: str(scenario_file),
        STATE_ENV: str(state_file),
    }
    log = open(workdir / "worker.log", "ab")  # noqa: SIM115 - owned by the worker process
    worker = subprocess.Popen(
        [sys.executable, "-m", "spark.worker"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    try:
        yield services
    finally:
        stop(worker)
        stop(server)
        log.close()
        dispose_engine(services.database_url)


# ----- the run -----


async def _improve_and_measure(
    harness: Harness, cycles: int, reviewer: Reviewer
) -> rep.BenchReport:
    scenario, client = harness.scenario, harness.client
    original = client.register_graph(scenario.spec(), [MODULE])
    writer = asyncio.create_task(_feedback_writer(harness))
    try:
        harness.emit(
            f"registered {original.version_id}; {scenario.traffic.warmup_requests} warm-up"
        )
        await _run_batch(harness, harness.sampler.draw_many(scenario.traffic.warmup_requests))
        client.flush()
        workflow_started = time.monotonic()
        final, live = await _run_workflow(harness, cycles, reviewer)
        workflow_s = time.monotonic() - workflow_started
        await harness.feedback.join()
    finally:
        writer.cancel()
    return await _report(harness, original, final, cycles, reviewer, live, workflow_s)


async def _run_workflow(harness: Harness, cycles: int, reviewer: Reviewer) -> tuple[RSIStatus, int]:
    """The RSI workflow to completion under live traffic; its final status and the number of
    live requests sent."""
    graph_id = harness.scenario.graph.id
    handle = await harness.client.start_improvement(graph_id, continuous=True, max_cycles=cycles)
    stop_traffic = asyncio.Event()
    traffic = asyncio.create_task(_live_traffic(harness, stop_traffic))
    result = asyncio.create_task(handle.result())
    try:
        await asyncio.wait_for(
            _follow(harness, result, reviewer), WORKFLOW_TIMEOUT_PER_CYCLE_S * cycles
        )
    finally:
        stop_traffic.set()
        live = await traffic
    return await result, live


async def _follow(harness: Harness, result: asyncio.Task[RSIStatus], reviewer: Reviewer) -> None:
    """Track the loop's cycle (for rate limits), print phase changes, answer reviews."""
    last = ""
    while not result.done():
        try:
            status = await harness.client.status(harness.scenario.graph.id)
        except Exception:  # the first query may race the first workflow task
            await asyncio.sleep(POLL_S)
            continue
        if status.cycle != harness.simulation.cycle():
            harness.simulation.set_cycle(status.cycle)
        line = f"cycle {status.cycle}: {status.phase} {status.hypothesis_title or ''}".strip()
        if line != last:
            harness.emit(line)
            last = line
        if status.awaiting_review:
            await _answer_review(harness, status, reviewer)
        await asyncio.sleep(POLL_S)


async def _answer_review(harness: Harness, status: RSIStatus, reviewer: Reviewer) -> None:
    approve = reviewer == "approve-all"
    try:
        await harness.client.review(
            status.graph_id,
            approve=approve,
            reviewer=REVIEWER_NAME,
            comment=f"scenario harness ({reviewer})",
            hypothesis_id=status.review_hypothesis_id,
        )
    except Exception as exc:  # the review may have closed since the query
        harness.emit(f"review not recorded: {exc}")
        return
    harness.emit(f"review: {'approved' if approve else 'rejected'} {status.hypothesis_title!r}")


# ----- traffic -----


async def _live_traffic(harness: Harness, stop_traffic: asyncio.Event) -> int:
    """Requests at the scenario's rate (each in its own task) until ``stop_traffic`` is set."""
    traffic = harness.scenario.traffic
    gate, tasks, sent = asyncio.Semaphore(traffic.concurrency), set[asyncio.Task[Any]](), 0
    next_at = time.monotonic()
    while not stop_traffic.is_set():
        request = harness.sampler.draw()
        task = asyncio.create_task(_gated(gate, _run_one(harness, request)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        sent += 1
        next_at += 1.0 / traffic.rps
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    await asyncio.gather(*tasks, return_exceptions=True)
    harness.client.flush()
    return sent


async def _gated(gate: asyncio.Semaphore, work: Any) -> Any:
    async with gate:
        return await work


async def _run_batch(harness: Harness, requests: list[dict[str, Any]]) -> list[Served]:
    gate = asyncio.Semaphore(harness.scenario.traffic.concurrency)
    return list(await asyncio.gather(*(_gated(gate, _run_one(harness, r)) for r in requests)))


async def _run_one(
    harness: Harness, request: dict[str, Any], version_id: str | None = None
) -> Served:
    """One request through routing (or pinned), with its quality judged as it is served
    (a stale answer is stale at that moment); live runs' quality goes to the feedback queue."""
    routing_key = str(request[harness.scenario.routing_field()])
    result = await harness.client.run(
        harness.scenario.graph.id, request, routing_key=routing_key, version_id=version_id
    )
    quality = _quality(harness, result)
    if quality is not None and version_id is None:
        harness.feedback.put_nowait((result.trace_id, quality))
    return Served(result, quality)


def _quality(harness: Harness, result: RunResult) -> float | None:
    if not result.ok:
        return None
    return harness.simulation.run_quality(result.outputs, harness.sampler.rng)


async def _feedback_writer(harness: Harness) -> None:
    """Write quality feedback one row at a time off the event loop."""
    store = harness.client.telemetry
    while True:
        trace_id, score = await harness.feedback.get()
        try:
            await asyncio.to_thread(store.add_feedback, trace_id, score, None, "scenario")
        finally:
            harness.feedback.task_done()


# ----- measuring -----


async def _report(
    harness: Harness,
    original: GraphVersion,
    final: RSIStatus,
    cycles: int,
    reviewer: Reviewer,
    live: int,
    workflow_s: float,
) -> rep.BenchReport:
    client, scenario = harness.client, harness.scenario
    deployed = client.routing.get(scenario.graph.id).active_version_id
    lineage = client.registry.lineage(deployed)
    oracle = _oracle_version(harness, original)
    versions = [v.version_id for v in lineage] + ([oracle.version_id] if oracle else [])
    versions = list(dict.fromkeys(versions))
    harness.emit(
        f"measuring {len(versions)} version(s) on {scenario.traffic.fresh_requests} fresh requests"
    )
    samples = await _measure(harness, versions, scenario.traffic.fresh_requests)
    return _assemble(
        harness, lineage, oracle, samples, final.history, cycles, reviewer, live, workflow_s
    )


def _oracle_version(harness: Harness, original: GraphVersion) -> GraphVersion | None:
    """The oracle's spec stored as a child of the original (never routed)."""
    if not harness.scenario.oracle:
        return None
    spec = apply_changes(original.spec, harness.scenario.oracle)
    return harness.client.registry.create_version(
        original.version_id, spec, author="scenario-oracle", note="best change by construction"
    )


async def _measure(harness: Harness, versions: list[str], count: int) -> dict[str, rep.Samples]:
    """Run each fresh request on every version at about the same moment (paired samples)."""
    requests = harness.sampler.draw_many(count)
    gate = asyncio.Semaphore(harness.scenario.traffic.concurrency)

    async def on_all(request: dict[str, Any]) -> list[Served]:
        async with gate:
            return list(await asyncio.gather(*(_run_one(harness, request, v) for v in versions)))

    rows = await asyncio.gather(*(on_all(r) for r in requests))
    return {v: _samples([row[i] for row in rows]) for i, v in enumerate(versions)}


def _samples(served: list[Served]) -> rep.Samples:
    runs = [s.result for s in served]
    nodes = set().union(*(run.node_statuses for run in runs))
    return rep.Samples(
        ok=np.array([run.ok for run in runs], dtype=bool),
        latency_ms=np.array([run.duration_ms for run in runs], dtype=float),
        cost=np.array([run.cost for run in runs], dtype=float),
        quality=np.array([np.nan if s.quality is None else s.quality for s in served]),
        ran={
            node: np.array([run.node_statuses.get(node) not in (None, "skipped") for run in runs])
            for node in nodes
        },
    )


def _assemble(
    harness: Harness,
    lineage: list[GraphVersion],
    oracle: GraphVersion | None,
    samples: dict[str, rep.Samples],
    history: list[CycleSummary],
    cycles: int,
    reviewer: Reviewer,
    live: int,
    workflow_s: float,
) -> rep.BenchReport:
    scenario, objective = harness.scenario, harness.scenario.objective
    reference = rep.reference_of(samples[lineage[0].version_id])
    labels = {
        v.version_id: ("original" if i == 0 else f"deployed #{i}") for i, v in enumerate(lineage)
    }
    if oracle is not None:
        labels.setdefault(oracle.version_id, "oracle")
    measured = {
        v: rep.measure_version(v, labels[v], s, objective, reference) for v, s in samples.items()
    }
    before, after = measured[lineage[0].version_id], measured[lineage[-1].version_id]
    oracle_m = measured[oracle.version_id] if oracle is not None else None
    regressions = _regressions(lineage, samples, objective, reference)
    wrong = [
        w
        for parent, child in itertools.pairwise(lineage)
        for w in rep.wrong_changes(child.version_id, parent.spec, child.spec)
        + rep.protected_skips(
            child.version_id, parent.spec, samples[child.version_id], samples[parent.version_id]
        )
    ]
    fraction = (
        rep.oracle_fraction(before.objective_loss, after.objective_loss, oracle_m.objective_loss)
        if oracle_m is not None
        else None
    )
    return rep.BenchReport(
        scenario=scenario.name,
        file=None,
        commit=_commit(),
        reviewer=reviewer,
        cycles_requested=cycles,
        cycles=[_cycle(c) for c in history],
        lineage=[v.version_id for v in lineage],
        deployed_version_id=lineage[-1].version_id,
        versions=list(measured.values()),
        before=before,
        after=after,
        oracle=oracle_m,
        oracle_fraction=fraction,
        deployments=len(lineage) - 1,
        regressions=regressions,
        regressions_deployed=len(regressions),
        wrong_changes=wrong,
        wrong_changes_count=len(wrong),
        warmup_requests=scenario.traffic.warmup_requests,
        live_requests=live,
        fresh_requests=scenario.traffic.fresh_requests,
        telemetry_dropped=harness.client.telemetry_dropped,
        workflow_s=round(workflow_s, 1),
        wall_time_s=0.0,
    )


def _regressions(
    lineage: list[GraphVersion],
    samples: dict[str, rep.Samples],
    objective: Any,
    reference: rep.Reference,
) -> list[rep.Regression]:
    rng = np.random.default_rng(7)
    found = []
    for parent, child in itertools.pairwise(lineage):
        regression = rep.regression(
            child.version_id,
            parent.version_id,
            samples[child.version_id],
            samples[parent.version_id],
            objective,
            reference,
            rng,
        )
        if regression is not None:
            found.append(regression)
    return found


def _cycle(summary: CycleSummary) -> rep.CycleReport:
    return rep.CycleReport(
        cycle=summary.cycle,
        outcome=summary.outcome,
        hypothesis=summary.hypothesis_title,
        candidate_version_id=summary.candidate_version_id,
        active_version_id=summary.active_version_id,
        reasons=list(summary.reasons),
    )


def _commit() -> str | None:
    """The repository's short commit hash, when run from a git checkout."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except OSError:
        return None
    return done.stdout.strip() or None
