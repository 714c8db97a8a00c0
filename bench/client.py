"""Request-path cost: what ``SparkClient.run`` adds per node, against the runtime alone and bare
asyncio, and feedback throughput.

    python -m bench.client --json

One process, one event loop, a graph of ``--nodes`` trivial nodes in a chain. Three modes are
measured in interleaved rounds (so machine load hits them alike):

- ``bare``: ``asyncio.gather`` of ``--nodes`` tasks that each return a dict (the floor of
  running that many coroutines as tasks);
- ``floor``: the in-process recording floor of ``--nodes`` spans, the client overhead's
  physical limit measured in the same run: per node, the two clock reads that time it and one
  tuple of what it did appended to a deque (``physical-limits.md``: about 0.2 us a node when
  the goal of 2 us, ten times it, was set);
- ``runtime``: ``GraphRuntime.run`` with telemetry off (no sink, no routing);
- ``client``: ``SparkClient.run`` with routing (cached) and telemetry on, written by the recorder
  to a fresh SQLite file while the requests run (from a writer thread, or with
  ``--writer-process`` from a child process: ``TelemetryConfig.writer_process``);
- ``idle`` (with ``--writer-idle``): the same with the recorder's writer held back until the
  round ends (flushed untimed). Its difference from ``client`` would be the writer thread's
  share of the GIL, but the runs it holds in memory make every garbage collection in the process
  slower, the other modes' included, so it is off by default.

Per-node figures are each request's duration divided by the node count; the client's overhead
is its percentile minus the runtime's, also given as a multiple of the floor (goal: at most
``GOAL_OVER_FLOOR``). The writer works during the client's rounds (it wakes at
500 queued runs), and what it has left at the end of a round is flushed untimed before the next.
``paired_by_round`` gives the overhead and the runtime's ratio to bare asyncio as the median over
the rounds of each round's own p50 difference (ratio): the machine's slow spells, which last
seconds and move the pooled figures by several microseconds a node, then hit both sides of each
pair. Feedback: scores/s of ``client.feedback`` (then a flush) and of ``client.feedback_many``,
each counted until every score is in the table.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import statistics
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from spark.client import SparkClient
from spark.db import dispose_engine, sqlite_url
from spark.graphs import GraphSpec, parse_graph_spec
from spark.graphs.registry import NodeContext, node
from spark.graphs.runtime import GraphRuntime
from spark.settings import SparkSettings
from spark.telemetry import TelemetryConfig

GRAPH = "bench-client"
NODE_TYPE = "bench_client_step"


@node(NODE_TYPE)
async def step(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
    """A node that does nothing but write one field."""
    return {ctx.node_id: 1}


async def _bare_node() -> dict[str, Any]:
    return {"x": 1}


def recording_floor(nodes: int) -> Callable[[], Awaitable[None]]:
    """A request that only records ``nodes`` spans as cheaply as Python can: per node, a pair
    of ``perf_counter_ns`` reads and a tuple appended to a bounded deque."""
    spans: deque[tuple[str, int, int]] = deque(maxlen=100_000)
    ids = [f"n{i}" for i in range(nodes)]
    clock = time.perf_counter_ns

    async def record() -> None:
        for node_id in ids:
            started = clock()
            spans.append((node_id, started, clock() - started))

    return record


def chain_spec(nodes: int, deterministic: bool = False) -> GraphSpec:
    """``nodes`` trivial nodes, each feeding the next; untagged like LLM and tool nodes, or all
    tagged ``deterministic`` (a cache could serve them, so telemetry fingerprints their inputs)."""
    ids = [f"n{i}" for i in range(nodes)]
    tags = ["deterministic"] if deterministic else []
    return parse_graph_spec(
        {
            "id": GRAPH,
            "entry": ids[0],
            "nodes": [{"id": i, "type": NODE_TYPE, "inputs": ["q"], "tags": tags} for i in ids],
            "edges": [{"source": a, "target": b} for a, b in itertools.pairwise(ids)],
            "inputs": ["q"],
        }
    )


Timed = Callable[[], Awaitable[object]]


async def _time(call: Timed, count: int, into: list[float]) -> None:
    for _ in range(count):
        started = time.perf_counter()
        await call()
        into.append(time.perf_counter() - started)


def _per_node_us(samples: list[float], nodes: int) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_us": round(ordered[len(ordered) // 2] * 1e6 / nodes, 3),
        "p99_us": round(ordered[int(len(ordered) * 0.99)] * 1e6 / nodes, 3),
        "mean_us": round(statistics.fmean(ordered) * 1e6 / nodes, 3),
    }


async def measure_request_path(
    client: SparkClient, idle: SparkClient | None, args: argparse.Namespace
) -> dict[str, Any]:
    """Interleaved rounds of bare gather, runtime without telemetry, the full client, and the
    client with its writer held back until the round ends (its request path alone)."""
    spec, nodes = chain_spec(args.nodes, args.deterministic), args.nodes
    inputs = {"q": "hello"}
    version_id = client.routing.get(GRAPH).active_version_id
    runtime = GraphRuntime(client._nodes)  # telemetry off: no sink
    samples: dict[str, list[float]] = {"bare": [], "floor": [], "runtime": [], "client": []}
    calls: dict[str, Timed] = {
        "bare": lambda: asyncio.gather(*(asyncio.create_task(_bare_node()) for _ in range(nodes))),
        "floor": recording_floor(nodes),
        "runtime": lambda: runtime.run(spec, inputs, version_id=version_id),
        "client": lambda: client.run(GRAPH, inputs, routing_key="user-1"),
    }
    if idle is not None:
        samples["idle"], calls["idle"] = [], lambda: idle.run(GRAPH, inputs, routing_key="user-1")
    for call in calls.values():  # warm up caches, routing and the writer
        await _time(call, 200, [])
    per_round = max(args.requests // args.rounds, 1)
    rounds: list[dict[str, float]] = []  # each round's p50 per node of each mode
    for _ in range(args.rounds):
        medians = {}
        for name, call in calls.items():
            timed: list[float] = []
            await _time(call, per_round, timed)
            samples[name] += timed
            medians[name] = statistics.median(timed) * 1e6 / nodes
        rounds.append(medians)
        client.flush()  # untimed: the writer's leftovers do not spill into the next round
        if idle is not None:
            idle.flush()
    figures = {name: _per_node_us(values, nodes) for name, values in samples.items()}
    return {**_with_ratios(figures), "paired_by_round": paired_by_round(rounds)}


def paired_by_round(rounds: list[dict[str, float]]) -> dict[str, float]:
    """The client's overhead and the runtime's ratio to bare asyncio as the median over rounds
    of each round's own difference (ratio) of p50s: each pair measured within seconds of each
    other, so a slow spell of the machine moves both sides of a pair, where the pooled
    percentiles above take it as a difference between modes."""
    paired = {
        "client_overhead_p50_us": statistics.median(r["client"] - r["runtime"] for r in rounds),
        "runtime_over_bare_p50": statistics.median(r["runtime"] / r["bare"] for r in rounds),
        "client_overhead_over_floor_p50": statistics.median(
            (r["client"] - r["runtime"]) / r["floor"] for r in rounds
        ),
    }
    if all("idle" in r for r in rounds):
        paired["client_overhead_writer_idle_p50_us"] = statistics.median(
            r["idle"] - r["runtime"] for r in rounds
        )
    return {name: round(value, 3) for name, value in paired.items()}


def _with_ratios(figures: dict[str, dict[str, float]]) -> dict[str, Any]:
    bare, runtime, keys = figures["bare"], figures["runtime"], ("p50_us", "p99_us", "mean_us")
    return {
        **figures,
        "client_overhead": {k: round(figures["client"][k] - runtime[k], 3) for k in keys},
        **(
            {
                "client_overhead_writer_idle": {
                    k: round(figures["idle"][k] - runtime[k], 3) for k in keys
                }
            }
            if "idle" in figures
            else {}
        ),
        "runtime_over_bare_p50": round(runtime["p50_us"] / bare["p50_us"], 2),
        "client_overhead_over_floor_p50": round(
            (figures["client"]["p50_us"] - runtime["p50_us"]) / figures["floor"]["p50_us"], 2
        ),
        "goals": {
            "client_overhead_p50_us": 2.0,
            "client_overhead_over_floor_p50_max": GOAL_OVER_FLOOR,
            "runtime_p50_us_max": round(2 * bare["p50_us"], 3),
        },
    }


def measure_feedback(client: SparkClient, scores: int) -> dict[str, float]:
    """Scores/s of one ``feedback`` call per score and of one ``feedback_many``, each until the
    last score is stored (flushed)."""
    started = time.perf_counter()
    for i in range(scores):
        client.feedback(f"fb-one-{i}", score=i % 5 / 4)
    client.flush()
    one_by_one = scores / (time.perf_counter() - started)
    started = time.perf_counter()
    feedback_many = getattr(client, "feedback_many", None)
    if feedback_many is None:
        return {"feedback_per_call_scores_s": round(one_by_one)}
    feedback_many([(f"fb-many-{i}", i % 5 / 4) for i in range(scores)])
    client.flush()
    bulk = scores / (time.perf_counter() - started)
    return {"feedback_per_call_scores_s": round(one_by_one), "feedback_many_scores_s": round(bulk)}


def open_client(folder: Path, deterministic: bool = False, **telemetry: Any) -> SparkClient:
    """A client on a SQLite file in ``folder`` with the bench graph registered and routed
    (``deterministic``: see ``chain_spec``; ``telemetry`` overrides the recorder's defaults)."""
    url = sqlite_url(folder / "spark.db")
    settings = SparkSettings(database_url=url, task_queue="bench", temporal_address="127.0.0.1:1")
    client = SparkClient(settings, telemetry=TelemetryConfig.from_url(url, **telemetry))
    client.register_graph(chain_spec(10, deterministic), [__name__])
    return client


GOAL_OVER_FLOOR = 10.0
"""The client overhead's goal as a multiple of the recording floor measured in the same run:
2 us against the floor of about 0.2 us when issue 11 set it, so that a slower or faster machine
moves both."""

HELD_BACK: dict[str, Any] = {"flush_interval_s": 3600.0, "batch_size": 100_000}


def machine() -> dict[str, Any]:
    """Where the figures were taken."""
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--requests", type=int, default=20_000, help="per mode")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--scores", type=int, default=2_000)
    parser.add_argument("--writer-idle", action="store_true", help="also the idle-writer mode")
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="tag every node deterministic: telemetry then fingerprints each node's inputs",
    )
    parser.add_argument(
        "--writer-process",
        action="store_true",
        help="write telemetry from a child process (TelemetryConfig.writer_process)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.nodes != 10:
        parser.error("--nodes: the registered bench graph has 10 nodes")
    with tempfile.TemporaryDirectory(prefix="spark-bench-client-") as folder:
        client = open_client(Path(folder), args.deterministic, writer_process=args.writer_process)
        idle = (
            open_client(Path(folder), args.deterministic, **HELD_BACK) if args.writer_idle else None
        )
        try:
            result = asyncio.run(measure_request_path(client, idle, args))
            client.flush()
            result["telemetry"] = asdict(client.telemetry_stats)
            result["feedback"] = measure_feedback(client, args.scores)
        finally:
            if idle is not None:
                idle.close()
            client.close()
            dispose_engine(client.settings.database_url)
    result["deterministic_nodes"] = args.deterministic
    result["writer_process"] = args.writer_process
    result["machine"] = machine()
    result["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
