"""What the owner of a graph values: weights over the four metrics and hard constraints (SLOs).

An ``Objective`` prices one request. Its *loss* per request (lower is better) is

    w_error * failed + w_latency * latency / L0 + w_cost * cost / C0 - w_quality * quality / Q0

where ``latency`` is per request, failed requests included (time to a final outcome as the
caller sees it), and ``L0``, ``C0`` and ``Q0`` are the baseline's mean latency of a successful
request, mean cost per request and mean quality.
So, with the default weights, a failed request weighs as much as quadrupling every request's
latency; a change that makes requests 60% slower to stop 40% of them failing improves the
objective (0.4 > 0.25 x 0.6), one that halves the failures of a graph that fails 1% of its
requests at the price of 20% more latency does not (0.005 < 0.25 x 0.2).

The change of the mean loss, candidate minus baseline, is therefore

    w_error * d(error rate, absolute) + w_latency * d(latency, relative)
    + w_cost * d(cost, relative) - w_quality * d(quality, relative)

which is how ``expected_objective_change`` prices a hypothesis' expected effects and how the A/B
test and post-deploy monitoring judge a candidate. Constraints are hard: a candidate that is shown
to break one (where the baseline kept it) is refused, whatever the objective says.

A graph declares its objective in ``spec.metadata["objective"]`` (or ``spec.metadata["rsi"]
["objective"]``, or the workflow's ``settings.objective``); every field has a default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from spark.rsi.hypotheses import Metric

ConstraintMetric = Literal[
    "error_rate", "p95_latency_ms", "mean_latency_ms", "cost_per_success", "quality"
]
"""What a hard constraint can bound: the error rate (0-1), per-request p95 or mean latency in
milliseconds, the cost per successful request, and the mean quality score."""

DEFAULT_WEIGHTS: dict[Metric, float] = {
    "error_rate": 1.0,
    "latency": 0.25,
    "cost": 0.25,
    "quality": 0.5,
}
"""A failed request is a lost request (weight 1 per failure); doubling latency or cost costs a
quarter of a request; losing half the quality costs a quarter of a request."""


class Constraint(BaseModel):
    """A hard bound the graph must keep: ``max`` for everything but ``quality``, which takes
    ``min``. Example: ``{"metric": "p95_latency_ms", "max": 2000}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: ConstraintMetric
    max: float | None = None
    min: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> Constraint:
        if (self.max is None) == (self.min is None):
            raise ValueError(f"constraint on {self.metric!r} needs exactly one of max or min")
        if self.metric == "quality" and self.min is None:
            raise ValueError("a quality constraint takes min (quality higher is better)")
        if self.metric != "quality" and self.max is None:
            raise ValueError(f"a constraint on {self.metric!r} takes max (lower is better)")
        if self.metric == "error_rate" and not 0 <= (self.max or 0.0) <= 1:
            raise ValueError(f"an error_rate constraint lies in [0, 1], got {self.max!r}")
        if self.metric != "quality" and (self.max or 0.0) < 0:
            raise ValueError(f"a constraint on {self.metric!r} cannot be negative")
        return self

    @property
    def limit(self) -> float:
        """The bound, whichever side it is on."""
        value = self.max if self.max is not None else self.min
        assert value is not None
        return value

    @property
    def upper(self) -> bool:
        """True when the constraint is an upper bound (``max``)."""
        return self.max is not None

    def describe(self) -> str:
        """``p95_latency_ms <= 2000`` and the like."""
        return f"{self.metric} {'<=' if self.upper else '>='} {self.limit:g}"

    def holds_for(self, value: float) -> bool:
        """Whether a point value keeps the constraint."""
        return value <= self.limit if self.upper else value >= self.limit


class Objective(BaseModel):
    """The owner's weights over the four metrics and their hard constraints."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: dict[Metric, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    constraints: list[Constraint] = Field(default_factory=list)

    @field_validator("weights")
    @classmethod
    def _complete_weights(cls, weights: dict[Metric, float]) -> dict[Metric, float]:
        if any(w < 0 for w in weights.values()):
            raise ValueError(f"objective weights must be >= 0, got {weights}")
        merged = {**DEFAULT_WEIGHTS, **weights}
        if not any(w > 0 for w in merged.values()):
            raise ValueError("at least one objective weight must be positive")
        return merged

    def weight(self, metric: Metric) -> float:
        """The weight of ``metric`` (0 means the owner does not trade it: it stays a guardrail)."""
        return self.weights.get(metric, 0.0)

    def weighted(self) -> list[Metric]:
        """Metrics with a positive weight, in a fixed order."""
        return [m for m in DEFAULT_WEIGHTS if self.weight(m) > 0]

    def constraints_on(self, metric: ConstraintMetric) -> list[Constraint]:
        """The constraints bounding ``metric``."""
        return [c for c in self.constraints if c.metric == metric]


DEFAULT_OBJECTIVE = Objective()


def objective_of(metadata: Mapping[str, object], override: Objective | None = None) -> Objective:
    """The objective a graph declares: the override (workflow settings) if given, else
    ``metadata["objective"]``, else ``metadata["rsi"]["objective"]``, else the defaults."""
    if override is not None:
        return override
    declared = metadata.get("objective")
    rsi = metadata.get("rsi")
    if declared is None and isinstance(rsi, Mapping):
        declared = rsi.get("objective")
    if declared is None:
        return DEFAULT_OBJECTIVE
    return Objective.model_validate(declared)


def expected_objective_change(
    objective: Objective,
    effects: Mapping[str, float],
    baseline_error_rate: float,
    latency_scale: float = 1.0,
) -> float:
    """The expected change of the loss per request (negative = better) of relative effects per
    metric (``{"error_rate": -0.5, "latency": 0.1}``), an error effect being relative to the
    baseline's error rate. A latency effect is relative to the mean latency of all runs;
    ``latency_scale`` (``DiagnosticReport.latency_scale``) is that mean over the mean
    successful run the loss divides by (1: taken as equal)."""
    change = objective.weight("error_rate") * effects.get("error_rate", 0.0) * baseline_error_rate
    change += objective.weight("latency") * effects.get("latency", 0.0) * latency_scale
    change += objective.weight("cost") * effects.get("cost", 0.0)
    change -= objective.weight("quality") * effects.get("quality", 0.0)
    return change
