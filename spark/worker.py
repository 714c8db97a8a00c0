"""The Spark RSI worker: runs RSIWorkflow and every RSI activity on the ``spark-rsi`` queue.

Started as ``spark-worker`` (the console script), ``python -m spark.worker`` or, in a checkout,
``python worker.py``.

Configuration from the environment (local defaults): ``TEMPORAL_ADDRESS`` (localhost:7233),
``TEMPORAL_NAMESPACE`` (default), ``SPARK_TASK_QUEUE`` (spark-rsi), ``SPARK_DATABASE_URL``
(sqlite:///.spark/spark.db), ``SPARK_GENERATOR`` (rules; or openai / anthropic with their API key),
``SPARK_METRICS_ADDRESS`` (unset: off; ``0.0.0.0:9464`` serves Prometheus ``/metrics``, see
``spark.observability``).
"""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from activities import ActivityDeps, build_activities
from spark.logging import configure_logging
from spark.observability import runtime as metrics_runtime
from spark.observability.settings import MetricsSettings
from spark.settings import SparkSettings
from spark.temporal import connect
from workflows.rsi import RSIWorkflow

log = structlog.get_logger("spark.worker")


STICKY_TIMEOUT_S = 3.0


def build_worker(
    client: Client, settings: SparkSettings, deps: ActivityDeps | None = None
) -> Worker:
    """A worker for the RSI workflow and activities, bound to the configured database."""
    deps = deps or ActivityDeps.from_database_url(settings.database_url, settings=settings)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[RSIWorkflow],
        activities=build_activities(deps),
        graceful_shutdown_timeout=timedelta(seconds=10),
        # A killed worker's sticky queue is abandoned after this long (the SDK's default, 10 s,
        # was most of the stall a kill at a timer cost): workflow tasks go back to any worker.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=STICKY_TIMEOUT_S),
    )


async def run_worker(settings: SparkSettings) -> None:
    """Connect, then poll until SIGINT/SIGTERM; in-flight activities get time to finish."""
    client = await connect(settings)
    worker = build_worker(client, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker started", task_queue=settings.task_queue, address=settings.temporal_address)
    async with worker:
        await stop.wait()
    log.info("worker stopped")


def main() -> None:
    """Entry point of ``spark-worker``, ``python -m spark.worker`` and ``python worker.py``."""
    configure_logging()
    metrics_runtime.install(MetricsSettings.from_env().address)  # before any client connects
    asyncio.run(run_worker(SparkSettings.from_env()))


if __name__ == "__main__":
    main()
