"""RSIWorkflow orchestration on the time-skipping server, with scripted activities."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from spark.rsi.contracts import ReviewDecision, RollbackRequest, RSIStatus, RSIWorkflowInput
from tests.workflows.fakes import BASE, CANDIDATE, FakeRSI
from workflows.rsi import RSIWorkflow


async def _start(
    env: WorkflowEnvironment, queue: str, inp: RSIWorkflowInput
) -> WorkflowHandle[RSIWorkflow, RSIStatus]:
    return await env.client.start_workflow(
        RSIWorkflow.run, inp, id=f"rsi-test-{uuid.uuid4().hex[:8]}", task_queue=queue
    )


async def _wait_for_phase(handle: WorkflowHandle[RSIWorkflow, RSIStatus], phase: str) -> RSIStatus:
    for _ in range(200):
        status = await handle.query(RSIWorkflow.status)
        if status.phase == phase:
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"workflow never reached phase {phase!r}")


def _worker(env: WorkflowEnvironment, fake: FakeRSI, queue: str) -> Worker:
    return Worker(
        env.client, task_queue=queue, workflows=[RSIWorkflow], activities=fake.activities()
    )


async def test_shipping_cycle_runs_every_phase_in_order(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """A healthy cycle calls each phase once, in the business order, and ends shipped."""
    fake, queue = FakeRSI(), uuid.uuid4().hex
    async with _worker(time_skipping_env, fake, queue):
        handle = await _start(time_skipping_env, queue, RSIWorkflowInput(graph_id="g"))
        status = await handle.result()
    assert status.history[-1].outcome == "shipped"
    assert status.active_version_id == CANDIDATE
    assert fake.calls[:7] == [
        "plan_cycle",
        "analyze_graph",
        "generate_hypotheses",
        "validate_hypotheses",
        "create_candidate",
        "replay_ab_test",
        "deploy_version",
    ]
    assert fake.calls.count("check_health") == 2
    assert [a.outcome for a in fake.attempts] == ["shipped"]


async def test_regression_during_monitoring_rolls_back(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """A regressed health check routes back to the base version and records rolled_back."""
    fake, queue = FakeRSI(health=["healthy", "regressed"]), uuid.uuid4().hex
    async with _worker(time_skipping_env, fake, queue):
        status = await (
            await _start(time_skipping_env, queue, RSIWorkflowInput(graph_id="g"))
        ).result()
    assert status.history[-1].outcome == "rolled_back"
    assert status.active_version_id == BASE
    assert [r.to_version_id for r in fake.rollbacks] == [BASE]
    assert fake.attempts[-1].outcome == "rolled_back"


async def test_rollback_signal_during_monitoring(time_skipping_env: WorkflowEnvironment) -> None:
    """A rollback signal while monitoring rolls back at once, with the operator's reason."""
    fake = FakeRSI()
    fake.settings = fake.settings.model_copy(update={"monitor_window_s": 7 * 86400})
    queue = uuid.uuid4().hex
    async with _worker(time_skipping_env, fake, queue):
        handle = await _start(time_skipping_env, queue, RSIWorkflowInput(graph_id="g"))
        await _wait_for_phase(handle, "monitoring")
        await handle.signal(
            RSIWorkflow.rollback, RollbackRequest(reason="pager fired", actor="alice")
        )
        status = await handle.result()
    assert status.history[-1].outcome == "rolled_back"
    assert "pager fired" in fake.rollbacks[0].reason and "alice" in fake.rollbacks[0].reason
    assert "check_health" not in fake.calls


async def test_high_risk_change_waits_for_approval(time_skipping_env: WorkflowEnvironment) -> None:
    """A hypothesis that requires review waits in awaiting_review until approved, then ships."""
    fake, queue = FakeRSI(requires_review=True), uuid.uuid4().hex
    async with _worker(time_skipping_env, fake, queue):
        handle = await _start(time_skipping_env, queue, RSIWorkflowInput(graph_id="g"))
        status = await _wait_for_phase(handle, "awaiting_review")
        assert status.awaiting_review and "create_candidate" not in fake.calls
        await handle.signal(RSIWorkflow.approve_review, ReviewDecision(reviewer="bob"))
        final = await handle.result()
    assert final.history[-1].outcome == "shipped"


async def test_rejected_review_records_attempt_and_never_deploys(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """A rejected review ends the cycle as rejected_review without building or deploying."""
    fake, queue = FakeRSI(requires_review=True), uuid.uuid4().hex
    async with _worker(time_skipping_env, fake, queue):
        handle = await _start(time_skipping_env, queue, RSIWorkflowInput(graph_id="g"))
        await _wait_for_phase(handle, "awaiting_review")
        await handle.signal(
            RSIWorkflow.reject_review, ReviewDecision(reviewer="bob", comment="too risky")
        )
        final = await handle.result()
    assert final.history[-1].outcome == "rejected_review"
    assert [a.outcome for a in fake.attempts] == ["rejected_review"]
    assert "deploy_version" not in fake.calls


async def test_unanswered_review_times_out_as_rejection(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """With no reviewer, the review timer expires (durably, skipped here) and nothing ships."""
    fake, queue = FakeRSI(requires_review=True), uuid.uuid4().hex
    async with _worker(time_skipping_env, fake, queue):
        final = await (
            await _start(time_skipping_env, queue, RSIWorkflowInput(graph_id="g"))
        ).result()
    assert final.history[-1].outcome == "rejected_review"
    assert [a.outcome for a in fake.attempts] == ["rejected_review"]
    assert "deploy_version" not in fake.calls


async def test_failed_ab_test_never_deploys(time_skipping_env: WorkflowEnvironment) -> None:
    """A rejected A/B decision ends the cycle as rejected_test and records it."""
    fake, queue = FakeRSI(ab_outcome="reject"), uuid.uuid4().hex
    async with _worker(time_skipping_env, fake, queue):
        final = await (
            await _start(time_skipping_env, queue, RSIWorkflowInput(graph_id="g"))
        ).result()
    assert final.history[-1].outcome == "rejected_test"
    assert "deploy_version" not in fake.calls
    assert fake.attempts[0].effect == -0.8


async def test_continuous_mode_continues_as_new_per_cycle(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """In continuous mode each cycle is its own run; history carries over; max_cycles stops it."""
    fake, queue = FakeRSI(), uuid.uuid4().hex
    async with _worker(time_skipping_env, fake, queue):
        handle = await _start(
            time_skipping_env, queue, RSIWorkflowInput(graph_id="g", continuous=True, max_cycles=3)
        )
        final = await handle.result()
    assert [c.cycle for c in final.history] == [1, 2, 3]
    assert fake.calls.count("plan_cycle") == 3
    assert final.cycle == 3


async def test_pause_holds_the_loop_until_resume(time_skipping_env: WorkflowEnvironment) -> None:
    """A paused loop stops at the next phase boundary and goes on after resume."""
    fake, queue = FakeRSI(), uuid.uuid4().hex
    async with _worker(time_skipping_env, fake, queue):
        handle = await _start(time_skipping_env, queue, RSIWorkflowInput(graph_id="g", paused=True))
        status = await _wait_for_phase(handle, "paused")
        assert status.paused and fake.calls == ["plan_cycle"]
        await handle.signal(RSIWorkflow.resume)
        final = await handle.result()
    assert final.history[-1].outcome == "shipped"
    assert not final.paused
