"""RSIWorkflow: one long-running improvement loop per graph (workflow id ``rsi-<graph_id>``).

A cycle reads as the business process: plan → analyze → hypothesize → validate → [review] →
build candidate → replay A/B test → deploy → monitor on durable timers (auto-rollback) → learn.
In continuous mode the workflow sleeps for the interval and continues as new, one cycle per run.
Pure orchestration: no I/O, no clocks but ``workflow.now()``; activities do the work.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from spark.errors import InvalidWorkflowInputError
    from spark.rsi.contracts import (
        WINDOW_CAPACITY_KEY,
        ABTestInput,
        ABTestResult,
        AnalyzeInput,
        AnalyzeResult,
        AttemptEvidence,
        CandidateResult,
        CloseReviewInput,
        CreateCandidateInput,
        CycleOutcome,
        CyclePlan,
        CycleSummary,
        DeployResult,
        ExtractPatternsInput,
        HealthInput,
        HealthResult,
        HypothesizeInput,
        HypothesizeResult,
        OpenReviewInput,
        PatternsResult,
        Phase,
        PlanCycleInput,
        RecordAttemptInput,
        RefusedMessage,
        ReleaseLoopInput,
        ReviewAck,
        ReviewDecision,
        ReviewDossier,
        ReviewRequest,
        ReviewVerdict,
        RollbackAck,
        RollbackInput,
        RollbackRequest,
        RollbackResult,
        RSIStatus,
        RSIWorkflowInput,
        ValidatedHypothesis,
        ValidateInput,
        ValidateResult,
        WindowProgress,
        describe_errors,
    )
    from spark.rsi.review_memo import review_details, review_memo
    from spark.temporal import (
        RSI_WORKFLOW,
        SA_ACTIVE_VERSION,
        SA_AWAITING_REVIEW,
        SA_CANDIDATE_VERSION,
        SA_CYCLE,
        SA_DECISION,
        SA_GRAPH_ID,
        SA_PHASE,
    )

    from workflows import metrics
    from workflows.activity_calls import HEARTBEAT, call
    from workflows.online_window import OnlineWindow
    from workflows.rollout import Rollout

HISTORY_KEPT = 20
REFUSALS_KEPT = 10
# Phases in which a rollback request has something to stop even before a deployment is live.
ROLLBACK_PHASES = frozenset({"ab_testing", "deploying", "monitoring", "rolling_back"})
M = TypeVar("M", bound=BaseModel)
PATCH_GATE_STOPS_ONLY_HARM = "replay-gate-stops-only-significant-harm"
PATCH_RELEASE_LOOP = "release-graph-loop-lease-at-end"
PATCH_MEMO_FROM_WORKFLOW = "memo-set-by-the-workflow"
PATCH_PERSIST_REVIEWS = "persist-reviews"
PATCH_FAILED_WINDOW_DECIDES_NOTHING = "failed-online-window-decides-nothing"
_OUTCOME_BY_AB = {
    "reject": "rejected_test",
    "inconclusive": "inconclusive",
    "invalid": "invalid_test",
}


# Input that does not decode raises InvalidWorkflowInputError (see RSIWorkflowInput) before any
# code of ours runs; declared a failure type, it fails the workflow at once, naming each field,
# instead of failing the first workflow task forever.
@workflow.defn(name=RSI_WORKFLOW, failure_exception_types=[InvalidWorkflowInputError])
class RSIWorkflow:
    """The improvement loop of one graph."""

    @workflow.init
    def __init__(self, inp: RSIWorkflowInput) -> None:
        self._input = inp
        self._status = RSIStatus(
            graph_id=inp.graph_id,
            cycle=inp.cycle,
            phase="starting",
            paused=inp.paused,
            history=list(inp.history),
        )
        self._rollback: RollbackRequest | None = None
        self._review: tuple[bool, ReviewDecision] | None = None
        self._reviewers: list[str] = []  # who may decide the open review; empty: anyone
        # (deployment id, version it replaced): what a rollback signal would undo
        self._live_deployment: tuple[str, str] | None = inp.live_deployment
        self._proposal = HypothesizeResult()
        # for the attempt's record: the hypothesis last put to a reviewer, this test's checks
        self._review_of: str | None = None
        self._health_checks: list[HealthResult] = []
        self._tested: ValidatedHypothesis | None = None

    # ----- messages -----

    @workflow.query
    def status(self) -> RSIStatus:
        """Where the loop is: phase, versions, hypothesis, recent cycles."""
        return self._status

    # Signal payloads are typed Any and validated here, not by the data converter: a payload
    # the converter cannot decode is dropped before any handler runs, and the operator who sent
    # it would never learn why. Refusals are listed in the status query.

    @workflow.signal
    def rollback(self, request: Any = None) -> None:
        """Roll the version deployed by this loop back, now or at the next await. No payload:
        a manual rollback by ``operator``; a malformed one is refused (see ``status``)."""
        parsed = self._parse_message("rollback", RollbackRequest, request)
        if parsed is not None:
            self._rollback = parsed
            self._status.rollback_requested = True

    @workflow.update
    def request_rollback(self, request: RollbackRequest) -> RollbackAck:
        """The ``rollback`` signal with an answer: what will be undone, or refused (before
        anything is recorded) when this run has nothing to roll back."""
        self._rollback = request
        self._status.rollback_requested = True
        deployment_id, previous = self._live_deployment or (None, None)
        return RollbackAck(
            graph_id=self._input.graph_id,
            phase=self._status.phase,
            deployment_id=deployment_id,
            restores_version_id=previous,
        )

    @request_rollback.validator
    def _validate_request_rollback(self, request: RollbackRequest) -> None:
        if self._live_deployment is None and self._status.phase not in ROLLBACK_PHASES:
            raise ApplicationError(
                f"nothing to roll back on graph {self._input.graph_id!r}: no version deployed "
                f"by this loop is live and no A/B window or rollout is running "
                f"(phase {self._status.phase!r})",
                type="NothingToRollBack",
                non_retryable=True,
            )

    @workflow.signal
    def pause(self) -> None:
        """Stop at the next phase boundary until ``resume``."""
        self._status.paused = True

    @workflow.signal
    def resume(self) -> None:
        """Continue after ``pause``."""
        self._status.paused = False

    @workflow.signal
    def approve_review(self, decision: Any = None) -> None:
        """Approve the high-risk hypothesis awaiting review."""
        parsed = self._parse_message("approve_review", ReviewDecision, decision)
        if parsed is not None:
            self._record_review("approve_review", True, parsed)

    @workflow.signal
    def reject_review(self, decision: Any = None) -> None:
        """Reject the high-risk hypothesis awaiting review."""
        parsed = self._parse_message("reject_review", ReviewDecision, decision)
        if parsed is not None:
            self._record_review("reject_review", False, parsed)

    def _parse_message(self, name: str, model: type[M], payload: Any) -> M | None:
        """``payload`` as ``model`` (no payload: the model's defaults), or None after recording
        why it was refused."""
        try:
            return model.model_validate({} if payload is None else payload)
        except ValidationError as exc:
            problems = describe_errors(exc.errors(include_url=False))
            self._refuse(name, f"malformed payload: {problems}")
            return None

    def _refuse(self, name: str, reason: str) -> None:
        """Record a signal this run could not act on, for the status query and the logs."""
        refused = RefusedMessage(name=name, reason=reason, at=workflow.now())
        self._status.refused_messages = [*self._status.refused_messages, refused][-REFUSALS_KEPT:]
        self._status.details = f"{name} refused: {reason}"
        workflow.logger.warning(
            "signal refused", extra={"graph_id": self._input.graph_id, "signal": name}
        )

    @workflow.update
    def review(self, request: ReviewRequest) -> ReviewAck:
        """Approve or reject the hypothesis awaiting review, with an answer: refused (before
        anything is recorded) when no review is open or the request names another hypothesis;
        refused after it is listed in ``status`` when the reviewer is not allowed."""
        refusal = self._reviewer_problem(request)
        if refusal is not None:
            self._refuse("review", f"review from {request.reviewer!r} refused: {refusal}")
            raise ApplicationError(refusal, type="ReviewerNotAllowed", non_retryable=True)
        self._record_review("review", request.approve, request)
        assert self._status.review_hypothesis_id is not None
        return ReviewAck(
            hypothesis_id=self._status.review_hypothesis_id,
            approved=request.approve,
            reviewer=request.reviewer,
        )

    @review.validator
    def _validate_review(self, request: ReviewRequest) -> None:
        problem = self._review_problem(request)
        if problem is not None:
            raise ApplicationError(problem, type="ReviewNotOpen", non_retryable=True)

    def _review_problem(self, decision: ReviewDecision) -> str | None:
        """Why a review decision cannot apply now, or None when it can."""
        if not self._status.awaiting_review or self._review is not None:
            return f"no review is open on graph {self._input.graph_id!r}"
        expected = self._status.review_hypothesis_id
        if decision.hypothesis_id is not None and decision.hypothesis_id != expected:
            return f"stale review: {decision.hypothesis_id!r} is not the open one ({expected!r})"
        return None

    def _reviewer_problem(self, decision: ReviewDecision) -> str | None:
        """Why ``decision.reviewer`` may not decide this graph's reviews, or None when they may."""
        if not self._reviewers or decision.reviewer in self._reviewers:
            return None
        return (
            f"{decision.reviewer!r} is not an allowed reviewer of graph {self._input.graph_id!r} "
            f"(allowed: {', '.join(self._reviewers)}); nothing was decided"
        )

    def _record_review(self, name: str, approved: bool, decision: ReviewDecision) -> None:
        problem = self._review_problem(decision) or self._reviewer_problem(decision)
        if problem is not None:
            self._refuse(name, f"review from {decision.reviewer!r} ignored: {problem}")
            return
        self._review = (approved, decision)

    # ----- the loop -----

    @workflow.run
    async def run(self, inp: RSIWorkflowInput) -> RSIStatus:
        """Run one cycle; in continuous mode sleep, then continue as new for the next. A failed
        cycle reads ``failed`` in the status query, with the reason."""
        workflow.upsert_search_attributes([SA_GRAPH_ID.value_set(inp.graph_id)])
        try:
            return await self._run_cycle(inp)
        except FailureError as err:
            await self._fail(err)
            raise

    async def _run_cycle(self, inp: RSIWorkflowInput) -> RSIStatus:
        plan = await self._plan()
        summary = await self._cycle(plan)
        self._close_cycle(summary)
        if inp.continuous and (inp.max_cycles is None or inp.cycle < inp.max_cycles):
            await self._between_cycles(plan)
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(self._next_input())
        await self._honour_late_rollback()
        self._set_phase("done")
        await self._release_loop()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._status

    async def _fail(self, err: FailureError) -> None:
        """Show the failure in the status query (and, on runs that know the patch, in the
        search attributes), and give the graph's loop lease up."""
        self._status.phase = "failed"
        self._set_details(f"cycle {self._input.cycle} failed: {_root_cause(err)}")
        if workflow.patched(PATCH_RELEASE_LOOP):
            workflow.upsert_search_attributes([SA_PHASE.value_set("failed")])
        await self._release_loop()

    async def _release_loop(self) -> None:
        """Give the graph's loop lease up (one loop per graph); a lease this run cannot release
        passes to the next loop anyway once this run is closed."""
        if not workflow.patched(PATCH_RELEASE_LOOP):
            return
        try:
            await call(
                "release_graph_loop",
                ReleaseLoopInput(graph_id=self._input.graph_id),
                bool,
                summary="release the graph's loop lease",
            )
        except ActivityError:
            workflow.logger.warning(
                "loop lease not released", extra={"graph_id": self._input.graph_id}
            )

    async def _plan(self) -> CyclePlan:
        self._set_phase("planning")
        plan = await call(
            "plan_cycle",
            PlanCycleInput(graph_id=self._input.graph_id, overrides=self._input.settings),
            CyclePlan,
            summary=f"plan cycle {self._input.cycle}",
        )
        self._status.active_version_id = plan.active_version_id
        workflow.upsert_search_attributes([SA_ACTIVE_VERSION.value_set(plan.active_version_id)])
        self._record_memo(plan)
        return plan

    def _record_memo(self, plan: CyclePlan) -> None:
        """The Web UI's memo, for a loop started without one (``temporal workflow start``): the
        graph and the version the loop started from. A loop started by ``SparkClient`` already
        carries it (with the owner), and continued runs inherit their predecessor's memo."""
        if self._input.cycle != 1 or "graph_id" in workflow.memo():
            return
        if workflow.patched(PATCH_MEMO_FROM_WORKFLOW):
            workflow.upsert_memo(
                {"graph_id": plan.graph_id, "started_from_version": plan.active_version_id}
            )

    async def _cycle(self, plan: CyclePlan) -> CycleSummary:
        analysis = await self._analyze(plan)
        if not analysis.sufficient_data:
            return self._summary("insufficient_data", [f"{analysis.trace_count} traces in window"])
        validated = await self._propose(plan, analysis)
        if not validated:
            reason = _no_hypothesis_reason(analysis, self._proposal)
            return self._summary("no_hypothesis", [reason])
        chosen = await self._choose(plan, validated)
        if isinstance(chosen, str):
            return self._summary(chosen, _violations(validated))
        return await self._test_and_ship(plan, chosen)

    async def _analyze(self, plan: CyclePlan) -> AnalyzeResult:
        await self._phase("analyzing")
        settings = plan.settings
        arg = AnalyzeInput(
            graph_id=plan.graph_id,
            version_id=plan.active_version_id,
            window_s=settings.analysis_window_s,
            min_traces=settings.min_traces,
        )
        return await call(
            "analyze_graph", arg, AnalyzeResult, summary="analyze telemetry", heartbeat=HEARTBEAT
        )

    async def _propose(self, plan: CyclePlan, analysis: AnalyzeResult) -> list[ValidatedHypothesis]:
        await self._phase("hypothesizing")
        arg = HypothesizeInput(
            graph_id=plan.graph_id,
            version_id=plan.active_version_id,
            report=analysis.report,
            max_hypotheses=plan.settings.max_hypotheses,
            objective=plan.settings.objective,
            change_kinds=plan.settings.change_kinds,
            use_patterns=plan.settings.use_patterns,
            hypothesis_model=plan.settings.hypothesis_model,
            settings=plan.settings,
        )
        proposed = await call("generate_hypotheses", arg, HypothesizeResult, summary="hypothesize")
        self._proposal = proposed
        metrics.hypotheses_proposed(self._input.graph_id, proposed.hypotheses)
        self._status.ranking = list(proposed.ranking)
        if not proposed.hypotheses:
            return []
        await self._phase("validating")
        checked = await call(
            "validate_hypotheses",
            ValidateInput(
                graph_id=plan.graph_id,
                version_id=plan.active_version_id,
                hypotheses=proposed.hypotheses,
            ),
            ValidateResult,
            summary=f"validate {len(proposed.hypotheses)} hypotheses",
        )
        return checked.items

    async def _choose(
        self, plan: CyclePlan, validated: list[ValidatedHypothesis]
    ) -> ValidatedHypothesis | CycleOutcome:
        """The first approved hypothesis (reviewed when its risk or ``auto_deploy`` off asks for
        it), else why none."""
        outcome: CycleOutcome = "rejected_validation"
        for item in validated:
            if not item.approved:
                await self._record(plan, item, "rejected_validation", None, None)
                continue
            if not _needs_review(plan, item) or await self._reviewed(plan, item):
                return item
            outcome = "rejected_review"
            await self._record(plan, item, outcome, None, None)
        return outcome

    async def _reviewed(self, plan: CyclePlan, item: ValidatedHypothesis) -> bool:
        self._review = None
        self._review_of = item.hypothesis.hypothesis_id
        self._reviewers = list(plan.settings.reviewers)
        self._status.awaiting_review = True
        self._status.review_hypothesis_id = item.hypothesis.hypothesis_id
        self._status.hypothesis_title = item.hypothesis.title
        workflow.upsert_search_attributes([SA_AWAITING_REVIEW.value_set(True)])
        await self._phase("awaiting_review")
        asked_at = workflow.now()
        persist = workflow.patched(PATCH_PERSIST_REVIEWS)
        if persist:
            await self._open_review(item)
        try:
            await workflow.wait_condition(
                lambda: self._review is not None,
                timeout=timedelta(seconds=plan.settings.review_timeout_s),
                timeout_summary=f"review of {item.hypothesis.title!r}",
            )
        except TimeoutError:
            self._status.details = "review timed out: rejected by default"
        if persist:
            await self._close_review()
        self._status.awaiting_review = False
        self._status.review_hypothesis_id = None
        workflow.upsert_search_attributes([SA_AWAITING_REVIEW.value_set(False)])
        waited = workflow.now() - asked_at
        metrics.review_decided(self._input.graph_id, self._verdict()[0], waited)
        return self._review is not None and self._review[0]

    async def _open_review(self, item: ValidatedHypothesis) -> None:
        """Store the pending review with its dossier, and show the dossier in ``status``, the
        memo and the details. A store that cannot be reached costs the dossier, not the review."""
        hypothesis_id = item.hypothesis.hypothesis_id
        arg = OpenReviewInput(
            review_id=f"{self._input.graph_id}:c{self._input.cycle}:{hypothesis_id}:"
            f"{workflow.info().run_id[:8]}",
            graph_id=self._input.graph_id,
            cycle=self._input.cycle,
            item=item,
            allowed_reviewers=self._reviewers,
        )
        try:
            dossier = await call(
                "open_review", arg, ReviewDossier, summary=f"open review of {hypothesis_id}"
            )
        except ActivityError as err:
            self._status.review = None
            self._set_details(f"awaiting review (no dossier: {_root_cause(err)})")
            return
        self._show_review(dossier)
        self._set_details(review_details(dossier))

    async def _close_review(self) -> None:
        """Store the verdict (approved, rejected, or expired on timeout) with the review."""
        dossier = self._status.review
        if dossier is None or dossier.state != "pending":
            return
        state, reviewer, comment = self._verdict()
        self._show_review(
            dossier.model_copy(update={"state": state, "reviewer": reviewer, "comment": comment})
        )
        arg = CloseReviewInput(
            review_id=dossier.review_id, state=state, reviewer=reviewer, comment=comment
        )
        try:
            await call("close_review", arg, type(None), summary=f"review {state}")
        except ActivityError:
            workflow.logger.warning(
                "review verdict not stored", extra={"review_id": dossier.review_id}
            )

    def _verdict(self) -> tuple[ReviewVerdict, str | None, str]:
        """The open review's outcome: its state, who decided and their comment."""
        if self._review is None:
            return "expired", None, "review window elapsed"
        approved, decision = self._review
        return ("approved" if approved else "rejected"), decision.reviewer, decision.comment

    def _show_review(self, dossier: ReviewDossier) -> None:
        """The review in the status query and in the Web UI's memo."""
        self._status.review = dossier
        workflow.upsert_memo({"review": review_memo(dossier)})

    async def _test_and_ship(self, plan: CyclePlan, item: ValidatedHypothesis) -> CycleSummary:
        self._tested = item
        self._health_checks = []
        hypothesis = item.hypothesis
        self._status.hypothesis_title = hypothesis.title
        candidate = await self._build_candidate(plan, item)
        ab = await self._ab_test(plan, item, candidate.candidate_version_id)
        effect = _primary_effect(ab, hypothesis.primary_metric)
        if ab.outcome != "ship":
            outcome: CycleOutcome = _OUTCOME_BY_AB[ab.outcome]  # type: ignore[assignment]
            evidence = self._evidence(item, ab, ab.reasons)
            await self._record(
                plan, item, outcome, candidate.candidate_version_id, effect, evidence
            )
            return self._summary(outcome, ab.reasons, candidate.candidate_version_id)
        exposed = plan.settings.ab_candidate_share if ab.live_runs > 0 else 0.0
        deployment = await self._deploy(plan, item, candidate.candidate_version_id, exposed)
        if isinstance(deployment, DeployResult):
            metrics.version_deployed(plan.graph_id, plan.settings.strategy)
            outcome, reasons = await self._monitor(plan, candidate.candidate_version_id, deployment)
        else:
            outcome, reasons = deployment
        evidence = self._evidence(item, ab, ab.reasons + reasons)
        await self._record(plan, item, outcome, candidate.candidate_version_id, effect, evidence)
        return self._summary(outcome, ab.reasons + reasons, candidate.candidate_version_id)

    async def _build_candidate(self, plan: CyclePlan, item: ValidatedHypothesis) -> CandidateResult:
        await self._phase("building_candidate")
        arg = CreateCandidateInput(
            graph_id=plan.graph_id,
            base_version_id=plan.active_version_id,
            hypothesis=item.hypothesis,
        )
        candidate = await call("create_candidate", arg, CandidateResult, summary="build candidate")
        self._status.candidate_version_id = candidate.candidate_version_id
        workflow.upsert_search_attributes(
            [SA_CANDIDATE_VERSION.value_set(candidate.candidate_version_id)]
        )
        return candidate

    async def _ab_test(
        self, plan: CyclePlan, item: ValidatedHypothesis, candidate_id: str
    ) -> ABTestResult:
        """Replay as an offline gate, an online window on live traffic, or the gate then the
        window (``ab_mode``)."""
        await self._phase("ab_testing")
        mode = plan.settings.ab_mode
        if mode == "online":
            return await self._online_window(plan, item, candidate_id)
        replay = await self._replay(plan, item, candidate_id)
        if mode == "replay" or replay.outcome not in self._gate_passes():
            return replay
        online = await self._online_window(plan, item, candidate_id)
        gate = [_gate_reason(replay)]
        if online.outcome == "inconclusive" and online.live_runs == 0 and not self._failed(online):
            # No live traffic reached the window at all: it adds no evidence either way.
            idle = "no live traffic during the online window: the replay verdict stands"
            return replay.model_copy(update={"reasons": [idle, *replay.reasons]})
        return online.model_copy(update={"reasons": gate + online.reasons})

    def _failed(self, online: ABTestResult) -> bool:
        """Whether a look of the window failed for good: the window then has no verdict, and
        the replay's must not stand in for it (a look that keeps failing would otherwise ship
        every candidate the replay passed, untested live)."""
        return online.window_failed and workflow.patched(PATCH_FAILED_WINDOW_DECIDES_NOTHING)

    def _gate_passes(self) -> set[str]:
        """Replay outcomes that go on to the online window. The gate is a cheap pre-screen: it
        stops clear losses; what replay cannot settle (too few runs, a metric only live traffic
        shows, such as quality) is for the window to decide."""
        if workflow.patched(PATCH_GATE_STOPS_ONLY_HARM):
            return {"ship", "inconclusive", "invalid"}
        return {"ship"}

    async def _replay(
        self, plan: CyclePlan, item: ValidatedHypothesis, candidate_id: str
    ) -> ABTestResult:
        arg = ABTestInput(
            graph_id=plan.graph_id,
            baseline_version_id=plan.active_version_id,
            candidate_version_id=candidate_id,
            primary_metric=item.hypothesis.primary_metric,
            sample_size=plan.settings.replay_sample,
            alpha=plan.settings.alpha,
            expected_effects=dict(item.hypothesis.expected_effects),
            objective=plan.settings.objective,
        )
        return await call(
            "replay_ab_test",
            arg,
            ABTestResult,
            summary=f"replay A/B {plan.active_version_id} vs {candidate_id}",
            start_to_close=timedelta(minutes=30),
            heartbeat=HEARTBEAT,
        )

    async def _online_window(
        self, plan: CyclePlan, item: ValidatedHypothesis, candidate_id: str
    ) -> ABTestResult:
        hypothesis_id = item.hypothesis.hypothesis_id
        prior = self._proposal.prior_attempts.get(hypothesis_id, 0)
        share = next(
            (
                r.prediction_share
                for r in self._proposal.ranking
                if r.hypothesis_id == hypothesis_id
            ),
            None,
        )
        window = OnlineWindow(
            self,
            plan,
            self._input.cycle,
            item.hypothesis,
            candidate_id,
            prior_attempts=prior,
            prediction_share=share,
        )
        return await window.run()

    # ----- the window's host interface (workflows.online_window.WindowHost) -----

    def set_details(self, details: str) -> None:
        """Show progress in the status query and the Web UI."""
        self._set_details(details)

    async def rollback_requested_within(self, duration: timedelta, purpose: str) -> bool:
        """Wait ``duration`` on a durable timer named ``purpose`` in the Web UI; True as soon as
        a rollback is requested."""
        return await self._rollback_requested_within(duration, purpose)

    def take_rollback_reason(self) -> str:
        """The pending rollback request's reason, consuming the request."""
        reason = self._rollback_reason()
        self._rollback = None
        self._status.rollback_requested = False
        return reason

    async def pause_point(self) -> None:
        """Wait here while the loop is paused."""
        await self._pause_point()

    def report_window(self, progress: WindowProgress) -> None:
        """Publish the window's progress in the status query."""
        self._status.ab_window = progress

    async def _deploy(
        self, plan: CyclePlan, item: ValidatedHypothesis, candidate_id: str, exposed: float
    ) -> DeployResult | tuple[CycleOutcome, list[str]]:
        await self._phase("deploying")
        rollout = Rollout(self, plan, self._input.cycle, item.hypothesis, candidate_id)
        return await rollout.run(exposed)

    # ----- the rollout's host interface (workflows.rollout.RolloutHost) -----

    def pending_rollback_reason(self) -> str:
        """The pending rollback request's reason (the request stays pending)."""
        return self._rollback_reason()

    async def check_health(
        self, plan: CyclePlan, candidate_id: str, deployment: DeployResult, concurrent: bool
    ) -> HealthResult:
        """Judge the new version's live traffic (both arms side by side when ``concurrent``)."""
        return await self._check_health(plan, candidate_id, deployment, concurrent)

    async def roll_back(self, reason: str) -> tuple[CycleOutcome, list[str]]:
        """Route back to the version the live deployment replaced."""
        return await self._roll_back(reason)

    def record_live(self, deployment_id: str, replaced_version_id: str) -> None:
        """Remember what a rollback would undo."""
        self._live_deployment = (deployment_id, replaced_version_id)

    def mark_active(self, version_id: str) -> None:
        """The version now serves all traffic."""
        self._status.active_version_id = version_id
        workflow.upsert_search_attributes([SA_ACTIVE_VERSION.value_set(version_id)])

    async def _monitor(
        self, plan: CyclePlan, candidate_id: str, deployment: DeployResult
    ) -> tuple[CycleOutcome, list[str]]:
        await self._phase("monitoring")
        settings = plan.settings
        step = timedelta(seconds=settings.monitor_window_s / settings.monitor_checks)
        for check in range(1, settings.monitor_checks + 1):
            self._set_details(
                f"post-deploy monitoring of {candidate_id}: health check "
                f"{check}/{settings.monitor_checks} in {step.total_seconds():.0f}s"
            )
            purpose = f"post-deploy monitoring: wait before health check {check}/"
            if await self._rollback_requested_within(step, purpose + f"{settings.monitor_checks}"):
                return await self._roll_back(self._rollback_reason())
            health = await self._check_health(plan, candidate_id, deployment, False)
            if health.status == "regressed":
                return await self._roll_back("; ".join(health.reasons))
        return "shipped", []

    async def _rollback_requested_within(self, duration: timedelta, purpose: str) -> bool:
        """Wait ``duration`` (a timer named ``purpose``); True as soon as a rollback is asked."""
        try:
            await workflow.wait_condition(
                lambda: self._rollback is not None,
                timeout=duration,
                timeout_summary=purpose,
            )
        except TimeoutError:
            return False
        return True

    async def _check_health(
        self, plan: CyclePlan, candidate_id: str, deployment: DeployResult, concurrent: bool
    ) -> HealthResult:
        arg = HealthInput(
            graph_id=plan.graph_id,
            baseline_version_id=plan.active_version_id,
            candidate_version_id=candidate_id,
            deployed_at=deployment.deployed_at,
            baseline_window_s=plan.settings.analysis_window_s,
            min_traces=plan.settings.min_health_traces,
            alpha=plan.settings.alpha,
            concurrent=concurrent,
            objective=plan.settings.objective,
        )
        health = await call(
            "check_health", arg, HealthResult, summary="health check", heartbeat=HEARTBEAT
        )
        self._health_checks.append(health)
        return health

    async def _roll_back(self, reason: str) -> tuple[CycleOutcome, list[str]]:
        assert self._live_deployment is not None
        deployment_id, previous = self._live_deployment
        trigger = "signal" if self._rollback is not None else "health"
        self._set_phase("rolling_back")
        arg = RollbackInput(
            graph_id=self._input.graph_id,
            deployment_id=deployment_id,
            to_version_id=previous,
            reason=reason,
        )
        result = await call(
            "rollback_deployment", arg, RollbackResult, summary=f"roll back: {reason}"
        )
        self._live_deployment = None
        self._rollback = None
        self._status.rollback_requested = False
        self._status.active_version_id = result.active_version_id
        workflow.upsert_search_attributes([SA_ACTIVE_VERSION.value_set(result.active_version_id)])
        metrics.rolled_back(self._input.graph_id, trigger)
        return "rolled_back", [f"rolled back: {reason}"]

    def _rollback_reason(self) -> str:
        request = self._rollback or RollbackRequest()
        return f"{request.reason} (by {request.actor})"

    async def _record(
        self,
        plan: CyclePlan,
        item: ValidatedHypothesis,
        outcome: CycleOutcome,
        candidate_id: str | None,
        effect: float | None,
        evidence: AttemptEvidence | None = None,
    ) -> None:
        await self._phase("learning")
        evidence = evidence or self._evidence(item, None, [])
        capacity = evidence.test.window_capacity if evidence.test is not None else 1.0
        arg = RecordAttemptInput(
            graph_id=plan.graph_id,
            cycle=self._input.cycle,
            base_version_id=plan.active_version_id,
            candidate_version_id=candidate_id,
            hypothesis=item.hypothesis,
            outcome=outcome,
            effect=effect,
            details={
                "risk": item.risk,
                "violations": item.violations,
                "why_ranked": self._why_chosen(item),
                "prior_attempts": self._proposal.prior_attempts.get(
                    item.hypothesis.hypothesis_id, 0
                ),
                **({WINDOW_CAPACITY_KEY: capacity} if capacity < 1.0 else {}),
            },
            evidence=evidence,
        )
        await call("record_attempt", arg, type(None), summary=f"record attempt: {outcome}")
        await call(
            "extract_patterns",
            ExtractPatternsInput(graph_id=plan.graph_id),
            PatternsResult,
            summary="extract patterns",
        )

    def _evidence(
        self, item: ValidatedHypothesis, ab: ABTestResult | None, reasons: list[str]
    ) -> AttemptEvidence:
        """What this run saw of the attempt on ``item``, for its full record."""
        reviewed = self._review_of == item.hypothesis.hypothesis_id
        review = self._review if reviewed else None
        return AttemptEvidence(
            validation=item,
            test=ab,
            reasons=list(reasons),
            health_checks=list(self._health_checks) if ab is not None else [],
            review_required=reviewed,
            review_approved=review[0] if review else None,
            review=review[1] if review else None,
        )

    # ----- between cycles -----

    async def _between_cycles(self, plan: CyclePlan) -> None:
        self._set_phase("sleeping")
        deadline = workflow.now() + timedelta(seconds=plan.settings.interval_s)
        while True:
            remaining = (deadline - workflow.now()).total_seconds()
            if remaining <= 0:
                break
            try:
                await workflow.wait_condition(
                    lambda: self._rollback is not None,
                    timeout=timedelta(seconds=remaining),
                    timeout_summary="interval before next cycle",
                )
            except TimeoutError:
                break
            await self._honour_late_rollback()
        await self._pause_point()

    async def _honour_late_rollback(self) -> None:
        if self._rollback is None:
            return
        if self._live_deployment is None:
            self._refuse("rollback", "ignored: nothing deployed by this run is live")
            self._rollback = None
            self._status.rollback_requested = False
            return
        await self._roll_back(self._rollback_reason())

    def _next_input(self) -> RSIWorkflowInput:
        return self._input.model_copy(
            update={
                "cycle": self._input.cycle + 1,
                "history": self._status.history[-HISTORY_KEPT:],
                "paused": self._status.paused,
                "live_deployment": self._live_deployment,
            }
        )

    # ----- phase bookkeeping -----

    async def _phase(self, phase: Phase) -> None:
        await self._pause_point()
        self._set_phase(phase)

    async def _pause_point(self) -> None:
        if self._status.paused:
            previous = self._status.phase
            self._set_phase("paused")
            await workflow.wait_condition(lambda: not self._status.paused)
            self._set_phase(previous)

    def _set_phase(self, phase: Phase) -> None:
        self._status.phase = phase
        workflow.upsert_search_attributes(
            [SA_PHASE.value_set(phase), SA_CYCLE.value_set(self._input.cycle)]
        )
        details = f"cycle {self._input.cycle}: {phase}"
        if self._status.history:
            details += f"; last decision: {_decision_line(self._status.history[-1])}"
        self._set_details(details)

    def _set_details(self, details: str) -> None:
        self._status.details = details
        workflow.set_current_details(details)

    def _why_chosen(self, item: ValidatedHypothesis | None) -> str | None:
        """The ranking's explanation of ``item`` (the hypothesis this cycle tested)."""
        if item is None:
            return None
        for ranked in self._proposal.ranking:
            if ranked.hypothesis_id == item.hypothesis.hypothesis_id:
                return f"ranked #{self._proposal.ranking.index(ranked) + 1}: {ranked.why}"
        return None

    def _summary(
        self, outcome: CycleOutcome, reasons: list[str], candidate_id: str | None = None
    ) -> CycleSummary:
        return CycleSummary(
            why_chosen=self._why_chosen(self._tested),
            cycle=self._input.cycle,
            outcome=outcome,
            hypothesis_title=self._status.hypothesis_title,
            candidate_version_id=candidate_id,
            active_version_id=self._status.active_version_id,
            reasons=reasons,
        )

    def _close_cycle(self, summary: CycleSummary) -> None:
        self._status.history.append(summary)
        self._status.history = self._status.history[-HISTORY_KEPT:]
        workflow.upsert_search_attributes([SA_DECISION.value_set(summary.outcome)])
        metrics.cycle_finished(self._input.graph_id, summary.outcome)
        workflow.logger.info(
            "rsi cycle finished",
            extra={"graph_id": self._input.graph_id, "outcome": summary.outcome},
        )


def _decision_line(summary: CycleSummary) -> str:
    """One line for a finished cycle: its outcome, what it tested, its first reason."""
    line = f"cycle {summary.cycle} {summary.outcome}"
    if summary.hypothesis_title:
        line += f" ({summary.hypothesis_title})"
    return line + (f": {summary.reasons[0]}" if summary.reasons else "")


def _gate_reason(replay: ABTestResult) -> str:
    """What the replay gate found, in plain words, when it lets the online window go on."""
    head = f"replay gate: {replay.outcome}"
    if replay.replayed == 0:
        return f"{head}, nothing replayed (no recorded run was usable): the window decides alone"
    runs = f"{replay.replayed} replayed runs"
    if replay.outcome == "ship":
        return f"{head}, the candidate did better on {runs}"
    if replay.outcome == "invalid":
        why = f" ({replay.reasons[0]})" if replay.reasons else ""
        return f"{head}, the replay could not test the change{why}; no harm shown on {runs}"
    return f"{head}, no significant harm on {runs} and nothing decided: the window decides"


def _no_hypothesis_reason(analysis: AnalyzeResult, proposed: HypothesizeResult) -> str:
    """Why a cycle had nothing to test, in its own words: no bottleneck diagnosed, no rule for
    it, every proposal of a kind the settings exclude, or every proposal already decided."""
    if not analysis.bottlenecks:
        return (
            f"the diagnosis found no bottleneck to act on ({analysis.trace_count} traces "
            "analysed): nothing to propose"
        )
    found = ", ".join(f"{b.kind} at {b.node_id}" for b in analysis.bottlenecks)
    if proposed.generated is None:  # an activity result from before the counts existed
        return (
            f"no untried hypothesis for the diagnosis ({found}): no rule proposes a change for "
            "it, or every change proposed was already decided on this version"
        )
    if proposed.generated == 0:
        return f"no rule proposes a change for the diagnosis ({found})"
    if proposed.excluded_by_kind == proposed.generated:
        return (
            f"all {proposed.generated} proposals for the diagnosis ({found}) are of change kinds "
            "the settings exclude (change_kinds)"
        )
    parts = [f"all {proposed.already_decided} proposals left were already tried"]
    if proposed.excluded_by_kind:
        parts.append(f"{proposed.excluded_by_kind} more are of excluded change kinds")
    return (
        f"nothing new to test for the diagnosis ({found}): {'; '.join(parts)} (decided on this "
        "version, or rejected on evidence for the same diagnosis)"
    )


def _needs_review(plan: CyclePlan, item: ValidatedHypothesis) -> bool:
    """Whether a validated change waits for a reviewer before it reaches traffic: when its risk
    asks for it, and always when the graph's settings turn ``auto_deploy`` off. (The default,
    ``auto_deploy`` on, keeps the command sequence of runs started before the setting existed.)"""
    return item.requires_review or not plan.settings.auto_deploy


def _violations(validated: list[ValidatedHypothesis]) -> list[str]:
    return [f"{v.hypothesis.title}: {'; '.join(v.violations)}" for v in validated if v.violations]


def _primary_effect(ab: ABTestResult, metric: str) -> float | None:
    for summary in ab.metrics:
        if summary.name == metric:
            return summary.estimate
    return None


def _root_cause(err: BaseException) -> str:
    """The innermost failure's type and message (an activity's own error, not the wrapper)."""
    while isinstance(err, FailureError) and err.cause is not None:
        err = err.cause
    kind = err.type if isinstance(err, ApplicationError) and err.type else type(err).__name__
    return f"{kind}: {err.message if isinstance(err, FailureError) else err}"
