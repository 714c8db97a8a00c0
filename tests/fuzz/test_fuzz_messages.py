"""Fuzzing a live workflow's messages: no signal or update payload fails or wedges the loop, and
each malformed signal is listed as refused in ``status``."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from spark import temporal as wiring
from spark.rsi.contracts import RollbackRequest, RSIWorkflowInput
from tests.conftest import register_search_attributes
from tests.fuzz.strategies import JSON
from tests.workflows.fakes import FakeRSI
from workflows.rsi import REFUSALS_KEPT, RSIWorkflow


def _malformed(payload: Any) -> bool:
    try:
        RollbackRequest.model_validate({} if payload is None else payload)
    except ValidationError:
        return True
    return False


async def _send_all(payloads: list[Any]) -> tuple[int, str, str]:
    """Send every payload as a rollback signal and as a review update to a loop awaiting review;
    return how many refusals status lists, its phase then, and the cycle's final outcome."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(wiring.test_server_path()), plugins=[wiring.SparkPlugin()]
    )
    try:
        await register_search_attributes(env.client)
        fake, queue = FakeRSI(requires_review=True), uuid.uuid4().hex
        async with Worker(
            env.client, task_queue=queue, workflows=[RSIWorkflow], activities=fake.activities()
        ):
            handle = await env.client.start_workflow(
                RSIWorkflow.run, RSIWorkflowInput(graph_id="g"), id="rsi-fuzz", task_queue=queue
            )
            for _ in range(200):
                if (await handle.query(RSIWorkflow.status)).awaiting_review:
                    break
                await asyncio.sleep(0.05)
            for payload in payloads:
                await handle.signal("rollback", payload)
                # refused with a reason, before anything was recorded
                with contextlib.suppress(WorkflowUpdateFailedError):
                    await handle.execute_update("review", payload)
            status = await handle.query(RSIWorkflow.status)
            await handle.signal(RSIWorkflow.reject_review, {"reviewer": "fuzz"})
            final = await handle.result()
        return len(status.refused_messages), status.phase, final.history[-1].outcome
    finally:
        await env.shutdown()


@settings(max_examples=3)
@given(st.lists(JSON.filter(lambda p: not isinstance(p, dict) or "approve" not in p), max_size=6))
def test_no_message_payload_fails_or_wedges_the_loop(payloads: list[Any]) -> None:
    """Malformed rollback signals are each listed as refused; review updates with junk are
    refused; the loop stays awaiting review and ends normally when a reviewer answers."""
    refused, phase, outcome = asyncio.run(_send_all(payloads))
    assert refused == min(REFUSALS_KEPT, sum(_malformed(p) for p in payloads))
    assert phase == "awaiting_review"
    assert outcome in {"rejected_review", "rolled_back", "shipped"}
