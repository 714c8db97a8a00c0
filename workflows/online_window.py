"""The online A/B window of one cycle, as workflow code: open it, look on durable timers, close it.

Runs inside ``RSIWorkflow`` (same history, same signals): the host gives it the workflow's
pause point, its rollback wait and its status line. Deterministic orchestration only.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Protocol

from temporalio import workflow
from temporalio.exceptions import ActivityError

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
    from spark.rsi.online_plan import evidence_factor

    from workflows.activity_calls import HEARTBEAT, call

LOOK_TIMEOUT = timedelta(minutes=10)  # a look scans the window: ~1 s per million runs
PATCH_WINDOW_CAP = "online-window-closes-routing-at-its-cap"
PATCH_FINAL_LOOK_AT_CAP = "online-window-judges-once-at-its-cap"


class WindowHost(Protocol):
    """What the window needs from the workflow that runs it."""

    def set_details(self, details: str) -> None:
        """Show progress in the status query and the Web UI."""
        ...

    async def rollback_requested_within(self, duration: timedelta, purpose: str) -> bool:
        """Wait ``duration`` on a durable timer named ``purpose``; True as soon as a rollback
        is requested."""
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
        prediction_share: float | None = None,
    ) -> None:
        self._host, self._plan, self._cycle = host, plan, cycle
        self._primary: Metric = hypothesis.primary_metric
        self._expected = dict(hypothesis.expected_effects)
        self._prediction_share = prediction_share
        self._candidate_id = candidate_id
        self._evidence_factor = evidence_factor(prior_attempts)
        self._cap: datetime | None = None  # when the window must stop routing, at the latest
        self._closed = False
        self._look_failed = False  # a look failed for good: the window has no verdict

    async def run(self) -> ABTestResult:
        """Split live traffic, look on durable timers, stop at the first decision."""
        start = await self._open()
        if start.plan is None:
            return ABTestResult(outcome="invalid", reasons=start.reasons)
        if workflow.patched(PATCH_WINDOW_CAP):
            self._cap = self._cap_of(start)
        look = await self._looks(start)
        if look.outcome != "ship" and not self._closed:
            await self._close(f"online A/B window ended: {look.outcome}")
        outcome = "inconclusive" if look.outcome == "continue" else look.outcome
        return ABTestResult(
            outcome=outcome,
            reasons=start.reasons + look.reasons,
            metrics=look.metrics,
            live_runs=look.n_baseline + look.n_candidate,
            window_failed=self._look_failed,
            window_capacity=start.plan.capacity,
        )

    def _cap_of(self, start: OnlineWindowStart) -> datetime:
        """When routing to the candidate ends: its routing expiry when the window has one (the
        instant clients stop by themselves), else the plan's length from now."""
        assert start.plan is not None
        if start.ends_at is not None:
            return datetime.fromtimestamp(start.ends_at, UTC)
        propagation = self._plan.settings.routing_propagation_s
        return workflow.now() + timedelta(seconds=propagation + start.plan.window_s)

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
            prediction_share=self._prediction_share,
        )
        return await call(
            "start_online_window",
            arg,
            OnlineWindowStart,
            summary=f"open online A/B window for {self._candidate_id}",
            heartbeat=HEARTBEAT,
        )

    async def _looks(self, start: OnlineWindowStart) -> OnlineLookResult:
        assert start.plan is not None
        window, fractions = start.plan, list[float]()
        result = OnlineLookResult(outcome="continue")
        progress = WindowProgress(looks=window.looks, runs_per_arm_planned=window.runs_per_arm)
        self._host.report_window(progress)
        for look in range(1, window.looks + 1):
            self._host.set_details(
                f"online A/B window on {self._candidate_id}: look {look}/{window.looks} in "
                f"{window.look_interval_s:.0f}s; {progress.n_baseline} baseline and "
                f"{progress.n_candidate} candidate runs so far of {window.runs_per_arm} per arm "
                f"planned (information {progress.information_fraction:.0%})"
            )
            interval = timedelta(seconds=window.look_interval_s)
            purpose = f"online A/B window: wait before look {look}/{window.looks}"
            if await self._host.rollback_requested_within(interval, purpose):
                reason = f"online window stopped: {self._host.take_rollback_reason()}"
                self._host.report_window(
                    progress.model_copy(update={"last_outcome": "stopped by rollback"})
                )
                return OnlineLookResult(outcome="reject", reasons=[reason])
            await self._host.pause_point()
            result = await self._look_within_cap(start, look, fractions)
            if self._closed and result.outcome == "continue" and look < window.looks:
                # Closed at its cap while this interim look ran: no more traffic comes, so
                # judge once more, as the final look over the runs up to the cap, instead of
                # waiting out looks that would see nothing new.
                result = await self._final_look(start, look, fractions, result)
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

    async def _look_within_cap(
        self, start: OnlineWindowStart, look: int, fractions: list[float]
    ) -> OnlineLookResult:
        """Look; when the look is still running (slow, retrying, its worker gone) at the
        window's cap, take the candidate out of routing then and there, so exposure never
        outgrows the plan; a look that fails for good closes the window as inconclusive."""
        if self._cap is None:  # runs started before the cap existed
            return await self._look(start, look, fractions)
        pending = asyncio.create_task(self._look(start, look, fractions))
        remaining = (self._cap - workflow.now()).total_seconds()
        if remaining > 0:
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    pending.done,
                    timeout=timedelta(seconds=remaining),
                    timeout_summary="online A/B window cap",
                )
        if not pending.done():
            await self._close("online A/B window reached its cap while a look was still running")
        try:
            return await pending
        except ActivityError as err:
            self._look_failed = True
            if not self._closed:
                await self._close(f"online A/B look {look} failed")
            reason = f"look {look} failed: {err.cause or err}"
            return OnlineLookResult(outcome="inconclusive", reasons=[reason])

    async def _final_look(
        self,
        start: OnlineWindowStart,
        look: int,
        fractions: list[float],
        interim: OnlineLookResult,
    ) -> OnlineLookResult:
        if not workflow.patched(PATCH_FINAL_LOOK_AT_CAP):
            return interim  # histories from before this: the window kept looking
        if interim.fraction > (fractions[-1] if fractions else 0.0):
            fractions.append(interim.fraction)
        try:
            return await self._look(start, look, fractions, final=True)
        except ActivityError as err:
            self._look_failed = True
            reason = f"final look after the cap failed: {err.cause or err}"
            return OnlineLookResult(outcome="inconclusive", reasons=[reason])

    async def _look(
        self, start: OnlineWindowStart, look: int, fractions: list[float], *, final: bool = False
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
            ends_at=start.ends_at,
            candidate_share=plan.settings.ab_candidate_share,
            previous_fractions=fractions,
            alpha=plan.settings.alpha,
            final=final or look == window.looks,
        )
        return await call(
            "online_ab_look",
            arg,
            OnlineLookResult,
            summary=f"online A/B look {look}/{window.looks}",
            start_to_close=LOOK_TIMEOUT,
            heartbeat=HEARTBEAT,
        )

    async def _close(self, reason: str) -> None:
        self._closed = True
        arg = EndWindowInput(
            graph_id=self._plan.graph_id,
            cycle=self._cycle,
            candidate_version_id=self._candidate_id,
            reason=reason,
        )
        await call("end_online_window", arg, type(None), summary="close online A/B window")
