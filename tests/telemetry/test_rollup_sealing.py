"""Sealed rollups (``spark.telemetry.sealing``): writes only mark units pending, reads take
pending units from raw rows, the sealer recomputes a unit once its bucket has closed, and a late
row re-opens its unit; on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import threading
import time

import pytest
from sqlalchemy import text

from spark.db import get_engine
from spark.telemetry import RunTelemetry, TelemetryStore, rollups, sealing
from spark.telemetry.rollups import BUCKET_SECONDS as BUCKET
from tests.telemetry import factories
from tests.telemetry.factories import T0

BUCKET_START = rollups.bucket_of(T0)


def _runs(count: int, at: float, version_id: str = "v1") -> list[RunTelemetry]:
    return [
        factories.run(n_spans=2, started_at=at + i, version_id=version_id, duration_ms=10.0 + i)
        for i in range(count)
    ]


def _count(store: TelemetryStore, table: str) -> int:
    with get_engine(store.database_url).connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def _pending(store: TelemetryStore) -> set[sealing.Unit]:
    sql = f"SELECT graph_id, version_id, bucket_start FROM {rollups.PENDING_TABLE}"
    with get_engine(store.database_url).connect() as conn:
        return {(g, v, float(b)) for g, v, b in conn.execute(text(sql))}


def test_a_write_marks_its_units_and_computes_no_rollup(database_url: str) -> None:
    """A batch over two buckets and two versions stores raw rows and four pending units, no
    rollup row; reads from rollups then equal the exact query (the pending units are raw)."""
    store = TelemetryStore(database_url)
    store.write_runs(_runs(3, T0) + _runs(3, BUCKET_START + BUCKET, "v2"))
    assert _count(store, rollups.TABLE) == 0
    assert _pending(store) == {("g", "v1", BUCKET_START), ("g", "v2", BUCKET_START + BUCKET)}
    rolled, exact = store.node_stats("g", source="rollups"), store.node_stats("g")
    assert [(s.node_id, s.count, s.mean_ms) for s in rolled] == [
        (s.node_id, s.count, s.mean_ms) for s in exact
    ]
    assert store.arm_moments("g", source="rollups").runs == 6


def test_marking_units_already_pending_adds_only_the_new_ones(database_url: str) -> None:
    """Marking a batch's units keeps one pending row per unit: those pending already are left
    as they are, the new ones are added, in the same transaction as the batch."""
    store = TelemetryStore(database_url)
    first, second = ("g", "v1", BUCKET_START), ("g", "v1", BUCKET_START + BUCKET)
    with store._raw_transaction() as connection:
        sealing.mark_pending(connection, store.is_postgres, [first])
    with store._raw_transaction() as connection:
        sealing.mark_pending(connection, store.is_postgres, [first, second])
        sealing.mark_pending(connection, store.is_postgres, [first, second])
    assert _pending(store) == {first, second}
    assert _count(store, rollups.PENDING_TABLE) == 2


def test_a_unit_is_sealed_only_after_its_grace_period(database_url: str) -> None:
    store = TelemetryStore(database_url)
    store.write_runs(_runs(4, T0))
    closed = BUCKET_START + BUCKET + sealing.SEAL_GRACE_S
    assert store.seal_rollups(now=closed - 1).units == 0
    assert _pending(store) == {("g", "v1", BUCKET_START)}
    sealed = store.seal_rollups(now=closed)
    assert (sealed.units, sealed.rows) == (1, 3)  # nodes n0, n1 and the whole run
    assert _pending(store) == set()
    rolled = store.node_stats("g", source="rollups")
    assert [(s.node_id, s.count) for s in rolled] == [("n0", 4), ("n1", 4)]


def test_a_late_row_reopens_its_sealed_unit(database_url: str) -> None:
    """Rows written into a sealed bucket are read raw with the whole unit until it is sealed
    again, and then counted once in its recomputed rollups."""
    store = TelemetryStore(database_url)
    store.write_runs(_runs(4, T0))
    store.seal_rollups()
    store.write_runs(_runs(2, T0 + 100))
    assert _pending(store) == {("g", "v1", BUCKET_START)}
    assert [s.count for s in store.node_stats("g", source="rollups")] == [6, 6]
    assert store.arm_moments("g", source="rollups").runs == 6
    assert store.seal_rollups().units == 1
    with get_engine(database_url).connect() as conn:
        sql = f"SELECT node_id, n FROM {rollups.TABLE}"
        counts = {str(node): int(n) for node, n in conn.execute(text(sql))}
    assert counts == {"": 6, "n0": 6, "n1": 6}


def test_writes_seal_due_units_on_their_own(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the check interval elapsed, ``write_runs`` seals the closed units it finds."""
    monkeypatch.setattr(sealing, "SEAL_CHECK_INTERVAL_S", 0.0)
    store = TelemetryStore(database_url)
    store.write_runs(_runs(3, T0))  # a bucket closed long ago
    store.wait_for_sealer(timeout=60)
    assert _pending(store) == set()
    assert _count(store, rollups.TABLE) == 3
    now = time.time()
    store.write_runs(_runs(3, now))  # the current bucket: still open
    store.wait_for_sealer(timeout=60)
    assert _pending(store) == {("g", "v1", rollups.bucket_of(now))}


def test_a_write_during_a_seal_waits_and_reopens_the_unit(
    database_url: str, postgres_database_url: str
) -> None:
    """PostgreSQL: a batch into a unit being sealed waits for the seal's lock, then marks the
    unit pending again, so its rows are read raw and counted by the next seal."""
    if database_url != postgres_database_url:
        pytest.skip("SQLite has one writer at a time: a write cannot overlap a seal")
    store = TelemetryStore(database_url)
    store.write_runs(_runs(4, T0))
    unit = ("g", "v1", BUCKET_START)
    writer = threading.Thread(target=store.write_runs, args=(_runs(2, T0 + 50),))
    with store._raw_transaction() as connection:
        assert sealing.seal_units(connection, True, [unit]) == (1, 3)
        writer.start()
        _wait_for_a_blocked_advisory_lock(store)
        assert writer.is_alive()
    writer.join(timeout=30)
    assert not writer.is_alive()
    assert _pending(store) == {unit}
    assert [s.count for s in store.node_stats("g", source="rollups")] == [6, 6]
    store.seal_rollups(now=math.inf)
    assert [s.count for s in store.node_stats("g", source="rollups")] == [6, 6]
    assert _pending(store) == set()


def _wait_for_a_blocked_advisory_lock(store: TelemetryStore) -> None:
    """Until some session waits for an advisory lock (the writer, on the sealer's)."""
    sql = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    deadline = time.monotonic() + 30
    with get_engine(store.database_url).connect() as conn:
        while conn.execute(text(sql)).scalar_one() == 0:
            assert time.monotonic() < deadline, "the writer never waited for the seal's lock"
            time.sleep(0.02)
            conn.rollback()


def test_a_span_in_the_bucket_after_its_trace_keeps_the_trace_arm(database_url: str) -> None:
    """A run going on across a bucket's start: its span's rollup row carries the routing arm
    of its trace, which was stored in the bucket before."""
    store = TelemetryStore(database_url)
    edge = BUCKET_START + BUCKET
    parent = factories.trace(started_at=edge - 0.1, routing_arm="candidate")
    store.write_runs([RunTelemetry(parent, [factories.span(parent, "n0", started_at=edge + 0.2)])])
    assert store.seal_rollups().units == 2
    sql = f"SELECT node_id, routing_arm, bucket_start FROM {rollups.TABLE} ORDER BY node_id"
    with get_engine(database_url).connect() as conn:
        rows = [tuple(row) for row in conn.execute(text(sql))]
    assert rows == [("", "candidate", BUCKET_START), ("n0", "candidate", edge)]


def test_a_span_days_after_its_trace_keeps_the_trace_arm(database_url: str) -> None:
    """A run going on for two days (its trace outside the day before the span's bucket, where
    the sealer looks first): its span still carries the trace's routing arm."""
    store = TelemetryStore(database_url)
    parent = factories.trace(started_at=BUCKET_START - 2 * 86_400, routing_arm="candidate")
    store.write_runs(
        [RunTelemetry(parent, [factories.span(parent, "n0", started_at=BUCKET_START)])]
    )
    store.seal_rollups()
    sql = f"SELECT routing_arm FROM {rollups.TABLE} WHERE node_id = 'n0'"
    with get_engine(database_url).connect() as conn:
        assert conn.execute(text(sql)).scalar_one() == "candidate"
