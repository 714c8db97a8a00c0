"""Phase 5: deploy (switch routing), check health after deploy, roll back.

Every routing change carries a business idempotency key (deployment id = graph, cycle, version),
checked and stored in the same transaction, so a retried or replayed step never deploys twice.
"""

from __future__ import annotations

import time

from temporalio import activity

from activities._support import heartbeating, log, misuse_is_final, off_loop
from activities.deps import ActivityDeps
from spark.registry.deployments import deployment_id_for
from spark.rsi.contracts import (
    DeployInput,
    DeployResult,
    HealthInput,
    HealthResult,
    RollbackInput,
    RollbackResult,
)
from spark.rsi.monitoring import (
    HealthPolicy,
    HealthVerdict,
    assess_objective_health,
)
from spark.rsi.objectives import objective_of


class DeploymentActivities:
    """Writes routing, deployment records and their audit events."""

    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name="deploy_version")
    @misuse_is_final
    @heartbeating
    async def deploy_version(self, inp: DeployInput) -> DeployResult:
        """One routing step: route ``share`` of traffic to the new version (a rollout stage), or
        all of it (``share`` None, the last step of every strategy). Idempotent per step."""
        return await off_loop(self._deploy, inp)

    def _deploy(self, inp: DeployInput) -> DeployResult:
        key = deployment_id_for(inp.graph_id, inp.cycle, inp.to_version_id)
        self._deps.deployments.start(
            key, inp.graph_id, inp.cycle, inp.from_version_id, inp.to_version_id, inp.strategy
        )
        reason = f"deploy hypothesis {inp.hypothesis_id} ({inp.strategy}, step {inp.step})"
        if inp.share is None:
            state = self._deps.routing.apply(
                inp.graph_id,
                idempotency_key=f"deploy:{key}",
                action="set_active",
                active_version_id=inp.to_version_id,
                actor=inp.actor,
                reason=reason,
            )
            self._deps.deployments.finish(key, "deployed", f"all traffic on {inp.to_version_id}")
        else:
            state = self._deps.routing.apply(
                inp.graph_id,
                idempotency_key=f"deploy:{key}:step{inp.step}",
                action="set_candidate",
                candidate_version_id=inp.to_version_id,
                candidate_share=inp.share,
                actor=inp.actor,
                reason=reason,
            )
        log.info(
            "deployment step",
            graph_id=inp.graph_id,
            deployment_id=key,
            version_id=inp.to_version_id,
            share=inp.share,
            step=inp.step,
        )
        return DeployResult(
            deployment_id=key,
            deployed_at=state.updated_at.timestamp(),
            routing_revision=state.revision,
        )

    @activity.defn(name="check_health")
    @misuse_is_final
    @heartbeating
    async def check_health(self, inp: HealthInput) -> HealthResult:
        """Compare the new version's live traffic with the old one's: both arms side by side
        during a rollout stage, or since the switch against before it."""
        return await off_loop(self._health, inp)

    def _health(self, inp: HealthInput) -> HealthResult:
        """Judged on the owner's objective, as the A/B test was: a p95 or error-rate tripwire of
        its own would refuse, after the test, the very trade-offs the objective accepted."""
        policy = HealthPolicy(min_traces=inp.min_traces, alpha=inp.alpha)
        verdict, current_runs = self._objective_health(inp, time.time(), policy)
        return HealthResult(
            status=verdict.status, reasons=list(verdict.reasons), candidate_traces=current_runs
        )

    def _objective_health(
        self, inp: HealthInput, now: float, policy: HealthPolicy
    ) -> tuple[HealthVerdict, int]:
        """The same windows judged on everything the owner's objective names (quality as
        feedback arrives, cost, constraints), as the A/B test judged them."""
        telemetry = self._deps.telemetry
        windows: list[tuple[str, float, float, str | None]]
        if inp.concurrent:
            windows = [
                (inp.baseline_version_id, inp.deployed_at, now, "active"),
                (inp.candidate_version_id, inp.deployed_at, now, "candidate"),
            ]
        else:
            windows = [
                (
                    inp.baseline_version_id,
                    inp.deployed_at - inp.baseline_window_s,
                    inp.deployed_at,
                    None,
                ),
                (inp.candidate_version_id, inp.deployed_at, now, None),
            ]
        baseline, current = (
            telemetry.arm_moments(
                inp.graph_id, version, since, until, arm, source=self._deps.stats_source
            )
            for version, since, until, arm in windows
        )
        spec = self._deps.registry.get_version(inp.candidate_version_id).spec
        objective = objective_of(spec.metadata, inp.objective)
        return assess_objective_health(objective, baseline, current, policy), current.runs

    @activity.defn(name="rollback_deployment")
    @misuse_is_final
    @heartbeating
    async def rollback_deployment(self, inp: RollbackInput) -> RollbackResult:
        """Route back to the replaced version; idempotent per deployment."""
        return await off_loop(self._rollback, inp)

    def _rollback(self, inp: RollbackInput) -> RollbackResult:
        state = self._deps.routing.apply(
            inp.graph_id,
            idempotency_key=f"rollback:{inp.deployment_id}",
            action="rollback",
            active_version_id=inp.to_version_id,
            actor=inp.actor,
            reason=inp.reason,
        )
        self._deps.deployments.finish(inp.deployment_id, "rolled_back", inp.reason)
        log.warning(
            "rolled back", graph_id=inp.graph_id, deployment_id=inp.deployment_id, reason=inp.reason
        )
        return RollbackResult(
            active_version_id=state.active_version_id, routing_revision=state.revision
        )
