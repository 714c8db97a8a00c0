"""The demo: a support-triage graph improves itself on Temporal, end to end.

1. register the graph (a flaky classifier, a slow knowledge-base lookup) and send traffic;
2. start ``RSIWorkflow`` for it (three cycles, short windows) while traffic keeps flowing;
3. print the phases as the workflow reports them;
4. measure the original and the deployed version on fresh traffic and print a before/after table.

Needs a Temporal server and a worker on the same database and task queue (``make demo``
starts private ones: ``examples/run_demo.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random

from examples.harness import (
    SHORT_WINDOW_SETTINGS,
    SUPPORT_TRIAGE,
    Measurement,
    background_traffic,
    follow,
    fresh_inputs,
    measure,
    send_traffic,
)
from spark.client import SparkClient
from spark.logging import configure_logging
from spark.rsi.contracts import RSIStatus

DEMO_RSI_SETTINGS = SHORT_WINDOW_SETTINGS
SCENARIO = dataclasses.replace(SUPPORT_TRIAGE, graph_id="support-triage-demo")
"""The demo's own graph id (and so workflow id ``rsi-support-triage-demo``): never a dev
setup's ``support-triage``."""
GRAPH_ID = SCENARIO.graph_id
WEB_UI = os.environ.get("SPARK_DEMO_WEB_UI", "http://localhost:8233")
FRESH_REQUESTS = 300


def print_phase(line: str) -> None:
    """One phase change of the workflow."""
    print(f"  [rsi] {line}", flush=True)


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
    """One line per cycle, then the evidence that decided it: the replay gate, the primary
    metric's verdict, and any guardrail that failed or rollback."""
    for cycle in status.history:
        print(f"  cycle {cycle.cycle}: {cycle.outcome:<12} {cycle.hypothesis_title or ''}")
        for reason in decisive(cycle.reasons):
            print(f"      - {reason}")


def decisive(reasons: list[str]) -> list[str]:
    """The reasons a reader needs first (planning notes and passing guardrails left out)."""
    keys = ("replay gate", "primary ", "rolled back", "no live traffic", "online window")
    chosen = [r for r in reasons if r.startswith(keys) or "not shown" in r or "worse" in r]
    return chosen or reasons[:3]


async def main() -> None:
    """Run the whole demo."""
    configure_logging("WARNING")
    rng = random.Random(7)
    client = SparkClient.from_env()
    spec = SCENARIO.build_spec(GRAPH_ID, rsi=DEMO_RSI_SETTINGS)
    original = client.register_graph(spec, SCENARIO.node_modules)
    print(f"registered {GRAPH_ID!r} as {original.version_id}; sending production traffic...")
    await send_traffic(client, SCENARIO, 400, rng)
    client.flush()
    handle = await client.start_improvement(GRAPH_ID, continuous=True, max_cycles=3)
    print(
        f"started workflow {handle.id!r}; Web UI: {WEB_UI}/namespaces/default/workflows/{handle.id}"
    )
    stop = asyncio.Event()
    traffic = asyncio.create_task(background_traffic(client, SCENARIO, stop, rng))
    result = asyncio.create_task(handle.result())
    await follow(client, GRAPH_ID, result, print_phase)
    stop.set()
    await traffic
    final = await result
    print_outcomes(final)
    deployed = client.routing.get(GRAPH_ID).active_version_id
    print(
        f"measuring {original.version_id} (original) and {deployed} (deployed) on fresh traffic..."
    )
    inputs = fresh_inputs(SCENARIO, FRESH_REQUESTS, rng)
    before = await measure(client, SCENARIO, original.version_id, inputs)
    after = await measure(client, SCENARIO, deployed, inputs)
    print_table(before, after)
    print("lineage: " + " -> ".join(v.version_id for v in client.registry.lineage(deployed)))
    print(
        "the demo's private Temporal server stops with it; `make dev` keeps one running (Web UI "
        "http://localhost:8233) for your own graphs"
    )
    client.close()


if __name__ == "__main__":
    asyncio.run(main())
