"""The full record of one attempt, as the experience store keeps it.

An ``AttemptRecord`` is everything a later reader (an operator, the pattern extractor, an LLM
prompt) may want to know about one hypothesis tried in one cycle: the hypothesis with its
rationale, typed changes and expected effects; the diff of the candidate against its base; the
validation verdict and risk; every statistic of the test with its interval; the decision and its
reasons; the deployment steps; the monitoring checks; the review; and the characteristics of the
nodes it touched (type, depth, fan-out), which patterns are correlated with.

These models are the storage format: they ignore fields they do not know, so a record written by
a newer version still loads, and every field has a default, so an older one does too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from spark.rsi.hypotheses import ChangeOp, Hypothesis
from spark.rsi.hypothesis_types import HYPOTHESIS_TYPE_OF_CHANGE, HypothesisType


class _Stored(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ValidationRecord(_Stored):
    """The static checks' verdict and the risk level."""

    approved: bool = True
    risk: str = "low"
    requires_review: bool = False
    violations: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class StatRecord(_Stored):
    """One metric of the A/B test: estimate, interval, p-value and sample sizes."""

    name: str
    role: str = ""
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    n_baseline: int = 0
    n_candidate: int = 0
    method: str = ""


class ABTestRecord(_Stored):
    """The A/B test's outcome, its reasons and every statistic it computed."""

    outcome: str
    reasons: list[str] = Field(default_factory=list)
    metrics: list[StatRecord] = Field(default_factory=list)
    replayed: int = 0
    live_runs: int = 0


class DeploymentStepRecord(_Stored):
    """One routing change of the deployment: what, who, why, when."""

    action: str
    active_version_id: str
    candidate_version_id: str | None = None
    candidate_share: float = 0.0
    revision: int = 0
    actor: str = ""
    reason: str = ""
    at: datetime | None = None


class DeploymentStepsRecord(_Stored):
    """The deployment of the candidate, with its routing steps in order."""

    deployment_id: str
    strategy: str = ""
    status: str = ""
    reason: str = ""
    steps: list[DeploymentStepRecord] = Field(default_factory=list)


class HealthCheckRecord(_Stored):
    """One post-deploy health check."""

    status: str
    reasons: list[str] = Field(default_factory=list)
    candidate_traces: int = 0


class MonitoringRecord(_Stored):
    """How the new version fared after the rollout: each check, and the end of it."""

    outcome: str
    checks: list[HealthCheckRecord] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)


class ReviewOutcome(_Stored):
    """Whether a reviewer had to decide, who did, what they said."""

    required: bool = False
    approved: bool | None = None
    reviewer: str | None = None
    comment: str = ""
    timed_out: bool = False


class DiffRecord(_Stored):
    """The candidate's diff against its base (``spark.graphs.diff``): the summary, the unified
    diff of both specs and the structured JSON diff."""

    summary: str = ""
    unified: str = ""
    structured: dict[str, Any] = Field(default_factory=dict)


class NodeCharacteristics(_Stored):
    """Where a touched node sits in its graph: its type, its depth from the entry, its fan-out."""

    node_id: str
    node_type: str
    depth: int = Field(ge=0, description="edges on the shortest path from the entry")
    fan_out: int = Field(ge=0)
    fan_in: int = Field(default=0, ge=0)


class AttemptRecord(_Stored):
    """Everything recorded about one attempt (see the module docstring)."""

    attempt_id: str
    graph_id: str
    cycle: int
    base_version_id: str
    candidate_version_id: str | None = None
    hypothesis: Hypothesis
    hypothesis_types: list[HypothesisType] = Field(default_factory=list)
    diagnosis_kind: str
    diagnosis_category: str = ""
    outcome: str
    decision_reasons: list[str] = Field(default_factory=list)
    effect: float | None = Field(default=None, description="measured change of the primary metric")
    expected_effect: float | None = Field(
        default=None, description="the hypothesis' expected change of its primary metric"
    )
    validation: ValidationRecord | None = None
    diff: DiffRecord | None = None
    test: ABTestRecord | None = None
    deployment: DeploymentStepsRecord | None = None
    monitoring: MonitoringRecord | None = None
    review: ReviewOutcome | None = None
    targets: list[NodeCharacteristics] = Field(default_factory=list)
    graph_depth: int | None = Field(default=None, description="the base graph's longest depth")
    change_signature: str | None = None
    diagnosis_fingerprint: str | None = None
    recorded_at: datetime | None = Field(default=None, description="set by the store")

    @property
    def node_types(self) -> list[str]:
        """The types of the touched nodes, each once."""
        return list(dict.fromkeys(t.node_type for t in self.targets))

    @property
    def change_kinds(self) -> list[str]:
        """The kinds of the typed changes, each once."""
        return list(dict.fromkeys(c.op for c in self.hypothesis.changes))


def hypothesis_types_of(changes: list[ChangeOp]) -> list[HypothesisType]:
    """The hypothesis types of a list of changes, each once, in order."""
    return list(dict.fromkeys(HYPOTHESIS_TYPE_OF_CHANGE[c.op] for c in changes))
