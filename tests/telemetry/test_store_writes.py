"""Bulk writes, feedback and retention of the telemetry store, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from dataclasses import fields
from datetime import datetime

import pytest
from sqlalchemy import text
from sqlmodel import SQLModel

import spark.telemetry.tables  # noqa: F401  (registers the tables)
from spark.db import get_engine
from spark.errors import InvalidInputError
from spark.telemetry import (
    FeedbackRecord,
    RunTelemetry,
    SpanRecord,
    TelemetryStore,
    TraceRecord,
    _bulk,
)
from tests.telemetry import factories
from tests.telemetry.factories import T0


def _count(url: str, table: str) -> int:
    with get_engine(url).connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_table_columns_mirror_the_records() -> None:
    """Every record field has a column of the same name, so rows map field by field."""
    tables = SQLModel.metadata.tables
    assert tuple(tables["spark_traces"].c.keys()) == TraceRecord._fields
    assert tuple(tables["spark_spans"].c.keys()) == SpanRecord._fields
    feedback = set(tables["spark_feedback"].c.keys())
    assert feedback == {"id", *(f.name for f in fields(FeedbackRecord))}


def test_write_runs_stores_every_trace_and_span(database_url: str) -> None:
    """One call stores all traces and spans, with nullable, boolean and text columns intact."""
    store = TelemetryStore(database_url)
    runs = [factories.run(n_spans=4) for _ in range(3)]
    special = factories.span(
        runs[0].trace,
        "tool",
        cache_hit=True,
        error_type="Timeout",
        status="error",
        attempts=3,
        tokens=42,
        cost=0.25,
        output_json='{"sent": true}',
        input_fingerprint="fp",
    )
    runs[0].spans.append(special)
    store.write_runs(runs)
    assert (_count(database_url, "spark_traces"), _count(database_url, "spark_spans")) == (3, 13)
    with get_engine(database_url).connect() as conn:
        row = conn.execute(
            text("SELECT * FROM spark_spans WHERE span_id = :id"), {"id": special.span_id}
        ).one()
    assert SpanRecord(**{**row._asdict(), "cache_hit": bool(row.cache_hit)}) == special


def test_rewriting_a_batch_changes_nothing(database_url: str) -> None:
    """A retried batch, or one overlapping stored runs, adds only the rows not yet stored."""
    store = TelemetryStore(database_url)
    first = [factories.run(n_spans=3) for _ in range(5)]
    store.write_runs(first)
    store.write_runs(first)
    store.write_runs([*first[:2], factories.run(n_spans=3)])
    assert (_count(database_url, "spark_traces"), _count(database_url, "spark_spans")) == (6, 18)


def test_duplicates_inside_one_batch_are_stored_once(database_url: str) -> None:
    """The same run twice in one batch (a double submit) yields one trace and its spans once."""
    store = TelemetryStore(database_url)
    one = factories.run(n_spans=2)
    store.write_runs([one, one, RunTelemetry(one.trace, list(one.spans))])
    assert (_count(database_url, "spark_traces"), _count(database_url, "spark_spans")) == (1, 2)


def test_spans_written_without_their_trace_are_recognised_by_id(database_url: str) -> None:
    """Spans that come without their trace (an OTLP export before the run's root) are stored
    once though the export is retried, their trace coming later adds it alone, and a purge
    forgets their recorded ids."""
    store = TelemetryStore(database_url)
    run = factories.run(n_spans=3)
    orphans = RunTelemetry(run.trace, run.spans[:2])
    writer = _bulk.write_postgres if store.is_postgres else _bulk.write_sqlite
    for attempt in range(2):  # an export and its retry
        with store._raw_transaction() as connection:
            stored = writer(connection, [], _bulk.span_rows([orphans]))
        assert len(stored[1]) == (2 if attempt == 0 else 0)
    store.write_runs([RunTelemetry(run.trace, run.spans[2:])])  # the root, with one more span
    store.write_runs([RunTelemetry(run.trace, run.spans[2:])])  # and its retry
    assert (_count(database_url, "spark_traces"), _count(database_url, "spark_spans")) == (1, 3)
    assert _count(database_url, "spark_span_keys") == 2
    store.purge_older_than(T0 + 1)
    assert _count(database_url, "spark_span_keys") == 0


def test_empty_batch_is_a_noop(sqlite_database_url: str) -> None:
    """Writing no runs touches nothing and does not fail."""
    TelemetryStore(sqlite_database_url).write_runs([])
    assert _count(sqlite_database_url, "spark_traces") == 0


def test_add_feedback_stores_the_score(database_url: str) -> None:
    """Feedback is stored even before its trace arrives (the recorder writes asynchronously)."""
    store = TelemetryStore(database_url)
    record = store.add_feedback("trace-not-yet-written", 0.75, label="good", source="grader")
    assert (record.score, record.label, record.source) == (0.75, "good", "grader")
    assert _count(database_url, "spark_feedback") == 1


@pytest.mark.parametrize("score", [math.nan, math.inf])
def test_add_feedback_rejects_non_finite_scores(sqlite_database_url: str, score: float) -> None:
    """A NaN or infinite score is misuse and never reaches the table."""
    with pytest.raises(InvalidInputError, match="must be finite"):
        TelemetryStore(sqlite_database_url).add_feedback("t", score)


def test_purge_removes_old_traces_spans_and_their_feedback(database_url: str) -> None:
    """Retention deletes rows started before the cutoff and keeps the rest untouched."""
    store = TelemetryStore(database_url)
    old, new = (
        factories.run(n_spans=2, started_at=T0),
        factories.run(n_spans=3, started_at=T0 + 100),
    )
    store.write_runs([old, new])
    store.add_feedback(old.trace.trace_id, 1.0)
    store.add_feedback(new.trace.trace_id, 0.5)
    counts = store.purge_older_than(T0 + 50)
    assert (counts.traces, counts.spans, counts.feedback) == (1, 2, 1)
    assert store.count_traces("g") == 1
    assert _count(database_url, "spark_spans") == 3


def test_naive_datetimes_are_refused(sqlite_database_url: str) -> None:
    """Windows given as datetimes must be timezone-aware: a naive one is ambiguous."""
    with pytest.raises(InvalidInputError, match="naive datetime"):
        TelemetryStore(sqlite_database_url).count_traces("g", since=datetime(2024, 1, 1))
