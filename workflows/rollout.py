"""The rollout of one cycle, as workflow code: the strategy's stages, each held on a durable timer
and judged, then the switch of all traffic.

Runs inside ``RSIWorkflow`` (same history, same signals): the host gives it the workflow's
rollback wait, its health check, its rollback and its bookkeeping of what is live.
Deterministic orchestration only.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from spark.rsi.contracts import (
        CycleOutcome,
        CyclePlan,
        DeployInput,
        DeployResult,
        HealthResult,
    )
    from spark.rsi.hypotheses import Hypothesis
    from spark.rsi.rollout import RolloutStage, rollout_stages

    from workflows.activity_calls import call

PATCH_SKIP_EXPOSED_STAGES = "skip-rollout-stages-covered-by-the-online-window"
STAGE_EXTENSIONS = 3  # extra holds a rollout stage may wait for enough traffic to judge

RolledBack = tuple[CycleOutcome, list[str]]


class RolloutHost(Protocol):
    """What the rollout needs from the workflow that runs it."""

    def set_details(self, details: str) -> None:
        """Show progress in the status query and the Web UI."""
        ...

    async def rollback_requested_within(self, duration: timedelta, purpose: str) -> bool:
        """Wait ``duration`` on a durable timer named ``purpose``; True as soon as a rollback
        is requested."""
        ...

    def pending_rollback_reason(self) -> str:
        """The pending rollback request's reason (the request stays pending)."""
        ...

    async def check_health(
        self, plan: CyclePlan, candidate_id: str, deployment: DeployResult, concurrent: bool
    ) -> HealthResult:
        """Judge the new version's live traffic (both arms side by side when ``concurrent``)."""
        ...

    async def roll_back(self, reason: str) -> RolledBack:
        """Route back to the version the live deployment replaced."""
        ...

    def record_live(self, deployment_id: str, replaced_version_id: str) -> None:
        """Remember what a rollback would undo."""
        ...

    def mark_active(self, version_id: str) -> None:
        """The version now serves all traffic."""
        ...


class Rollout:
    """One deployment: stages, then the switch."""

    def __init__(
        self,
        host: RolloutHost,
        plan: CyclePlan,
        cycle: int,
        hypothesis: Hypothesis,
        candidate_id: str,
    ) -> None:
        self._host, self._plan, self._cycle = host, plan, cycle
        self._hypothesis, self._candidate_id = hypothesis, candidate_id

    async def run(self, exposed: float) -> DeployResult | RolledBack:
        """Walk the strategy's stages, checking health after each; then switch all traffic.
        Stages no larger than the share an online window already exposed (``exposed``) are
        skipped: the window judged that exposure with more evidence than a stage's health check.
        Returns the final switch, or the rollback's outcome when a stage regressed."""
        settings = self._plan.settings
        stages = rollout_stages(
            settings.strategy,
            canary_share=settings.canary_share,
            rollout_steps=settings.rollout_steps,
            hold_s=settings.stage_hold_s,
        )
        if workflow.patched(PATCH_SKIP_EXPOSED_STAGES):
            stages = [stage for stage in stages if stage.share > exposed]
        for step, stage in enumerate(stages, start=1):
            self._host.set_details(
                f"{settings.strategy} stage {step}/{len(stages)}: "
                f"{stage.share:.0%} of traffic on {self._candidate_id}"
            )
            routed = await self._route(stage.share, step)
            problem = await self._hold(routed, stage)
            if problem is not None:
                return await self._host.roll_back(f"{settings.strategy} stage {step}: {problem}")
        deployment = await self._route(None, len(stages) + 1)
        self._host.mark_active(self._candidate_id)
        return deployment

    async def _route(self, share: float | None, step: int) -> DeployResult:
        plan = self._plan
        arg = DeployInput(
            graph_id=plan.graph_id,
            cycle=self._cycle,
            from_version_id=plan.active_version_id,
            to_version_id=self._candidate_id,
            strategy=plan.settings.strategy,
            hypothesis_id=self._hypothesis.hypothesis_id,
            share=share,
            step=step,
        )
        target = "all traffic" if share is None else f"{share:.0%} of traffic"
        deployment = await call(
            "deploy_version",
            arg,
            DeployResult,
            summary=f"route {target} to {self._candidate_id}",
        )
        self._host.record_live(deployment.deployment_id, plan.active_version_id)
        return deployment

    async def _hold(self, routed: DeployResult, stage: RolloutStage) -> str | None:
        """Hold the stage, then judge it; the reason to roll back, or None to go on."""
        plan = self._plan
        since = routed.model_copy(
            update={"deployed_at": routed.deployed_at + plan.settings.routing_propagation_s}
        )
        for attempt in range(1 + STAGE_EXTENSIONS):
            purpose = (
                f"rollout: hold {stage.share:.0%} on {self._candidate_id} before its health check"
            )
            if attempt:
                purpose += f" (extension {attempt}/{STAGE_EXTENSIONS}: not enough traffic yet)"
            self._host.set_details(purpose)
            if await self._host.rollback_requested_within(timedelta(seconds=stage.hold_s), purpose):
                return self._host.pending_rollback_reason()
            health = await self._host.check_health(
                plan, self._candidate_id, since, stage.concurrent
            )
            if health.status == "regressed":
                return "; ".join(health.reasons)
            if health.status == "healthy":
                return None
        self._host.set_details(f"stage passed without enough traffic to judge: {health.reasons}")
        return None
