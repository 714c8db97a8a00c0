"""Operators' messages never vanish: a malformed or pointless signal shows in ``status`` as
refused, with why; ``request_rollback`` answers what it undoes (issue 8, item 6)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from spark.rsi.contracts import RollbackRequest, RSIStatus, RSIWorkflowInput
from tests.workflows.fakes import BASE, FakeRSI
from workflows.rsi import RSIWorkflow

Handle = WorkflowHandle[RSIWorkflow, RSIStatus]


async def wait_until(handle: Handle, predicate: Callable[[RSIStatus], bool]) -> RSIStatus:
    """Poll the status query until ``predicate`` holds."""
    for _ in range(200):
        status = await handle.query(RSIWorkflow.status)
        if predicate(status):
            return status
        await asyncio.sleep(0.05)
    raise AssertionError("the workflow never reached the expected state")


async def start(env: WorkflowEnvironment, queue: str) -> Handle:
    """Start a one-cycle loop on ``queue``."""
    return await env.client.start_workflow(
        RSIWorkflow.run,
        RSIWorkflowInput(graph_id="g"),
        id=f"rsi-msg-{uuid.uuid4().hex[:8]}",
        task_queue=queue,
    )


def worker(env: WorkflowEnvironment, fake: FakeRSI, queue: str) -> Worker:
    """A worker running the workflow with ``fake``'s activities."""
    return Worker(
        env.client, task_queue=queue, workflows=[RSIWorkflow], activities=fake.activities()
    )


@pytest.mark.parametrize(
    ("signal", "payload", "named"),
    [
        ("rollback", "str", "input"),
        ("rollback", [1, 2], "input"),
        ("approve_review", {"reviewer": 5}, "reviewer"),
        ("approve_review", [1, 2], "input"),
        ("reject_review", {"approve": True}, "approve"),
    ],
)
async def test_malformed_signal_is_listed_as_refused_in_status(
    time_skipping_env: WorkflowEnvironment, signal: str, payload: Any, named: str
) -> None:
    """`temporal workflow signal --name rollback --input '"str"'` and its kin: the signal is not
    acted on, and ``status`` lists it as refused, naming the bad field; the loop goes on."""
    fake, queue = FakeRSI(requires_review=True), uuid.uuid4().hex
    async with worker(time_skipping_env, fake, queue):
        handle = await start(time_skipping_env, queue)
        await wait_until(handle, lambda s: s.awaiting_review)
        await handle.signal(signal, payload)
        status = await wait_until(handle, lambda s: bool(s.refused_messages))
        refused = status.refused_messages[-1]
        assert refused.name == signal
        assert "malformed payload" in refused.reason and named in refused.reason
        assert status.awaiting_review and not status.rollback_requested
        await handle.signal(RSIWorkflow.reject_review, {"reviewer": "bob"})
        final = await handle.result()
    assert final.history[-1].outcome == "rejected_review"
    assert final.refused_messages[0].name == signal


async def test_review_signal_with_nothing_open_is_listed_as_refused(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """An approval naming another hypothesis is refused visibly, not silently dropped."""
    fake, queue = FakeRSI(requires_review=True), uuid.uuid4().hex
    async with worker(time_skipping_env, fake, queue):
        handle = await start(time_skipping_env, queue)
        await wait_until(handle, lambda s: s.awaiting_review)
        await handle.signal(
            RSIWorkflow.approve_review, {"reviewer": "eve", "hypothesis_id": "h-stale"}
        )
        status = await wait_until(handle, lambda s: bool(s.refused_messages))
        assert "stale review" in status.refused_messages[-1].reason
        await handle.signal(RSIWorkflow.reject_review, {"reviewer": "bob"})
        await handle.result()


async def test_rollback_signal_without_payload_rolls_back(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """`temporal workflow signal --name rollback` with no input is a manual rollback."""
    fake = FakeRSI()
    fake.settings = fake.settings.model_copy(update={"monitor_window_s": 7 * 86400})
    queue = uuid.uuid4().hex
    async with worker(time_skipping_env, fake, queue):
        handle = await start(time_skipping_env, queue)
        await wait_until(handle, lambda s: s.phase == "monitoring")
        await handle.signal("rollback")
        final = await handle.result()
    assert final.history[-1].outcome == "rolled_back"
    assert "manual rollback" in fake.rollbacks[0].reason


async def test_request_rollback_update_answers_what_it_undoes(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """While a deployment is monitored, the update is accepted and names the deployment and the
    version it restores; the loop then rolls back."""
    fake = FakeRSI()
    fake.settings = fake.settings.model_copy(update={"monitor_window_s": 7 * 86400})
    queue = uuid.uuid4().hex
    async with worker(time_skipping_env, fake, queue):
        handle = await start(time_skipping_env, queue)
        await wait_until(handle, lambda s: s.phase == "monitoring")
        ack = await handle.execute_update(
            RSIWorkflow.request_rollback, RollbackRequest(reason="pager", actor="ops")
        )
        final = await handle.result()
    assert ack.deployment_id is not None and ack.restores_version_id == BASE
    assert final.history[-1].outcome == "rolled_back"
    assert "pager" in fake.rollbacks[0].reason


async def test_request_rollback_is_refused_when_nothing_can_be_rolled_back(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """Awaiting review, nothing is deployed or under test: the update is refused with the reason
    and nothing is recorded (the loop is not left with a pending rollback)."""
    fake, queue = FakeRSI(requires_review=True), uuid.uuid4().hex
    async with worker(time_skipping_env, fake, queue):
        handle = await start(time_skipping_env, queue)
        await wait_until(handle, lambda s: s.awaiting_review)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(RSIWorkflow.request_rollback, RollbackRequest())
        cause = refused.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "NothingToRollBack"
        assert "nothing to roll back" in cause.message
        status = await handle.query(RSIWorkflow.status)
        assert not status.rollback_requested
        await handle.signal(RSIWorkflow.reject_review, {"reviewer": "bob"})
        await handle.result()
