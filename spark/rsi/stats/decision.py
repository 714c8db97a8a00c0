"""The ship rule: one call per look of an A/B window, returning ship, reject, inconclusive,
invalid or continue, with the reasons.

* The assignment counts must fit the intended split (SRM chi-square, p < 0.001 for the
  window, spent over the looks: see ``srm``), else ``invalid``.
* ``reject`` (a clear loss) when a primary metric is significantly worse than the baseline or
  any metric is significantly worse than its non-inferiority margin, at this look's bound.
* ``ship`` when at least one primary metric improves significantly (Holm step-down over the
  primaries, each step with its own alpha-spending bounds, as Maurer and Bretz 2013) and every
  other metric is shown non-inferior within its margin. Shipping is an intersection-union
  test, so each component at the design's one-sided level keeps the false-ship rate there.
* At an interim look, ``reject`` for futility when every primary is below its non-binding
  futility bound, else ``continue``.
* At the final look, a primary that never reached significance is a futility ``reject`` when
  the design has futility stopping (its last futility bound equals the efficacy bound), and
  ``inconclusive`` otherwise; a significant primary whose guardrails are not yet shown
  non-inferior is ``inconclusive``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from spark.errors import InvalidInputError
from spark.rsi.stats.compare import compare_arrays, compare_summaries
from spark.rsi.stats.comparison import (
    Comparison,
    MeanComparison,
    Side,
    constant_arms,
    critical_value,
    z_to_reference,
)
from spark.rsi.stats.inputs import Samples
from spark.rsi.stats.models import (
    Decision,
    MetricResult,
    MetricSpec,
    SequentialDesign,
    SummaryStats,
)
from spark.rsi.stats.sequential import Boundaries, boundaries
from spark.rsi.stats.srm import srm_p_value, srm_threshold


def decide(
    metrics: list[MetricSpec],
    baseline: Mapping[str, Samples],
    candidate: Mapping[str, Samples],
    *,
    design: SequentialDesign,
    look: int = 1,
    assignment: tuple[int, int] | None = None,
    expected_share: float = 0.5,
    paired: bool = False,
    baseline_pre: Mapping[str, Samples] | None = None,
    candidate_pre: Mapping[str, Samples] | None = None,
) -> Decision:
    """Decide one look of a window from per-run arrays (one array per metric and arm).

    ``paired=True`` pairs ``baseline[m][i]`` with ``candidate[m][i]`` (offline replay).
    ``baseline_pre`` / ``candidate_pre`` give each run's pre-window value of the same routing
    key for CUPED (latency with ``log_welch`` and continuous metrics).
    """
    _check_request(metrics, design, look)
    pre = (baseline_pre or {}, candidate_pre or {})
    comparisons = [
        compare_arrays(spec, baseline, candidate, paired=paired, pre=pre) for spec in metrics
    ]
    return _decide(metrics, comparisons, design, look, assignment, expected_share)


def decide_from_summaries(
    metrics: list[MetricSpec],
    baseline: Mapping[str, SummaryStats],
    candidate: Mapping[str, SummaryStats],
    *,
    design: SequentialDesign,
    look: int = 1,
    assignment: tuple[int, int] | None = None,
    expected_share: float = 0.5,
) -> Decision:
    """Decide one look from SQL aggregates (count, sum, sum of squares per metric and arm)."""
    _check_request(metrics, design, look)
    comparisons = [compare_summaries(spec, baseline, candidate) for spec in metrics]
    return _decide(metrics, comparisons, design, look, assignment, expected_share)


def decide_from_comparisons(
    metrics: list[MetricSpec],
    comparisons: list[Comparison],
    *,
    design: SequentialDesign,
    look: int = 1,
    assignment: tuple[int, int] | None = None,
    expected_share: float = 0.5,
) -> Decision:
    """Decide one look from comparisons built by the caller (one per metric, same order), for
    composite metrics such as the owner's objective that no single test produces."""
    _check_request(metrics, design, look)
    if len(comparisons) != len(metrics):
        raise InvalidInputError(f"{len(metrics)} metrics but {len(comparisons)} comparisons")
    return _decide(metrics, comparisons, design, look, assignment, expected_share)


def _check_request(metrics: list[MetricSpec], design: SequentialDesign, look: int) -> None:
    names = [m.name for m in metrics]
    if not metrics:
        raise InvalidInputError("decide needs at least one metric")
    if len(set(names)) != len(names):
        raise InvalidInputError(f"metric names must be unique, got {names!r}")
    if not any(m.role == "primary" for m in metrics):
        raise InvalidInputError(f"no primary metric among {names!r}")
    if not 1 <= look <= design.planned_looks:
        raise InvalidInputError(f"look must lie in 1..{design.planned_looks}, got {look!r}")


@dataclass(frozen=True)
class _Look:
    """The per-look context every metric is judged in."""

    design: SequentialDesign
    bounds: Boundaries
    look: int

    @property
    def final(self) -> bool:
        """True at the last planned look."""
        return self.look == self.design.planned_looks

    @property
    def alpha(self) -> float:
        """This look's nominal one-sided level."""
        return self.bounds.nominal_alpha(self.look)


def _decide(
    metrics: list[MetricSpec],
    comparisons: list[Comparison],
    design: SequentialDesign,
    look: int,
    assignment: tuple[int, int] | None,
    expected_share: float,
) -> Decision:
    context = _Look(design, boundaries(design), look)
    significant = _holm(metrics, comparisons, context)
    results = [
        _judge(s, c, context, s.name in significant)
        for s, c in zip(metrics, comparisons, strict=True)
    ]
    n_b, n_c = assignment or _arm_sizes(comparisons)
    srm = None if assignment is None else srm_p_value(n_b, n_c, expected_share)
    outcome, reasons = _outcome(results, context, srm)
    return Decision(
        outcome=outcome,
        reasons=reasons,
        metrics=results,
        look=look,
        planned_looks=design.planned_looks,
        n_baseline=n_b,
        n_candidate=n_c,
        srm_p_value=srm,
    )


def _arm_sizes(comparisons: list[Comparison]) -> tuple[int, int]:
    return max(c.n_baseline for c in comparisons), max(c.n_candidate for c in comparisons)


def _improving_p(spec: MetricSpec, comparison: Comparison) -> float:
    return comparison.p_one_sided("less" if spec.improves == "decrease" else "greater")


def _holm(metrics: list[MetricSpec], comparisons: list[Comparison], context: _Look) -> set[str]:
    """Names of the primaries that Holm's step-down declares significantly improved."""
    primaries = sorted(
        (
            (_improving_p(s, c), s.name)
            for s, c in zip(metrics, comparisons, strict=True)
            if s.role == "primary"
        ),
    )
    level, count, chosen = context.design.alpha / 2.0, len(primaries), set()
    for step, (p_value, name) in enumerate(primaries):
        threshold = boundaries(context.design, alpha=level / (count - step)).nominal_alpha(
            context.look
        )
        if p_value > threshold:
            break
        chosen.add(name)
    return chosen


def _judge(
    spec: MetricSpec, comparison: Comparison, context: _Look, significant: bool
) -> MetricResult:
    crit = critical_value(context.alpha, comparison.df)
    low, high = comparison.ratio_interval(crit)
    margin_z = _margin_statistic(spec, comparison)
    return MetricResult(
        name=spec.name,
        role=spec.role,
        kind=spec.kind,
        improves=spec.improves,
        method=comparison.method,
        estimate=comparison.ratio - 1.0,
        ci_low=low - 1.0,
        ci_high=high - 1.0,
        p_value=comparison.p_value,
        n_baseline=comparison.n_baseline,
        n_candidate=comparison.n_candidate,
        baseline_value=_reported(comparison, "baseline"),
        candidate_value=_reported(comparison, "candidate"),
        z=_oriented_z(spec, comparison),
        nominal_alpha=context.alpha,
        significant_improvement=significant,
        significant_harm=_harmful(spec, comparison, context.alpha, margin_z <= -crit),
        non_inferior=margin_z >= crit,
        futile=_futile(spec, comparison, context),
        margin=spec.margin,
        margin_scale=spec.margin_scale,
        notes=_exactness_notes(comparison, context.alpha),
        **_absolute_difference(spec, comparison, crit),
    )


def _exactness_notes(comparison: Comparison, alpha: float) -> list[str]:
    """Say when the verdict rests on the exact null model: a constant arm, or too few runs for
    any exact test to reach this look's level."""
    notes = []
    arms = constant_arms(comparison)
    if arms:
        which = "both arms" if len(arms) == 2 else f"the {arms[0]} arm"
        notes.append(
            f"constant in {which}: judged by the variance of the pooled runs under no "
            "difference (permutation), never by the zero spread"
        )
    floor = getattr(comparison, "floor", 0.0)
    if floor > alpha:
        notes.append(
            f"too few runs to be significant at this look: with "
            f"n={comparison.n_baseline}/{comparison.n_candidate} no exact test gives a "
            f"one-sided p below {floor:.3g}, the look needs {alpha:.3g}"
        )
    return notes


def _absolute_difference(spec: MetricSpec, comparison: Comparison, crit: float) -> dict[str, float]:
    """The difference and its interval, reported on the scale of an absolute margin."""
    if spec.margin_scale != "absolute" or not isinstance(comparison, MeanComparison):
        return {}
    difference, low, high = comparison.difference_interval(crit)
    return {"difference": difference, "difference_low": low, "difference_high": high}


def _margin_statistic(spec: MetricSpec, comparison: Comparison) -> float:
    """Statistic of H0 'worse by the margin', oriented so that large values mean non-inferior."""
    sign = -1.0 if spec.improves == "decrease" else 1.0
    if spec.margin_scale == "absolute":
        return sign * comparison.difference_statistic(-sign * spec.margin)
    return sign * comparison.statistic(1.0 - sign * spec.margin)


def _harmful(spec: MetricSpec, comparison: Comparison, alpha: float, beyond_margin: bool) -> bool:
    """A clear loss: a primary significantly worse than baseline, or any metric significantly
    worse than its margin."""
    worse: Side = "greater" if spec.improves == "decrease" else "less"
    if spec.role == "primary" and comparison.p_one_sided(worse) <= alpha:
        return True
    return beyond_margin


def _oriented_z(spec: MetricSpec, comparison: Comparison) -> float:
    statistic = comparison.statistic(1.0)
    return -statistic if spec.improves == "decrease" else statistic


def _futile(spec: MetricSpec, comparison: Comparison, context: _Look) -> bool:
    futility = context.bounds.futility
    if spec.role != "primary" or futility is None or context.final:
        return False
    return _oriented_z(spec, comparison) < z_to_reference(futility[context.look - 1], comparison.df)


def _reported(comparison: Comparison, arm: str) -> float:
    if isinstance(comparison, MeanComparison):
        value = comparison.reported_baseline if arm == "baseline" else comparison.reported_candidate
        if value is not None:
            return value
    return comparison.baseline_value if arm == "baseline" else comparison.candidate_value


def _outcome(
    results: list[MetricResult], context: _Look, srm: float | None
) -> tuple[str, list[str]]:
    threshold = srm_threshold(context.design, context.look)
    if srm is not None and srm < threshold:
        reason = f"sample ratio mismatch: assignment counts have p={srm:.2e} < {threshold:.2e}"
        return "invalid", [reason]
    losses = [_describe(r, _loss(r)) for r in results if r.significant_harm]
    if losses:
        return "reject", losses
    if _ships(results):
        return "ship", [_describe(r, _verdict(r)) for r in results]
    return _undecided(results, context)


def _ships(results: list[MetricResult]) -> bool:
    winners = [r for r in results if r.significant_improvement]
    return bool(winners) and all(r.non_inferior for r in results if not r.significant_improvement)


def _undecided(results: list[MetricResult], context: _Look) -> tuple[str, list[str]]:
    primaries = [r for r in results if r.role == "primary"]
    unproven = [
        _describe(r, f"is not shown non-inferior ({_margin(r)})")
        for r in results
        if not r.non_inferior
    ]
    winners = [
        _describe(r, "improved significantly") for r in primaries if r.significant_improvement
    ]
    if winners:
        return ("inconclusive" if context.final else "continue"), winners + unproven
    if not context.final:
        if context.design.futility and all(r.futile for r in primaries):
            return "reject", [_describe(r, "crossed its futility bound") for r in primaries]
        return "continue", [_describe(r, "has not reached significance") for r in primaries]
    verdict = "reject" if context.design.futility else "inconclusive"
    return verdict, [
        _describe(r, "did not reach significance by the final look") for r in primaries
    ]


def _margin(result: MetricResult) -> str:
    if result.margin_scale == "absolute":
        return f"margin {result.margin:g} absolute"
    return f"margin {result.margin:.1%} relative"


def _loss(result: MetricResult) -> str:
    if result.role == "primary":
        return "is significantly worse than the baseline"
    return f"is significantly worse than its {_margin(result)}"


def _verdict(result: MetricResult) -> str:
    return "improved significantly" if result.significant_improvement else "is non-inferior"


def _describe(result: MetricResult, verdict: str) -> str:
    notes = "".join(f"; {note}" for note in result.notes)
    return (
        f"{result.role} {result.name!r} {verdict}: {_effect(result)}, "
        f"p={result.p_value:.3g} (no difference), "
        f"nominal one-sided alpha {result.nominal_alpha:.3g} at this look, "
        f"n={result.n_baseline}/{result.n_candidate} ({result.method}){notes}"
    )


def _effect(result: MetricResult) -> str:
    """The estimate and interval on the scale the metric is judged on."""
    if result.difference is not None and result.difference_low is not None:
        points = 100.0 if result.kind == "rate" else 1.0
        unit = " points" if result.kind == "rate" else ""
        return (
            f"{result.difference * points:+.2f}{unit} "
            f"[{(result.difference_low or 0.0) * points:+.2f}, "
            f"{(result.difference_high or 0.0) * points:+.2f}]"
        )
    return f"{result.estimate:+.2%} [{result.ci_low:+.2%}, {result.ci_high:+.2%}]"
