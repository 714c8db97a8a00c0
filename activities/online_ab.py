"""Phase 4 (online): an A/B window on live traffic, opened, looked at, and closed.

Opening plans the window from the baseline's recent runs and routes the candidate's share of
traffic to it (one routing change per window, keyed by graph, cycle and candidate, so a retried
activity never splits traffic twice). Each look reads both arms' runs since the window started
from telemetry and decides through the statistical engine. Closing without a ship takes the
candidate out of routing.
"""

from __future__ import annotations

import time
from datetime import timedelta

from temporalio import activity

from activities._support import heartbeating, log, misuse_is_final, off_loop
from activities.deps import ActivityDeps
from activities.window_planning import plan_for, planning_data
from spark.errors import InvalidInputError
from spark.registry._sql import utcnow
from spark.registry.routing import as_utc
from spark.rsi.contracts import (
    EndWindowInput,
    MetricSummary,
    OnlineLookInput,
    OnlineLookResult,
    OnlineWindowInput,
    OnlineWindowStart,
)
from spark.rsi.objectives import objective_of
from spark.rsi.online import decide_online_look
from spark.rsi.stats import Decision, MetricResult


def window_key(graph_id: str, cycle: int, candidate_version_id: str) -> str:
    """The business id of one cycle's online window (routing idempotency keys derive from it)."""
    return f"ab:{graph_id}:c{cycle}:{candidate_version_id}"


class OnlineABActivities:
    """Reads telemetry, writes routing."""

    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name="start_online_window")
    @misuse_is_final
    @heartbeating
    async def start_online_window(self, inp: OnlineWindowInput) -> OnlineWindowStart:
        """Plan the window and split traffic; a window that cannot be planned splits nothing."""
        return await off_loop(self._start, inp)

    def _start(self, inp: OnlineWindowInput) -> OnlineWindowStart:
        settings = inp.settings
        data = planning_data(self._deps.telemetry, inp.graph_id, inp.baseline_version_id, settings)
        spec = self._deps.registry.get_version(inp.baseline_version_id).spec
        objective = objective_of(spec.metadata, settings.objective)
        try:
            plan = plan_for(
                data,
                settings,
                objective,
                expected_effects=inp.expected_effects,
                evidence_factor=inp.evidence_factor,
                prediction_share=inp.prediction_share,
            )
        except InvalidInputError as exc:
            log.info("online window not planned", graph_id=inp.graph_id, reason=str(exc))
            return OnlineWindowStart(reasons=[f"online window not possible: {exc}"])
        key = window_key(inp.graph_id, inp.cycle, inp.candidate_version_id)
        # Clients stop routing to the candidate at the cap by themselves, so exposure stays
        # within plan even when no worker is alive to close the window.
        state = self._deps.routing.apply(
            inp.graph_id,
            idempotency_key=f"{key}:open",
            action="set_candidate",
            candidate_version_id=inp.candidate_version_id,
            candidate_share=settings.ab_candidate_share,
            candidate_expires_at=utcnow()
            + timedelta(seconds=settings.routing_propagation_s + plan.window_s),
            actor="rsi",
            reason=f"online A/B window of cycle {inp.cycle}",
        )
        started_at = as_utc(state.updated_at).timestamp() + settings.routing_propagation_s
        expires_at = state.candidate_expires_at
        ends_at = None if expires_at is None else as_utc(expires_at).timestamp()
        log.info(
            "online window opened",
            graph_id=inp.graph_id,
            candidate=inp.candidate_version_id,
            runs_per_arm=plan.runs_per_arm,
            window_s=plan.window_s,
        )
        return OnlineWindowStart(
            plan=plan, started_at=started_at, ends_at=ends_at, reasons=plan.notes
        )

    @activity.defn(name="online_ab_look")
    @misuse_is_final
    @heartbeating
    async def online_ab_look(self, inp: OnlineLookInput) -> OnlineLookResult:
        """Both arms' runs since the window started, judged at this look."""
        return await off_loop(self._look, inp)

    def _look(self, inp: OnlineLookInput) -> OnlineLookResult:
        telemetry = self._deps.telemetry
        # Runs after the cap are outside the window (a late look never counts them).
        until = time.time() if inp.ends_at is None else min(time.time(), inp.ends_at)
        baseline = telemetry.arm_moments(
            inp.graph_id,
            inp.baseline_version_id,
            since=inp.started_at,
            until=until,
            routing_arm="active",
            source=self._deps.stats_source,
        )
        candidate = telemetry.arm_moments(
            inp.graph_id,
            inp.candidate_version_id,
            since=inp.started_at,
            until=until,
            routing_arm="candidate",
            source=self._deps.stats_source,
        )
        counts = telemetry.assignment_counts(inp.graph_id, inp.started_at, until)
        assignment = (counts.get("active", 0), counts.get("candidate", 0))
        try:
            decision, fraction = decide_online_look(
                inp.plan,
                inp.primary_metric,
                baseline,
                candidate,
                assignment=assignment,
                candidate_share=inp.candidate_share,
                previous_fractions=inp.previous_fractions,
                alpha=inp.alpha,
                final=inp.final,
            )
        except InvalidInputError as exc:
            outcome = "inconclusive" if inp.final else "continue"
            return OnlineLookResult(
                outcome=outcome,
                reasons=[str(exc)],
                n_baseline=baseline.runs,
                n_candidate=candidate.runs,
            )
        return _look_result(decision, fraction, (baseline.runs, candidate.runs))

    @activity.defn(name="end_online_window")
    @misuse_is_final
    @heartbeating
    async def end_online_window(self, inp: EndWindowInput) -> None:
        """Route all traffic back to the active version (idempotent)."""
        await off_loop(self._end, inp)

    def _end(self, inp: EndWindowInput) -> None:
        key = window_key(inp.graph_id, inp.cycle, inp.candidate_version_id)
        state = self._deps.routing.get(inp.graph_id)
        if state.candidate_version_id != inp.candidate_version_id:
            return  # already out of routing (a retry, or an operator cleared it)
        self._deps.routing.apply(
            inp.graph_id,
            idempotency_key=f"{key}:close",
            action="clear_candidate",
            actor="rsi",
            reason=inp.reason,
        )
        log.info("online window closed", graph_id=inp.graph_id, reason=inp.reason)


def _look_result(decision: Decision, fraction: float, runs: tuple[int, int]) -> OnlineLookResult:
    """The look's outcome with the runs each arm served (the SRM check counts routing keys)."""
    return OnlineLookResult(
        outcome=decision.outcome,
        fraction=fraction,
        reasons=list(decision.reasons),
        metrics=[metric_summary(m) for m in decision.metrics],
        n_baseline=runs[0],
        n_candidate=runs[1],
    )


def metric_summary(metric: MetricResult) -> MetricSummary:
    """The workflow-facing summary of one metric's result."""
    return MetricSummary.model_validate(metric, from_attributes=True)
