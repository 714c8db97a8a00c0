"""The online window's plan and the baseline references it is judged by: the models that cross
the Temporal boundary, without the statistics that compute them.

Kept apart from ``spark.rsi.online`` and ``spark.rsi.judgement`` (which import scipy) so that the
workflow side (``spark.rsi.contracts``, imported by the workflows) loads only pydantic models.
Both modules re-export these names.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from spark.rsi.hypotheses import Metric
from spark.rsi.objectives import Objective

MAX_EVIDENCE_DOUBLINGS = 6


def evidence_factor(prior_attempts: int) -> float:
    """How many times the evidence of a first attempt a test gathers: a retry of an undecided
    test gathers twice the evidence of the attempt before it (at most 2^6 times the first)."""
    return float(2 ** min(prior_attempts, MAX_EVIDENCE_DOUBLINGS))


class References(BaseModel):
    """The baseline means the loss is scaled by, fixed for a whole test."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: float
    cost: float
    quality: float | None = None
    error_rate: float = 0.0

    def loss(self, objective: Objective) -> float:
        """The baseline's mean loss per request under ``objective`` (quality term excluded)."""
        return (
            objective.weight("error_rate") * self.error_rate
            + (objective.weight("latency") if self.latency_ms > 0 else 0.0)
            + (objective.weight("cost") if self.cost > 0 else 0.0)
        )


class OnlinePlan(BaseModel):
    """How big and how long a window must be, and when its looks fall."""

    runs_per_arm: int = Field(ge=1)
    window_s: float = Field(gt=0)
    look_interval_s: float = Field(gt=0)
    looks: int = Field(ge=1)
    limiting_metric: str
    metrics: list[Metric]
    margins: dict[str, float] = Field(
        default_factory=dict, description="guardrail margins, where they differ from defaults"
    )
    runs_per_hour: float
    capped: bool = False
    capacity: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="share of the planned runs the window holds at the observed traffic (below "
        "1 when capped)",
    )
    notes: list[str] = Field(default_factory=list)
    objective: Objective | None = Field(
        default=None, description="the owner's objective the window judges (None: old windows)"
    )
    references: References | None = Field(
        default=None, description="baseline means the objective's loss is scaled by"
    )
