"""SQL aggregations of the telemetry store, checked against numpy on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from spark.rsi.online import moments_of
from spark.telemetry import RunTelemetry, TelemetryStore
from spark.telemetry._queries import LATENCY_PROFILE, interpolate, parse_percentiles
from tests.telemetry import factories
from tests.telemetry.factories import T0

QUANTILES = [50, 95, 99]


def _spans_run(
    durations: list[float], node_id: str = "a", **trace_overrides: object
) -> RunTelemetry:
    parent = factories.trace(**trace_overrides)
    spans = [factories.span(parent, node_id, duration_ms=d) for d in durations]
    return RunTelemetry(parent, spans)


@pytest.mark.parametrize("size", [1, 2, 3, 10, 101])
def test_interpolate_matches_numpy_linear_percentiles(size: int) -> None:
    """The SQLite percentile helper equals numpy's default (linear) method, as percentile_cont."""
    values = sorted(np.random.default_rng(size).exponential(50, size).tolist())
    ours = [interpolate(values, q / 100) for q in QUANTILES]
    assert ours == pytest.approx(np.percentile(values, QUANTILES).tolist(), rel=1e-12)


def test_parse_percentiles_reads_both_dialects_and_no_rows() -> None:
    """Text from SQLite, arrays from PostgreSQL and NULL (no rows) all parse to three floats."""
    assert parse_percentiles("1.5 2.0 3.25") == (1.5, 2.0, 3.25)
    assert parse_percentiles([1, 2, 3]) == (1.0, 2.0, 3.0)
    assert parse_percentiles(None) == (0.0, 0.0, 0.0)


def test_node_stats_percentiles_match_numpy(database_url: str) -> None:
    """Count, mean, exact p50/p95/p99 and the latency profile per node equal numpy's, skipped
    spans excluded."""
    rng = np.random.default_rng(7)
    a, b = rng.lognormal(3, 1, 300).tolist(), rng.uniform(1, 9, 41).tolist()
    runs = [_spans_run(a[i : i + 30]) for i in range(0, 300, 30)] + [_spans_run(b, node_id="b")]
    skipped = factories.span(runs[0].trace, "a", status="skipped", duration_ms=1e9)
    runs[0].spans.append(skipped)
    store = TelemetryStore(database_url)
    store.write_runs(runs)
    stats = {s.node_id: s for s in store.node_stats("g")}
    for node, values in (("a", a), ("b", b)):
        got = stats[node]
        assert got.count == len(values)
        assert got.mean_ms == pytest.approx(float(np.mean(values)), rel=1e-9)
        expected = np.percentile(values, QUANTILES).tolist()
        assert [got.p50_ms, got.p95_ms, got.p99_ms] == pytest.approx(expected, rel=1e-9)
        levels = [q for q, _ in got.latency_quantiles]
        assert levels == list(LATENCY_PROFILE)
        profile = np.percentile(values, [100 * q for q in LATENCY_PROFILE]).tolist()
        assert [ms for _, ms in got.latency_quantiles] == pytest.approx(profile, rel=1e-9)


def test_node_stats_error_rate_and_error_types(database_url: str) -> None:
    """Errors are counted per node and broken down by type; an untyped error is 'unknown'."""
    parent = factories.trace()
    statuses = [("ok", None)] * 6 + [("error", "Timeout")] * 3 + [("error", None)]
    spans = [factories.span(parent, "a", status=s, error_type=e) for s, e in statuses]
    store = TelemetryStore(database_url)
    store.write_runs([RunTelemetry(parent, spans)])
    (stats,) = store.node_stats("g", "v1")
    assert (stats.count, stats.error_count, stats.error_rate) == (10, 4, 0.4)
    assert stats.error_types == {"Timeout": 3, "unknown": 1}


def test_node_stats_distinct_input_ratio(database_url: str) -> None:
    """The ratio counts distinct fingerprints over fingerprinted spans; none at all gives 1.0."""
    parent = factories.trace()
    prints = ["x", "x", "x", "y", None]
    spans = [factories.span(parent, "a", input_fingerprint=p) for p in prints]
    spans.append(factories.span(parent, "b"))
    store = TelemetryStore(database_url)
    store.write_runs([RunTelemetry(parent, spans)])
    stats = {s.node_id: s for s in store.node_stats("g")}
    assert stats["a"].distinct_input_ratio == pytest.approx(2 / 4)
    assert stats["b"].distinct_input_ratio == 1.0


def test_node_stats_cost_tokens_attempts_and_cache(database_url: str) -> None:
    """Cost, tokens, attempts and cache hits are summed and averaged per node."""
    parent = factories.trace()
    spans = [
        factories.span(parent, "a", cost=0.5, tokens=100, attempts=1, cache_hit=True),
        factories.span(parent, "a", cost=1.5, tokens=300, attempts=3, cache_hit=False),
    ]
    store = TelemetryStore(database_url)
    store.write_runs([RunTelemetry(parent, spans)])
    (stats,) = store.node_stats("g")
    assert (stats.total_cost, stats.mean_cost, stats.total_tokens) == (2.0, 1.0, 400)
    assert (stats.mean_attempts, stats.cache_hit_rate) == (2.0, 0.5)


def test_node_stats_window_selects_graph_version_and_time(database_url: str) -> None:
    """Only spans of the graph, version and [since, until) range are aggregated."""
    store = TelemetryStore(database_url)
    store.write_runs(
        [
            _spans_run([1.0], started_at=T0),
            _spans_run([2.0, 2.0], started_at=T0 + 10),
            _spans_run([3.0], started_at=T0 + 20),
            _spans_run([4.0], version_id="v2", started_at=T0 + 10),
            _spans_run([5.0], graph_id="other", started_at=T0 + 10),
        ]
    )
    since = datetime.fromtimestamp(T0 + 10, tz=UTC)
    (stats,) = store.node_stats("g", "v1", since=since, until=T0 + 20)
    assert (stats.count, stats.mean_ms, stats.version_id) == (2, 2.0, "v1")
    assert [s.count for s in store.node_stats("g")] == [5]
    assert store.node_stats("missing") == []


def test_version_stats_quality_prefers_feedback_over_trace_quality(database_url: str) -> None:
    """Quality per trace is its mean feedback score, else its own quality; unscored traces skip."""
    rated = factories.trace(quality=0.2, duration_ms=10.0, started_at=T0)
    self_scored = factories.trace(quality=0.4, duration_ms=20.0, status="error", started_at=T0 + 1)
    unscored = factories.trace(duration_ms=60.0, cost=3.0, started_at=T0 + 2)
    store = TelemetryStore(database_url)
    store.write_runs([RunTelemetry(t) for t in (rated, self_scored, unscored)])
    store.add_feedback(rated.trace_id, 1.0)
    store.add_feedback(rated.trace_id, 0.5)
    stats = store.version_stats("g", "v1")
    assert (stats.count, stats.error_count, stats.error_rate) == (3, 1, pytest.approx(1 / 3))
    assert (stats.mean_quality, stats.quality_count) == (pytest.approx((0.75 + 0.4) / 2), 2)
    assert [stats.mean_ms, stats.mean_cost] == pytest.approx([30.0, 1.0])
    assert stats.mean_ok_ms == pytest.approx(35.0)  # the failed 20 ms run left out
    expected = np.percentile([10.0, 20.0, 60.0], QUANTILES).tolist()
    assert [stats.p50_ms, stats.p95_ms, stats.p99_ms] == pytest.approx(expected)
    assert (stats.first_started_at, stats.last_started_at) == (T0, T0 + 2)


def test_version_stats_filters_by_routing_arm_and_handles_no_traces(database_url: str) -> None:
    """The arm filter narrows the traces; an empty window gives zero counts and no quality."""
    store = TelemetryStore(database_url)
    store.write_runs([factories.run(0, routing_arm=arm) for arm in ("active", "candidate")])
    assert store.version_stats("g", routing_arm="candidate").count == 1
    empty = store.version_stats("g", "v9")
    assert (empty.count, empty.error_rate, empty.p99_ms, empty.mean_quality) == (0, 0.0, 0.0, None)
    assert empty.mean_ok_ms is None


def test_trace_metrics_are_oldest_first_and_limit_keeps_the_newest(database_url: str) -> None:
    """Arrays run oldest to newest, aligned per trace; a limit keeps the most recent traces."""
    traces = [
        factories.trace(started_at=T0 + i, duration_ms=float(i), status="error" if i == 3 else "ok")
        for i in (4, 1, 3, 2, 0)
    ]
    store = TelemetryStore(database_url)
    store.write_runs([RunTelemetry(t) for t in traces])
    store.add_feedback(traces[0].trace_id, 0.9)
    metrics = store.trace_metrics("g", "v1")
    assert metrics.latency_ms == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert metrics.error == [0.0, 0.0, 0.0, 1.0, 0.0]
    assert metrics.quality == [None, None, None, None, 0.9]
    assert metrics.trace_ids[-1] == traces[0].trace_id
    assert store.trace_metrics("g", limit=2).latency_ms == [3.0, 4.0]


def test_recorded_runs_newest_first_with_side_effect_outputs(database_url: str) -> None:
    """Runs that kept inputs come newest first, with the outputs of their side-effect spans."""
    store = TelemetryStore(database_url)
    runs = [factories.run(1, started_at=T0 + i, inputs_json=json.dumps({"q": i})) for i in range(3)]
    runs.append(factories.run(1, started_at=T0 + 9))  # no inputs kept: not replayable
    email = factories.span(runs[1].trace, "send_email", output_json='{"message_id": "m1"}')
    runs[1].spans.append(email)
    store.write_runs(runs)
    recorded = store.recorded_runs("g", "v1", limit=2)
    assert [r.inputs for r in recorded] == [{"q": 2}, {"q": 1}]
    assert recorded[1].side_effect_outputs == {"send_email": {"message_id": "m1"}}
    assert recorded[0].side_effect_outputs == {}
    assert len(store.recorded_runs("g", since=T0 + 1)) == 2


def test_count_traces_and_assignment_counts(database_url: str) -> None:
    """Traces are counted per window and arm, and assignment counts group them by arm."""
    store = TelemetryStore(database_url)
    arms = ["active"] * 3 + ["candidate"] * 2
    store.write_runs(
        [factories.run(0, routing_arm=a, started_at=T0 + i) for i, a in enumerate(arms)]
    )
    assert store.count_traces("g") == 5
    assert store.count_traces("g", "v1", since=T0 + 3) == 2
    assert store.count_traces("g", routing_arm="candidate") == 2
    assert store.assignment_counts("g", T0, T0 + 4) == {"active": 3, "candidate": 1}


def test_arm_moments_match_the_per_run_arrays(database_url: str) -> None:
    """The SQL aggregates an A/B look reads equal the moments of ``trace_metrics``' arrays:
    errors over all runs, log latency and cost over completed runs, quality where scored
    (feedback overriding the trace's own score); the arm filter applies."""
    rng = np.random.default_rng(3)
    traces = [
        factories.trace(
            started_at=T0 + i,
            duration_ms=float(rng.lognormal(4.0, 0.5)),
            status="error" if i % 7 == 0 else "ok",
            cost=float(rng.uniform(0.001, 0.01)),
            quality=float(rng.uniform(0, 1)) if i % 3 == 0 else None,
            routing_arm="candidate" if i % 2 else "active",
        )
        for i in range(60)
    ]
    store = TelemetryStore(database_url)
    store.write_runs([RunTelemetry(t) for t in traces])
    store.add_feedback(traces[1].trace_id, 0.25)
    for arm in ("active", "candidate"):
        sql = store.arm_moments("g", "v1", since=T0, routing_arm=arm)
        arrays = moments_of(store.trace_metrics("g", "v1", since=T0, routing_arm=arm))
        assert (sql.runs, sql.errors) == (arrays.runs, arrays.errors)
        for name in ("log_latency", "cost", "quality"):
            got, want = getattr(sql, name), getattr(arrays, name)
            assert got.count == want.count
            assert [got.sum, got.sum_squares] == pytest.approx([want.sum, want.sum_squares])
    empty = store.arm_moments("g", "v9")
    assert (empty.runs, empty.errors, empty.log_latency.count) == (0, 0, 0)


def test_assignment_counts_count_each_sticky_routing_key_once(database_url: str) -> None:
    """A sticky routing key sends all its runs to one arm: the units an SRM check compares are
    distinct keys (plus runs without a key), so a popular customer cannot fake a mismatch."""
    store = TelemetryStore(database_url)
    keyed = [("active", "k1")] * 5 + [("active", "k2"), ("candidate", "k3"), ("candidate", None)]
    store.write_runs(
        [
            factories.run(0, routing_arm=arm, routing_key=key, started_at=T0 + i)
            for i, (arm, key) in enumerate(keyed)
        ]
    )
    assert store.assignment_counts("g", T0, T0 + 100) == {"active": 2, "candidate": 2}
