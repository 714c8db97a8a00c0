"""Shared plumbing for activities: error translation and off-loop execution of store calls."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import structlog
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
