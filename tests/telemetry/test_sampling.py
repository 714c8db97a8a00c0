"""Trace sampling: the description's config arguments, per-trace decisions, stored rates."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from structlog.testing import capture_logs

from spark.telemetry import TelemetryConfig, TelemetryStore
from spark.telemetry.sampling import trace_point, trace_sampled
from tests.telemetry import factories

RATE = 0.3


def test_create_sqlite_accepts_the_description_arguments(tmp_path: Path) -> None:
    """``create_sqlite(db_path=, sampling_rate=, enable_metrics=, enable_events=)`` builds."""
    config = TelemetryConfig.create_sqlite(
        db_path=tmp_path / "t.db", sampling_rate=0.25, enable_metrics=True, enable_events=False
    )
    assert (config.sampling_rate, config.enable_metrics, config.enable_events) == (
        0.25,
        True,
        False,
    )


def test_create_postgresql_accepts_the_description_arguments() -> None:
    """The PostgreSQL factory takes the same sampling and flag arguments."""
    config = TelemetryConfig.create_postgresql(
        host="db", sampling_rate=0.1, enable_metrics=False, enable_events=True
    )
    assert config.sampling_rate == 0.1 and not config.enable_metrics


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_sampling_rate_outside_unit_interval_is_refused(rate: float) -> None:
    """A sampling rate outside [0, 1] fails validation."""
    with pytest.raises(ValueError, match="sampling_rate"):
        TelemetryConfig.from_url("sqlite:///x.db", sampling_rate=rate)


def test_decision_is_a_pure_function_of_the_trace_id() -> None:
    """The same trace id gets the same decision every time, independent of process state."""
    ids = [f"trace-{i}" for i in range(200)]
    assert [trace_sampled(i, RATE) for i in ids] == [trace_sampled(i, RATE) for i in ids]
    assert trace_point("abc") == trace_point("abc")


def test_rate_bounds_and_monotonicity() -> None:
    """Rate 1 keeps all, 0 keeps none, and a trace kept at a rate is kept at every higher one;
    about ``rate`` of many ids are kept."""
    ids = [f"t{i}" for i in range(4000)]
    assert all(trace_sampled(i, 1.0) for i in ids)
    assert not any(trace_sampled(i, 0.0) for i in ids)
    kept_low = {i for i in ids if trace_sampled(i, 0.2)}
    kept_high = {i for i in ids if trace_sampled(i, 0.5)}
    assert kept_low <= kept_high
    assert 0.17 < len(kept_low) / len(ids) < 0.23


def test_recorder_keeps_whole_sampled_traces_with_their_rate(database_url: str) -> None:
    """At rate 0.3 exactly the traces ``trace_sampled`` keeps are stored, each with all of its
    spans and its rate; the others are counted as unsampled, not dropped; version statistics
    scale the count back by 1/rate."""
    runs = [factories.run(n_spans=3) for _ in range(300)]
    kept = {r.trace.trace_id for r in runs if trace_sampled(r.trace.trace_id, RATE)}
    with TelemetryConfig.from_url(database_url, sampling_rate=RATE).open_recorder() as recorder:
        for run in runs:
            recorder.submit(run)
        recorder.flush()
        stats = recorder.stats
    assert (stats.unsampled, stats.written, stats.dropped) == (300 - len(kept), len(kept), 0)
    engine = create_engine(database_url)
    with engine.connect() as conn:
        traces: dict[str, float] = dict(
            conn.execute(text("SELECT trace_id, sampling_rate FROM spark_traces")).all()
        )
        spans = conn.execute(text("SELECT trace_id, count(*) FROM spark_spans GROUP BY 1")).all()
    engine.dispose()
    assert set(traces) == kept and set(traces.values()) == {RATE}
    assert {trace_id: n for trace_id, n in spans} == dict.fromkeys(kept, 3)
    version = TelemetryStore(database_url).version_stats("g", "v1")
    assert version.count == len(kept)
    assert version.estimated_count == pytest.approx(len(kept) / RATE)


def test_unsampled_run_is_stored_at_full_rate_without_sampling(database_url: str) -> None:
    """Without sampling every trace is stored with rate 1 and the estimate equals the count."""
    with TelemetryConfig.from_url(database_url).open_recorder() as recorder:
        for _ in range(5):
            recorder.submit(factories.run(n_spans=1))
        recorder.flush()
    version = TelemetryStore(database_url).version_stats("g", "v1")
    assert version.count == 5 and version.estimated_count == pytest.approx(5.0)


def test_feedback_on_an_unsampled_trace_does_not_crash(database_url: str) -> None:
    """Feedback for a trace sampling dropped is accepted and changes no statistic."""
    run = next(
        r
        for r in (factories.run() for _ in range(100))
        if not trace_sampled(r.trace.trace_id, RATE)
    )
    with TelemetryConfig.from_url(database_url, sampling_rate=RATE).open_recorder() as recorder:
        recorder.submit(run)
        recorder.flush()
    store = TelemetryStore(database_url)
    store.add_feedback(run.trace.trace_id, score=0.9)
    version = store.version_stats("g", "v1")
    assert version.count == 0 and version.mean_quality is None


def test_disabled_metrics_or_events_say_they_change_nothing(tmp_path: Path) -> None:
    """``enable_metrics=False`` / ``enable_events=False`` log ``telemetry.flag_ignored``."""
    config = TelemetryConfig.create_sqlite(
        tmp_path / "t.db", enable_metrics=False, enable_events=False
    )
    with capture_logs() as logs:
        config.open_recorder().close()
    ignored = [entry["flag"] for entry in logs if entry["event"] == "telemetry.flag_ignored"]
    assert ignored == ["enable_metrics", "enable_events"]
