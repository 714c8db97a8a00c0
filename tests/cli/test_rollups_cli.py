"""``spark rollups seal|rebuild``: seal closed buckets from the command line, rebuild a graph's
rollups, and refuse a graph id that names nothing."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from spark.cli import main
from spark.db import get_engine
from spark.telemetry import TelemetryStore
from tests.telemetry import factories


@pytest.fixture
def store(sqlite_database_url: str, monkeypatch: pytest.MonkeyPatch) -> TelemetryStore:
    """Telemetry of graph ``g`` in a bucket closed long ago, not sealed yet."""
    monkeypatch.setenv("SPARK_DATABASE_URL", sqlite_database_url)
    store = TelemetryStore(sqlite_database_url)
    store.write_runs([factories.run(n_spans=2) for _ in range(5)])
    return store


def test_seal_computes_the_pending_units(
    store: TelemetryStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rollups", "seal", "--json"]) == 0
    sealed = json.loads(capsys.readouterr().out)
    assert (sealed["units"], sealed["rows"]) == (1, 3)
    assert main(["rollups", "seal"]) == 0
    assert capsys.readouterr().out.startswith("sealed 0 unit(s)")


def test_rebuild_marks_the_graph_complete(
    store: TelemetryStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rollups", "rebuild", "g"]) == 0
    assert "rebuilt the rollups of graph 'g': 3 rollup row(s)" in capsys.readouterr().out
    with get_engine(store.database_url).connect() as conn:
        rows = conn.execute(text("SELECT graph_id FROM spark_rollup_coverage")).scalars().all()
    assert "g" in rows  # its own row, beside the database-wide one a new database has


def test_rebuild_of_an_unknown_graph_is_an_error(
    store: TelemetryStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rollups", "rebuild", "no-such-graph"]) != 0
    assert "no-such-graph" in capsys.readouterr().err
