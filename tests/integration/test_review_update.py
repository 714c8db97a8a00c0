"""The ``review`` update against the real dev server: answers for open reviews, refusals
(recorded nowhere, returned to the caller) for stale or absent ones."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.worker import Worker

from spark.client import SparkClient
from spark.rsi.contracts import RSISettings, RSIWorkflowInput
from spark.settings import SparkSettings
from spark.temporal import rsi_workflow_id
from tests.workflows.fakes import CANDIDATE, FakeRSI, hypothesis
from workflows.rsi import RSIWorkflow


async def _awaiting_review(client: SparkClient, graph_id: str) -> None:
    for _ in range(300):
        try:
            if (await client.status(graph_id)).awaiting_review:
                return
        except Exception:  # the first query may race the first workflow task
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("the workflow never opened a review")


async def test_review_update_accepts_the_open_review_and_refuses_stale_ones(
    dev_server: str, sqlite_database_url: str
) -> None:
    queue, graph_id = uuid.uuid4().hex, f"review-{uuid.uuid4().hex[:8]}"
    fake = FakeRSI(
        requires_review=True,
        settings=RSISettings(
            ab_mode="replay", monitor_window_s=1, monitor_checks=1, review_timeout_s=600
        ),
    )
    client = SparkClient(
        SparkSettings(
            database_url=sqlite_database_url, temporal_address=dev_server, task_queue=queue
        )
    )
    temporal = await client.temporal()
    async with Worker(
        temporal, task_queue=queue, workflows=[RSIWorkflow], activities=fake.activities()
    ):
        with pytest.raises(WorkflowUpdateFailedError) as before:
            handle = await temporal.start_workflow(
                RSIWorkflow.run,
                RSIWorkflowInput(graph_id=graph_id),
                id=rsi_workflow_id(graph_id),
                task_queue=queue,
            )
            await client.review(graph_id, approve=True, reviewer="alice")
        assert "no review is open" in str(before.value.cause)

        await _awaiting_review(client, graph_id)
        with pytest.raises(WorkflowUpdateFailedError) as stale:
            await client.review(graph_id, approve=True, reviewer="bob", hypothesis_id="h-old")
        assert "stale review" in str(stale.value.cause)

        open_id = hypothesis().hypothesis_id
        ack = await client.review(graph_id, approve=True, reviewer="carol", hypothesis_id=open_id)
        assert (ack.hypothesis_id, ack.approved, ack.reviewer) == (open_id, True, "carol")
        status = await handle.result()
    assert status.history[-1].outcome == "shipped"
    assert status.active_version_id == CANDIDATE
    client.close()
