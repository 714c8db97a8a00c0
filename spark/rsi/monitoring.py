"""Post-deployment health: has the new version regressed against the one it replaced?

A rollback must not be triggered by noise. The error rate regresses only when its increase both
exceeds an absolute margin and is significant in a one-sided two-proportion test at ``alpha``
(pooled z-test; Fisher's exact test when an expected cell count is below 5). Latency regresses
when the p95 ratio exceeds its margin and the p95 grew by a noticeable absolute amount. Either
side having fewer than ``min_traces`` runs gives ``insufficient_data``.

``assess_objective_health`` then judges the same windows on everything the owner's objective
names, as the A/B test did (``spark.rsi.judgement``): the loss per request, the error and quality
guardrails (quality as feedback arrives), unpriced metrics and the hard constraints. Only
significant harm regresses (one look, no futility): a version that merely fails to show its gain
again is healthy.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from scipy import stats

from spark.errors import InvalidInputError
from spark.rsi.judgement import judge, references_of
from spark.rsi.objectives import Objective
from spark.rsi.stats import SequentialDesign
from spark.telemetry.aggregates import ArmMoments, VersionStats

HealthStatus = Literal["healthy", "regressed", "insufficient_data"]
MIN_EXPECTED_CELL = 5.0


class HealthPolicy(BaseModel):
    """How much worse the new version may look before it counts as regressed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_traces: int = Field(default=20, ge=1)
    max_error_rate_increase: float = Field(default=0.05, ge=0.0, le=1.0)
    max_p95_ratio: float = Field(default=1.5, gt=1.0)
    min_p95_increase_ms: float = Field(default=5.0, ge=0.0)
    alpha: float = Field(default=0.01, gt=0.0, lt=0.5)


class HealthVerdict(BaseModel):
    """The verdict, the reasons behind it and the figures it was computed from."""

    model_config = ConfigDict(extra="forbid")

    status: HealthStatus
    reasons: list[str] = Field(default_factory=list)
    figures: dict[str, float] = Field(default_factory=dict)


def assess_health(
    baseline: VersionStats, current: VersionStats, policy: HealthPolicy | None = None
) -> HealthVerdict:
    """Compare ``current`` (the new version since deploy) with ``baseline`` (the old one)."""
    policy = policy or HealthPolicy()
    _check_inputs(baseline, current)
    figures = _figures(baseline, current)
    if min(baseline.count, current.count) < policy.min_traces:
        reason = (
            f"{current.count} current and {baseline.count} baseline traces; "
            f"{policy.min_traces} needed on each side"
        )
        return HealthVerdict(status="insufficient_data", reasons=[reason], figures=figures)
    reasons = [*_error_regression(figures, policy), *_latency_regression(figures, policy)]
    status: HealthStatus = "regressed" if reasons else "healthy"
    return HealthVerdict(status=status, reasons=reasons or ["no regression"], figures=figures)


def _check_inputs(baseline: VersionStats, current: VersionStats) -> None:
    if baseline.graph_id != current.graph_id:
        raise InvalidInputError(
            f"cannot compare graph {current.graph_id!r} with graph {baseline.graph_id!r}"
        )
    for name, side in (("baseline", baseline), ("current", current)):
        if side.count < 0 or not 0 <= side.error_count <= side.count:
            raise InvalidInputError(
                f"{name} stats of version {side.version_id!r}: error_count {side.error_count} "
                f"is not within 0..count ({side.count})"
            )


def _figures(baseline: VersionStats, current: VersionStats) -> dict[str, float]:
    base_rate = _rate(baseline)
    current_rate = _rate(current)
    return {
        "baseline_count": float(baseline.count),
        "current_count": float(current.count),
        "baseline_error_rate": base_rate,
        "current_error_rate": current_rate,
        "error_rate_increase": current_rate - base_rate,
        "error_p_value": error_increase_p_value(baseline, current),
        "baseline_p95_ms": baseline.p95_ms,
        "current_p95_ms": current.p95_ms,
        "p95_ratio": current.p95_ms / baseline.p95_ms if baseline.p95_ms > 0 else math.inf,
    }


def _rate(side: VersionStats) -> float:
    return side.error_count / side.count if side.count else 0.0


def _error_regression(figures: dict[str, float], policy: HealthPolicy) -> list[str]:
    increase, p_value = figures["error_rate_increase"], figures["error_p_value"]
    if increase <= policy.max_error_rate_increase or p_value >= policy.alpha:
        return []
    return [
        f"error rate rose from {figures['baseline_error_rate']:.2%} to "
        f"{figures['current_error_rate']:.2%} (+{increase:.2%} > {policy.max_error_rate_increase:.2%}"
        f", one-sided p = {p_value:.2g} < {policy.alpha:g})"
    ]


def _latency_regression(figures: dict[str, float], policy: HealthPolicy) -> list[str]:
    ratio = figures["p95_ratio"]
    growth = figures["current_p95_ms"] - figures["baseline_p95_ms"]
    if ratio <= policy.max_p95_ratio or growth < policy.min_p95_increase_ms:
        return []
    return [
        f"p95 latency rose from {figures['baseline_p95_ms']:.0f} ms to "
        f"{figures['current_p95_ms']:.0f} ms (x{ratio:.2f} > x{policy.max_p95_ratio:g})"
    ]


def error_increase_p_value(baseline: VersionStats, current: VersionStats) -> float:
    """One-sided p-value that ``current`` fails more often than ``baseline`` (1.0 with no data)."""
    n_base, n_current = baseline.count, current.count
    if n_base == 0 or n_current == 0:
        return 1.0
    pooled = (baseline.error_count + current.error_count) / (n_base + n_current)
    expected = [
        pooled * n_base,
        (1 - pooled) * n_base,
        pooled * n_current,
        (1 - pooled) * n_current,
    ]
    if min(expected) < MIN_EXPECTED_CELL:
        return _fisher_p_value(baseline, current)
    standard_error = math.sqrt(pooled * (1 - pooled) * (1 / n_base + 1 / n_current))
    z = (_rate(current) - _rate(baseline)) / standard_error
    return float(stats.norm.sf(z))


def _fisher_p_value(baseline: VersionStats, current: VersionStats) -> float:
    table = [
        [current.error_count, current.count - current.error_count],
        [baseline.error_count, baseline.count - baseline.error_count],
    ]
    return float(stats.fisher_exact(table, alternative="greater").pvalue)


def assess_objective_health(
    objective: Objective,
    baseline: ArmMoments,
    current: ArmMoments,
    policy: HealthPolicy | None = None,
) -> HealthVerdict:
    """Regressed when the current version is significantly worse on the owner's objective, a
    guardrail, or a hard constraint the baseline kept (see the module docstring)."""
    policy = policy or HealthPolicy()
    if min(baseline.runs, current.runs) < policy.min_traces:
        reason = (
            f"{current.runs} current and {baseline.runs} baseline traces; "
            f"{policy.min_traces} needed on each side"
        )
        return HealthVerdict(status="insufficient_data", reasons=[reason])
    design = SequentialDesign(alpha=2 * policy.alpha, planned_looks=1, futility=False)
    decision, _ = judge(
        objective, references_of(baseline), baseline, current, design=design, look=1
    )
    if decision.outcome == "reject":
        return HealthVerdict(status="regressed", reasons=list(decision.reasons))
    return HealthVerdict(status="healthy", reasons=["no regression on the owner's objective"])
