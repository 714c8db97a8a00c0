"""What the demo and the end-to-end benchmark share: scenarios, production traffic, following
the RSI workflow, and measuring versions on fresh traffic.

A ``Scenario`` bundles a production graph with its node modules and its input generator, so the
same driver runs any of them::

    client.register_graph(scenario.build_spec(rsi=SHORT_WINDOW_SETTINGS), scenario.node_modules)
    await send_traffic(client, scenario, 400, rng)
    ...
    inputs = fresh_inputs(scenario, 300, rng)
    before = await measure(client, scenario, original_version_id, inputs)
"""

from __future__ import annotations

import asyncio
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from examples.research_brief import graph as research_graph
from examples.research_brief.traffic import make_request
from examples.support_triage import graph as support_graph
from examples.support_triage.traffic import make_ticket
from spark.client import SparkClient
from spark.graphs.runtime import RunResult
from spark.graphs.spec import GraphSpec
from spark.rsi.contracts import RSIStatus

SHORT_WINDOW_SETTINGS: dict[str, Any] = {
    "min_traces": 100,
    "replay_sample": 200,
    "monitor_window_s": 12,
    "monitor_checks": 3,
    "min_health_traces": 30,
    "interval_s": 2,
    "analysis_window_s": 3600,
    # the A/B test: replay recorded inputs as a gate, then split live traffic for a short window
    "ab_mode": "replay_then_online",
    "ab_looks": 4,
    # the planner sizes the window from the baseline's spread and the traffic rate; 60 s lets
    # it reach its size at the demo's ~50 requests/s (it stops earlier when the evidence is clear)
    "ab_min_window_s": 12,
    "ab_max_window_s": 60,
    "routing_propagation_s": 1.5,
    # roll out gradually: the window already judged 50% of traffic, so one more stage at 75%
    # for 6 s, judged side by side, then everyone
    "strategy": "gradual",
    "rollout_steps": [0.75],
    "stage_hold_s": 6,
}
"""RSI settings that make a cycle take about a minute instead of days (demo and benchmark)."""

LIVE_BATCH = 20
LIVE_PAUSE_S = 0.2
POLL_S = 0.5


@dataclass(frozen=True)
class Scenario:
    """A production graph, where its nodes live, and how its requests look: ``build_spec``
    takes ``rsi=`` settings, ``make_inputs`` draws one request, whose ``routing_field`` is the
    routing key."""

    name: str
    graph_id: str
    node_modules: list[str]
    build_spec: Callable[..., GraphSpec]
    make_inputs: Callable[[random.Random], dict[str, Any]]
    routing_field: str


SUPPORT_TRIAGE = Scenario(
    name="support_triage",
    graph_id=support_graph.GRAPH_ID,
    node_modules=support_graph.NODE_MODULES,
    build_spec=support_graph.build_spec,
    make_inputs=make_ticket,
    routing_field="customer_id",
)
RESEARCH_BRIEF = Scenario(
    name="research_brief",
    graph_id=research_graph.GRAPH_ID,
    node_modules=research_graph.NODE_MODULES,
    build_spec=research_graph.build_spec,
    make_inputs=make_request,
    routing_field="requester",
)
SCENARIOS: dict[str, Scenario] = {s.name: s for s in (SUPPORT_TRIAGE, RESEARCH_BRIEF)}


class Measurement(BaseModel):
    """Fresh-traffic figures of one version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version_id: str
    runs: int
    error_rate: float
    p50_ms: float
    p95_ms: float
    mean_cost: float
    cost_per_success: float | None = Field(description="total cost / successful runs")


# ----- traffic -----


def fresh_inputs(scenario: Scenario, count: int, rng: random.Random) -> list[dict[str, Any]]:
    """``count`` new requests, to run unchanged on every version being compared."""
    return [scenario.make_inputs(rng) for _ in range(count)]


async def run_inputs(
    client: SparkClient,
    scenario: Scenario,
    inputs: list[dict[str, Any]],
    *,
    version_id: str | None = None,
    concurrency: int = 16,
) -> list[RunResult]:
    """Run each request through routing (or pinned to ``version_id``), ``concurrency`` at once."""
    gate = asyncio.Semaphore(concurrency)

    async def one(request: dict[str, Any]) -> RunResult:
        async with gate:
            return await client.run(
                scenario.graph_id,
                request,
                routing_key=str(request[scenario.routing_field]),
                version_id=version_id,
            )

    return list(await asyncio.gather(*(one(request) for request in inputs)))


async def send_traffic(
    client: SparkClient, scenario: Scenario, count: int, rng: random.Random
) -> list[RunResult]:
    """Send ``count`` new production requests through routing."""
    return await run_inputs(client, scenario, fresh_inputs(scenario, count, rng))


async def background_traffic(
    client: SparkClient, scenario: Scenario, stop: asyncio.Event, rng: random.Random
) -> int:
    """Steady production traffic until ``stop`` is set; returns how many requests were sent."""
    sent = 0
    while not stop.is_set():
        await send_traffic(client, scenario, LIVE_BATCH, rng)
        sent += LIVE_BATCH
        client.flush()
        await asyncio.sleep(LIVE_PAUSE_S)
    return sent


# ----- following the workflow -----


def status_line(status: RSIStatus) -> str:
    """One line describing the workflow's current phase."""
    line = f"cycle {status.cycle}: {status.phase}" + (
        f" — {status.hypothesis_title}" if status.hypothesis_title else ""
    )
    if status.phase in {"ab_testing", "deploying", "monitoring"} and status.details:
        line += f" ({status.details})"
    return line


async def follow(
    client: SparkClient,
    graph_id: str,
    result: asyncio.Task[RSIStatus],
    emit: Callable[[str], None],
    *,
    reviewer: str | None = None,
) -> list[str]:
    """Emit each phase change until the workflow finishes. With ``reviewer``, approve every
    hypothesis that waits for review in that name; returns the titles approved."""
    last, approved = "", list[str]()
    while not result.done():
        try:
            status = await client.status(graph_id)
        except Exception:  # the first query may race the first workflow task
            await asyncio.sleep(POLL_S)
            continue
        line = status_line(status)
        if line != last:
            emit(line)
            last = line
        if reviewer is not None and status.awaiting_review:
            approved.append(await _approve(client, status, reviewer, emit))
        await asyncio.sleep(POLL_S)
    return approved


async def _approve(
    client: SparkClient, status: RSIStatus, reviewer: str, emit: Callable[[str], None]
) -> str:
    """Approve the open review (the update names the hypothesis, so a stale one is refused)."""
    ack = await client.review(
        status.graph_id,
        approve=True,
        reviewer=reviewer,
        comment="approved by the benchmark harness",
        hypothesis_id=status.review_hypothesis_id,
    )
    emit(f"review: {reviewer} approved {status.hypothesis_title!r} ({ack.hypothesis_id})")
    return status.hypothesis_title or ack.hypothesis_id


# ----- measuring -----


async def measure(
    client: SparkClient, scenario: Scenario, version_id: str, inputs: list[dict[str, Any]]
) -> Measurement:
    """Run ``inputs`` pinned to one version and summarise the runs."""
    runs = await run_inputs(client, scenario, inputs, version_id=version_id)
    return summarize_runs(version_id, runs)


def summarize_runs(version_id: str, runs: list[RunResult]) -> Measurement:
    """Error rate, median and 95th-percentile duration, mean cost of some runs of one version."""
    if not runs:
        raise ValueError(f"no runs to summarise for version {version_id!r}")
    durations = sorted(run.duration_ms for run in runs)
    successes, total_cost = sum(1 for run in runs if run.ok), sum(run.cost for run in runs)
    return Measurement(
        version_id=version_id,
        runs=len(runs),
        error_rate=round(1 - successes / len(runs), 4),
        p50_ms=round(statistics.median(durations), 1),
        p95_ms=round(durations[int(0.95 * (len(durations) - 1))], 1),
        mean_cost=round(total_cost / len(runs), 8),
        cost_per_success=round(total_cost / successes, 8) if successes else None,
    )
