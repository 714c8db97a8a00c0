"""A failed loop says so: the status query of a failed workflow reads ``failed`` with the reason,
not the phase it was in (issue 8, item 8), and the loop gives its graph's lease up."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from spark.rsi.contracts import RSIWorkflowInput
from tests.workflows.fakes import FakeRSI
from workflows.rsi import RSIWorkflow


async def test_failed_workflow_status_reads_failed_with_the_reason(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """A plan refused for good (here: another loop holds the graph) fails the workflow; its
    status reads ``failed`` and names the error, and the lease release still ran."""
    fake = FakeRSI(plan_error="graph 'g' already has a running RSI loop: workflow 'other'")
    queue = uuid.uuid4().hex
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[RSIWorkflow],
        activities=fake.activities(),
    ):
        handle = await time_skipping_env.client.start_workflow(
            RSIWorkflow.run,
            RSIWorkflowInput(graph_id="g"),
            id=f"rsi-fail-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        status = await handle.query(RSIWorkflow.status)
    assert status.phase == "failed"
    assert "LoopAlreadyRunningError" in status.details and "'other'" in status.details
    assert fake.calls == ["plan_cycle", "release_graph_loop"]


async def test_finished_loop_releases_its_lease(time_skipping_env: WorkflowEnvironment) -> None:
    """A loop that ends (not one that continues as new) gives its graph's lease up last."""
    fake, queue = FakeRSI(), uuid.uuid4().hex
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[RSIWorkflow],
        activities=fake.activities(),
    ):
        status = await time_skipping_env.client.execute_workflow(
            RSIWorkflow.run,
            RSIWorkflowInput(graph_id="g"),
            id=f"rsi-end-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
        )
    assert status.phase == "done"
    assert fake.calls[-1] == "release_graph_loop"
    assert fake.calls.count("release_graph_loop") == 1
