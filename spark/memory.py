"""Give the worker's freed heap memory back to the system.

glibc's ``malloc`` keeps the memory a process frees: only a free stretch at the top of a heap is
returned on its own. A worker that loads a hundred workflows for their first cycle, then evicts
them as they fall asleep, frees megabytes in the middle of its heaps and keeps them resident.
``malloc_trim(0)`` hands such free pages back; the worker calls it every
``SPARK_MALLOC_TRIM_INTERVAL_S`` seconds (10 by default, ``0`` turns it off), in a thread so the
event loop never waits on it. Where the C library is not glibc (musl, macOS) there is no
``malloc_trim`` and nothing is done.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import platform
from collections.abc import Callable

import structlog

from spark.errors import ConfigurationError

log = structlog.get_logger("spark.memory")

DEFAULT_TRIM_INTERVAL_S = 10.0

Trim = Callable[[], int]


def trim_interval_from_env() -> float:
    """``SPARK_MALLOC_TRIM_INTERVAL_S`` (default 10; ``0``: off); a ``ConfigurationError``
    unless a number of seconds of at least 0."""
    raw = os.environ.get("SPARK_MALLOC_TRIM_INTERVAL_S", "").strip()
    if not raw:
        return DEFAULT_TRIM_INTERVAL_S
    try:
        interval_s = float(raw)
    except ValueError:
        interval_s = -1.0
    if not interval_s >= 0 or interval_s == float("inf"):
        raise ConfigurationError(f"SPARK_MALLOC_TRIM_INTERVAL_S={raw!r} is not a number >= 0")
    return interval_s


def glibc_malloc_trim() -> Trim | None:
    """``malloc_trim(0)`` of the running glibc, or ``None`` where the C library is another."""
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(None)
        malloc_trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int
    return lambda: int(malloc_trim(0))


async def trim_periodically(trim: Trim, interval_s: float) -> None:
    """Call ``trim`` in a worker thread every ``interval_s`` seconds until cancelled."""
    while True:
        await asyncio.sleep(interval_s)
        await asyncio.to_thread(trim)


def start_trimming(interval_s: float) -> asyncio.Task[None] | None:
    """Start :func:`trim_periodically` with glibc's ``malloc_trim`` (logged either way); ``None``
    when turned off or unavailable."""
    trim = glibc_malloc_trim() if interval_s > 0 else None
    if trim is None:
        reason = "turned off" if interval_s <= 0 else "not glibc"
        log.info("malloc trim off", reason=reason, libc=platform.libc_ver()[0] or "unknown")
        return None
    log.info("malloc trim on", interval_s=interval_s)
    return asyncio.create_task(trim_periodically(trim, interval_s), name="malloc-trim")
