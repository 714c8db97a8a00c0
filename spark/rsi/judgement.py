"""Judging a candidate by what the owner values: the objective, its hard constraints, and the
guardrails that never vanish.

Every A/B look, replay verdict and post-deploy health check goes through ``judge``:

* the **primary** is the objective's loss per request (``spark.rsi.objectives``), lower is
  better, computed from per-request figures with failed requests included (a failed request's
  latency is the time its caller waited; its failure is priced by the error weight). The
  references (``L0`` the baseline's mean latency of a successful request, ``C0`` its mean cost
  per request, ``Q0`` its mean quality) are fixed when the test is planned, so the
  loss is one linear function of each run and its variance follows from the arm's moments and
  cross moments. Quality, recorded only on some runs, enters as an independent term;
* **guardrails** judged for non-inferiority as before: the error rate always (2 points absolute,
  unless the owner bounds it with a constraint), quality whenever the baseline recorded any
  (5% relative, unless the owner bounds it with a constraint: the owner's floor, with the
  objective's price on quality above it, then says what a quality loss may buy; a quality
  that was always perfect stays guarded: any drop of the candidate shows against the pooled
  spread), and every metric the owner gave no weight (unpriced, so any loss is harm);
* **constraints** (SLOs) must be shown to hold by the candidate at the look's level; a
  constraint the candidate is shown to break, where the baseline kept it, rejects; where the
  baseline already broke it, the candidate must not be significantly worse than the baseline.

A metric that cannot be judged (the baseline records quality, the candidate has no rating yet)
keeps the outcome from shipping, with the reason, instead of disappearing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict
from scipy import special

from spark.rsi.hypotheses import Metric
from spark.rsi.objectives import Constraint, Objective
from spark.rsi.online_plan import References
from spark.rsi.stats import Decision, MetricSpec, SequentialDesign, SummaryStats
from spark.rsi.stats.compare import compare_summaries
from spark.rsi.stats.comparison import Comparison, MeanComparison
from spark.rsi.stats.decision import decide_from_comparisons
from spark.telemetry.aggregates import ArmMoments, Moments

OBJECTIVE = "objective"
MIN_JUDGED = 2
"""Fewest values per arm for a metric to be compared at all."""

GUARDRAILS: dict[Metric, MetricSpec] = {
    "latency": MetricSpec(name="latency", kind="latency", improves="decrease", margin=0.20),
    "error_rate": MetricSpec(
        name="error_rate", kind="rate", improves="decrease", margin=0.02, margin_scale="absolute"
    ),
    "cost": MetricSpec(name="cost", kind="continuous", improves="decrease", margin=0.10),
    "quality": MetricSpec(name="quality", kind="continuous", improves="increase", margin=0.05),
}
"""Non-inferiority margins of the guardrails (relative unless stated)."""

ConstraintStatus = Literal["holds", "broken", "unproven"]


def references_of(baseline: ArmMoments) -> References:
    """The baseline's mean latency of a successful request (the time a good answer takes, so
    that curing fast failures is priced against that, not against a mean the failures pulled
    down), mean cost per request, mean quality and error rate."""
    successes = baseline.runs - baseline.errors
    ok_latency = baseline.latency.sum - baseline.error_latency
    return References(
        latency_ms=ok_latency / successes if successes else _mean(baseline.latency),
        cost=_mean(baseline.cost),
        quality=_mean(baseline.quality) if baseline.quality.count else None,
        error_rate=baseline.errors / baseline.runs if baseline.runs else 0.0,
    )


def _mean(moments: Moments) -> float:
    return moments.sum / moments.count if moments.count else 0.0


def loss_weights(objective: Objective, refs: References) -> tuple[float, float, float]:
    """Per-unit weights of (failed, latency ms, cost) in the loss; a metric whose baseline mean
    is zero cannot be scaled and gets no weight (its guardrail still judges it)."""
    latency = objective.weight("latency") / refs.latency_ms if refs.latency_ms > 0 else 0.0
    cost = objective.weight("cost") / refs.cost if refs.cost > 0 else 0.0
    return objective.weight("error_rate"), latency, cost


def loss_moments(objective: Objective, refs: References, arm: ArmMoments) -> Moments:
    """Count, sum and sum of squares of the per-request loss (quality term excluded)."""
    w_e, w_l, w_c = loss_weights(objective, refs)
    errors, lat, cost = float(arm.errors), arm.latency, arm.cost
    total = w_e * errors + w_l * lat.sum + w_c * cost.sum
    squares = (
        w_e * w_e * errors
        + w_l * w_l * lat.sum_squares
        + w_c * w_c * cost.sum_squares
        + 2 * w_e * w_l * arm.error_latency
        + 2 * w_e * w_c * arm.error_cost
        + 2 * w_l * w_c * arm.latency_cost
    )
    return Moments(count=arm.runs, sum=total, sum_squares=squares)


def per_run_loss(
    objective: Objective, refs: References, error: float, latency_ms: float, cost: float
) -> float:
    """One request's loss (quality term excluded): what ``loss_moments`` sums."""
    w_e, w_l, w_c = loss_weights(objective, refs)
    return w_e * error + w_l * latency_ms + w_c * cost


def _mean_and_variance(moments: Moments) -> tuple[float, float]:
    """Mean and variance of the mean (sample variance / n; 0 below two values)."""
    n = moments.count
    if n == 0:
        return 0.0, 0.0
    mean = moments.sum / n
    if n < 2:
        return mean, 0.0
    variance = max(moments.sum_squares - n * mean * mean, 0.0) / (n - 1)
    return mean, variance / n


def _null_variance(first: Moments, second: Moments) -> float:
    """Variance of a difference of means with both arms pooled into one sample, as under 'no
    difference' (the permutation view): never zero when the arms differ, so two constant arms
    are judged on how far apart they are against how many runs show it, not infinitely."""
    n = first.count + second.count
    if first.count == 0 or second.count == 0 or n < 2:
        return 0.0
    total, squares = first.sum + second.sum, first.sum_squares + second.sum_squares
    pooled = max(squares - total * total / n, 0.0) / (n - 1)
    return pooled * (1.0 / first.count + 1.0 / second.count)


def objective_comparison(
    objective: Objective, refs: References, baseline: ArmMoments, candidate: ArmMoments
) -> tuple[Comparison, list[str]]:
    """The loss per request of both arms (quality term included when it can be judged), and
    notes on what could not enter it."""
    base_loss, cand_loss = (loss_moments(objective, refs, arm) for arm in (baseline, candidate))
    mean_b, var_b = _mean_and_variance(base_loss)
    mean_c, var_c = _mean_and_variance(cand_loss)
    null_var = _null_variance(base_loss, cand_loss)
    notes: list[str] = []
    parts = [(var_b, baseline.runs), (var_c, candidate.runs)]
    quality = _quality_term(objective, refs, baseline, candidate, notes)
    if quality is not None:
        (q_b, qv_b), (q_c, qv_c), q_null = quality
        mean_b, mean_c = mean_b + q_b, mean_c + q_c
        var_b, var_c, null_var = var_b + qv_b, var_c + qv_c, null_var + q_null
        parts += [(qv_b, baseline.quality.count), (qv_c, candidate.quality.count)]
    floored = _floored(var_b, var_c, null_var)
    df = None if floored != (var_b, var_c) else satterthwaite_df(parts)
    var_b, var_c = floored
    comparison = MeanComparison(
        method="objective_z",
        n_baseline=baseline.runs,
        n_candidate=candidate.runs,
        baseline_value=mean_b,
        candidate_value=mean_c,
        var_baseline=var_b,
        var_candidate=var_c,
        df=df,
    )
    return comparison, notes


def satterthwaite_df(parts: Sequence[tuple[float, int]]) -> float | None:
    """Welch-Satterthwaite degrees of freedom of a sum of independent variances of means, each
    with its sample size: small arms get a t reference, not a normal one (None: no spread)."""
    total = sum(variance for variance, _ in parts)
    denominator = sum(v * v / (n - 1) for v, n in parts if n > 1 and v > 0)
    if total <= 0 or denominator <= 0:
        return None
    return total * total / denominator


def _floored(var_b: float, var_c: float, null_var: float) -> tuple[float, float]:
    """Arm variances whose sum is at least the null variance (spread shared equally), so that
    arms without spread never make a difference infinitely significant."""
    shortfall = null_var - (var_b + var_c)
    if shortfall <= 0:
        return var_b, var_c
    return var_b + shortfall / 2, var_c + shortfall / 2


QualityTerm = tuple[tuple[float, float], tuple[float, float], float]


def _quality_term(
    objective: Objective,
    refs: References,
    baseline: ArmMoments,
    candidate: ArmMoments,
    notes: list[str],
) -> QualityTerm | None:
    """``-w_q * quality / Q0`` per arm (mean, variance of the mean) and its null variance."""
    weight = objective.weight("quality")
    if weight <= 0:
        return None
    if not refs.quality or baseline.quality.count < MIN_JUDGED:
        notes.append("quality is not recorded for the baseline: it is not part of the objective")
        return None
    if candidate.quality.count < MIN_JUDGED:
        return None
    scale = -weight / refs.quality
    (q_b, v_b), (q_c, v_c) = (_mean_and_variance(arm.quality) for arm in (baseline, candidate))
    null = _null_variance(baseline.quality, candidate.quality) * scale * scale
    return (scale * q_b, v_b * scale * scale), (scale * q_c, v_c * scale * scale), null


def guardrails(objective: Objective, baseline: ArmMoments) -> list[MetricSpec]:
    """The guardrails judged next to the objective (see the module docstring)."""
    chosen: list[MetricSpec] = []
    for name, spec in GUARDRAILS.items():
        always = name == "error_rate" and not objective.constraints_on("error_rate")
        recorded_quality = (
            name == "quality"
            and baseline.quality.count >= MIN_JUDGED
            and not objective.constraints_on("quality")
        )
        unpriced = objective.weight(name) <= 0 and name != "quality"
        if always or recorded_quality or unpriced:
            chosen.append(spec.model_copy(update={"role": "guardrail"}))
    return chosen


def objective_spec() -> MetricSpec:
    """The primary: the loss per request, lower is better, reported as a difference of loss
    per request (a ratio means nothing when the baseline's loss is 0)."""
    return MetricSpec(
        name=OBJECTIVE,
        kind="continuous",
        improves="decrease",
        role="primary",
        margin=0.05,
        margin_scale="absolute",
    )


def arm_summaries(arm: ArmMoments) -> dict[str, SummaryStats]:
    """The engine's per-metric summaries of one arm (per request, failed requests included)."""

    def stats(moments: Moments, scale: Literal["raw", "log"] = "raw") -> SummaryStats:
        return SummaryStats(
            count=moments.count, sum=moments.sum, sum_squares=moments.sum_squares, scale=scale
        )

    return {
        "error_rate": SummaryStats(count=arm.runs, sum=float(arm.errors)),
        "latency": stats(arm.log_latency, "log"),
        "cost": stats(arm.cost),
        "quality": stats(arm.quality),
    }


class ConstraintCheck(BaseModel):
    """One hard constraint at one look: the candidate's estimate, its bound and the verdict."""

    model_config = ConfigDict(extra="forbid")

    constraint: str
    status: ConstraintStatus
    baseline_value: float | None = None
    candidate_value: float | None = None
    candidate_bound: float | None = None
    reason: str = ""


def check_constraints(
    objective: Objective, baseline: ArmMoments, candidate: ArmMoments, alpha: float
) -> list[ConstraintCheck]:
    """Every declared constraint judged at one-sided level ``alpha``."""
    z = float(-special.ndtri(alpha))
    return [_check(c, baseline, candidate, z) for c in objective.constraints]


def _check(
    constraint: Constraint, baseline: ArmMoments, candidate: ArmMoments, z: float
) -> ConstraintCheck:
    base, cand = _figure(constraint, baseline), _figure(constraint, candidate)
    name = constraint.describe()
    if cand is None:
        return ConstraintCheck(constraint=name, status="unproven", reason=f"{name}: no data yet")
    value, se = cand
    sign = 1.0 if constraint.upper else -1.0
    far_bound, near_bound = value + sign * z * se, value - sign * z * se
    status: ConstraintStatus = "unproven"
    if constraint.holds_for(far_bound):
        status = "holds"
    elif base is not None and not constraint.holds_for(base[0]):
        status = _against_baseline(base, cand, sign, z)
    elif not constraint.holds_for(near_bound):
        status = "broken"
    return ConstraintCheck(
        constraint=name,
        status=status,
        baseline_value=None if base is None else base[0],
        candidate_value=value,
        candidate_bound=far_bound,
        reason=_constraint_reason(name, status, value, far_bound, base),
    )


def _against_baseline(
    base: tuple[float, float], cand: tuple[float, float], sign: float, z: float
) -> ConstraintStatus:
    """The baseline already breaks the constraint: the candidate must not be shown worse."""
    spread = math.sqrt(base[1] ** 2 + cand[1] ** 2)
    worse = sign * (cand[0] - base[0])
    if spread == 0:
        return "holds" if worse <= 0 else "broken"
    return "broken" if worse / spread > z else "holds"


def _constraint_reason(
    name: str,
    status: ConstraintStatus,
    value: float,
    bound: float,
    base: tuple[float, float] | None,
) -> str:
    baseline = "" if base is None else f", baseline {base[0]:.4g}"
    verdict = {
        "holds": "holds",
        "broken": "is broken by the candidate",
        "unproven": "is not shown to hold yet",
    }[status]
    return f"constraint {name} {verdict}: candidate {value:.4g} (bound {bound:.4g}){baseline}"


def _figure(constraint: Constraint, arm: ArmMoments) -> tuple[float, float] | None:
    """The arm's estimate of the constrained figure and its standard error, or None."""
    if arm.runs < MIN_JUDGED:
        return None
    match constraint.metric:
        case "error_rate":
            return _rate_figure(arm.errors, arm.runs)
        case "mean_latency_ms":
            mean, var = _mean_and_variance(arm.latency)
            return mean, math.sqrt(var)
        case "p95_latency_ms":
            return _p95_figure(arm.log_latency)
        case "cost_per_success":
            return _cost_per_success(arm)
        case "quality":
            if arm.quality.count < MIN_JUDGED:
                return None
            mean, var = _mean_and_variance(arm.quality)
            return mean, math.sqrt(var)


def _rate_figure(events: int, runs: int) -> tuple[float, float]:
    """The rate and a standard error that stays positive at 0 or n events (the rate is shrunk by
    half an event each way for the spread, as a Wilson-type bound would)."""
    rate = events / runs
    shrunk = (events + 0.5) / (runs + 1.0)
    return rate, math.sqrt(shrunk * (1 - shrunk) / runs)


P95_Z = 1.6448536269514722


def _p95_figure(log_latency: Moments) -> tuple[float, float] | None:
    """The 95th percentile of a log-normal fit to the per-request latencies, with the delta
    method's standard error (mean and spread of the logs both uncertain)."""
    n = log_latency.count
    if n < MIN_JUDGED:
        return None
    mean = log_latency.sum / n
    var = max(log_latency.sum_squares - n * mean * mean, 0.0) / (n - 1)
    sd = math.sqrt(var)
    value = math.exp(mean + P95_Z * sd)
    log_se = math.sqrt(var / n + P95_Z * P95_Z * var / (2 * (n - 1)))
    return value, value * log_se


def _cost_per_success(arm: ArmMoments) -> tuple[float, float] | None:
    successes = arm.runs - arm.errors
    if successes <= 0:
        return None
    mean_cost, var_cost = _mean_and_variance(arm.cost)
    success_rate = successes / arm.runs
    value = mean_cost / success_rate
    rate_var = success_rate * (1 - success_rate) / arm.runs
    relative = var_cost / mean_cost**2 if mean_cost > 0 else 0.0
    relative += rate_var / success_rate**2
    return value, value * math.sqrt(relative)


def judge(
    objective: Objective,
    refs: References,
    baseline: ArmMoments,
    candidate: ArmMoments,
    *,
    design: SequentialDesign,
    look: int,
    assignment: tuple[int, int] | None = None,
    expected_share: float = 0.5,
) -> tuple[Decision, list[ConstraintCheck]]:
    """One look: the engine's verdict on the objective and the guardrails, then the
    constraints and unjudgeable metrics folded in (see the module docstring)."""
    comparison, notes = objective_comparison(objective, refs, baseline, candidate)
    specs, comparisons = [objective_spec()], [comparison]
    summaries = arm_summaries(baseline), arm_summaries(candidate)
    missing: list[str] = []
    for spec in guardrails(objective, baseline):
        if min(summaries[0][spec.name].count, summaries[1][spec.name].count) < MIN_JUDGED:
            missing.append(spec.name)
            continue
        specs.append(spec)
        comparisons.append(compare_summaries(spec, *(s_ for s_ in summaries)))
    decision = decide_from_comparisons(
        specs,
        comparisons,
        design=design,
        look=look,
        assignment=assignment,
        expected_share=expected_share,
    )
    alpha = decision.metrics[0].nominal_alpha
    checks = check_constraints(objective, baseline, candidate, alpha)
    return _folded(decision, checks, missing, notes, design, look), checks


def _folded(
    decision: Decision,
    checks: Sequence[ConstraintCheck],
    missing: Sequence[str],
    notes: Sequence[str],
    design: SequentialDesign,
    look: int,
) -> Decision:
    final = look == design.planned_looks
    reasons = list(decision.reasons)
    outcome = decision.outcome
    broken = [c.reason for c in checks if c.status == "broken"]
    unjudged = [
        f"{name} cannot be judged yet: fewer than {MIN_JUDGED} values in an arm" for name in missing
    ]
    unproven = [c.reason for c in checks if c.status == "unproven"]
    if outcome in ("ship", "continue", "inconclusive") and broken:
        outcome, reasons = "reject", broken + reasons
    elif outcome == "ship" and (unproven or unjudged):
        outcome = "inconclusive" if final else "continue"
        reasons = unjudged + unproven + reasons
    else:
        reasons = reasons + unjudged
    reasons += [c.reason for c in checks if c.status == "holds"] + list(notes)
    return decision.model_copy(update={"outcome": outcome, "reasons": reasons})
