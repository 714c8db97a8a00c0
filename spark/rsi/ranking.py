"""Rank a cycle's hypotheses by what the graph's owner values.

Each hypothesis' expected effects (relative change per metric; a missing metric is 0) form a
vector over error rate, latency, cost and quality. The ranking is, in order:

1. **Hard constraints.** A hypothesis whose expected effects, applied to the report's figures,
   would break one of the objective's constraints (one the baseline keeps, or breaks by less)
   goes last, with the constraint named.
2. **Pareto fronts.** Hypotheses no other hypothesis dominates (at least as good on all four
   metrics in their improving direction, better on one) form front 1; removing them, the next
   front, and so on. A dominated hypothesis never ranks before the one dominating it.
3. **Objective x evidence x decidability.** Within a front, by ``score = -expected objective
   change x evidence x decidability``: the expected change of the owner's loss per request
   (``expected_objective_change``) times the learned pattern weight of its change kinds for its
   diagnosis kind (``pattern_evidence``, or, given ``learned`` patterns, the governing one's
   weight: ``spark.rsi.patterns``), times, when given, the power of the online window its plan
   can hold relative to the design's (``spark.rsi.decidability``: 1 for a window that holds its
   planned runs). An expected loss scores as it is: decidability only discounts gains.

With ``learned`` patterns, a hypothesis an anti-pattern governs is **suppressed**: it ranks after
every unsuppressed one (before the hard-constraint breakers), never dropped; a success pattern
**raises** it through its weight. Either says so in the ranking's ``why`` (and so in the cycle
summary's ``why_chosen``).

The ranking is pure and deterministic; ties keep the generator's order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from spark.rsi.analysis import DiagnosticReport
from spark.rsi.contracts import RankedHypothesis
from spark.rsi.generator import PatternHint, diagnosis_kind_of, pattern_evidence
from spark.rsi.hypotheses import Hypothesis, Metric
from spark.rsi.objectives import Constraint, ConstraintMetric, Objective, expected_objective_change
from spark.rsi.patterns import LearnedPattern, PatternJudgement, judge_by_patterns

PARETO_METRICS: tuple[Metric, ...] = ("error_rate", "latency", "cost", "quality")
"""The four axes of the frontier; quality improves upward, the others downward."""


@dataclass(frozen=True)
class _Scored:
    """One hypothesis with the figures its rank is made of."""

    hypothesis: Hypothesis
    loss: tuple[float, ...]
    objective_change: float
    weight: float
    attempts: int
    broken: str | None
    judgement: PatternJudgement | None = None
    decidability: float | None = None

    @property
    def suppressed(self) -> bool:
        """Whether an anti-pattern governs the hypothesis."""
        return self.judgement is not None and self.judgement.suppressed

    @property
    def gain(self) -> float:
        """The expected improvement of the objective times its evidence (negative: a loss)."""
        return -self.objective_change * self.weight + 0.0

    @property
    def score(self) -> float:
        """Higher is better: ``gain`` and, for a gain, times the chance its window decides
        (relative to the design's)."""
        if self.gain > 0 and self.decidability is not None:
            return self.gain * self.decidability
        return self.gain


def rank_hypotheses(
    hypotheses: Sequence[Hypothesis],
    *,
    objective: Objective,
    report: DiagnosticReport,
    patterns: Sequence[PatternHint] = (),
    learned: Sequence[LearnedPattern] = (),
    node_types: Mapping[str, str] | None = None,
    decidability: Mapping[str, float] | None = None,
) -> list[RankedHypothesis]:
    """The hypotheses' ranking, best first (see the module docstring); one entry each.
    ``learned`` patterns, when given, replace ``patterns`` as the evidence; ``node_types`` maps
    the base graph's node ids to their types (for node-type patterns); ``decidability`` maps
    hypothesis ids to their window's relative power (a missing one counts as decidable)."""
    scored = [_score(h, objective, report, patterns) for h in _unique(hypotheses)]
    if learned:
        scored = [_judged(s, learned, node_types or {}) for s in scored]
    if decidability:
        scored = [
            replace(s, decidability=decidability.get(s.hypothesis.hypothesis_id)) for s in scored
        ]
    fronts = pareto_fronts([s.loss for s in scored])
    order = sorted(
        range(len(scored)),
        key=lambda i: (
            scored[i].broken is not None,
            scored[i].suppressed,
            fronts[i],
            -scored[i].score,
            -scored[i].gain,  # among equally undecidable ones, the larger gain
            i,
        ),
    )
    return [_ranked(scored[i], fronts[i], _dominator(scored, i)) for i in order]


def in_ranked_order(
    hypotheses: Sequence[Hypothesis], ranking: Sequence[RankedHypothesis]
) -> list[Hypothesis]:
    """``hypotheses`` reordered as ``ranking`` lists them (those it leaves out are dropped)."""
    by_id = {h.hypothesis_id: h for h in hypotheses}
    return [by_id[r.hypothesis_id] for r in ranking if r.hypothesis_id in by_id]


def pareto_fronts(losses: Sequence[Sequence[float]]) -> list[int]:
    """The front (1 = non-dominated) of each loss vector, all coordinates minimised."""
    fronts = [0] * len(losses)
    remaining = set(range(len(losses)))
    front = 0
    while remaining:
        front += 1
        layer = {
            i for i in remaining if not any(_dominates(losses[j], losses[i]) for j in remaining)
        }
        for i in layer:
            fronts[i] = front
        remaining -= layer
    return fronts


def effect_vector(effects: Mapping[str, float]) -> tuple[float, ...]:
    """The expected effects as a loss vector over ``PARETO_METRICS`` (lower is better on every
    axis: quality is negated); a metric without an expected effect counts 0."""
    return tuple(
        -effects.get(m, 0.0) if m == "quality" else effects.get(m, 0.0) for m in PARETO_METRICS
    )


def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


def _unique(hypotheses: Sequence[Hypothesis]) -> list[Hypothesis]:
    by_id: dict[str, Hypothesis] = {}
    for hypothesis in hypotheses:
        by_id.setdefault(hypothesis.hypothesis_id, hypothesis)
    return list(by_id.values())


def _score(
    hypothesis: Hypothesis,
    objective: Objective,
    report: DiagnosticReport,
    patterns: Sequence[PatternHint],
) -> _Scored:
    effects: dict[str, float] = {m: e for m, e in hypothesis.expected_effects.items()}
    weight, attempts = pattern_evidence(
        diagnosis_kind_of(hypothesis),
        list(dict.fromkeys(hypothesis.change_kinds)),
        hypothesis.primary_metric,
        patterns,
    )
    return _Scored(
        hypothesis=hypothesis,
        loss=effect_vector(effects),
        objective_change=expected_objective_change(
            objective, effects, report.run_error_rate, report.latency_scale
        ),
        weight=weight,
        attempts=attempts,
        broken=broken_constraint(objective, effects, report),
    )


def _judged(
    scored: _Scored, learned: Sequence[LearnedPattern], node_types: Mapping[str, str]
) -> _Scored:
    """``scored`` with the learned patterns' judgement (unchanged when none matches)."""
    judgement = judge_by_patterns(scored.hypothesis, learned, node_types)
    if judgement is None:
        return replace(scored, weight=1.0, attempts=0)
    return replace(
        scored, weight=judgement.weight, attempts=judgement.attempts, judgement=judgement
    )


def _dominator(scored: Sequence[_Scored], index: int) -> Hypothesis | None:
    """The first hypothesis (in input order) dominating ``scored[index]``, if any."""
    loss = scored[index].loss
    return next((s.hypothesis for s in scored if _dominates(s.loss, loss)), None)


def _ranked(scored: _Scored, front: int, dominator: Hypothesis | None) -> RankedHypothesis:
    hypothesis = scored.hypothesis
    return RankedHypothesis(
        hypothesis_id=hypothesis.hypothesis_id,
        title=hypothesis.title,
        front=front,
        objective_change=round(scored.objective_change, 6),
        evidence_weight=round(scored.weight, 4),
        score=round(scored.score, 6),
        decidability=None if scored.decidability is None else round(scored.decidability, 4),
        breaks_constraint=scored.broken,
        why=_why(scored, front, dominator),
        prediction_share=scored.judgement.prediction_share if scored.judgement else None,
    )


def _why(scored: _Scored, front: int, dominator: Hypothesis | None) -> str:
    if front == 1:
        place = "on the frontier"
    elif dominator is not None:
        place = f"front {front} (dominated by {dominator.title!r})"
    else:
        place = f"front {front}"
    if scored.broken is not None:
        place = f"ranked last: expected to break {scored.broken}; {place}"
    plural = "" if scored.attempts == 1 else "s"
    why = (
        f"{place}; objective {scored.objective_change:+.3g} per request, "
        f"evidence x{scored.weight:.2g} ({scored.attempts} attempt{plural})"
    )
    if scored.decidability is not None and scored.decidability < 1:
        why += (
            f"; its online window can hold too few runs: decides with about "
            f"{scored.decidability:.0%} of the design's power"
        )
    return why if scored.judgement is None else f"{why}; {scored.judgement.note}"


# ----- hard constraints -----


def broken_constraint(
    objective: Objective, effects: Mapping[str, float], report: DiagnosticReport
) -> str | None:
    """The first hard constraint the expected effects would break on the report's figures
    (where the baseline keeps it, or breaks it by less), described with the expected value;
    None when every constraint that can be judged from the report holds. Best effort: a
    constraint on a figure the report lacks is not judged."""
    for constraint in objective.constraints:
        figure = _FIGURES[constraint.metric]
        baseline = figure(report, {})
        expected = figure(report, effects)
        if baseline is None or expected is None:
            continue
        if _breaks(constraint, baseline, expected):
            return f"{constraint.describe()} ({expected:.4g} expected, {baseline:.4g} now)"
    return None


def _breaks(constraint: Constraint, baseline: float, expected: float) -> bool:
    if constraint.holds_for(expected):
        return False
    worse = expected > baseline if constraint.upper else expected < baseline
    return constraint.holds_for(baseline) or worse


def _scaled(value: float, effect: float) -> float:
    return value * max(0.0, 1.0 + effect)


def _error_rate(report: DiagnosticReport, effects: Mapping[str, float]) -> float | None:
    return min(1.0, _scaled(report.run_error_rate, effects.get("error_rate", 0.0)))


def _p95(report: DiagnosticReport, effects: Mapping[str, float]) -> float | None:
    if report.run_p95_ms <= 0:
        return None
    return _scaled(report.run_p95_ms, effects.get("latency", 0.0))


def _mean_latency(report: DiagnosticReport, effects: Mapping[str, float]) -> float | None:
    """The critical path's expected length (node means weighted by how often they run)."""
    if report.structure.critical_path_ms <= 0:
        return None
    return _scaled(report.structure.critical_path_ms, effects.get("latency", 0.0))


def _cost_per_success(report: DiagnosticReport, effects: Mapping[str, float]) -> float | None:
    """Total cost (from any cost bottleneck: its total over its share) per successful run."""
    shares = [(b.metric_value, b.share) for b in report.bottlenecks_of("cost") if b.share > 0]
    error_rate = _error_rate(report, effects)
    if not shares or report.trace_count <= 0 or error_rate is None or error_rate >= 1:
        return None
    total = _scaled(shares[0][0] / shares[0][1], effects.get("cost", 0.0))
    return total / (report.trace_count * (1.0 - error_rate))


def _quality(report: DiagnosticReport, effects: Mapping[str, float]) -> float | None:
    if report.mean_quality is None:
        return None
    return _scaled(report.mean_quality, effects.get("quality", 0.0))


_Figure = Callable[[DiagnosticReport, Mapping[str, float]], float | None]
_FIGURES: dict[ConstraintMetric, _Figure] = {
    "error_rate": _error_rate,
    "p95_latency_ms": _p95,
    "mean_latency_ms": _mean_latency,
    "cost_per_success": _cost_per_success,
    "quality": _quality,
}
