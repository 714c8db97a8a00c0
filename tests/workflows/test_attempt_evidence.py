"""What RSIWorkflow sends to ``record_attempt`` for the attempt's full record (time-skipping
server, scripted activities)."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from spark.rsi.contracts import ReviewDecision, RSIWorkflowInput
from tests.workflows.fakes import FakeRSI
from workflows.rsi import RSIWorkflow


async def _run(env: WorkflowEnvironment, fake: FakeRSI, reject_as: str | None = None) -> None:
    queue = uuid.uuid4().hex
    async with Worker(
        env.client, task_queue=queue, workflows=[RSIWorkflow], activities=fake.activities()
    ):
        handle = await env.client.start_workflow(
            RSIWorkflow.run,
            RSIWorkflowInput(graph_id="g"),
            id=f"rsi-ev-{queue[:8]}",
            task_queue=queue,
        )
        if reject_as is not None:
            for _ in range(200):
                if (await handle.query(RSIWorkflow.status)).awaiting_review:
                    break
                await asyncio.sleep(0.05)
            decision = ReviewDecision(reviewer=reject_as, comment="too risky")
            await handle.signal(RSIWorkflow.reject_review, decision)
        await handle.result()


async def test_a_rolled_back_cycle_sends_its_test_and_health_checks(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """A cycle rolled back by monitoring sends the validation, the A/B result with its
    statistics, the decision's reasons and both health checks (the regressed one last)."""
    fake = FakeRSI(health=["healthy", "regressed"])
    await _run(time_skipping_env, fake)

    [sent] = fake.attempts
    evidence = sent.evidence
    assert sent.outcome == "rolled_back" and evidence is not None
    assert evidence.validation is not None and evidence.validation.approved
    assert evidence.test is not None and evidence.test.outcome == "ship"
    assert [h.status for h in evidence.health_checks] == ["healthy", "regressed"]
    assert any(r.startswith("rolled back") for r in evidence.reasons)
    assert not evidence.review_required


async def test_a_rejected_review_sends_the_reviewer_and_comment(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """A change a reviewer rejected is recorded with who rejected it and why, and no test."""
    fake = FakeRSI(requires_review=True)
    await _run(time_skipping_env, fake, reject_as="bob")

    [sent] = fake.attempts
    evidence = sent.evidence
    assert sent.outcome == "rejected_review" and evidence is not None
    assert evidence.review_required and evidence.review_approved is False
    assert evidence.review is not None
    assert (evidence.review.reviewer, evidence.review.comment) == ("bob", "too risky")
    assert evidence.test is None and evidence.health_checks == []
