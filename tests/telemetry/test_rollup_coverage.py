"""Rollup coverage (migration 0008): ``source="auto"``, the activities' default, reads rollups
on a database new at 0008 and on rebuilt graphs, and raw spans where older telemetry may lack
rollups; on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection

from activities.deps import ActivityDeps
from spark.db import normalize_url
from spark.migrations import runner
from spark.telemetry import RunTelemetry, TelemetryStore, rollups, sealing
from spark.telemetry.aggregates import NodeStats
from spark.telemetry.rollups import BUCKET_SECONDS as BUCKET
from spark.telemetry.sketch import RELATIVE_ACCURACY
from tests.telemetry import factories
from tests.telemetry.factories import T0

NODES = ("fetch", "rank")


def _runs(graph_id: str, count: int, seed: int, first_bucket: int = 0) -> list[RunTelemetry]:
    """Runs of ``graph_id`` over three buckets from ``first_bucket`` on, with lognormal span
    latencies and some errors."""
    rng = random.Random(seed)
    runs = []
    for _ in range(count):
        started_at = T0 + (first_bucket + rng.uniform(0, 3)) * BUCKET
        parent = factories.trace(graph_id=graph_id, started_at=started_at)
        spans = [
            factories.span(
                parent,
                node,
                duration_ms=rng.lognormvariate(3, 1),
                status="error" if rng.random() < 0.1 else "ok",
                error_type="Timeout",
                cost=rng.uniform(0, 0.01),
            )
            for node in NODES
        ]
        runs.append(RunTelemetry(parent, spans))
    return runs


def _write_without_rollups(store: TelemetryStore, runs: list[RunTelemetry]) -> None:
    """Store runs the way Spark did before migration 0006: raw rows, no rollup update."""
    original = sealing.mark_pending
    sealing.mark_pending = lambda *args, **kwargs: None
    try:
        store.write_runs(runs)
    finally:
        sealing.mark_pending = original


@contextmanager
def _transaction(url: str) -> Iterator[Connection]:
    """A committed transaction on an engine of its own (as the migration tests use)."""
    engine = create_engine(normalize_url(url))
    try:
        with engine.begin() as connection:
            yield connection
    finally:
        engine.dispose()


def _migrate_as_an_older_database(url: str) -> None:
    """Take the schema back before 0008 and up again: 0008 now runs on a database that
    already holds telemetry, as it does when an existing installation upgrades."""
    with _transaction(url) as connection:
        runner.downgrade(connection, "0007")
    with _transaction(url) as connection:
        runner.upgrade(connection)


def _assert_within_tolerance(rolled: list[NodeStats], exact: list[NodeStats]) -> None:
    """Counts, errors and sums equal; percentiles within the sketch's relative accuracy."""
    assert [s.node_id for s in rolled] == [s.node_id for s in exact]
    for r, e in zip(rolled, exact, strict=True):
        assert (r.count, r.error_count, r.error_types) == (e.count, e.error_count, e.error_types)
        assert (r.mean_ms, r.total_cost) == pytest.approx((e.mean_ms, e.total_cost), rel=1e-9)
        for name in ("p50_ms", "p95_ms", "p99_ms"):
            assert getattr(r, name) == pytest.approx(getattr(e, name), rel=RELATIVE_ACCURACY * 2)


def test_new_database_reads_rollups_by_default(database_url: str) -> None:
    """On a database created at the head, the activities' default source reads the rollups
    (sketch percentiles, so not the exact result), which agree with the exact query."""
    deps = ActivityDeps.from_database_url(database_url)
    store = deps.telemetry
    store.write_runs(_runs("g", 300, seed=1))

    exact = store.node_stats("g", source="exact")
    rolled = store.node_stats("g", source="rollups")
    assert deps.stats_source == "auto"
    assert store.rollups_complete("g")
    assert rolled != exact  # sketch percentiles: equality below says which source was read
    assert store.node_stats("g", source=deps.stats_source) == rolled
    _assert_within_tolerance(rolled, exact)
    assert store.arm_moments("g", source="auto") == store.arm_moments("g", source="rollups")


def test_older_telemetry_reads_exact_until_its_graph_is_rebuilt(database_url: str) -> None:
    """Telemetry stored before the rollups existed, then migrated: ``auto`` reads raw spans
    (the rollups miss those runs) until ``rebuild_rollups`` marks the graph complete, then
    the rollups, equal to the exact result within tolerance; other graphs stay exact."""
    store = TelemetryStore(database_url)
    _write_without_rollups(store, _runs("g", 200, seed=2) + _runs("h", 50, seed=3))
    _migrate_as_an_older_database(database_url)
    store = TelemetryStore(database_url)
    later = _runs("g", 100, seed=4, first_bucket=4)  # written after 0008, in later buckets
    store.write_runs(later)
    starts = [span.started_at for run in later for span in run.spans]
    starts += [run.trace.started_at for run in later]
    buckets = {rollups.bucket_of(started_at) for started_at in starts}
    assert store.seal_rollups().units == len(buckets)  # only theirs: the older have no rollups

    exact = store.node_stats("g", source="exact")
    assert not store.rollups_complete("g")
    assert sum(s.count for s in exact) == 300 * len(NODES)
    assert sum(s.count for s in store.node_stats("g", source="rollups")) == 100 * len(NODES)
    assert store.node_stats("g", source="auto") == exact
    assert store.arm_moments("g", source="auto") == store.arm_moments("g", source="exact")

    assert store.rebuild_rollups("g") > 0
    rolled = store.node_stats("g", source="rollups")
    assert rolled != exact
    for reader in (store, TelemetryStore(database_url)):  # this process, and a fresh one
        assert reader.rollups_complete("g")
        assert reader.node_stats("g", source="auto") == rolled
        assert not reader.rollups_complete("h")
        assert reader.node_stats("h", source="auto") == reader.node_stats("h", source="exact")
    _assert_within_tolerance(rolled, exact)
    store.rebuild_rollups("g")  # a second rebuild keeps the graph marked
    assert TelemetryStore(database_url).rollups_complete("g")


def test_coverage_row_is_what_auto_trusts(database_url: str) -> None:
    """A new database holds exactly the database-wide coverage row, and ``auto`` trusts only
    that table: with the row deleted, a store that looks again reads exact."""
    store = TelemetryStore(database_url)
    store.write_runs(_runs("g", 20, seed=5))
    with _transaction(database_url) as connection:
        marked = connection.execute(text("SELECT graph_id FROM spark_rollup_coverage")).all()
        connection.execute(text("DELETE FROM spark_rollup_coverage"))
    assert [tuple(row) for row in marked] == [(rollups.WHOLE_DATABASE,)]
    fresh = TelemetryStore(database_url)
    assert not fresh.rollups_complete("g")
    assert fresh.node_stats("g", source="auto") == fresh.node_stats("g", source="exact")
