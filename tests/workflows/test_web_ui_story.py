"""What the Web UI shows of RSIWorkflow on its own: timers named for what they wait for, a
memo set by the workflow, details carrying the last decision, a window that reads stopped after
a rollback, and reasons that say what happened."""

from __future__ import annotations

import json
import uuid

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from spark.rsi.contracts import (
    ABTestResult,
    AnalyzeResult,
    BottleneckSummary,
    HypothesizeResult,
    RollbackRequest,
    RSISettings,
    RSIStatus,
    RSIWorkflowInput,
)
from tests.workflows.fakes import BASE, FakeRSI
from tests.workflows.test_rsi_orchestration import _start, _wait_for_phase, _worker
from workflows.rsi import RSIWorkflow, _gate_reason, _no_hypothesis_reason


def _settings(**overrides: object) -> RSISettings:
    base = {"monitor_window_s": 60, "monitor_checks": 2, "interval_s": 30, "stage_hold_s": 120}
    return RSISettings.model_validate(base | overrides)


async def _timer_summaries(handle: WorkflowHandle[RSIWorkflow, RSIStatus]) -> list[str]:
    """The summary of every timer the run started, in order (what the Web UI labels them)."""
    history = await handle.fetch_history()
    summaries = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            summaries.append(json.loads(event.user_metadata.summary.data))
    return summaries


async def test_each_timer_names_what_it_waits_for(time_skipping_env: WorkflowEnvironment) -> None:
    """Window look timers, rollout holds and monitoring waits each say what they are; only the
    monitoring waits mention post-deploy monitoring. The memo is set by the workflow itself and
    the final details carry the cycle's decision."""
    fake = FakeRSI(
        settings=_settings(ab_mode="online", strategy="gradual", rollout_steps=[0.75]),
        online_looks=["continue", "ship"],
    )
    queue = uuid.uuid4().hex
    async with _worker(time_skipping_env, fake, queue):
        handle = await _start(time_skipping_env, queue, RSIWorkflowInput(graph_id="g"))
        status = await handle.result()
        summaries = await _timer_summaries(handle)
        memo = await (await handle.describe()).memo()
    assert status.history[-1].outcome == "shipped"
    assert summaries == [
        "online A/B window: wait before look 1/2",
        "online A/B window cap",
        "online A/B window: wait before look 2/2",
        "online A/B window cap",
        "rollout: hold 75% on v-candidate before its health check",
        "post-deploy monitoring: wait before health check 1/2",
        "post-deploy monitoring: wait before health check 2/2",
    ]
    assert memo == {"graph_id": "g", "started_from_version": BASE}
    assert status.details.startswith("cycle 1: done; last decision: cycle 1 shipped")


async def test_a_rollback_during_the_window_shows_the_window_stopped(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """After an operator's rollback stops the window, ``status`` no longer shows it open."""
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
    assert status.ab_window is not None
    assert status.ab_window.last_outcome == "stopped by rollback"


def test_no_hypothesis_reasons_tell_no_bottleneck_from_nothing_left() -> None:
    """A diagnosis without a bottleneck and one whose bottlenecks have nothing left to try
    read differently; the latter names the bottlenecks."""
    clean = AnalyzeResult(graph_id="g", version_id="v", trace_count=500, sufficient_data=True)
    slow = clean.model_copy(
        update={
            "bottlenecks": [
                BottleneckSummary(node_id="kb", kind="latency", severity="high", metric_value=1)
            ]
        }
    )
    unreported = HypothesizeResult()  # a result recorded before the counts existed
    assert _no_hypothesis_reason(clean, unreported) == (
        "the diagnosis found no bottleneck to act on (500 traces analysed): nothing to propose"
    )
    assert _no_hypothesis_reason(slow, unreported).startswith(
        "no untried hypothesis for the diagnosis (latency at kb)"
    )


def test_no_hypothesis_reasons_tell_no_rule_from_excluded_from_all_tried() -> None:
    """No rule for the diagnosis, every proposal of an excluded change kind, and every
    proposal already tried each read in their own words."""
    slow = AnalyzeResult(
        graph_id="g",
        version_id="v",
        trace_count=500,
        sufficient_data=True,
        bottlenecks=[
            BottleneckSummary(node_id="kb", kind="latency", severity="high", metric_value=1)
        ],
    )
    none = HypothesizeResult(generated=0)
    excluded = HypothesizeResult(generated=3, excluded_by_kind=3)
    tried = HypothesizeResult(generated=3, excluded_by_kind=1, already_decided=2)
    assert _no_hypothesis_reason(slow, none) == (
        "no rule proposes a change for the diagnosis (latency at kb)"
    )
    assert _no_hypothesis_reason(slow, excluded) == (
        "all 3 proposals for the diagnosis (latency at kb) are of change kinds the settings "
        "exclude (change_kinds)"
    )
    assert _no_hypothesis_reason(slow, tried) == (
        "nothing new to test for the diagnosis (latency at kb): all 2 proposals left were "
        "already tried; 1 more are of excluded change kinds (decided on this version, or "
        "rejected on evidence for the same diagnosis)"
    )


def test_a_gate_that_replayed_nothing_says_so() -> None:
    """The replay gate's reason names what happened: nothing replayed, no harm, or a win."""
    assert _gate_reason(ABTestResult(outcome="invalid", replayed=0)) == (
        "replay gate: invalid, nothing replayed (no recorded run was usable): "
        "the window decides alone"
    )
    assert "no significant harm on 200 replayed runs" in _gate_reason(
        ABTestResult(outcome="inconclusive", replayed=200)
    )
    assert "did better on 50 replayed runs" in _gate_reason(
        ABTestResult(outcome="ship", replayed=50)
    )
