"""Shared plumbing for activities: error translation, off-loop execution of store calls, and
heartbeats for the long ones."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from spark.errors import SparkMisuseError

P = ParamSpec("P")
R = TypeVar("R")

log = structlog.get_logger("spark.activities")


def misuse_is_final(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Turn ``SparkMisuseError`` into a non-retryable ``ApplicationError`` named after its class,
    so the workflow fails at once with the actionable message instead of retrying forever."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except SparkMisuseError as exc:
            log.warning("activity refused input", error_type=type(exc).__name__, error=str(exc))
            raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from exc

    return wrapper


async def off_loop(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run a blocking store call in a thread so the worker's event loop stays free."""
    return await asyncio.to_thread(fn, *args, **kwargs)


# Long activities beat this often; the workflow gives them a heartbeat timeout of a few beats
# (workflows.activity_calls.HEARTBEAT), so a killed worker costs seconds, not the whole
# start-to-close timeout. The SDK throttles what reaches the server to 80% of that timeout.
HEARTBEAT_EVERY_S = 2.0


def heartbeating(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Heartbeat every ``HEARTBEAT_EVERY_S`` while ``fn`` runs (its work runs off the event
    loop, so the beat keeps time), proving the worker alive to the server."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        beat = asyncio.create_task(_beat()) if activity.in_activity() else None
        try:
            return await fn(*args, **kwargs)
        finally:
            if beat is not None:
                beat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beat

    wrapper.__spark_heartbeating__ = True  # type: ignore[attr-defined]
    return wrapper


async def _beat() -> None:
    while True:
        activity.heartbeat()
        await asyncio.sleep(HEARTBEAT_EVERY_S)
