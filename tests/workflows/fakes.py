"""Fake activities registered under the real activity names, scripted per test."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from temporalio import activity
from temporalio.exceptions import ApplicationError

from spark.rsi.contracts import (
    ABTestInput,
    ABTestResult,
    AnalyzeInput,
    AnalyzeResult,
    CandidateResult,
    CloseReviewInput,
    CreateCandidateInput,
    CyclePlan,
    DeployInput,
    DeployResult,
    EndWindowInput,
    ExtractPatternsInput,
    HealthInput,
    HealthResult,
    HypothesizeInput,
    HypothesizeResult,
    MetricSummary,
    OnlineLookInput,
    OnlineLookResult,
    OnlineWindowInput,
    OnlineWindowStart,
    OpenReviewInput,
    PatternsResult,
    PlanCycleInput,
    RankedHypothesis,
    RecordAttemptInput,
    ReleaseLoopInput,
    ReviewDossier,
    RollbackInput,
    RollbackResult,
    RSISettings,
    ValidatedHypothesis,
    ValidateInput,
    ValidateResult,
)
from spark.rsi.hypotheses import Hypothesis, SetConfig
from spark.rsi.online import OnlinePlan

BASE = "v-base"
CANDIDATE = "v-candidate"


def hypothesis() -> Hypothesis:
    """A retry hypothesis on node ``classify``."""
    return Hypothesis(
        graph_id="g",
        base_version_id=BASE,
        title="retry classify",
        diagnosis="classify fails 20% transiently",
        changes=[SetConfig(node_id="classify", values={"retries": 2})],
        primary_metric="error_rate",
    )


@dataclass
class FakeRSI:
    """Scripted outcomes plus a log of what the workflow asked for."""

    requires_review: bool = False
    ab_outcome: str = "ship"
    health: list[str] = field(default_factory=lambda: ["healthy"])
    settings: RSISettings = field(
        default_factory=lambda: RSISettings(
            monitor_window_s=60, monitor_checks=2, interval_s=30, ab_mode="replay"
        )
    )
    online_looks: list[str] = field(default_factory=lambda: ["ship"])
    window_planned: bool = True
    look_runs: int = 0  # runs per arm each scripted look reports
    calls: list[str] = field(default_factory=list)
    look_inputs: list[OnlineLookInput] = field(default_factory=list)
    deploy_inputs: list[DeployInput] = field(default_factory=list)
    health_inputs: list[HealthInput] = field(default_factory=list)
    attempts: list[RecordAttemptInput] = field(default_factory=list)
    rollbacks: list[RollbackInput] = field(default_factory=list)
    prior_attempts: int = 0  # earlier undecided tests of the scripted hypothesis
    prediction_share: float | None = None  # the ranking's share of the predicted gain
    window_inputs: list[OnlineWindowInput] = field(default_factory=list)
    plan_error: str | None = None  # plan_cycle refuses with LoopAlreadyRunningError
    look_delay_s: float = 0.0  # real seconds the final look takes (a slow or late look)
    first_look_delay_s: float = 0.0  # real seconds the first (interim) look takes
    cap_after_s: float | None = None  # the window's routing expires this long after opening
    look_error: str | None = None  # every look fails for good with this message
    window_capacity: float = 1.0  # share of its planned runs the scripted window holds
    reviews_closed: list[CloseReviewInput] = field(default_factory=list)

    def activities(self) -> list:
        """The fake activities bound to this script."""

        @activity.defn(name="plan_cycle")
        async def plan_cycle(inp: PlanCycleInput) -> CyclePlan:
            self.calls.append("plan_cycle")
            if self.plan_error is not None:
                raise ApplicationError(
                    self.plan_error, type="LoopAlreadyRunningError", non_retryable=True
                )
            return CyclePlan(graph_id=inp.graph_id, active_version_id=BASE, settings=self.settings)

        @activity.defn(name="release_graph_loop")
        async def release_graph_loop(inp: ReleaseLoopInput) -> bool:
            self.calls.append("release_graph_loop")
            return True

        @activity.defn(name="analyze_graph")
        async def analyze_graph(inp: AnalyzeInput) -> AnalyzeResult:
            self.calls.append("analyze_graph")
            return AnalyzeResult(
                graph_id=inp.graph_id,
                version_id=inp.version_id,
                trace_count=500,
                sufficient_data=True,
            )

        @activity.defn(name="generate_hypotheses")
        async def generate_hypotheses(inp: HypothesizeInput) -> HypothesizeResult:
            self.calls.append("generate_hypotheses")
            scripted = hypothesis()
            ranked = RankedHypothesis(
                hypothesis_id=scripted.hypothesis_id,
                title=scripted.title,
                front=1,
                objective_change=-0.2,
                evidence_weight=1.0,
                score=0.2,
                why="on the frontier; objective -0.2 per request",
                prediction_share=self.prediction_share,
            )
            return HypothesizeResult(
                hypotheses=[scripted],
                ranking=[ranked],
                prior_attempts={scripted.hypothesis_id: self.prior_attempts},
            )

        @activity.defn(name="validate_hypotheses")
        async def validate_hypotheses(inp: ValidateInput) -> ValidateResult:
            self.calls.append("validate_hypotheses")
            risk = "high" if self.requires_review else "low"
            return ValidateResult(
                items=[
                    ValidatedHypothesis(
                        hypothesis=h, approved=True, risk=risk, requires_review=self.requires_review
                    )
                    for h in inp.hypotheses
                ]
            )

        @activity.defn(name="open_review")
        async def open_review(inp: OpenReviewInput) -> ReviewDossier:
            self.calls.append("open_review")
            h = inp.item.hypothesis
            return ReviewDossier(
                review_id=inp.review_id,
                graph_id=inp.graph_id,
                cycle=inp.cycle,
                hypothesis_id=h.hypothesis_id,
                title=h.title,
                base_version_id=h.base_version_id,
                risk=inp.item.risk,
                allowed_reviewers=inp.allowed_reviewers,
            )

        @activity.defn(name="close_review")
        async def close_review(inp: CloseReviewInput) -> None:
            self.calls.append("close_review")
            self.reviews_closed.append(inp)

        @activity.defn(name="create_candidate")
        async def create_candidate(inp: CreateCandidateInput) -> CandidateResult:
            self.calls.append("create_candidate")
            return CandidateResult(candidate_version_id=CANDIDATE)

        @activity.defn(name="replay_ab_test")
        async def replay_ab_test(inp: ABTestInput) -> ABTestResult:
            self.calls.append("replay_ab_test")
            metric = MetricSummary(
                name="error_rate",
                role="primary",
                estimate=-0.8,
                ci_low=-0.9,
                ci_high=-0.7,
                p_value=0.001,
                n_baseline=200,
                n_candidate=200,
            )
            return ABTestResult(
                outcome=self.ab_outcome,
                reasons=[f"scripted {self.ab_outcome}"],
                metrics=[metric],
                replayed=200,
            )

        @activity.defn(name="start_online_window")
        async def start_online_window(inp: OnlineWindowInput) -> OnlineWindowStart:
            self.calls.append("start_online_window")
            self.window_inputs.append(inp)
            if not self.window_planned:
                return OnlineWindowStart(reasons=["online window not possible: no traffic"])
            plan = OnlinePlan(
                runs_per_arm=400,
                window_s=600.0,
                look_interval_s=600.0 / len(self.online_looks),
                looks=len(self.online_looks),
                limiting_metric=inp.primary_metric,
                metrics=[inp.primary_metric],
                runs_per_hour=5000.0,
                capped=self.window_capacity < 1.0,
                capacity=self.window_capacity,
            )
            ends_at = None
            if self.cap_after_s is not None:
                opened = activity.info().current_attempt_scheduled_time.timestamp()
                ends_at = opened + self.cap_after_s
            return OnlineWindowStart(
                plan=plan, started_at=100.0, ends_at=ends_at, reasons=["planned"]
            )

        @activity.defn(name="online_ab_look")
        async def online_ab_look(inp: OnlineLookInput) -> OnlineLookResult:
            self.calls.append("online_ab_look")
            if self.look_error is not None:
                raise ApplicationError(self.look_error, non_retryable=True)
            self.look_inputs.append(inp)
            outcome = self.online_looks[len(self.look_inputs) - 1]
            fraction = len(self.look_inputs) / len(self.online_looks)
            if inp.final and self.look_delay_s:
                await asyncio.sleep(self.look_delay_s)
                self.calls.append("late_look_returned")
            if len(self.look_inputs) == 1 and self.first_look_delay_s:
                await asyncio.sleep(self.first_look_delay_s)
                self.calls.append("late_first_look_returned")
            return OnlineLookResult(
                outcome=outcome,
                fraction=fraction,
                reasons=[f"scripted look {outcome}"],
                n_baseline=self.look_runs,
                n_candidate=self.look_runs,
            )

        @activity.defn(name="end_online_window")
        async def end_online_window(inp: EndWindowInput) -> None:
            self.calls.append("end_online_window")

        @activity.defn(name="deploy_version")
        async def deploy_version(inp: DeployInput) -> DeployResult:
            self.calls.append("deploy_version")
            self.deploy_inputs.append(inp)
            return DeployResult(
                deployment_id=f"g:c{inp.cycle}:{inp.to_version_id}",
                deployed_at=1.0,
                routing_revision=2,
            )

        @activity.defn(name="check_health")
        async def check_health(inp: HealthInput) -> HealthResult:
            self.calls.append("check_health")
            self.health_inputs.append(inp)
            status = self.health.pop(0) if len(self.health) > 1 else self.health[0]
            return HealthResult(status=status, reasons=[f"scripted {status}"])

        @activity.defn(name="rollback_deployment")
        async def rollback_deployment(inp: RollbackInput) -> RollbackResult:
            self.calls.append("rollback_deployment")
            self.rollbacks.append(inp)
            return RollbackResult(active_version_id=inp.to_version_id, routing_revision=3)

        @activity.defn(name="record_attempt")
        async def record_attempt(inp: RecordAttemptInput) -> None:
            self.calls.append("record_attempt")
            self.attempts.append(inp)

        @activity.defn(name="extract_patterns")
        async def extract_patterns(inp: ExtractPatternsInput) -> PatternsResult:
            self.calls.append("extract_patterns")
            return PatternsResult(pattern_count=1)

        return [
            plan_cycle,
            release_graph_loop,
            analyze_graph,
            generate_hypotheses,
            validate_hypotheses,
            open_review,
            close_review,
            create_candidate,
            replay_ab_test,
            start_online_window,
            online_ab_look,
            end_online_window,
            deploy_version,
            check_health,
            rollback_deployment,
            record_attempt,
            extract_patterns,
        ]
