"""Feedback given while the database is away is kept in the recorder's queue and written when
it returns, on SQLite and on PostgreSQL (issue 11: feedback at production rates)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from spark.client import SparkClient
from spark.db import get_engine
from spark.settings import SparkSettings
from spark.telemetry import TelemetryConfig
from spark.telemetry.store import FEEDBACK
from tests.faults.outage import DatabaseOutage, outage

FAST: dict[str, Any] = {
    "flush_interval_s": 0.02,
    "batch_size": 50,
    "retry_initial_s": 0.01,
    "retry_max_s": 0.1,
    "close_timeout_s": 5.0,
}


def _stored_scores(url: str) -> int:
    with get_engine(url).connect() as conn:
        return int(conn.execute(select(func.count()).select_from(FEEDBACK)).scalar_one())


def test_scores_given_during_an_outage_are_written_when_the_database_returns(
    database: DatabaseOutage,
) -> None:
    """client.feedback returns at once while the database refuses connections (the scores wait
    in memory, flush cannot finish); once it is back every score is written, none dropped."""
    settings = SparkSettings(
        database_url=database.url, task_queue="outage", temporal_address="127.0.0.1:1"
    )
    client = SparkClient(settings, telemetry=TelemetryConfig.from_url(database.url, **FAST))
    try:
        client.feedback_many([(f"before-{i}", 1.0) for i in range(10)])
        assert client.flush(timeout=30)
        with outage(database):
            for i in range(120):
                client.feedback(f"during-{i}", score=0.5)
            client.feedback_many([(f"bulk-{i}", 0.0) for i in range(80)])
            assert client.flush(timeout=0.3) is False
            assert client.telemetry_stats.pending > 0
        assert client.flush(timeout=60)
        stats = client.telemetry_stats
    finally:
        client.close()
    assert _stored_scores(database.url) == stats.feedback_written == stats.written == 210
    assert (stats.dropped, stats.pending) == (0, 0)
    assert stats.write_errors >= 1
