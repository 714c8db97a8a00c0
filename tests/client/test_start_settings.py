"""Starting a loop with bad settings fails at once, with the reason, before any workflow runs."""

from __future__ import annotations

import pytest

from spark.cli import main, parse_settings
from spark.errors import InvalidInputError
from tests.integration.scenario import client_for, register_with_traffic


def test_set_pairs_parse_as_json_or_strings() -> None:
    assert parse_settings(["strategy=canary", "ab_looks=8", "rollout_steps=[0.1, 0.5]"]) == {
        "strategy": "canary",
        "ab_looks": 8,
        "rollout_steps": [0.1, 0.5],
    }
    with pytest.raises(InvalidInputError, match="KEY=VALUE"):
        parse_settings(["strategy"])


async def test_bad_settings_are_refused_before_the_workflow_starts(
    sqlite_database_url: str,
) -> None:
    """The client validates overrides against the graph's own defaults; nothing reaches
    Temporal (no server runs in this test)."""
    client = client_for(sqlite_database_url, address="127.0.0.1:1")
    await register_with_traffic(client, "settings-graph", requests=20)
    with pytest.raises(InvalidInputError, match="strategy"):
        await client.start_improvement("settings-graph", settings={"strategy": "yolo"})
    with pytest.raises(InvalidInputError, match="rollout_steps"):
        await client.start_improvement("settings-graph", settings={"rollout_steps": [0.5, 0.2]})
    client.close()


def test_cli_prints_the_reason_and_exits_2(
    sqlite_database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SPARK_DATABASE_URL", sqlite_database_url)
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
    assert main(["start", "no-such-graph"]) == 2
    assert "no-such-graph" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "field"),
    [
        (["--set", "stage_hold_s=1e15"], "stage_hold_s"),
        (["--set", "monitor_window_s=1e16"], "monitor_window_s"),
        (["--set", "ab_min_window_s=1e15", "--set", "ab_max_window_s=1e15"], "ab_max_window_s"),
        (["--set", "review_timeout_s=1e12"], "review_timeout_s"),
        (["--max-cycles", "-1"], "max_cycles"),
    ],
)
def test_cli_start_refuses_unbounded_durations_before_anything_starts(
    sqlite_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flag: list[str],
    field: str,
) -> None:
    """`spark start GRAPH --set stage_hold_s=1e15` (and its kin) exits 2 naming the setting; no
    Temporal server is reachable here, so the refusal came before any workflow was started."""
    import asyncio

    client = client_for(sqlite_database_url, address="127.0.0.1:1")
    asyncio.run(register_with_traffic(client, "bounds-graph", requests=20))
    client.close()
    monkeypatch.setenv("SPARK_DATABASE_URL", sqlite_database_url)
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
    assert main(["start", "bounds-graph", *flag]) == 2
    assert field in capsys.readouterr().err
