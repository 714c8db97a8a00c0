"""Time-ordered ids for traces and spans, minted without a system call per id.

An id is a UUIDv7 (RFC 9562) written as 32 lowercase hex characters, the format ``uuid4().hex``
had, so nothing that stores or compares ids changes:

    48 bits  Unix time in milliseconds
     4 bits  version (7)
    12 bits  process bits
     2 bits  variant (0b10)
    30 bits  sequence: one process-wide counter, from a random start
    32 bits  process bits

The process bits (44, random) keep processes apart; the counter keeps the ids of one process
apart (two ids of one process would have to be a billion ids apart and minted in the same
millisecond to meet). Ids minted one after another sort in minting order: the time, then the
counter (a counter that wraps within one millisecond, or a clock stepped back, only costs that
order, never uniqueness). The random bits come from ``os.urandom`` once at import and once in
each forked child, never per id: an id costs a clock read, a counter step and a format, with no
lock (``next`` on an ``itertools.count`` is atomic under the GIL). Sorted ids append to B-tree
indexes instead of landing all over them as random uuid4 keys do.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable

_SEQUENCE_BITS = 30
_SEQUENCE_MASK = (1 << _SEQUENCE_BITS) - 1
_PROCESS_LOW_BITS = 32
_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)


def _seeded() -> tuple[int, Callable[[], int]]:
    """Random process bits (placed in the id) and a counter from a random start."""
    seed = int.from_bytes(os.urandom(11), "big")
    process_low = seed & ((1 << _PROCESS_LOW_BITS) - 1)
    process_high = (seed >> _PROCESS_LOW_BITS) & 0xFFF
    constant = _VERSION_AND_VARIANT | (process_high << 64) | process_low
    counter = itertools.count(seed >> 44 & _SEQUENCE_MASK)
    return constant, counter.__next__


_constant, _next_sequence = _seeded()


def _reseed() -> None:
    global _constant, _next_sequence
    _constant, _next_sequence = _seeded()


os.register_at_fork(after_in_child=_reseed)


def _new_id(time_ns: Callable[[], int] = time.time_ns) -> str:
    millis = time_ns() // 1_000_000
    sequence = _next_sequence() & _SEQUENCE_MASK
    return f"{(millis << 80) | (sequence << _PROCESS_LOW_BITS) | _constant:032x}"


def new_trace_id() -> str:
    """A time-ordered trace id: 32 hex characters (a UUIDv7)."""
    return _new_id()


def new_span_id() -> str:
    """A time-ordered span id: 32 hex characters (a UUIDv7)."""
    return _new_id()


def new_span_ids(count: int, time_ns: Callable[[], int] = time.time_ns) -> list[str]:
    """``count`` span ids minted together: one clock read, consecutive counter values (so they
    sort in the order returned, like ``count`` calls of ``new_span_id``)."""
    high = (time_ns() // 1_000_000) << 80 | _constant
    sequence = _next_sequence
    return [
        f"{high | (sequence() & _SEQUENCE_MASK) << _PROCESS_LOW_BITS:032x}" for _ in range(count)
    ]
