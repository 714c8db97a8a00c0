"""Measure a database outage under traffic, on SQLite and PostgreSQL, with production defaults.

    .venv/bin/python -m tests.faults.measure_outage --outage-s 40 --rate 60

Keyed requests arrive at ``--rate`` per second through routing (a 50% canary) for
``--before-s``, through an outage of ``--outage-s``, and for ``--after-s`` after it (telemetry
queue bound ``--max-queue``, the default 100,000 runs); then
telemetry is flushed and the figures printed as JSON: runs sent during the outage, requests
that failed, runs stored, ``telemetry_dropped``, and the seconds the backlog took to land.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from examples.support_triage.traffic import make_ticket
from spark.client import SparkClient
from spark.settings import SparkSettings
from spark.telemetry import TelemetryConfig
from tests.faults.outage import DatabaseOutage, PostgresOutage, SqliteOutage, outage
from tests.faults.test_database_outage import GRAPH, _canary_on


async def _traffic(client: SparkClient, seconds: float, rate: float, rng: random.Random) -> int:
    """Requests at ``rate`` per second for ``seconds``; returns how many failed."""
    tasks, start = [], time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        ticket = make_ticket(rng)
        tasks.append(
            asyncio.create_task(client.run(GRAPH, ticket, routing_key=ticket["customer_id"]))
        )
        await asyncio.sleep(max(0.0, len(tasks) / rate - elapsed))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    return sum(isinstance(result, BaseException) for result in results)


async def measure(database: DatabaseOutage, args: argparse.Namespace) -> dict[str, Any]:
    """One trial on ``database``: before, during and after an outage of ``args.outage_s``."""
    settings = SparkSettings(
        database_url=database.url, task_queue="outage", temporal_address="127.0.0.1:1"
    )
    telemetry = TelemetryConfig.from_url(database.url, max_queue=args.max_queue)
    client = SparkClient(settings, telemetry=telemetry)
    _canary_on(client)
    rng = random.Random(1)
    failed = await _traffic(client, args.before_s, args.rate, rng)
    client.flush()
    sent_before = client.telemetry_stats.submitted + client.telemetry_stats.refused
    with outage(database):
        failed += await _traffic(client, args.outage_s, args.rate, rng)
        stats = client.telemetry_stats
    sent_during = stats.submitted + stats.refused - sent_before
    failed += await _traffic(client, args.after_s, args.rate, rng)
    drain_start = time.monotonic()
    client.flush()
    drain_s = time.monotonic() - drain_start
    client.close()
    stats = client.telemetry_stats
    return {
        "backend": database.backend,
        "outage_s": args.outage_s,
        "max_queue": args.max_queue,
        "rate_per_s": args.rate,
        "runs_sent": stats.submitted + stats.refused,
        "runs_sent_during_outage": sent_during,
        "requests_failed": failed,
        "runs_stored": client.telemetry.count_traces(GRAPH),
        "runs_written": stats.written,
        "telemetry_dropped": client.telemetry_dropped,
        "write_errors": stats.write_errors,
        "drain_after_traffic_s": round(drain_s, 3),
    }


def main() -> None:
    """Parse the options, run one trial per backend, print JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage-s", type=float, default=40.0)
    parser.add_argument("--rate", type=float, default=60.0)
    parser.add_argument("--before-s", type=float, default=3.0)
    parser.add_argument("--after-s", type=float, default=3.0)
    parser.add_argument("--max-queue", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for database in (SqliteOutage(Path(folder)), PostgresOutage()):
            try:
                print(json.dumps(asyncio.run(measure(database, args))), flush=True)
            finally:
                database.end()
                database.drop()


if __name__ == "__main__":
    main()
