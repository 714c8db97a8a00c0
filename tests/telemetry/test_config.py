"""TelemetryConfig factories and the objects they open."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from spark.db import dispose_engine
from spark.telemetry import TelemetryConfig
from tests.telemetry import factories


def test_create_sqlite_points_at_the_file(tmp_path: Path) -> None:
    """The SQLite factory makes a file URL (creating its folder) with the default batching."""
    config = TelemetryConfig.create_sqlite(tmp_path / "sub" / "t.db", batch_size=50)
    assert config.database_url == f"sqlite:///{tmp_path / 'sub' / 't.db'}"
    assert (tmp_path / "sub").is_dir()
    assert (config.batch_size, config.flush_interval_s, config.max_queue) == (50, 0.5, 100_000)
    assert config.enabled and config.capture_inputs


def test_create_postgresql_quotes_credentials_and_pins_psycopg() -> None:
    """Credentials with URL-special characters survive, and the psycopg 3 driver is chosen."""
    config = TelemetryConfig.create_postgresql(host="db", user="spark", password="p@ss/w:rd")
    assert (
        config.database_url == "postgresql+psycopg://spark:p%40ss%2Fw%3Ard@db:5432/spark_telemetry"
    )


def test_from_url_normalizes_postgres_urls() -> None:
    """A plain postgres:// URL is pinned to psycopg 3."""
    config = TelemetryConfig.from_url("postgres://u@h/d")
    assert config.database_url == "postgresql+psycopg://u@h/d"


def test_invalid_settings_are_rejected() -> None:
    """Non-positive batch sizes and queue bounds, and unknown fields, fail validation."""
    with pytest.raises(ValidationError):
        TelemetryConfig(database_url="sqlite://", batch_size=0)
    with pytest.raises(ValidationError):
        TelemetryConfig(database_url="sqlite://", max_queue=0)
    with pytest.raises(ValidationError):
        TelemetryConfig(database_url="sqlite://", no_such_setting=0.5)  # type: ignore[call-arg]


def test_create_memory_runs_the_full_write_and_query_path() -> None:
    """The in-process store is private to the config and answers the same SQL aggregations."""
    config = TelemetryConfig.create_memory(flush_interval_s=0.05)
    try:
        with config.open_recorder() as recorder:
            recorder.submit(factories.run(n_spans=3))
        (stats, *_) = config.open_store().node_stats("g")
        assert (stats.node_id, stats.count, stats.p50_ms) == ("n0", 1, 10.0)
        assert TelemetryConfig.create_memory().database_url != config.database_url
    finally:
        dispose_engine(config.database_url)


def test_outage_settings_are_validated_and_bounded() -> None:
    """Backoff and close settings are validated: a cap below the first delay is refused and
    every duration has an upper bound (the fault tests show the recorder honours them)."""
    with pytest.raises(ValidationError, match="retry_max_s"):
        TelemetryConfig(database_url="sqlite://", retry_initial_s=2.0, retry_max_s=1.0)
    with pytest.raises(ValidationError):
        TelemetryConfig(database_url="sqlite://", close_timeout_s=1e15)
    with pytest.raises(ValidationError):
        TelemetryConfig(database_url="sqlite://", retry_max_s=1e9)
    config = TelemetryConfig.from_url("sqlite:///t.db", retry_max_s=0.5)
    assert (config.write_attempts, config.retry_initial_s, config.close_timeout_s) == (3, 0.1, 10)
