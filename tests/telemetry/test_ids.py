"""Trace and span ids: time-ordered UUIDv7s as 32 hex characters, unique across threads, minted
without a system call."""

from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from spark.telemetry import ids
from spark.telemetry.ids import new_span_id, new_span_ids, new_trace_id


def test_ids_are_32_hex_characters_of_a_uuid7() -> None:
    """Both kinds of id keep uuid4().hex's format and parse as version-7, RFC variant UUIDs."""
    for minted in (new_trace_id(), new_span_id()):
        assert len(minted) == 32
        assert minted == minted.lower()
        parsed = uuid.UUID(hex=minted)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122


def test_ids_sort_in_minting_order() -> None:
    """Ids minted one after another, across a millisecond boundary, sort as they were minted."""
    minted = [new_span_id() for _ in range(5_000)]
    time.sleep(0.002)
    minted += [new_trace_id() for _ in range(5_000)]
    assert minted == sorted(minted)
    assert len(set(minted)) == len(minted)


def test_ids_minted_together_are_the_same_ids_one_at_a_time_would_be() -> None:
    """A run's span ids minted in one call are UUIDv7s of the call's millisecond, distinct, in
    minting order, and sort between the single ids minted before and after them."""
    before = time.time_ns() // 1_000_000
    first = new_span_id()
    batch = new_span_ids(10)
    last = new_span_id()
    after = time.time_ns() // 1_000_000

    assert [first, *batch, last] == sorted([first, *batch, last])
    assert len(set(batch)) == 10 and new_span_ids(0) == []
    for minted in batch:
        assert uuid.UUID(hex=minted).version == 7 and len(minted) == 32
        assert before <= int(minted[:12], 16) <= after
    assert {minted[-8:] for minted in batch} == {first[-8:]}  # the same process bits


def test_ids_minted_together_are_the_full_formula_with_consecutive_counters() -> None:
    """Formatting the batch's fixed digits once gives exactly the ids ``_new_id`` mints: the
    millisecond, the counter values in a row, the process bits; the next single id follows."""
    clock = lambda: 1_764_000_000_123_456_789  # noqa: E731
    batch = new_span_ids(5, time_ns=clock)
    single = ids._new_id(clock)

    values = [int(minted, 16) for minted in [*batch, single]]
    millis = clock() // 1_000_000
    first_sequence = (values[0] >> 32) & ids._SEQUENCE_MASK
    expected = [
        (millis << 80) | (((first_sequence + n) & ids._SEQUENCE_MASK) << 32) | ids._constant
        for n in range(6)
    ]
    assert values == expected
    assert all(len(minted) == 32 for minted in batch)


def test_ids_carry_the_time_they_were_minted() -> None:
    """The first 48 bits are the Unix time in milliseconds."""
    before = time.time_ns() // 1_000_000
    minted = new_span_id()
    after = time.time_ns() // 1_000_000
    assert before <= int(minted[:12], 16) <= after


def test_ids_are_unique_across_threads() -> None:
    """Eight threads minting at once never produce the same id."""

    def mint(_: int) -> list[str]:
        return [new_span_id() for _ in range(20_000)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        batches = list(pool.map(mint, range(8)))
    minted = [one for batch in batches for one in batch]
    assert len(set(minted)) == len(minted) == 160_000
    assert all(batch == sorted(batch) for batch in batches)


def test_minting_makes_no_system_call_for_randomness(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the generator is seeded, minting never reads os.urandom (or anything built on it)."""

    def refuse(_: int) -> bytes:
        raise AssertionError("os.urandom called while minting an id")

    monkeypatch.setattr(os, "urandom", refuse)
    minted = [new_span_id() for _ in range(1_000)] + [new_trace_id() for _ in range(1_000)]
    assert len(set(minted)) == 2_000


def test_a_forked_child_gets_other_process_bits() -> None:
    """After a fork the child re-seeds, so parent and child never share process bits."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.write(writer, new_span_id().encode())
        os._exit(0)
    os.close(writer)
    child = os.read(reader, 64).decode()
    os.close(reader)
    os.waitpid(pid, 0)
    parent = new_span_id()
    assert uuid.UUID(hex=child).version == 7
    assert (child[13:16], child[-8:]) != (parent[13:16], parent[-8:])


def test_reseeding_changes_the_process_bits() -> None:
    """The fork hook draws new process bits (what keeps a forked child apart from its parent)."""
    first = new_span_id()
    ids._reseed()
    second = new_span_id()
    assert (first[13:16], first[-8:]) != (second[13:16], second[-8:])
