"""Online A/B windows and staged rollouts of RSIWorkflow, on the time-skipping server."""

from __future__ import annotations

import uuid

from temporalio.testing import WorkflowEnvironment

from spark.rsi.contracts import RollbackRequest, RSISettings, RSIStatus, RSIWorkflowInput
from tests.workflows.fakes import BASE, CANDIDATE, FakeRSI
from tests.workflows.test_rsi_orchestration import _start, _wait_for_phase, _worker
from workflows.rsi import RSIWorkflow


def _settings(**overrides: object) -> RSISettings:
    base = {"monitor_window_s": 60, "monitor_checks": 1, "interval_s": 30, "stage_hold_s": 120}
    return RSISettings.model_validate(base | overrides)


async def _run(env: WorkflowEnvironment, fake: FakeRSI) -> RSIStatus:
    queue = uuid.uuid4().hex
    async with _worker(env, fake, queue):
        return await (await _start(env, queue, RSIWorkflowInput(graph_id="g"))).result()


async def test_replay_gate_then_online_window_ships_at_the_deciding_look(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """Replay passes, the window looks until the engine decides, then the candidate deploys;
    each look passes the fractions already spent and only the last planned look is final."""
    fake = FakeRSI(
        settings=_settings(ab_mode="replay_then_online"),
        online_looks=["continue", "continue", "ship", "continue"],
    )
    status = await _run(time_skipping_env, fake)
    assert status.history[-1].outcome == "shipped"
    calls = fake.calls
    start = calls.index("replay_ab_test")
    assert calls[start : start + 6] == [
        "replay_ab_test",
        "start_online_window",
        "online_ab_look",
        "online_ab_look",
        "online_ab_look",
        "deploy_version",
    ]
    assert "end_online_window" not in calls
    assert [look.previous_fractions for look in fake.look_inputs] == [[], [0.25], [0.25, 0.5]]
    assert [look.final for look in fake.look_inputs] == [False, False, False]
    assert fake.look_inputs[0].started_at == 100.0
    window = status.ab_window  # what the status query shows operators
    assert window is not None
    assert (window.looks_done, window.looks, window.last_outcome) == (3, 4, "ship")
    assert window.information_fraction == 0.75 and window.runs_per_arm_planned == 400


async def test_a_window_without_live_traffic_leaves_the_replay_verdict_standing(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """No run reached either arm: the window adds no evidence, so the replay gate decides."""
    fake = FakeRSI(
        settings=_settings(ab_mode="replay_then_online"),
        online_looks=["continue", "inconclusive"],
    )
    status = await _run(time_skipping_env, fake)
    summary = status.history[-1]
    assert summary.outcome == "shipped"
    assert "no live traffic" in summary.reasons[0]
    assert "end_online_window" in fake.calls  # the idle window was still closed


async def test_an_inconclusive_window_with_traffic_does_not_ship(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake = FakeRSI(
        settings=_settings(ab_mode="replay_then_online"),
        online_looks=["continue", "inconclusive"],
        look_runs=300,
    )
    status = await _run(time_skipping_env, fake)
    assert status.history[-1].outcome == "inconclusive"
    assert "deploy_version" not in fake.calls


async def test_online_reject_closes_the_window_and_never_deploys(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake = FakeRSI(settings=_settings(ab_mode="online"), online_looks=["continue", "reject"])
    status = await _run(time_skipping_env, fake)
    assert status.history[-1].outcome == "rejected_test"
    assert "replay_ab_test" not in fake.calls
    assert "end_online_window" in fake.calls
    assert "deploy_version" not in fake.calls
    assert fake.look_inputs[-1].final is True


async def test_failed_replay_gate_skips_the_online_window(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake = FakeRSI(settings=_settings(ab_mode="replay_then_online"), ab_outcome="reject")
    status = await _run(time_skipping_env, fake)
    assert status.history[-1].outcome == "rejected_test"
    assert "start_online_window" not in fake.calls


async def test_an_inconclusive_or_impossible_replay_goes_on_to_the_window(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """The gate stops only clear losses: what replay cannot settle, live traffic decides."""
    for replay_outcome in ("inconclusive", "invalid"):
        fake = FakeRSI(
            settings=_settings(ab_mode="replay_then_online"),
            ab_outcome=replay_outcome,
            online_looks=["ship"],
            look_runs=300,
        )
        status = await _run(time_skipping_env, fake)
        summary = status.history[-1]
        assert summary.outcome == "shipped", replay_outcome
        assert summary.reasons[0].startswith(f"replay gate: {replay_outcome}")
        assert fake.calls.count("start_online_window") == 1


async def test_unplannable_window_is_invalid(time_skipping_env: WorkflowEnvironment) -> None:
    fake = FakeRSI(settings=_settings(ab_mode="online"), window_planned=False)
    status = await _run(time_skipping_env, fake)
    summary = status.history[-1]
    assert summary.outcome == "invalid_test"
    assert any("no traffic" in reason for reason in summary.reasons)
    assert "online_ab_look" not in fake.calls


async def test_rollback_signal_stops_a_running_window(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """An operator's rollback during the window stops it: candidate out of routing, rejected."""
    fake = FakeRSI(
        settings=_settings(ab_mode="online", ab_max_window_s=86_400.0),
        online_looks=["continue"] * 5,
    )
    queue = uuid.uuid4().hex
    async with _worker(time_skipping_env, fake, queue):
        handle = await _start(time_skipping_env, queue, RSIWorkflowInput(graph_id="g"))
        await _wait_for_phase(handle, "ab_testing")
        await handle.signal(RSIWorkflow.rollback, RollbackRequest(reason="pager", actor="ops"))
        status = await handle.result()
    summary = status.history[-1]
    assert summary.outcome == "rejected_test"
    assert any("pager" in reason for reason in summary.reasons)
    assert "end_online_window" in fake.calls
    assert "deploy_version" not in fake.calls


async def test_canary_holds_a_small_share_then_switches_everything(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake = FakeRSI(settings=_settings(ab_mode="replay", strategy="canary", canary_share=0.05))
    status = await _run(time_skipping_env, fake)
    assert status.history[-1].outcome == "shipped"
    assert [(d.share, d.step) for d in fake.deploy_inputs] == [(0.05, 1), (None, 2)]
    assert fake.health_inputs[0].concurrent is True  # the canary is judged side by side
    assert fake.health_inputs[-1].concurrent is False  # then monitoring against before
    assert status.active_version_id == CANDIDATE


async def test_gradual_rollout_rolls_back_at_the_regressed_stage(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake = FakeRSI(
        settings=_settings(ab_mode="replay", strategy="gradual", rollout_steps=[0.1, 0.3, 0.6]),
        health=["healthy", "regressed"],
    )
    status = await _run(time_skipping_env, fake)
    summary = status.history[-1]
    assert summary.outcome == "rolled_back"
    assert any("gradual stage 2" in reason for reason in summary.reasons)
    assert [d.share for d in fake.deploy_inputs] == [0.1, 0.3]  # never the full switch
    assert [r.to_version_id for r in fake.rollbacks] == [BASE]
    assert status.active_version_id == BASE


async def test_stage_waits_for_enough_traffic_before_judging(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake = FakeRSI(
        settings=_settings(ab_mode="replay", strategy="canary"),
        health=["insufficient_data", "insufficient_data", "healthy"],
    )
    status = await _run(time_skipping_env, fake)
    assert status.history[-1].outcome == "shipped"
    stage_checks = [h for h in fake.health_inputs if h.concurrent]
    assert len(stage_checks) == 3


async def test_blue_green_switches_all_traffic_and_compares_with_before(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake = FakeRSI(settings=_settings(ab_mode="replay", strategy="blue_green"))
    status = await _run(time_skipping_env, fake)
    assert status.history[-1].outcome == "shipped"
    assert [d.share for d in fake.deploy_inputs] == [1.0, None]
    assert fake.health_inputs[0].concurrent is False


async def test_stages_already_covered_by_the_online_window_are_skipped(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """A window that split live traffic 50/50 and shipped already judged a 50% exposure: a 10%
    or 25% stage adds nothing, a 75% stage still runs."""
    fake = FakeRSI(
        settings=_settings(ab_mode="online", strategy="gradual", rollout_steps=[0.1, 0.25, 0.75]),
        online_looks=["ship"],
        look_runs=400,
    )
    status = await _run(time_skipping_env, fake)
    assert status.history[-1].outcome == "shipped"
    assert [(d.share, d.step) for d in fake.deploy_inputs] == [(0.75, 1), (None, 2)]


async def test_no_stage_is_skipped_when_no_live_run_was_judged(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake = FakeRSI(settings=_settings(ab_mode="replay", strategy="gradual"))
    await _run(time_skipping_env, fake)
    assert [d.share for d in fake.deploy_inputs] == [0.1, 0.25, 0.5, None]


async def test_a_retry_of_an_undecided_test_gathers_more_evidence_and_says_why_it_ranked_first(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """Inconclusive is not final: the hypothesis comes back with one earlier undecided attempt,
    so its window plans twice the runs, powered for the share of its predicted gain the ranking
    learned to expect; the status query and the cycle's record show the ranking and why the
    tested hypothesis came first."""
    fake = FakeRSI(settings=_settings(ab_mode="online"), prior_attempts=1, prediction_share=0.3)
    status = await _run(time_skipping_env, fake)
    assert [w.evidence_factor for w in fake.window_inputs] == [2.0]
    assert [w.prediction_share for w in fake.window_inputs] == [0.3]
    assert [r.front for r in status.ranking] == [1]
    why = status.history[-1].why_chosen
    assert why is not None and why.startswith("ranked #1: on the frontier")
    assert fake.attempts[-1].details["why_ranked"] == why
    assert fake.attempts[-1].details["prior_attempts"] == 1
