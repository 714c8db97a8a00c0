"""Feedback goes through the recorder like runs: queued, batched, flushed, counted (issue 11)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from sqlalchemy import func, select

from spark.client import SparkClient
from spark.db import get_engine
from spark.errors import InvalidInputError
from spark.settings import SparkSettings
from spark.telemetry import TelemetryConfig, TelemetryStore
from spark.telemetry.feedback import Feedback, feedback_records
from spark.telemetry.store import FEEDBACK
from tests.telemetry import factories

QUIET: dict[str, Any] = {"flush_interval_s": 60.0, "batch_size": 5_000}  # writes only on flush


def _client(url: str, **telemetry: Any) -> SparkClient:
    settings = SparkSettings(
        database_url=url, task_queue="feedback", temporal_address="127.0.0.1:1"
    )
    return SparkClient(settings, telemetry=TelemetryConfig.from_url(url, **(QUIET | telemetry)))


def _stored_scores(url: str) -> int:
    with get_engine(url).connect() as conn:
        return int(conn.execute(select(func.count()).select_from(FEEDBACK)).scalar_one())


def test_many_scores_are_written_by_one_flush_in_a_few_batches(database_url: str) -> None:
    """A thousand scores (feedback_many) and one more (feedback) wait in the queue, unwritten,
    until one flush writes them all in one batch; the counters add up."""
    client = _client(database_url)
    try:
        queued = client.feedback_many([(f"t{i}", i / 1000) for i in range(1000)])
        client.feedback("t-last", 0.5, label="good", source="grader")
        before = client.telemetry_stats
        assert (queued, before.pending, before.written, _stored_scores(database_url)) == (
            1000,
            1001,
            0,
            0,
        )
        assert client.flush(timeout=30)
        stats = client.telemetry_stats
    finally:
        client.close()
    assert _stored_scores(database_url) == 1001
    assert (stats.submitted, stats.written, stats.feedback_written) == (1001, 1001, 1001)
    assert (stats.pending, stats.dropped, stats.batches) == (0, 0, 1)


def test_a_score_given_before_its_trace_is_written_still_joins(database_url: str) -> None:
    """The score is queued (and written) ahead of its run; the run's quality is still the
    score, because traces and scores are joined when read."""
    config = TelemetryConfig.from_url(database_url, **QUIET)
    run = factories.run(2)
    with config.open_recorder() as recorder:
        recorder.submit_feedback(feedback_records([(run.trace.trace_id, 0.25)]))
        assert recorder.flush(timeout=30)
        recorder.submit(run)
        assert recorder.flush(timeout=30)
    store = TelemetryStore(database_url)
    assert store.trace_metrics("g").quality == [0.25]
    stats = store.version_stats("g")
    assert (stats.quality_count, stats.mean_quality) == (1, 0.25)


def test_a_full_queue_refuses_scores_and_counts_them(sqlite_database_url: str) -> None:
    """Past max_queue, scores are refused, counted in refused and dropped; the rest are written."""
    client = _client(sqlite_database_url, max_queue=5)
    try:
        taken = client.feedback_many([(f"t{i}", 1.0) for i in range(8)])
        assert client.flush(timeout=30)
        stats = client.telemetry_stats
    finally:
        client.close()
    assert taken == 5
    assert (stats.written, stats.refused, stats.dropped, stats.pending) == (5, 3, 3, 0)
    assert stats.submitted + stats.refused == stats.written + stats.dropped + stats.pending
    assert client.telemetry_dropped == 3
    assert _stored_scores(sqlite_database_url) == 5


@pytest.mark.parametrize("score", [math.inf, -math.inf, math.nan])
def test_a_bad_score_is_refused_before_anything_is_queued(
    sqlite_database_url: str, score: float
) -> None:
    """A non-finite score in a bulk call raises InvalidInputError and queues none of the batch."""
    client = _client(sqlite_database_url)
    try:
        with pytest.raises(InvalidInputError, match="t-bad"):
            client.feedback_many([Feedback(trace_id="t-ok", score=1.0), ("t-bad", score)])
        with pytest.raises(InvalidInputError, match="t-one"):
            client.feedback("t-one", score)
        assert client.telemetry_stats.submitted == 0
    finally:
        client.close()


def test_with_telemetry_disabled_scores_are_written_at_once(sqlite_database_url: str) -> None:
    """A client whose recorder is disabled still stores scores, synchronously, as before."""
    client = _client(sqlite_database_url, enabled=False)
    try:
        assert client.feedback_many([("t1", 0.5), ("t2", 1.0)]) == 2
        assert _stored_scores(sqlite_database_url) == 2
    finally:
        client.close()
