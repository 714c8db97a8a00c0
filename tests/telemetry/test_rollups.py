"""Rollups against the exact queries over raw spans, on SQLite and PostgreSQL, after random
batched writes that include retried (duplicate) and partly stored batches."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

import pytest
from sqlalchemy import text

from spark.db import get_engine
from spark.rsi.analysis import analyze
from spark.telemetry import (
    RunTelemetry,
    SpanRecord,
    TelemetryStore,
    TraceRecord,
    _bulk,
    rollups,
    sealing,
)
from spark.telemetry.aggregates import NodeStats
from spark.telemetry.rollups import BUCKET_SECONDS as BUCKET
from spark.telemetry.sketch import RELATIVE_ACCURACY
from tests.rsi.builders import edge, make_spec, node
from tests.telemetry import factories
from tests.telemetry.factories import T0

NODES = ("fetch", "rank", "summarise")
ERRORS = ("Timeout", "RateLimited", None)


def _runs(rng: random.Random, count: int) -> list[RunTelemetry]:
    """Runs over two versions and arms, six buckets of start times, skewed latencies."""
    runs = []
    for _ in range(count):
        failed = rng.random() < 0.1
        parent = factories.trace(
            version_id=rng.choice(("v1", "v2")),
            routing_arm=rng.choice(("active", "candidate")),
            started_at=T0 + rng.uniform(0, 6 * BUCKET),
            duration_ms=rng.lognormvariate(5, 1),
            status="error" if failed else "ok",
            cost=rng.uniform(0, 0.01),
            quality=rng.choice((None, rng.random())),
        )
        runs.append(RunTelemetry(parent, [_span(rng, parent, node) for node in NODES]))
    return runs


def _span(rng: random.Random, parent: TraceRecord, node: str) -> SpanRecord:
    status = rng.choices(("ok", "error", "skipped"), weights=(80, 12, 8))[0]
    return factories.span(
        parent,
        node,
        started_at=parent.started_at + rng.uniform(0, 0.5),
        duration_ms=rng.lognormvariate(3, 1.2) if rng.random() > 0.02 else 0.0,
        status=status,
        error_type=rng.choice(ERRORS) if status == "error" else None,
        attempts=rng.randint(1, 3),
        cache_hit=rng.random() < 0.3,
        tokens=rng.randint(0, 500),
        cost=rng.uniform(0, 0.002),
        input_fingerprint=rng.choice((None, f"fp{rng.randint(0, 40)}")),
    )


def _write_with_retries(store: TelemetryStore, runs: list[RunTelemetry]) -> None:
    """Random batches; some sent twice (a retry), some overlapping the previous batch."""
    rng = random.Random(5)
    start, previous = 0, list[RunTelemetry]()
    while start < len(runs):
        batch = runs[start : start + rng.randint(1, 40)]
        start += len(batch)
        overlap = previous[: rng.randint(0, len(previous))] if rng.random() < 0.3 else []
        store.write_runs(overlap + batch)
        if rng.random() < 0.3:
            store.write_runs(batch)
        previous = batch


@pytest.fixture
def store(database_url: str) -> TelemetryStore:
    """A store holding 600 random runs written in retried and overlapping batches, every unit
    sealed (the buckets lie in the past: ``seal_rollups`` with the clock seals them all)."""
    store = TelemetryStore(database_url)
    _write_with_retries(store, _runs(random.Random(11), 600))
    sealed = store.seal_rollups()
    assert sealed.units == 2 * 7 and sealed.rows > 0  # two versions, up to seven hourly buckets
    return store


def _assert_matches(rolled: list[NodeStats], exact: list[NodeStats]) -> None:
    assert [s.node_id for s in rolled] == [s.node_id for s in exact]
    for r, e in zip(rolled, exact, strict=True):
        assert (r.count, r.error_count, r.error_types) == (e.count, e.error_count, e.error_types)
        assert r.total_tokens == e.total_tokens
        for name in ("mean_ms", "total_cost", "mean_cost", "mean_attempts", "cache_hit_rate"):
            assert getattr(r, name) == pytest.approx(getattr(e, name), rel=1e-9), name
        assert r.distinct_input_ratio == pytest.approx(e.distinct_input_ratio, rel=1e-9)


def _lower_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


@pytest.mark.parametrize(
    ("version_id", "since", "until"),
    [
        (None, None, None),
        ("v1", None, None),
        ("v2", T0 + 0.95 * BUCKET, None),
        (None, T0 + 0.17 * BUCKET, T0 + 4.33 * BUCKET),
        ("v1", T0 + 1.3 * BUCKET, T0 + 1.5 * BUCKET),  # inside one bucket: raw rows only
    ],
)
def test_node_stats_from_rollups_equal_exact(
    store: TelemetryStore, version_id: str | None, since: float | None, until: float | None
) -> None:
    """Counts, errors, error types, sums and means from rollups equal the exact query's, for
    whole-graph, one-version and unaligned windows, though batches were retried."""
    exact = store.node_stats("g", version_id, since, until)
    rolled = store.node_stats("g", version_id, since, until, source="rollups")
    assert exact and sum(s.count for s in exact) > 0
    _assert_matches(rolled, exact)


def test_rollup_percentiles_within_sketch_error(store: TelemetryStore, database_url: str) -> None:
    """Each node's p50/p95/p99 and every quantile of its latency profile from rollups is within
    1% of the exact value at that rank."""
    query = "SELECT node_id, duration_ms FROM spark_spans WHERE status <> 'skipped'"
    with get_engine(database_url).connect() as conn:
        rows = conn.execute(text(query)).all()
    by_node: dict[str, list[float]] = {}
    for node_id, duration in rows:
        by_node.setdefault(node_id, []).append(duration)
    for stats in store.node_stats("g", source="rollups"):
        named = ((0.5, stats.p50_ms), (0.95, stats.p95_ms), (0.99, stats.p99_ms))
        assert len(stats.latency_quantiles) == 8
        for q, value in named + stats.latency_quantiles:
            exact = _lower_rank(by_node[stats.node_id], q)
            assert abs(value - exact) <= RELATIVE_ACCURACY * exact


def test_whole_run_rollups_equal_arm_moments(store: TelemetryStore, database_url: str) -> None:
    """Whole-run rollup rows (node '') sum to the exact per-arm moments of the stored traces."""
    query = """SELECT routing_arm, sum(n), sum(errors), sum(lat_sum), sum(lat_sq), sum(log_sum),
                      sum(cost_sq), sum(err_lat), sum(lat_cost), sum(quality_n), sum(weight)
               FROM spark_rollups WHERE node_id = '' GROUP BY routing_arm"""
    with get_engine(database_url).connect() as conn:
        totals = {row[0]: row[1:] for row in conn.execute(text(query))}
    assert set(totals) == {"active", "candidate"}
    for arm, (
        n,
        errors,
        lat,
        lat_sq,
        log_sum,
        cost_sq,
        err_lat,
        lat_cost,
        q_n,
        weight,
    ) in totals.items():
        m = store.arm_moments("g", routing_arm=arm)
        assert (n, errors, q_n) == (m.runs, m.errors, m.quality.count)
        assert weight == pytest.approx(m.runs)
        expected = (m.latency.sum, m.latency.sum_squares, m.log_latency.sum, m.cost.sum_squares)
        assert (lat, lat_sq, log_sum, cost_sq) == pytest.approx(expected, rel=1e-9)
        assert (err_lat, lat_cost) == pytest.approx((m.error_latency, m.latency_cost), rel=1e-9)


def test_a_retried_batch_adds_nothing(database_url: str) -> None:
    """Writing the same batch again, or a batch half of which is stored, counts each span once."""
    store = TelemetryStore(database_url)
    runs = [factories.run(n_spans=2) for _ in range(6)]
    store.write_runs(runs[:4])
    store.write_runs(runs[:4])
    store.seal_rollups(now=math.inf)
    store.write_runs(runs[2:])  # after the seal: the unit is recomputed, not added to
    store.seal_rollups(now=math.inf)
    rolled = store.node_stats("g", source="rollups")
    assert [(s.node_id, s.count) for s in rolled] == [("n0", 6), ("n1", 6)]
    assert rolled == store.node_stats("g", source="rollups")


def test_rebuild_recomputes_rollups_of_telemetry_stored_without_them(database_url: str) -> None:
    """Telemetry stored with no rollup update (as before migration 0006) reads back right from
    rollups once rebuilt, and rebuilding twice changes nothing."""
    store = TelemetryStore(database_url)
    original = sealing.mark_pending
    sealing.mark_pending = lambda *args, **kwargs: None
    try:
        _write_with_retries(store, _runs(random.Random(2), 200))
    finally:
        sealing.mark_pending = original
    assert store.node_stats("g", source="rollups") == []
    assert store.rebuild_rollups("g") > 0
    rebuilt = store.node_stats("g", source="rollups")
    _assert_matches(rebuilt, store.node_stats("g"))
    store.rebuild_rollups("g")
    assert store.node_stats("g", source="rollups") == rebuilt


def test_purge_drops_the_buckets_before_the_cutoff(store: TelemetryStore) -> None:
    """After a purge at a bucket boundary, rollups still equal the exact query."""
    store.purge_older_than(rollups.bucket_of(T0) + 3 * BUCKET)
    _assert_matches(store.node_stats("g", source="rollups"), store.node_stats("g"))


def test_analysis_from_rollups_finds_what_the_exact_analysis_finds(store: TelemetryStore) -> None:
    """The diagnostic report built on rollup node statistics names the same bottlenecks, kinds
    and severities as the one built on the exact query, metric values within sketch error."""
    spec = make_spec(
        [
            node("fetch", ["request"], ["doc"]),
            node("rank", ["doc"], ["ranked"]),
            node("summarise", ["ranked"], ["answer"]),
        ],
        [edge("fetch", "rank"), edge("rank", "summarise")],
        graph_id="g",
    )
    version = store.version_stats("g", "v1")
    exact = analyze(spec, store.node_stats("g", "v1"), version, min_traces=10)
    rolled = analyze(spec, store.node_stats("g", "v1", source="rollups"), version, min_traces=10)
    assert exact.bottlenecks
    assert [(b.node_id, b.kind, b.severity) for b in rolled.bottlenecks] == [
        (b.node_id, b.kind, b.severity) for b in exact.bottlenecks
    ]
    for r, e in zip(rolled.bottlenecks, exact.bottlenecks, strict=True):
        assert r.metric_value == pytest.approx(e.metric_value, rel=0.05)


@pytest.mark.parametrize(
    ("version_id", "arm", "since", "until"),
    [
        (None, None, None, None),
        ("v1", "candidate", None, None),
        ("v2", "active", T0 + 0.95 * BUCKET, None),
        ("v1", "active", T0 + 0.17 * BUCKET, T0 + 4.33 * BUCKET),
        ("v2", "candidate", T0 + 2.2 * BUCKET, T0 + 2.6 * BUCKET),
    ],
)
def test_arm_moments_from_rollups_equal_exact(
    store: TelemetryStore,
    version_id: str | None,
    arm: str | None,
    since: float | None,
    until: float | None,
) -> None:
    """An A/B look's moments from rollups equal the exact ones, feedback replacing the own
    quality of the traces it scores, for any window edges."""
    rng = random.Random(9)
    with get_engine(store.database_url).connect() as conn:
        trace_ids = [row[0] for row in conn.execute(text("SELECT trace_id FROM spark_traces"))]
    for trace_id in rng.sample(trace_ids, 150):
        store.add_feedback(trace_id, rng.random())
    exact = store.arm_moments("g", version_id, since, until, arm)
    rolled = store.arm_moments("g", version_id, since, until, arm, "rollups")
    assert exact.runs > 0 and exact.quality.count > 0
    assert (rolled.runs, rolled.errors) == (exact.runs, exact.errors)
    assert rolled.quality.count == exact.quality.count
    for name in ("log_latency", "latency", "cost", "quality"):
        r, e = getattr(rolled, name), getattr(exact, name)
        assert r.count == e.count, name
        assert (r.sum, r.sum_squares) == pytest.approx((e.sum, e.sum_squares), rel=1e-9), name
    for name in ("error_latency", "error_cost", "latency_cost"):
        assert getattr(rolled, name) == pytest.approx(getattr(exact, name), rel=1e-9), name


def test_batch_rollups_equal_per_key_summaries() -> None:
    """The vectorised write-path rollups of a batch equal ``summarise`` of each key's rows:
    same sums, first and last start, error types and sketch bins."""
    runs = _runs(random.Random(4), 300)
    arms = {run.trace.trace_id: run.trace.routing_arm for run in runs}
    for rows, names, is_node in (
        (_bulk.span_rows(runs), _bulk.SPAN_COLUMNS, True),
        (_bulk.trace_rows(runs), _bulk.TRACE_COLUMNS, False),
    ):
        batch = rollups.group_rows(rows, names, arms, is_node)
        by_key: dict[rollups.Key, list[tuple[object, ...]]] = {}
        for key, row in _keyed(rows, names, arms, is_node):
            by_key.setdefault(key, []).append(tuple(row))
        assert batch.keys() == by_key.keys() and len(batch) > 10
        for key, group in by_key.items():
            one = rollups.summarise(rollups._columns(names, group))
            got = batch[key]
            assert got.sums == pytest.approx(one.sums, rel=1e-12, abs=1e-12), key
            assert (got.first_at, got.last_at, got.error_types) == (
                one.first_at,
                one.last_at,
                one.error_types,
            )
            assert (got.latency.zero, got.latency.offset) == (one.latency.zero, one.latency.offset)
            assert got.latency.counts.tolist() == one.latency.counts.tolist()
            assert got.inputs.hashes.tolist() == one.inputs.hashes.tolist()


def _keyed(
    rows: list[tuple[object, ...]], names: tuple[str, ...], arms: Mapping[str, str], node: bool
) -> list[tuple[rollups.Key, tuple[object, ...]]]:
    """The key rule written out row by row (the oracle of the column-wise ``group_rows``): a
    span's key is its graph, version, node, its trace's arm and bucket; skipped spans have none;
    a trace's key has node ``''`` and its own arm."""
    keyed: list[tuple[rollups.Key, tuple[object, ...]]] = []
    for row in rows:
        value = {name: str(cell) for name, cell in zip(names, row, strict=True)}
        bucket = rollups.bucket_of(float(value["started_at"]))
        graph_version = (value["graph_id"], value["version_id"])
        if not node:
            keyed.append(((*graph_version, "", value["routing_arm"], bucket), row))
        elif value["status"] != "skipped":
            arm = arms.get(value["trace_id"], "direct")
            keyed.append(((*graph_version, value["node_id"], arm, bucket), row))
    return keyed
