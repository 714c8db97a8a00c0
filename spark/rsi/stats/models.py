"""Boundary models of the decision engine: what a caller passes in and what it gets back.

All are pydantic models so that a decision can cross the Temporal boundary as JSON.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MetricKind = Literal["latency", "rate", "continuous"]
Direction = Literal["decrease", "increase"]
Role = Literal["primary", "guardrail"]
MarginScale = Literal["relative", "absolute"]
Spending = Literal["obrien_fleming", "pocock"]
LatencyMethod = Literal["log_welch", "mann_whitney", "p95"]
Outcome = Literal["ship", "reject", "inconclusive", "invalid", "continue"]


class MetricSpec(BaseModel):
    """One metric of a window: how it is tested, which way is better, and its role.

    ``margin`` is the non-inferiority margin. With ``margin_scale="relative"`` (the default)
    0.05 means "the candidate may be at most 5% worse than the baseline" (a ratio of geometric
    means for latency, of means for continuous metrics, of rates for rates). With
    ``margin_scale="absolute"`` (rates and continuous metrics only) it is a difference in the
    metric's own unit: 0.02 on an error rate means "at most 2 points more errors".
    ``method`` picks the latency test; it is ignored for other kinds.
    """

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    kind: MetricKind
    improves: Direction
    role: Role = "guardrail"
    margin: float = Field(default=0.05, gt=0)
    margin_scale: MarginScale = "relative"
    method: LatencyMethod = "log_welch"

    @model_validator(mode="after")
    def _check_margin(self) -> MetricSpec:
        if self.kind == "latency" and self.margin_scale == "absolute":
            raise ValueError(f"latency metric {self.name!r} takes a relative margin only")
        if self.margin_scale == "relative" and self.margin >= 1 and self.improves == "increase":
            raise ValueError(f"relative margin of {self.name!r} must be below 1, got {self.margin}")
        return self


class SequentialDesign(BaseModel):
    """A group-sequential design: overall error rates, planned looks and the spending function.

    ``alpha`` is two-sided: a neutral candidate is shipped with probability at most
    ``alpha / 2`` and wrongly called harmful with probability at most ``alpha / 2``, however
    many of the planned looks are taken. ``power`` is the chance of shipping a candidate whose
    primary effect equals the planned minimum effect. ``look_fractions`` are the planned
    information fractions of the looks (default: equally spaced).
    """

    model_config = ConfigDict(frozen=True)

    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    planned_looks: int = Field(default=1, ge=1, le=50)
    power: float = Field(default=0.8, gt=0.5, lt=1)
    futility: bool = True
    spending: Spending = "obrien_fleming"
    look_fractions: tuple[float, ...] | None = None

    @model_validator(mode="after")
    def _check_fractions(self) -> SequentialDesign:
        fractions = self.look_fractions
        if fractions is None:
            return self
        if len(fractions) != self.planned_looks:
            raise ValueError(f"look_fractions needs {self.planned_looks} values, got {fractions}")
        steps = zip((0.0, *fractions), fractions, strict=False)
        if any(b <= a for a, b in steps) or abs(fractions[-1] - 1.0) > 1e-12:
            raise ValueError(f"look_fractions must rise strictly and end at 1, got {fractions}")
        return self

    @property
    def fractions(self) -> tuple[float, ...]:
        """The information fraction of each planned look."""
        if self.look_fractions is not None:
            return self.look_fractions
        looks = self.planned_looks
        return tuple(k / looks for k in range(1, looks + 1))


class SummaryStats(BaseModel):
    """One arm of one metric as SQL aggregates: count, sum and sum of squares.

    For rates, ``sum`` is the number of events and ``sum_squares`` may be left out.
    For latency, ``scale="log"`` means the sums are of ``ln(value)`` (the log-scale Welch test);
    ``scale="raw"`` compares means of the raw values instead.
    """

    model_config = ConfigDict(frozen=True)

    count: int = Field(ge=0)
    sum: float
    sum_squares: float | None = None
    scale: Literal["raw", "log"] = "raw"


class MetricResult(BaseModel):
    """The verdict on one metric at one look.

    ``estimate`` and the interval are relative changes, candidate vs baseline (-0.12 = 12%
    lower). The interval is the repeated confidence interval of the look, so it is as wide as
    the sequential design demands. ``p_value`` is the two-sided p-value of the named test,
    computed as if this were the only look; ``nominal_alpha`` is the one-sided level it must
    beat at this look (before Holm). Unbounded interval ends serialise as ``Infinity``.
    """

    model_config = ConfigDict(ser_json_inf_nan="constants")

    name: str
    role: Role
    kind: MetricKind
    improves: Direction
    method: str
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    n_baseline: int
    n_candidate: int
    baseline_value: float
    candidate_value: float
    z: float = Field(description="standardised effect, positive when the candidate is better")
    nominal_alpha: float
    significant_improvement: bool
    significant_harm: bool
    non_inferior: bool | None
    futile: bool = False
    margin: float = 0.05
    margin_scale: MarginScale = "relative"
    difference: float | None = Field(
        default=None, description="candidate - baseline, for metrics with an absolute margin"
    )
    difference_low: float | None = None
    difference_high: float | None = None
    notes: list[str] = Field(
        default_factory=list,
        description="why the verdict rests on exact grounds (a constant arm, too few runs)",
    )


class Decision(BaseModel):
    """The outcome of one look at a window, with the reasons and the per-metric results."""

    model_config = ConfigDict(ser_json_inf_nan="constants")

    outcome: Outcome
    reasons: list[str]
    metrics: list[MetricResult]
    look: int
    planned_looks: int = 1
    n_baseline: int
    n_candidate: int
    srm_p_value: float | None = None
