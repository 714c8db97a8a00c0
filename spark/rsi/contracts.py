"""Pydantic models that cross the Temporal boundary: workflow input/state, activity arguments
and results, message payloads. Side-effect free; ids and summaries, never raw telemetry.

Every field but the identifiers has a default, so CLI inputs stay short
(``--input '{"graph_id": "support-triage"}'``) and fields can be added without breaking runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from spark.errors import InvalidWorkflowInputError
from spark.rsi.hypotheses import ChangeKind, Hypothesis, Metric, RiskLevel
from spark.rsi.objectives import Objective
from spark.rsi.online_plan import OnlinePlan

Phase = Literal[
    "starting",
    "planning",
    "analyzing",
    "hypothesizing",
    "validating",
    "awaiting_review",
    "building_candidate",
    "ab_testing",
    "deploying",
    "monitoring",
    "rolling_back",
    "learning",
    "sleeping",
    "paused",
    "done",
    "failed",
]
CycleOutcome = Literal[
    "shipped",
    "rolled_back",
    "rejected_test",
    "inconclusive",
    "rejected_validation",
    "rejected_review",
    "no_hypothesis",
    "insufficient_data",
    "invalid_test",
]
DeployStrategy = Literal["direct", "canary", "blue_green", "gradual"]
ABMode = Literal["replay", "online", "replay_then_online"]


class _Model(BaseModel):
    # Unbounded interval ends are real values: keep them as JSON Infinity, not null.
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")


# Upper bounds of every duration and count a workflow turns into a timer or a loop. A Temporal
# timer must fit a protobuf Duration and Python's timedelta (about 2.7e12 years and 8.6e13 s);
# far below either, these bounds keep every wait a human could mean (a month of hold or window,
# a quarter to review) and refuse the typo before anything starts.
DAY_S = 86_400.0
MAX_DURATION_S = 30 * DAY_S
MAX_REVIEW_TIMEOUT_S = 90 * DAY_S
MAX_PROPAGATION_S = 3_600.0
MAX_TRACES = 1_000_000
MAX_CYCLES = 1_000_000
MAX_ROLLOUT_STEPS = 20
MAX_KEPT_HISTORY = 100


def describe_errors(errors: list[ErrorDetails]) -> str:
    """Pydantic errors as one line naming each field: ``a.b: message (got 5)``."""
    parts = []
    for error in errors:
        field = ".".join(str(part) for part in error["loc"]) or "input"
        if error["type"] == "value_error":  # our own validators' messages say it all
            parts.append(f"{field}: {error.get('ctx', {}).get('error', error['msg'])}")
            continue
        got = "" if error["type"] == "missing" else f" (got {error.get('input')!r:.60})"
        parts.append(f"{field}: {error['msg']}{got}")
    return "; ".join(parts)


class HypothesisModel(_Model):
    """The LLM that generates one loop's hypotheses: provider and model name, never a key (the
    worker's ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY`` and base URL are used)."""

    provider: Literal["openai", "anthropic"]
    model: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")


class RSISettings(_Model):
    """Effective cycle settings: system defaults < graph metadata ``rsi`` < workflow input."""

    analysis_window_s: float = Field(default=86_400.0, gt=0, le=MAX_DURATION_S)
    min_traces: int = Field(default=30, ge=1, le=MAX_TRACES)
    replay_sample: int = Field(default=200, ge=10, le=5_000)
    alpha: float = Field(
        default=0.02,
        gt=0,
        lt=0.5,
        description="two-sided; a candidate with no effect ships with probability <= alpha / 2",
    )
    monitor_window_s: float = Field(default=300.0, gt=0, le=MAX_DURATION_S)
    monitor_checks: int = Field(default=3, ge=1, le=1_000)
    min_health_traces: int = Field(default=20, ge=1, le=MAX_TRACES)
    interval_s: float = Field(default=3_600.0, gt=0, le=MAX_DURATION_S)
    review_timeout_s: float = Field(default=86_400.0, gt=0, le=MAX_REVIEW_TIMEOUT_S)
    reviewers: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="who may approve or reject a review of this graph; empty: anyone",
    )
    max_hypotheses: int = Field(default=5, ge=1, le=20)
    change_kinds: list[ChangeKind] | None = Field(
        default=None,
        min_length=1,
        max_length=len(get_args(ChangeKind)),
        description="only hypotheses made of these change operations are proposed; None: any",
    )
    hypothesis_model: HypothesisModel | None = Field(
        default=None,
        description="the LLM generating this loop's hypotheses; None: the worker's generator "
        "(SPARK_GENERATOR)",
    )
    use_patterns: bool = Field(
        default=True,
        description="learned patterns weigh generation and ranking; False: proposals are judged "
        "on the diagnosis alone (attempts are still recorded and patterns still learned)",
    )
    auto_deploy: bool = Field(
        default=True,
        description="False: every validated change waits for a reviewer's approval before it "
        "reaches traffic; True: only those whose risk asks for review",
    )
    strategy: DeployStrategy = "direct"
    ab_mode: ABMode = Field(
        default="replay_then_online",
        description="replay recorded inputs offline, split live traffic, or replay as a gate first",
    )
    ab_candidate_share: float = Field(default=0.5, gt=0, lt=1)
    ab_looks: int = Field(default=5, ge=1, le=20)
    ab_min_window_s: float = Field(default=60.0, gt=0, le=MAX_DURATION_S)
    ab_max_window_s: float = Field(default=7 * 86_400.0, gt=0, le=MAX_DURATION_S)
    ab_min_effect: float | None = Field(
        default=None,
        ge=-10.0,
        le=10.0,
        description="smallest relative change of the primary worth detecting",
    )
    routing_propagation_s: float = Field(
        default=2.0,
        ge=0,
        le=MAX_PROPAGATION_S,
        description="how long clients take to see a routing change",
    )
    canary_share: float = Field(default=0.05, gt=0, lt=1)
    rollout_steps: list[float] = Field(
        default_factory=lambda: [0.1, 0.25, 0.5], max_length=MAX_ROLLOUT_STEPS
    )
    stage_hold_s: float = Field(default=300.0, gt=0, le=MAX_DURATION_S)
    objective: Objective | None = Field(
        default=None,
        description="what the owner values (weights, hard constraints); None: the graph's "
        "metadata['objective'], else the defaults",
    )

    @field_validator("rollout_steps")
    @classmethod
    def _rising_shares(cls, steps: list[float]) -> list[float]:
        if not steps or any(not 0 < s < 1 for s in steps) or steps != sorted(set(steps)):
            raise ValueError(f"rollout_steps must be rising shares in (0, 1), got {steps}")
        return steps

    @model_validator(mode="after")
    def _window_bounds(self) -> RSISettings:
        if self.ab_min_window_s > self.ab_max_window_s:
            raise ValueError("ab_min_window_s must not exceed ab_max_window_s")
        return self


class RSIWorkflowInput(_Model):
    """What ``temporal workflow start --type RSIWorkflow --input`` takes.

    Input that does not validate raises ``InvalidWorkflowInputError`` naming each bad field
    (not pydantic's ``ValidationError``): the workflow declares it a failure type, so a start
    with bad input fails at once instead of retrying its first workflow task forever."""

    graph_id: str = Field(min_length=1, max_length=256)
    continuous: bool = False
    max_cycles: int | None = Field(default=None, ge=1, le=MAX_CYCLES)
    settings: dict[str, Any] = Field(
        default_factory=dict, description="overrides of RSISettings fields for this workflow"
    )
    cycle: int = Field(default=1, ge=1, le=MAX_CYCLES)
    history: list[CycleSummary] = Field(default_factory=list, max_length=MAX_KEPT_HISTORY)
    paused: bool = False
    live_deployment: tuple[str, str] | None = Field(
        default=None, description="(deployment id, replaced version) a rollback would undo"
    )

    @model_validator(mode="wrap")
    @classmethod
    def _refuse_as_misuse(
        cls, data: Any, handler: ModelWrapValidatorHandler[RSIWorkflowInput]
    ) -> RSIWorkflowInput:
        try:
            return handler(data)
        except ValidationError as exc:
            raise InvalidWorkflowInputError(
                f"invalid RSIWorkflow input: {describe_errors(exc.errors(include_url=False))}"
            ) from None

    @field_validator("settings")
    @classmethod
    def _known_settings(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        """Each override names an RSISettings field and holds a value within its bounds (checks
        across fields wait for the graph's own defaults, in the plan activity)."""
        check_setting_overrides(overrides)
        return overrides


def check_setting_overrides(overrides: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming each override that is unknown or out of its field's bounds."""
    try:
        RSISettings.model_validate(overrides)
    except ValidationError as exc:
        field_errors = [e for e in exc.errors(include_url=False) if e["loc"]]
        if field_errors:
            raise ValueError(describe_errors(field_errors)) from None


class CycleSummary(_Model):
    """What one cycle did, kept (the last few) across continue-as-new."""

    cycle: int
    outcome: CycleOutcome
    hypothesis_title: str | None = None
    base_version_id: str | None = None
    candidate_version_id: str | None = None
    active_version_id: str | None = None
    reasons: list[str] = Field(default_factory=list)
    why_chosen: str | None = Field(
        default=None, description="why the tested hypothesis ranked first (see ranking)"
    )


class WindowProgress(_Model):
    """Where this cycle's online A/B window stands (shown by the ``status`` query)."""

    looks_done: int = 0
    looks: int
    runs_per_arm_planned: int
    n_baseline: int = 0
    n_candidate: int = 0
    information_fraction: float = 0.0
    last_outcome: str = "open"


class RSIStatus(_Model):
    """The ``status`` query answer."""

    graph_id: str
    cycle: int
    phase: Phase
    paused: bool
    active_version_id: str | None = None
    candidate_version_id: str | None = None
    hypothesis_title: str | None = None
    awaiting_review: bool = False
    review_hypothesis_id: str | None = None
    rollback_requested: bool = False
    details: str = ""
    ab_window: WindowProgress | None = None
    review: ReviewDossier | None = Field(
        default=None, description="this run's latest review: what the reviewer decides on"
    )
    ranking: list[RankedHypothesis] = Field(
        default_factory=list, description="this cycle's hypotheses in ranked order, with why"
    )
    history: list[CycleSummary] = Field(default_factory=list)
    refused_messages: list[RefusedMessage] = Field(
        default_factory=list,
        description="the latest signals this run refused or ignored, and why (newest last)",
    )


class RefusedMessage(_Model):
    """A signal the workflow could not act on: malformed, stale, or with nothing to act on."""

    name: str
    reason: str
    at: datetime


class RollbackRequest(_Model):
    """Payload of the ``rollback`` signal."""

    reason: str = "manual rollback"
    actor: str = "operator"


class RollbackAck(_Model):
    """Answer of the ``request_rollback`` update: what the accepted rollback will undo.

    ``deployment_id`` None: nothing deployed by this run is live yet; the request stops the
    running A/B window or rollout at its next wait."""

    graph_id: str
    phase: Phase
    deployment_id: str | None = None
    restores_version_id: str | None = None


class ReviewDecision(_Model):
    """Payload of the ``approve_review`` / ``reject_review`` signals. With ``hypothesis_id`` the
    decision applies only to that hypothesis (a stale decision is refused, not applied)."""

    reviewer: str = "reviewer"
    comment: str = ""
    hypothesis_id: str | None = None


class ReviewRequest(ReviewDecision):
    """Payload of the ``review`` update: the decision and whether it approves."""

    approve: bool


class ReviewAck(_Model):
    """Answer of the ``review`` update: which hypothesis the decision was recorded for."""

    hypothesis_id: str
    approved: bool
    reviewer: str


ReviewState = Literal["pending", "approved", "rejected", "expired"]
ReviewVerdict = Literal["approved", "rejected", "expired"]
MAX_REVIEW_DIFF_CHARS = 20_000


class ReviewDossier(_Model):
    """What a reviewer decides on: the change, its diff, its risk and why, the rationale, the
    expected effects and the evidence so far; then the verdict. Shown by the ``status`` query,
    ``spark review show`` and the Web UI, and stored with the review record."""

    review_id: str
    graph_id: str
    cycle: int
    hypothesis_id: str
    title: str
    base_version_id: str
    diagnosis: str = ""
    rationale: str = ""
    changes: list[str] = Field(default_factory=list, description="one line per operation")
    operations: list[dict[str, Any]] = Field(
        default_factory=list, description="the typed change operations, as JSON"
    )
    diff: str = Field(default="", description="text diff of the base version and the candidate")
    risk: RiskLevel = "high"
    risk_reasons: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    primary_metric: Metric = "latency"
    expected_effects: dict[str, float] = Field(default_factory=dict)
    evidence: list[str] = Field(
        default_factory=list, description="replay and A/B evidence so far, and what is to come"
    )
    allowed_reviewers: list[str] = Field(default_factory=list, description="empty: anyone")
    state: ReviewState = "pending"
    reviewer: str | None = None
    comment: str = ""


# ----- activity arguments and results -----


class OpenReviewInput(_Model):
    """Build the dossier of a hypothesis awaiting review and store the pending review
    (idempotent by ``review_id``)."""

    review_id: str
    graph_id: str
    cycle: int
    item: ValidatedHypothesis
    allowed_reviewers: list[str] = Field(default_factory=list)


class CloseReviewInput(_Model):
    """Store a review's verdict (idempotent: the same verdict again changes nothing)."""

    review_id: str
    state: ReviewVerdict
    reviewer: str | None = None
    comment: str = ""


class PlanCycleInput(_Model):
    """Resolve the graph and its effective settings."""

    graph_id: str
    overrides: dict[str, Any] = Field(default_factory=dict)


class ReleaseLoopInput(_Model):
    """Give up the graph's loop lease (held by the calling workflow)."""

    graph_id: str


class CyclePlan(_Model):
    """The graph's active version and the settings this cycle runs with."""

    graph_id: str
    active_version_id: str
    settings: RSISettings


class AnalyzeInput(_Model):
    """Analyze one version's telemetry over a window ending now."""

    graph_id: str
    version_id: str
    window_s: float
    min_traces: int


class BottleneckSummary(_Model):
    """One bottleneck, summarised for the workflow and the UI."""

    node_id: str
    kind: str
    severity: str
    metric_value: float


class AnalyzeResult(_Model):
    """The analysis outcome; ``report`` is the full diagnostic report (small)."""

    graph_id: str
    version_id: str
    trace_count: int
    sufficient_data: bool
    bottlenecks: list[BottleneckSummary] = Field(default_factory=list)
    report: dict[str, Any] = Field(default_factory=dict)


class HypothesizeInput(_Model):
    """Generate hypotheses for a diagnosed version."""

    graph_id: str
    version_id: str
    report: dict[str, Any]
    max_hypotheses: int = 5
    objective: Objective | None = Field(
        default=None,
        description="the settings' objective override; None: the graph's metadata, else defaults",
    )
    change_kinds: list[ChangeKind] | None = Field(
        default=None, description="only hypotheses made of these operations; None: any"
    )
    use_patterns: bool = Field(default=True, description="let learned patterns weigh proposals")
    hypothesis_model: HypothesisModel | None = Field(
        default=None, description="the settings' LLM for this cycle; None: the worker's generator"
    )
    settings: RSISettings | None = Field(
        default=None,
        description="the loop's settings, to plan each hypothesis' online window for the "
        "ranking; None: ranked without (older workflows)",
    )


class RankedHypothesis(_Model):
    """Where one hypothesis stands in its cycle's ranking, and why."""

    hypothesis_id: str
    title: str
    front: int = Field(ge=1, description="Pareto front of its expected effects (1 = frontier)")
    objective_change: float = Field(
        description="expected change of the owner's loss per request (negative = better)"
    )
    evidence_weight: float = Field(description="learned pattern weight behind the expectation")
    score: float = Field(
        description="-objective_change x evidence_weight x decidability (higher ranks first)"
    )
    decidability: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="power of the online window its plan can hold, relative to the design's "
        "(spark.rsi.decidability); None when no window was planned for the ranking",
    )
    breaks_constraint: str | None = Field(
        default=None, description="the hard constraint its expected effects would break, if any"
    )
    why: str = ""
    prediction_share: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="share of the predicted gain the learned patterns say to expect (realised / "
        "expected effect of earlier attempts, shrunk toward 1/2); None before any was checked",
    )


class HypothesizeResult(_Model):
    """Proposed hypotheses in ranked order (best first), not decided yet on this base version.

    ``ranking`` explains the order; ``prior_attempts`` counts each hypothesis' earlier undecided
    (inconclusive or invalid) tests on this base version, 0 for a first attempt."""

    hypotheses: list[Hypothesis] = Field(default_factory=list)
    ranking: list[RankedHypothesis] = Field(default_factory=list)
    prior_attempts: dict[str, int] = Field(default_factory=dict)
    generated: int | None = Field(
        default=None, description="proposals the generator made (None: not reported)"
    )
    excluded_by_kind: int = Field(default=0, description="dropped by the settings' change_kinds")
    already_decided: int = Field(
        default=0, description="skipped: decided on this version, or rejected on evidence"
    )


class ValidateInput(_Model):
    """Validate hypotheses against the base version's spec."""

    graph_id: str
    version_id: str
    hypotheses: list[Hypothesis]


class ValidatedHypothesis(_Model):
    """A hypothesis with its safety verdict."""

    hypothesis: Hypothesis
    approved: bool
    risk: RiskLevel
    requires_review: bool
    violations: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class ValidateResult(_Model):
    """Verdicts in the order given."""

    items: list[ValidatedHypothesis] = Field(default_factory=list)


class CreateCandidateInput(_Model):
    """Apply a hypothesis to its base version, making an immutable candidate version."""

    graph_id: str
    base_version_id: str
    hypothesis: Hypothesis
    author: str = "rsi"


class CandidateResult(_Model):
    """The candidate version's id (content-addressed: retries return the same id)."""

    candidate_version_id: str
    changes: list[str] = Field(default_factory=list)


class ABTestInput(_Model):
    """Offline replay of recorded production inputs through both versions."""

    graph_id: str
    baseline_version_id: str
    candidate_version_id: str
    primary_metric: Metric
    sample_size: int
    alpha: float
    expected_effects: dict[str, float] = Field(
        default_factory=dict, description="the hypothesis' own expected effects (its costs)"
    )
    objective: Objective | None = Field(
        default=None, description="the owner's objective; None: the graph's declared one"
    )


class MetricSummary(_Model):
    """One metric's comparison (relative change of candidate vs baseline)."""

    name: str
    role: str
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    n_baseline: int
    n_candidate: int
    method: str = ""


ABOutcome = Literal["ship", "reject", "inconclusive", "invalid"]


WINDOW_CAPACITY_KEY = "window_capacity"
"""Attempt detail: the share of its planned runs the attempt's capped online window held."""


class ABTestResult(_Model):
    """The decision and the evidence behind it."""

    outcome: ABOutcome
    reasons: list[str] = Field(default_factory=list)
    metrics: list[MetricSummary] = Field(default_factory=list)
    replayed: int = 0
    refused: int = 0
    live_runs: int = Field(default=0, description="runs of both arms in the online window")
    window_failed: bool = Field(
        default=False, description="a look of the online window failed for good: no verdict"
    )
    window_capacity: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="share of its planned runs the online window could hold (below 1 when its "
        "length was capped)",
    )


class DeployInput(_Model):
    """One routing step of a deployment; idempotent per (graph, cycle, version, step).

    ``share`` None switches all traffic (the last step of every strategy); a share routes that
    fraction of traffic to the new version while the old one stays active (a rollout stage).
    """

    graph_id: str
    cycle: int
    from_version_id: str
    to_version_id: str
    strategy: DeployStrategy = "direct"
    hypothesis_id: str | None = None
    actor: str = "rsi"
    share: float | None = Field(default=None, gt=0, le=1)
    step: int = Field(default=0, ge=0)


class DeployResult(_Model):
    """The deployment record's id and when traffic moved (epoch seconds)."""

    deployment_id: str
    deployed_at: float
    routing_revision: int


class HealthInput(_Model):
    """Compare the deployed version's live traffic since deploy with the baseline before it."""

    graph_id: str
    baseline_version_id: str
    candidate_version_id: str
    deployed_at: float
    baseline_window_s: float
    min_traces: int
    alpha: float
    concurrent: bool = Field(
        default=False,
        description="compare both routing arms since deployed_at (a rollout stage) instead of "
        "the new version since then with the old one before",
    )
    objective: Objective | None = Field(
        default=None, description="the owner's objective; None: the graph's declared one"
    )


class HealthResult(_Model):
    """``healthy``, ``regressed`` or ``insufficient_data`` with the reasons."""

    status: Literal["healthy", "regressed", "insufficient_data"]
    reasons: list[str] = Field(default_factory=list)
    candidate_traces: int = 0


class OnlineWindowInput(_Model):
    """Open an online A/B window: plan its size from the baseline, then split live traffic."""

    graph_id: str
    cycle: int
    baseline_version_id: str
    candidate_version_id: str
    primary_metric: Metric
    settings: RSISettings
    expected_effects: dict[str, float] = Field(default_factory=dict)
    evidence_factor: float = Field(
        default=1.0,
        ge=1.0,
        le=64.0,
        description="times the planned runs per arm: a retry of an undecided test gathers more",
    )
    prediction_share: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="share of the predicted gain to power the window for (the ranking's, from "
        "checked predictions); None: spark.rsi.online.PLANNED_SHARE_OF_PREDICTION",
    )


class OnlineWindowStart(_Model):
    """The window's plan and when counting starts (after clients saw the routing change);
    ``plan`` is None when the window cannot be planned, with the reasons."""

    plan: OnlinePlan | None = None
    started_at: float = 0.0
    ends_at: float | None = Field(
        default=None,
        description="epoch seconds at which the candidate's routing expires by itself (the "
        "window's cap; None in windows opened before routing expiry existed)",
    )
    reasons: list[str] = Field(default_factory=list)


class OnlineLookInput(_Model):
    """One interim (or the final) look at an online window."""

    graph_id: str
    baseline_version_id: str
    candidate_version_id: str
    primary_metric: Metric
    plan: OnlinePlan
    started_at: float
    ends_at: float | None = Field(
        default=None, description="count no run that started at or after this (the cap)"
    )
    candidate_share: float
    previous_fractions: list[float] = Field(default_factory=list)
    alpha: float
    final: bool = False


class OnlineLookResult(_Model):
    """``continue`` or the window's outcome, the information fraction reached and the evidence."""

    outcome: Literal["continue", "ship", "reject", "inconclusive", "invalid"]
    fraction: float = 0.0
    reasons: list[str] = Field(default_factory=list)
    metrics: list[MetricSummary] = Field(default_factory=list)
    n_baseline: int = 0
    n_candidate: int = 0


class EndWindowInput(_Model):
    """Take the candidate out of routing when a window ends without shipping; idempotent."""

    graph_id: str
    cycle: int
    candidate_version_id: str
    reason: str


class RollbackInput(_Model):
    """Route back to the previous version; idempotent per deployment."""

    graph_id: str
    deployment_id: str
    to_version_id: str
    reason: str
    actor: str = "rsi"


class RollbackResult(_Model):
    """Where routing points after the rollback."""

    active_version_id: str
    routing_revision: int


class AttemptEvidence(_Model):
    """What the workflow saw of an attempt, for its full record: validation, the test's
    statistics, the decision's reasons, the health checks after the rollout, the review. The
    recording activity adds what the stores hold (diff, deployment steps, node traits)."""

    validation: ValidatedHypothesis | None = None
    test: ABTestResult | None = None
    reasons: list[str] = Field(default_factory=list)
    health_checks: list[HealthResult] = Field(default_factory=list)
    review_required: bool = False
    review_approved: bool | None = None
    review: ReviewDecision | None = None


class RecordAttemptInput(_Model):
    """Store one attempt in the experience store (upsert by graph, cycle, hypothesis)."""

    graph_id: str
    cycle: int
    base_version_id: str
    candidate_version_id: str | None = None
    hypothesis: Hypothesis
    outcome: CycleOutcome
    effect: float | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    evidence: AttemptEvidence | None = Field(
        default=None, description="the full record's parts the workflow holds (None before)"
    )


class ExtractPatternsInput(_Model):
    """Recompute learned patterns (the graph that triggered it, for logs)."""

    graph_id: str


class PatternsResult(_Model):
    """How many patterns the experience store now holds."""

    pattern_count: int


RSIWorkflowInput.model_rebuild()
RSIStatus.model_rebuild()
OpenReviewInput.model_rebuild()
