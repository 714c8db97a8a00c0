"""The demo: a support-triage graph improves itself on Temporal, end to end.

1. register the graph (a flaky classifier, a slow knowledge-base lookup) and send traffic;
2. start ``RSIWorkflow`` for it (two cycles, short windows) while traffic keeps flowing;
3. print the phases as the workflow reports them;
4. measure the original and the deployed version on fresh traffic and print a before/after table.

Needs a Temporal server and a worker on the same database (``make demo`` starts both).
"""

from __future__ import annotations

import asyncio
import random
import statistics
from dataclasses import dataclass

from examples.support_triage.graph import GRAPH_ID, NODE_MODULES, build_spec
from examples.support_triage.traffic import make_ticket
from spark.client import SparkClient
from spark.logging import configure_logging
from spark.rsi.contracts import RSIStatus

DEMO_RSI_SETTINGS = {
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
    "ab_min_window_s": 12,
    "ab_max_window_s": 24,
    "routing_propagation_s": 1.5,
    # ship through a canary: 20% of live traffic for 6 s, judged side by side, then everyone
    "strategy": "canary",
    "canary_share": 0.2,
    "stage_hold_s": 6,
}
FRESH_REQUESTS = 300


@dataclass
class Measurement:
    """Fresh-traffic figures of one version."""

    version_id: str
    runs: int
    error_rate: float
    p50_ms: float
    p95_ms: float


async def send_traffic(
    client: SparkClient,
    count: int,
    rng: random.Random,
    *,
    version_id: str | None = None,
    concurrency: int = 16,
) -> list[tuple[str, float]]:
    """Send ``count`` requests; returns (status, duration_ms) per run."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> tuple[str, float]:
        ticket = make_ticket(rng)
        async with gate:
            result = await client.run(
                GRAPH_ID, ticket, routing_key=ticket["customer_id"], version_id=version_id
            )
        return result.status, result.duration_ms

    return await asyncio.gather(*(one() for _ in range(count)))


async def background_traffic(client: SparkClient, stop: asyncio.Event, rng: random.Random) -> int:
    """Steady production traffic until ``stop`` is set; returns how many requests were sent."""
    sent = 0
    while not stop.is_set():
        await send_traffic(client, 20, rng)
        sent += 20
        client.flush()
        await asyncio.sleep(0.2)
    return sent


async def follow(client: SparkClient, handle_result: asyncio.Task[RSIStatus]) -> None:
    """Print each phase change until the workflow finishes."""
    last = ""
    while not handle_result.done():
        try:
            status = await client.status(GRAPH_ID)
        except Exception:  # the first query may race the first workflow task
            await asyncio.sleep(0.5)
            continue
        line = f"cycle {status.cycle}: {status.phase}" + (
            f" — {status.hypothesis_title}" if status.hypothesis_title else ""
        )
        if status.phase in {"ab_testing", "deploying", "monitoring"} and status.details:
            line += f" ({status.details})"
        if line != last:
            print(f"  [rsi] {line}", flush=True)
            last = line
        await asyncio.sleep(0.5)


async def measure(client: SparkClient, version_id: str, rng: random.Random) -> Measurement:
    """Run fresh traffic pinned to one version."""
    runs = await send_traffic(client, FRESH_REQUESTS, rng, version_id=version_id)
    durations = sorted(d for _, d in runs)
    return Measurement(
        version_id=version_id,
        runs=len(runs),
        error_rate=sum(1 for s, _ in runs if s != "ok") / len(runs),
        p50_ms=statistics.median(durations),
        p95_ms=durations[int(0.95 * (len(durations) - 1))],
    )


def print_table(before: Measurement, after: Measurement) -> None:
    """The before/after table."""
    print()
    print(
        f"{'fresh traffic':<16}{'version':<22}{'runs':>6}{'error rate':>12}{'p50 ms':>10}{'p95 ms':>10}"
    )
    for label, m in (("before", before), ("after", after)):
        print(
            f"{label:<16}{m.version_id:<22}{m.runs:>6}{m.error_rate:>12.1%}{m.p50_ms:>10.1f}{m.p95_ms:>10.1f}"
        )
    print()


def print_outcomes(status: RSIStatus) -> None:
    """One line per cycle."""
    for cycle in status.history:
        print(f"  cycle {cycle.cycle}: {cycle.outcome:<12} {cycle.hypothesis_title or ''}")
        for reason in cycle.reasons[:3]:
            print(f"      - {reason}")


async def main() -> None:
    """Run the whole demo."""
    configure_logging("WARNING")
    rng = random.Random(7)
    client = SparkClient.from_env()
    original = client.register_graph(build_spec(rsi=DEMO_RSI_SETTINGS), NODE_MODULES)
    print(f"registered {GRAPH_ID!r} as {original.version_id}; sending production traffic...")
    await send_traffic(client, 400, rng)
    client.flush()
    handle = await client.start_improvement(
        GRAPH_ID, continuous=True, max_cycles=2, replace_running=True
    )
    print(
        f"started workflow {handle.id!r}; Web UI: http://localhost:8233/namespaces/default/workflows/{handle.id}"
    )
    stop = asyncio.Event()
    traffic = asyncio.create_task(background_traffic(client, stop, rng))
    result = asyncio.create_task(handle.result())
    await follow(client, result)
    stop.set()
    await traffic
    final = await result
    print_outcomes(final)
    deployed = client.routing.get(GRAPH_ID).active_version_id
    print(
        f"measuring {original.version_id} (original) and {deployed} (deployed) on fresh traffic..."
    )
    before = await measure(client, original.version_id, rng)
    after = await measure(client, deployed, rng)
    print_table(before, after)
    print("lineage: " + " -> ".join(v.version_id for v in client.registry.lineage(deployed)))
    print(f"Web UI: http://localhost:8233/namespaces/default/workflows/{handle.id}")
    client.close()


if __name__ == "__main__":
    asyncio.run(main())
