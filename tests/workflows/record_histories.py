"""Record RSIWorkflow histories for the replay gate:
``python -m tests.workflows.record_histories [SCENARIO ...]`` (default: every scenario).

Each scenario runs the workflow with scripted activities on the time-skipping server and writes
its event history to ``tests/workflows/histories/<scenario>.json``. ``test_replay_histories``
replays every committed file against the current workflow code, so a change that would break
runs already in flight (a reordered command, a new timer, a renamed activity) fails CI. When a
change is deliberately incompatible, guard it with ``workflow.patched`` or record again and say
so in the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from spark.rsi.contracts import (
    ReviewDecision,
    ReviewRequest,
    RollbackRequest,
    RSISettings,
    RSIStatus,
    RSIWorkflowInput,
)
from spark.temporal import SparkPlugin, test_server_path
from tests.conftest import register_search_attributes
from tests.workflows.fakes import FakeRSI, hypothesis
from workflows.rsi import RSIWorkflow

HISTORIES = Path(__file__).resolve().parent / "histories"
Handle = WorkflowHandle[RSIWorkflow, RSIStatus]


def _settings(**overrides: object) -> RSISettings:
    base = {"monitor_window_s": 60, "monitor_checks": 2, "interval_s": 30, "stage_hold_s": 120}
    return RSISettings.model_validate(base | overrides)


async def _wait_for(handle: Handle, predicate: Callable[[RSIStatus], bool]) -> None:
    for _ in range(400):
        if predicate(await handle.query(RSIWorkflow.status)):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the workflow never reached the expected state")


async def _approve(handle: Handle) -> None:
    await _wait_for(handle, lambda s: s.awaiting_review)
    await handle.execute_update(
        RSIWorkflow.review,
        ReviewRequest(approve=True, reviewer="alice", hypothesis_id=hypothesis().hypothesis_id),
    )


async def _refuse_then_approve(handle: Handle) -> None:
    """An unlisted reviewer's signal (refused), then an allowed reviewer's update."""
    await _wait_for(handle, lambda s: s.review is not None)
    await handle.signal(RSIWorkflow.approve_review, ReviewDecision(reviewer="mallory"))
    await _approve(handle)


async def _rollback_while_monitoring(handle: Handle) -> None:
    await _wait_for(handle, lambda s: s.phase == "monitoring")
    await handle.signal(RSIWorkflow.rollback, RollbackRequest(reason="pager", actor="ops"))


Scenario = tuple[FakeRSI, RSIWorkflowInput, Callable[[Handle], Awaitable[None]] | None]


def scenarios() -> dict[str, Scenario]:
    """The recorded scenarios: each exercises a different path through the workflow."""
    start = RSIWorkflowInput(graph_id="g")
    return {
        "ship_replay_direct": (FakeRSI(settings=_settings(ab_mode="replay")), start, None),
        "online_window_canary": (
            FakeRSI(
                settings=_settings(ab_mode="replay_then_online", strategy="canary"),
                online_looks=["continue", "ship", "continue"],
                look_runs=200,
            ),
            start,
            None,
        ),
        "inconclusive_replay_gate": (
            FakeRSI(
                settings=_settings(ab_mode="replay_then_online"),
                ab_outcome="inconclusive",
                online_looks=["ship"],
                look_runs=300,
            ),
            start,
            None,
        ),
        "gradual_stage_regression": (
            FakeRSI(
                settings=_settings(ab_mode="replay", strategy="gradual"),
                health=["healthy", "regressed"],
            ),
            start,
            None,
        ),
        "review_approved_by_update": (
            FakeRSI(requires_review=True, settings=_settings(ab_mode="replay")),
            start,
            _approve,
        ),
        "review_persisted_refused_then_approved": (
            FakeRSI(
                requires_review=True, settings=_settings(ab_mode="replay", reviewers=["alice"])
            ),
            start,
            _refuse_then_approve,
        ),
        "rollback_signal_while_monitoring": (
            FakeRSI(settings=_settings(ab_mode="replay")),
            start,
            _rollback_while_monitoring,
        ),
        "online_window_late_look_closed_at_cap": (
            FakeRSI(
                settings=_settings(ab_mode="online", routing_propagation_s=0.5),
                online_looks=["continue", "ship"],
                look_runs=300,
                look_delay_s=3.0,
            ),
            start,
            None,
        ),
        "second_loop_refused_fails_and_releases": (
            FakeRSI(plan_error="graph 'g' already has a running RSI loop: workflow 'other'"),
            start,
            None,
        ),
    }


async def record(env: WorkflowEnvironment, name: str, scenario: Scenario) -> str:
    """Run one scenario to completion and return its history as JSON."""
    fake, start, interact = scenario
    queue = uuid.uuid4().hex
    async with Worker(
        env.client, task_queue=queue, workflows=[RSIWorkflow], activities=fake.activities()
    ):
        handle = await env.client.start_workflow(
            RSIWorkflow.run, start, id=f"rsi-history-{name}", task_queue=queue
        )
        if interact is not None:
            await interact(handle)
        with contextlib.suppress(WorkflowFailureError):  # failing scenarios end failed
            await handle.result()
        history = await handle.fetch_history()
    return history.to_json()


async def main(names: list[str]) -> None:
    """Record the named scenarios (default: all) into ``histories/``."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(test_server_path()), plugins=[SparkPlugin()]
    )
    try:
        await register_search_attributes(env.client)
        HISTORIES.mkdir(exist_ok=True)
        for name, scenario in scenarios().items():
            if names and name not in names:
                continue
            (HISTORIES / f"{name}.json").write_text(await record(env, name, scenario))
            print(f"recorded {name}")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
