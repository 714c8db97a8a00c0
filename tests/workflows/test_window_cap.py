"""A window never overruns its cap because a look is late, and long activities heartbeat, so a
killed worker costs seconds (issue 8, item 5)."""

from __future__ import annotations

import time
import uuid

import pytest
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

import activities._support
from activities import ActivityDeps, build_activities
from activities._support import heartbeating, off_loop
from spark.rsi.contracts import (
    WINDOW_CAPACITY_KEY,
    CycleSummary,
    RSISettings,
    RSIWorkflowInput,
)
from tests.workflows.fakes import FakeRSI
from workflows.rsi import RSIWorkflow


def online_fake(**fields: object) -> FakeRSI:
    """A loop that tests online only, its window one final look long."""
    settings = RSISettings(
        monitor_window_s=60, monitor_checks=2, ab_mode="online", routing_propagation_s=0.5
    )
    return FakeRSI(settings=settings, online_looks=["ship"], look_runs=300, **fields)  # type: ignore[arg-type]


async def run_cycle(env: WorkflowEnvironment, fake: FakeRSI) -> str:
    """Run one cycle with ``fake``; the cycle's outcome."""
    return (await cycle_summary(env, fake)).outcome


async def cycle_summary(env: WorkflowEnvironment, fake: FakeRSI) -> CycleSummary:
    """Run one cycle with ``fake``; the cycle's summary (outcome and reasons)."""
    queue = uuid.uuid4().hex
    async with Worker(
        env.client, task_queue=queue, workflows=[RSIWorkflow], activities=fake.activities()
    ):
        status = await env.client.execute_workflow(
            RSIWorkflow.run,
            RSIWorkflowInput(graph_id="g"),
            id=f"rsi-cap-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
        )
    return status.history[-1]


async def test_late_final_look_does_not_keep_the_candidate_routed(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """The final look runs past the window's cap: the candidate leaves routing at the cap,
    before the late look returns; the look's verdict still decides the cycle."""
    fake = online_fake(look_delay_s=3.0)
    outcome = await run_cycle(time_skipping_env, fake)
    assert fake.calls.index("end_online_window") < fake.calls.index("late_look_returned")
    assert outcome == "shipped"
    assert fake.calls.count("end_online_window") == 1


async def test_look_that_fails_for_good_closes_the_window_as_inconclusive(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """A look that cannot be made takes the candidate out of routing and ends the test
    inconclusive; the workflow does not fail with traffic still split."""
    fake = online_fake(look_error="telemetry unreadable")
    outcome = await run_cycle(time_skipping_env, fake)
    assert outcome == "inconclusive"
    assert fake.calls.count("end_online_window") == 1
    assert "deploy_version" not in fake.calls


async def test_a_failed_look_after_a_passing_replay_ships_nothing(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """The replay gate ships, then the window's look fails for good: the window saw no verdict,
    which is not the same as seeing no traffic, so the replay's verdict does not stand in for
    it and nothing is deployed untested live."""
    settings = RSISettings(
        monitor_window_s=60,
        monitor_checks=2,
        ab_mode="replay_then_online",
        routing_propagation_s=0.5,
    )
    fake = FakeRSI(
        settings=settings, online_looks=["ship"], ab_outcome="ship", look_error="boundaries failed"
    )
    summary = await cycle_summary(time_skipping_env, fake)
    assert summary.outcome == "inconclusive"
    assert "deploy_version" not in fake.calls
    assert any("failed: boundaries failed" in reason for reason in summary.reasons)
    assert not any("no live traffic" in reason for reason in summary.reasons)


async def test_every_activity_is_scheduled_with_a_short_heartbeat_timeout(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """Every activity of a cycle, the long ones (analysis, the window's opening and looks,
    replay, health checks) and the short ones (planning, hypotheses, deployment, learning), is
    scheduled with a heartbeat timeout of seconds, so a worker killed mid-activity is noticed
    in seconds, not after a whole start-to-close timeout."""
    fake = FakeRSI(
        settings=RSISettings(monitor_window_s=60, monitor_checks=1, ab_mode="replay_then_online"),
        online_looks=["ship"],
        look_runs=300,
    )
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
            id=f"rsi-hb-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
        )
        await handle.result()
        history = await handle.fetch_history()
    timeouts = {
        event.activity_task_scheduled_event_attributes.activity_type.name: (
            event.activity_task_scheduled_event_attributes.heartbeat_timeout.ToSeconds()
        )
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    }
    long_ones = {"analyze_graph", "replay_ab_test", "start_online_window", "online_ab_look"}
    short_ones = {"plan_cycle", "generate_hypotheses", "deploy_version", "record_attempt"}
    assert long_ones | short_ones | {"check_health"} <= set(timeouts)
    assert all(0 < seconds <= 30 for seconds in timeouts.values()), timeouts


async def test_heartbeating_activity_beats_while_its_work_runs_off_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A long activity's blocking work runs in a thread while the event loop keeps beating, so
    the server hears from a live worker however long the work takes."""
    monkeypatch.setattr(activities._support, "HEARTBEAT_EVERY_S", 0.02)
    beats: list[object] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)

    def blocking_work() -> str:
        time.sleep(0.3)
        return "done"

    @heartbeating
    async def slow_analysis() -> str:
        return await off_loop(blocking_work)

    assert await env.run(slow_analysis) == "done"
    assert len(beats) >= 3


async def test_window_closed_at_its_cap_during_an_interim_look_judges_once_and_stops(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """The cap passes while the first of three looks runs: the candidate leaves routing, the
    window is judged once more as its final look over the runs up to the cap, and no further
    look timers run against a window that receives no traffic."""
    fake = online_fake(first_look_delay_s=3.0, cap_after_s=200.5)
    fake.online_looks = ["continue", "reject", "ship"]
    outcome = await run_cycle(time_skipping_env, fake)
    assert fake.calls.index("end_online_window") < fake.calls.index("late_first_look_returned")
    assert fake.calls.count("online_ab_look") == 2
    assert [look.final for look in fake.look_inputs] == [False, True]
    assert all(look.ends_at == fake.look_inputs[0].ends_at for look in fake.look_inputs)
    assert fake.look_inputs[0].ends_at is not None
    assert outcome == "rejected_test"
    assert fake.calls.count("end_online_window") == 1


def test_every_registered_activity_heartbeats(sqlite_database_url: str) -> None:
    """Each activity the worker registers is wrapped to heartbeat, so the short heartbeat
    timeout the workflow gives every activity never fails a live one."""
    registered = build_activities(ActivityDeps.from_database_url(sqlite_database_url))
    unwrapped = [
        getattr(fn, "__name__", repr(fn))
        for fn in registered
        if not getattr(fn, "__spark_heartbeating__", False)
    ]
    assert len(registered) >= 15
    assert unwrapped == []


async def test_a_capped_window_that_decides_nothing_is_recorded_with_its_capacity(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """A window holding 12% of its planned runs ends inconclusive: the attempt records that
    share, which keeps the proposal policy from retrying it on the same base version; a window
    that held its plan records nothing."""
    capped = online_fake(window_capacity=0.12)
    capped.online_looks = ["continue"]
    assert await run_cycle(time_skipping_env, capped) == "inconclusive"
    [attempt] = capped.attempts
    assert attempt.details[WINDOW_CAPACITY_KEY] == 0.12
    full = online_fake()
    full.online_looks = ["continue"]
    assert await run_cycle(time_skipping_env, full) == "inconclusive"
    assert WINDOW_CAPACITY_KEY not in full.attempts[0].details
