"""The Spark RSI worker: runs RSIWorkflow and every RSI activity on the ``spark-rsi`` queue.

Started as ``spark-worker`` (the console script), ``python -m spark.worker`` or, in a checkout,
``python worker.py``.

Configuration from the environment (local defaults): ``TEMPORAL_ADDRESS`` (localhost:7233),
``TEMPORAL_NAMESPACE`` (default), ``SPARK_TASK_QUEUE`` (spark-rsi), ``SPARK_DATABASE_URL``
(sqlite:///.spark/spark.db), ``SPARK_GENERATOR`` (rules; or openai / anthropic with their API key),
``SPARK_METRICS_ADDRESS`` (unset: off; ``0.0.0.0:9464`` serves Prometheus ``/metrics``, see
``spark.observability``), ``SPARK_WORKER_ROLE`` (``all``: workflows and activities in one
process; ``workflows`` or ``activities``: one side only, so the workflow worker never loads
scipy, SQLAlchemy or networkx, which only the activities import), ``SPARK_MAX_CACHED_WORKFLOWS``
(100: loops asleep on their interval timer for an hour are evicted rather than held in memory;
a woken loop replays its current run, one cycle, from history), ``SPARK_MALLOC_TRIM_INTERVAL_S``
(10: freed heap memory is handed back to the system this often, on glibc; ``0``: never; see
``spark.memory``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, get_args

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from spark.errors import ConfigurationError
from spark.logging import configure_logging
from spark.memory import start_trimming, trim_interval_from_env
from spark.observability import runtime as metrics_runtime
from spark.observability.settings import MetricsSettings
from spark.sandbox_code import share_module_code
from spark.settings import SparkSettings
from spark.temporal import connect
from workflows.rsi import RSIWorkflow

if TYPE_CHECKING:  # the activities (scipy, SQLAlchemy, networkx) load only where they run
    from activities import ActivityDeps

WorkerRole = Literal["all", "workflows", "activities"]
WORKER_ROLES: tuple[WorkerRole, ...] = get_args(WorkerRole)

log = structlog.get_logger("spark.worker")


STICKY_TIMEOUT_S = 3.0
DEFAULT_MAX_CACHED_WORKFLOWS = 100


def worker_role_from_env() -> WorkerRole:
    """``SPARK_WORKER_ROLE`` (default ``all``); a ``ConfigurationError`` naming the choices."""
    raw = os.environ.get("SPARK_WORKER_ROLE", "").strip() or "all"
    for role in WORKER_ROLES:
        if raw == role:
            return role
    raise ConfigurationError(f"SPARK_WORKER_ROLE={raw!r} is not one of {', '.join(WORKER_ROLES)}")


def max_cached_workflows_from_env() -> int:
    """``SPARK_MAX_CACHED_WORKFLOWS`` (default 100); a ``ConfigurationError`` unless a whole
    number of at least 0."""
    raw = os.environ.get("SPARK_MAX_CACHED_WORKFLOWS", "").strip()
    if not raw:
        return DEFAULT_MAX_CACHED_WORKFLOWS
    if not raw.isdigit():
        raise ConfigurationError(f"SPARK_MAX_CACHED_WORKFLOWS={raw!r} is not a whole number >= 0")
    return int(raw)


def worker_options(
    settings: SparkSettings, role: WorkerRole = "all", deps: ActivityDeps | None = None
) -> dict[str, Any]:
    """The ``Worker`` keyword arguments for ``role``; the activities (and the database) are
    imported and opened only when the role runs them."""
    return {
        "task_queue": settings.task_queue,
        "max_cached_workflows": max_cached_workflows_from_env(),
        "workflows": [RSIWorkflow] if role != "activities" else [],
        "activities": _activities(settings, deps) if role != "workflows" else [],
        "graceful_shutdown_timeout": timedelta(seconds=10),
        # A killed worker's sticky queue is abandoned after this long (the SDK's default, 10 s,
        # was most of the stall a kill at a timer cost): workflow tasks go back to any worker.
        "sticky_queue_schedule_to_start_timeout": timedelta(seconds=STICKY_TIMEOUT_S),
    }


def _activities(settings: SparkSettings, deps: ActivityDeps | None) -> list[Any]:
    from activities import ActivityDeps, build_activities

    deps = deps or ActivityDeps.from_database_url(settings.database_url, settings=settings)
    return build_activities(deps)


def build_worker(
    client: Client,
    settings: SparkSettings,
    deps: ActivityDeps | None = None,
    role: WorkerRole = "all",
) -> Worker:
    """A worker for the RSI workflow and/or activities (``role``), bound to the configured
    database. The client's ``SparkPlugin`` gives it the sandbox runner with our pass-through
    list (``spark.temporal.workflow_runner``); the workflow module is compiled once for every
    sandboxed run (``spark.sandbox_code``)."""
    if role != "activities":
        share_module_code(RSIWorkflow.__module__)
    return Worker(client, **worker_options(settings, role, deps))


async def run_worker(settings: SparkSettings, role: WorkerRole = "all") -> None:
    """Connect, then poll until SIGINT/SIGTERM; in-flight activities get time to finish. Freed
    heap memory goes back to the system meanwhile (``spark.memory``)."""
    trim_interval_s = trim_interval_from_env()
    client = await connect(settings)
    worker = build_worker(client, settings, role=role)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker started",
        task_queue=settings.task_queue,
        address=settings.temporal_address,
        role=role,
    )
    trimming = start_trimming(trim_interval_s)
    async with worker:
        await stop.wait()
    if trimming is not None:
        trimming.cancel()
    log.info("worker stopped")


def main() -> None:
    """Entry point of ``spark-worker``, ``python -m spark.worker`` and ``python worker.py``."""
    configure_logging()
    try:
        metrics_address = MetricsSettings.from_env().address
        settings, role = SparkSettings.from_env(), worker_role_from_env()
    except ConfigurationError as error:  # the environment is wrong: say which variable, once
        print(f"spark-worker: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    metrics_runtime.install(metrics_address)  # before any client connects
    asyncio.run(run_worker(settings, role))


if __name__ == "__main__":
    main()
