"""The online A/B window of one cycle, as workflow code: open it, look on durable timers, close it.

Runs inside ``RSIWorkflow`` (same history, same signals): the host gives it the workflow's
pause point, its rollback wait and its status line. Deterministic orchestration only.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from spark.rsi.contracts import (
        ABTestResult,
        CyclePlan,
        EndWindowInput,
        OnlineLookInput,
        OnlineLookResult,
        OnlineWindowInput,
        OnlineWindowStart,
        WindowProgress,
    )
    from spark.rsi.hypotheses import Hypothesis, Metric

    from workflows.activity_calls import call

LOOK_TIMEOUT = timedelta(minutes=10)  # a look scans the window: ~1 s per million runs


class WindowHost(Protocol):
    """What the window needs from the workflow that runs it."""

    def set_details(self, details: str) -> None:
        """Show progress in the status query and the Web UI."""
        ...

    async def rollback_requested_within(self, duration: timedelta) -> bool:
        """Wait ``duration`` on a durable timer; True as soon as a rollback is requested."""
        ...

    def take_rollback_reason(self) -> str:
        """The pending rollback request's reason, consuming the request."""
        ...

    async def pause_point(self) -> None:
        """Wait here while the loop is paused."""
        ...

    def report_window(self, progress: WindowProgress) -> None:
        """Publish the window's progress in the status query."""
        ...


MAX_EVIDENCE_DOUBLINGS = 6


class OnlineWindow:
    """One window: the candidate's share of live traffic, judged at each look."""

    def __init__(
        self,
        host: WindowHost,
        plan: CyclePlan,
        cycle: int,
        hypothesis: Hypothesis,
        candidate_id: str,
        prior_attempts: int = 0,
    ) -> None:
        self._host, self._plan, self._cycle = host, plan, cycle
        self._primary: Metric = hypothesis.primary_metric
        self._expected = dict(hypothesis.expected_effects)
        self._candidate_id = candidate_id
        # A retry of an undecided test gathers twice the evidence of the attempt before it.
        self._evidence_factor = float(2 ** min(prior_attempts, MAX_EVIDENCE_DOUBLINGS))

    async def run(self) -> ABTestResult:
        """Split live traffic, look on durable timers, stop at the first decision."""
        start = await self._open()
        if start.plan is None:
            return ABTestResult(outcome="invalid", reasons=start.reasons)
        look = await self._looks(start)
        if look.outcome != "ship":
            await self._close(f"online A/B window ended: {look.outcome}")
        outcome = "inconclusive" if look.outcome == "continue" else look.outcome
        return ABTestResult(
            outcome=outcome,
            reasons=start.reasons + look.reasons,
            metrics=look.metrics,
            live_runs=look.n_baseline + look.n_candidate,
        )

    async def _open(self) -> OnlineWindowStart:
        plan = self._plan
        arg = OnlineWindowInput(
            graph_id=plan.graph_id,
            cycle=self._cycle,
            baseline_version_id=plan.active_version_id,
            candidate_version_id=self._candidate_id,
            primary_metric=self._primary,
            settings=plan.settings,
            expected_effects=self._expected,
            evidence_factor=self._evidence_factor,
        )
        return await call(
            "start_online_window",
            arg,
            OnlineWindowStart,
            summary=f"open online A/B window for {self._candidate_id}",
        )

    async def _looks(self, start: OnlineWindowStart) -> OnlineLookResult:
        assert start.plan is not None
        window, fractions = start.plan, list[float]()
        result = OnlineLookResult(outcome="continue")
        progress = WindowProgress(looks=window.looks, runs_per_arm_planned=window.runs_per_arm)
        self._host.report_window(progress)
        for look in range(1, window.looks + 1):
            self._host.set_details(
                f"online A/B look {look}/{window.looks} in {window.look_interval_s:.0f}s "
                f"({window.runs_per_arm} runs per arm planned)"
            )
            interval = timedelta(seconds=window.look_interval_s)
            if await self._host.rollback_requested_within(interval):
                reason = f"online window stopped: {self._host.take_rollback_reason()}"
                return OnlineLookResult(outcome="reject", reasons=[reason])
            await self._host.pause_point()
            result = await self._look(start, look, fractions)
            progress = progress.model_copy(
                update={
                    "looks_done": look,
                    "n_baseline": result.n_baseline,
                    "n_candidate": result.n_candidate,
                    "information_fraction": result.fraction,
                    "last_outcome": result.outcome,
                }
            )
            self._host.report_window(progress)
            if result.outcome != "continue":
                return result
            if result.fraction > (fractions[-1] if fractions else 0.0):
                fractions.append(result.fraction)
        return result

    async def _look(
        self, start: OnlineWindowStart, look: int, fractions: list[float]
    ) -> OnlineLookResult:
        assert start.plan is not None
        plan, window = self._plan, start.plan
        arg = OnlineLookInput(
            graph_id=plan.graph_id,
            baseline_version_id=plan.active_version_id,
            candidate_version_id=self._candidate_id,
            primary_metric=self._primary,
            plan=window,
            started_at=start.started_at,
            candidate_share=plan.settings.ab_candidate_share,
            previous_fractions=fractions,
            alpha=plan.settings.alpha,
            final=look == window.looks,
        )
        return await call(
            "online_ab_look",
            arg,
            OnlineLookResult,
            summary=f"online A/B look {look}/{window.looks}",
            start_to_close=LOOK_TIMEOUT,
        )

    async def _close(self, reason: str) -> None:
        arg = EndWindowInput(
            graph_id=self._plan.graph_id,
            cycle=self._cycle,
            candidate_version_id=self._candidate_id,
            reason=reason,
        )
        await call("end_online_window", arg, type(None), summary="close online A/B window")
