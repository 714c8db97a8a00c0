"""What a background thread that does almost nothing costs a busy serving thread on this machine.

    python -m bench.interference --json

The serving thread runs graph requests back to back (the same 10-node chain and runtime as
``bench.client``, telemetry off). Beside it, a second thread only wakes up every
``--interval-ms`` and goes back to sleep, holding the GIL for a few microseconds each time. It
runs unpinned, pinned to the serving thread's CPU, or pinned to the other CPU (Linux
``sched_setaffinity`` per thread). Modes alternate in rounds so that load drifts hit them alike;
the figure is each mode's p50 request time and its ratio to the run with no second thread.

On a 2-vCPU KVM guest (this machine) the second thread costs the serving thread 15-20% whenever
it runs on the other vCPU, although it uses almost no CPU and never contends for the GIL in any
way that matters: the vCPUs share the host's core resources, so waking one slows the other.
Pinned to the serving thread's own CPU it costs nothing. This is why the telemetry writer, which
must run somewhere, shows in ``bench.client``'s per-node overhead beyond its own CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import threading
import time
from typing import Any

from bench.client import chain_spec, machine  # importing it registers the bench node type
from spark.graphs.registry import default_registry
from spark.graphs.runtime import GraphRuntime

MODES = ("alone", "ticker", "ticker_same_cpu", "ticker_other_cpu")


class Ticker:
    """A thread that wakes every ``interval_s`` and does nothing else, optionally pinned."""

    def __init__(self, interval_s: float, cpu: int | None) -> None:
        self._interval_s, self._cpu = interval_s, cpu
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-ticker", daemon=True)

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        if self._cpu is not None:
            os.sched_setaffinity(0, {self._cpu})  # 0: the calling thread
        while not self._stop.wait(self._interval_s):
            pass


async def _request_times(runtime: GraphRuntime, requests: int) -> list[float]:
    spec, inputs = chain_spec(10), {"q": "hello"}
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        await runtime.run(spec, inputs, version_id="v1")
        times.append(time.perf_counter() - started)
    return times


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """p50 request time per mode over interleaved rounds."""
    serving_cpu = sorted(os.sched_getaffinity(0))[0]
    other_cpus = sorted(os.sched_getaffinity(0) - {serving_cpu})
    os.sched_setaffinity(0, {serving_cpu})  # the serving (main) thread stays on one CPU
    runtime = GraphRuntime(default_registry())
    tickers: dict[str, int | None] = {"ticker": None, "ticker_same_cpu": serving_cpu}
    if other_cpus:
        tickers["ticker_other_cpu"] = other_cpus[0]
    samples: dict[str, list[float]] = {"alone": [], **{mode: [] for mode in tickers}}
    asyncio.run(_request_times(runtime, 500))  # warm up
    for _ in range(args.rounds):
        samples["alone"] += asyncio.run(_request_times(runtime, args.requests))
        for mode, cpu in tickers.items():
            with Ticker(args.interval_ms / 1000, cpu):
                samples[mode] += asyncio.run(_request_times(runtime, args.requests))
    alone = statistics.median(samples["alone"])
    return {
        "interval_ms": args.interval_ms,
        "serving_cpu": serving_cpu,
        "p50_us": {mode: round(statistics.median(v) * 1e6, 1) for mode, v in samples.items()},
        "over_alone": {mode: round(statistics.median(v) / alone, 3) for mode, v in samples.items()},
    }


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval-ms", type=float, default=5.0)
    parser.add_argument("--requests", type=int, default=2_000, help="per mode and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for name in ("interval_ms", "requests", "rounds"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    result = measure(args)
    result["machine"] = machine()
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
