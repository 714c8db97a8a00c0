"""The replay gate: every committed RSIWorkflow history replays against the current code."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from spark.temporal import SparkPlugin
from tests.workflows.record_histories import HISTORIES, scenarios
from workflows.rsi import RSIWorkflow

FILES = sorted(HISTORIES.glob("*.json"))
HISTORY_JSON = {path.stem: path.read_text() for path in FILES}


def test_every_scenario_has_a_committed_history() -> None:
    """A scenario added to the recorder must be recorded and committed."""
    assert {f.stem for f in FILES} == set(scenarios())


@pytest.mark.parametrize("name", sorted(HISTORY_JSON))
async def test_history_replays_without_nondeterminism(name: str) -> None:
    """Replaying raises on any command the current code would issue differently."""
    history = WorkflowHistory.from_json(f"rsi-history-{name}", HISTORY_JSON[name])
    replayer = Replayer(workflows=[RSIWorkflow], plugins=[SparkPlugin()])
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
