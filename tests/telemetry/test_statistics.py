"""SQLite planner statistics after bulk loads: the schedule, and the store running ANALYZE."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from spark.db import get_engine
from spark.telemetry import TelemetryStore, _statistics
from spark.telemetry._queries import Window, node_stats_sql, version_stats_sql
from spark.telemetry._statistics import AnalyzeSchedule
from spark.telemetry.models import RunTelemetry
from tests.telemetry import factories
from tests.telemetry.factories import T0


def _stat_rows(url: str) -> int:
    with get_engine(url).connect() as conn:
        exists = conn.execute(
            text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
        ).scalar_one()
        if not exists:
            return 0
        return int(conn.execute(text("SELECT count(*) FROM sqlite_stat1")).scalar_one())


def test_schedule_is_due_once_per_tenfold_growth() -> None:
    """Due when the table first reaches 100 spans, then once it is ten times what it was."""
    schedule = AnalyzeSchedule(first=100)
    answers = [schedule.due(40) for _ in range(40)]  # totals 40, 80, ..., 1600
    due_at = [40 * (i + 1) for i, due in enumerate(answers) if due]
    assert due_at == [120, 1200]


def test_one_large_batch_crossing_several_thresholds_is_due_once() -> None:
    """A batch that jumps past 100 and 1,000 at once asks for one ANALYZE, next due at 50,000."""
    schedule = AnalyzeSchedule(first=100)
    assert schedule.due(5_000) is True
    assert schedule.due(40_000) is False
    assert schedule.due(5_000) is True


def test_schedule_starts_from_the_size_last_analysed() -> None:
    """A table analysed at 1M spans is not analysed again before it holds 10M."""
    schedule = AnalyzeSchedule(analysed_spans=1_000_000, first=100)
    assert schedule.due(8_000_000) is False
    assert schedule.due(1_000_000) is True


def _runs(first: int) -> list[RunTelemetry]:
    """100 runs of graph ``g`` over four versions, ten spans each, one second apart."""
    return [
        factories.run(n_spans=10, graph_id="g", version_id=f"v{i % 4}", started_at=T0 + i)
        for i in range(first, first + 100)
    ]


def _whole_graph_plans(url: str, sql: str) -> list[str]:
    """The plan of ``sql`` over all of graph ``g`` on two pooled connections checked out at
    once."""
    window, engine = Window("g"), get_engine(url)
    explain = text("EXPLAIN QUERY PLAN " + sql)
    with engine.connect() as first, engine.connect() as second:
        plans = [conn.execute(explain, window.params()).all() for conn in (first, second)]
    return [" / ".join(str(row[-1]) for row in plan) for plan in plans]


def test_sqlite_store_analyzes_after_a_bulk_load(
    sqlite_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the spans written cross the first threshold the planner has statistics, and a
    whole-graph read of the traces (version statistics), even on a pooled connection that planned before, scans the
    table instead of walking the graph index. The spans' index leads with time, so a
    whole-graph node_stats scans the table with or without statistics."""
    monkeypatch.setattr(_statistics, "FIRST_ANALYZE_SPANS", 1_500)
    traces_sql = version_stats_sql(Window("g"), postgres=False)
    spans_sql = node_stats_sql(Window("g"), postgres=False)
    store = TelemetryStore(sqlite_database_url)
    store.write_runs(_runs(0))
    assert _stat_rows(sqlite_database_url) == 0
    for plan in _whole_graph_plans(sqlite_database_url, traces_sql):
        assert "USING INDEX ix_spark_traces_graph_version_started" in plan
    for plan in _whole_graph_plans(sqlite_database_url, spans_sql):
        assert plan.startswith("SCAN spark_spans")
    store.write_runs(_runs(100))
    assert _stat_rows(sqlite_database_url) > 0
    for plan in _whole_graph_plans(sqlite_database_url, traces_sql):
        assert "SCAN t" in plan.split(" / "), plan
    for plan in _whole_graph_plans(sqlite_database_url, spans_sql):
        assert plan.startswith("SCAN spark_spans")


def test_a_time_window_of_one_version_reads_the_span_index(sqlite_database_url: str) -> None:
    """A window of spans (what the analysis, the rollups' partial edges and the seal read) is a
    range of the time-first index, with graph and version checked in its entries."""
    TelemetryStore(sqlite_database_url).write_runs(_runs(0))
    window = Window("g", "v1", since=T0 + 10, until=T0 + 20)
    with get_engine(sqlite_database_url).connect() as conn:
        plan = conn.execute(
            text("EXPLAIN QUERY PLAN " + node_stats_sql(window, postgres=False)), window.params()
        ).all()
    detail = " / ".join(str(row[-1]) for row in plan)
    assert "USING INDEX ix_spark_spans_started_graph_version (started_at>? AND started_at<?)" in (
        detail
    ), detail


def test_a_new_store_keeps_the_schedule_of_the_analysed_table(
    sqlite_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store opened on a table analysed at 2,000 spans waits for 20,000 before the next
    ANALYZE, instead of starting its own count from zero."""
    monkeypatch.setattr(_statistics, "FIRST_ANALYZE_SPANS", 1_500)
    TelemetryStore(sqlite_database_url).write_runs(_runs(0) + _runs(100))
    assert _analysed_rows(sqlite_database_url) == 2_000
    TelemetryStore(sqlite_database_url).write_runs(_runs(200) + _runs(300))
    assert _analysed_rows(sqlite_database_url) == 2_000


def _analysed_rows(url: str) -> int:
    with get_engine(url).connect() as conn:
        return _statistics.analysed_spans(conn.connection.driver_connection)


def test_refresh_statistics_runs_on_postgres_too(postgres_database_url: str) -> None:
    """The explicit refresh works on PostgreSQL (whose writes never schedule one)."""
    store = TelemetryStore(postgres_database_url)
    store.write_runs([factories.run(n_spans=3)])
    store.refresh_statistics()
    with get_engine(postgres_database_url).connect() as conn:
        analyzed = conn.execute(
            text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'spark_spans'")
        ).scalar_one()
    assert analyzed is not None
