"""The online A/B window: live traffic split between baseline and candidate, looked at on timers.

Pure logic, no I/O: the activities read telemetry and routing, these functions plan and decide.

* ``plan_online_window`` sizes the window from the baseline's recorded runs (its spread and
  error rate) and the graph's traffic rate: runs per arm from the statistical planner for the
  primary metric at its minimum effect and every guardrail at its margin, then the hours of
  traffic that deliver them at the candidate's share, clamped to the allowed window.
* ``decide_online_look`` decides one look through the statistical engine, from SQL aggregates
  of both arms (count, sum, sum of squares), so a look costs the same at any window size. Looks are spaced in
  time but the design's error spending follows the *information* actually gathered (Lan-DeMets):
  each look's fraction is the runs per arm so far over the planned runs per arm, and the last
  allowed look spends whatever alpha is left, so a slow or bursty traffic never inflates the
  false-positive rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from spark.errors import InvalidInputError
from spark.rsi.hypotheses import Metric
from spark.rsi.judgement import (
    OBJECTIVE,
    arm_summaries,
    guardrails,
    judge,
    objective_spec,
    per_run_loss,
    references_of,
)
from spark.rsi.objectives import Objective, expected_objective_change
from spark.rsi.online_plan import OnlinePlan, References
from spark.rsi.stats import (
    Decision,
    MetricSpec,
    SequentialDesign,
    SummaryStats,
    WindowPlan,
    decide_from_summaries,
    plan_window,
)
from spark.telemetry.aggregates import ArmMoments, Moments, TraceMetrics

AB_METRICS: dict[Metric, MetricSpec] = {
    "latency": MetricSpec(name="latency", kind="latency", improves="decrease", margin=0.20),
    "error_rate": MetricSpec(
        name="error_rate", kind="rate", improves="decrease", margin=0.02, margin_scale="absolute"
    ),
    "cost": MetricSpec(name="cost", kind="continuous", improves="decrease", margin=0.10),
    "quality": MetricSpec(name="quality", kind="continuous", improves="increase", margin=0.05),
}
"""Every metric an A/B window can judge, with its guardrail margin (used when not primary)."""

MAX_RELATIVE_MARGIN = 0.9  # a relative margin of an "increase" metric must stay below 1

DEFAULT_MIN_EFFECTS: dict[Metric, float] = {
    "latency": -0.10,
    "error_rate": -0.20,
    "cost": -0.10,
    "quality": 0.05,
}
"""The smallest relative change of a primary metric worth detecting, by default."""

MIN_RUNS_PER_METRIC = 10


def metric_arrays(metrics: TraceMetrics) -> dict[str, list[float]]:
    """Per-run arrays of one arm, per request as the caller sees it: error, latency and cost over
    every run (a failed request's latency is the time its caller waited for the failure), quality
    where a score was recorded."""
    return {
        "error_rate": list(metrics.error),
        "latency": list(metrics.latency_ms),
        "cost": list(metrics.cost),
        "quality": [q for q in metrics.quality if q is not None],
    }


def informative(values: Sequence[float], spec: MetricSpec) -> bool:
    """Enough runs with some spread to plan or judge the metric (a rate needs some events)."""
    if len(values) < MIN_RUNS_PER_METRIC:
        return False
    if spec.kind == "latency" and min(values) <= 0:
        return False
    return len(set(values)) > 1


ALWAYS_GUARDED: frozenset[str] = frozenset({"error_rate"})
"""Guardrails judged in every window: every run has an error flag, and a baseline that never
fails must still stop a candidate that does."""


def judged_spec(
    name: Metric, primary: Metric, expected_effects: Mapping[str, float] | None = None
) -> MetricSpec:
    """The spec a metric is judged by in a test of a hypothesis with ``primary``.

    A guardrail with a relative margin that the hypothesis itself expects to worsen (retries
    cost some latency to cure errors) gets that stated cost added to its margin, at most
    doubling it: guardrails catch *unexpected* harm, and the stated trade-off is capped so an
    untrusted estimate cannot switch a guardrail off.
    """
    spec = AB_METRICS[name]
    if name == primary:
        return spec.model_copy(update={"role": "primary"})
    expected = (expected_effects or {}).get(name, 0.0)
    worsening = expected if spec.improves == "decrease" else -expected
    margin = spec.margin
    if spec.margin_scale == "relative" and worsening > 0:
        margin = min(spec.margin + worsening, 2.0 * spec.margin, MAX_RELATIVE_MARGIN)
    return spec.model_copy(update={"role": "guardrail", "margin": margin})


def window_metrics(
    primary: Metric,
    baseline: dict[str, list[float]],
    expected_effects: Mapping[str, float] | None = None,
) -> list[MetricSpec]:
    """The primary, the error rate, and every other guardrail the baseline's records support."""
    return [
        judged_spec(name, primary, expected_effects)
        for name, spec in AB_METRICS.items()
        if name == primary or name in ALWAYS_GUARDED or informative(baseline[name], spec)
    ]


def _sizable(spec: MetricSpec, values: Sequence[float]) -> bool:
    """Whether the planner can size the window for this metric: any primary, a guardrail with
    some spread, or a rate with an absolute margin (planned at its rate's upper bound even when
    the baseline never had the event)."""
    if spec.role == "primary" or informative(values, spec):
        return True
    return spec.kind == "rate" and spec.margin_scale == "absolute" and len(values) >= 2


def plan_online_window(
    baseline: TraceMetrics,
    primary: Metric,
    *,
    runs_per_hour: float,
    candidate_share: float,
    looks: int,
    alpha: float,
    min_window_s: float,
    max_window_s: float,
    min_effect: float | None = None,
    expected_effects: Mapping[str, float] | None = None,
) -> OnlinePlan:
    """Size the window; raises ``InvalidInputError`` (with the reason) when it cannot be planned.
    ``expected_effects`` are the hypothesis' own (see ``judged_spec``)."""
    check_traffic(runs_per_hour, candidate_share)
    arrays = metric_arrays(baseline)
    if not informative(arrays[primary], AB_METRICS[primary]):
        raise InvalidInputError(
            f"the baseline has too few or constant {primary!r} records to plan a window "
            f"({len(arrays[primary])} values)"
        )
    metrics = window_metrics(primary, arrays, expected_effects)
    sizable = [m for m in metrics if _sizable(m, arrays[m.name])]
    effect = DEFAULT_MIN_EFFECTS[primary] if min_effect is None else min_effect
    design = SequentialDesign(alpha=alpha, planned_looks=looks)
    planned = plan_window(
        sizable, {m.name: arrays[m.name] for m in sizable}, {primary: effect}, design=design
    )
    window_s, needed_s = _window_length(
        planned.runs_per_arm, runs_per_hour, candidate_share, min_window_s, max_window_s
    )
    notes = [
        f"{planned.runs_per_arm} runs per arm (limited by {planned.limiting_metric}) at "
        f"{runs_per_hour:.0f} runs/h and a {candidate_share:.0%} candidate share need "
        f"{duration_text(needed_s)}",
        *_cap_note(needed_s, max_window_s),
    ]
    return OnlinePlan(
        runs_per_arm=planned.runs_per_arm,
        window_s=window_s,
        look_interval_s=window_s / looks,
        looks=looks,
        limiting_metric=planned.limiting_metric,
        metrics=[name for name in AB_METRICS if any(m.name == name for m in metrics)],
        margins={m.name: m.margin for m in metrics if m.role == "guardrail"},
        runs_per_hour=runs_per_hour,
        capped=needed_s > max_window_s,
        capacity=_capacity(needed_s, max_window_s),
        notes=notes,
    )


PLANNED_SHARE_OF_PREDICTION = 0.5
"""A window is powered for half the objective gain the hypothesis predicts: predictions come
from rules of thumb and are often optimistic, and half the gain is still worth shipping."""
MIN_PLANNED_LOSS_CHANGE = 0.02
MAX_PLANNED_LOSS_CHANGE = 0.5
DEFAULT_PLANNED_LOSS_CHANGE = 0.05


def planned_loss_change(
    objective: Objective,
    refs: References,
    expected_effects: Mapping[str, float] | None,
    min_effect: float | None,
    prediction_share: float | None = None,
) -> float:
    """The relative change of the loss per request the window is powered to detect (negative):
    ``min_effect`` when the operator set one, else ``prediction_share`` of the hypothesis'
    predicted change (the share earlier predictions of its kind came true, from the learned
    patterns; ``PLANNED_SHARE_OF_PREDICTION`` before any was checked)."""
    if min_effect is not None:
        return -abs(min_effect)
    base = refs.loss(objective)
    predicted = expected_objective_change(objective, expected_effects or {}, refs.error_rate)
    if base <= 0 or predicted >= 0:
        return -DEFAULT_PLANNED_LOSS_CHANGE
    trust = PLANNED_SHARE_OF_PREDICTION if prediction_share is None else prediction_share
    share = trust * -predicted / base
    return -min(max(share, MIN_PLANNED_LOSS_CHANGE), MAX_PLANNED_LOSS_CHANGE)


def _share_note(min_effect: float | None, prediction_share: float | None) -> str:
    if min_effect is not None or prediction_share is None:
        return ""
    return f", {prediction_share:.0%} of the predicted gain, as earlier predictions came true"


def objective_arrays(
    objective: Objective, refs: References, baseline: TraceMetrics
) -> dict[str, list[float]]:
    """The baseline's per-run arrays with the objective's loss per run added."""
    arrays = metric_arrays(baseline)
    arrays[OBJECTIVE] = [
        per_run_loss(objective, refs, e, lat, c)
        for e, lat, c in zip(baseline.error, baseline.latency_ms, baseline.cost, strict=True)
    ]
    return arrays


@dataclass(frozen=True)
class ObjectiveSizing:
    """What sizes an objective window: the baseline's references and per-run arrays, the
    metrics judged (``sizable``: those the planner can size), the planned change of the loss
    and the planner's per-metric samples."""

    refs: References
    arrays: dict[str, list[float]]
    metrics: list[MetricSpec]
    sizable: list[MetricSpec]
    change: float
    planned: WindowPlan


def size_objective_window(
    baseline: TraceMetrics,
    objective: Objective,
    *,
    looks: int,
    alpha: float,
    min_effect: float | None = None,
    expected_effects: Mapping[str, float] | None = None,
    prediction_share: float | None = None,
) -> ObjectiveSizing:
    """The runs per arm each judged metric needs (see ``plan_objective_window``); raises
    ``InvalidInputError`` when the baseline is too small to plan from."""
    if len(baseline.error) < MIN_RUNS_PER_METRIC:
        raise InvalidInputError(
            f"the baseline has {len(baseline.error)} runs; {MIN_RUNS_PER_METRIC} are needed "
            "to plan a window"
        )
    refs = references_of(moments_of(baseline))
    arrays = objective_arrays(objective, refs, baseline)
    metrics = [objective_spec(), *guardrails(objective, moments_of(baseline))]
    sizable = [m for m in metrics if _sizable(m, arrays[m.name])]
    change = planned_loss_change(objective, refs, expected_effects, min_effect, prediction_share)
    design = SequentialDesign(alpha=alpha, planned_looks=looks)
    planned = plan_window(
        sizable, {m.name: arrays[m.name] for m in sizable}, {OBJECTIVE: change}, design=design
    )
    return ObjectiveSizing(refs, arrays, metrics, sizable, change, planned)


def available_runs_per_arm(
    runs_per_hour: float, candidate_share: float, max_window_s: float
) -> float:
    """The runs each arm gets in the longest window allowed (the smaller arm's)."""
    return runs_per_hour * min(candidate_share, 1.0 - candidate_share) * max_window_s / 3600.0


def plan_objective_window(
    baseline: TraceMetrics,
    objective: Objective,
    *,
    runs_per_hour: float,
    candidate_share: float,
    looks: int,
    alpha: float,
    min_window_s: float,
    max_window_s: float,
    min_effect: float | None = None,
    expected_effects: Mapping[str, float] | None = None,
    evidence_factor: float = 1.0,
    prediction_share: float | None = None,
) -> OnlinePlan:
    """Size a window that judges the candidate by ``objective`` (``spark.rsi.judgement``): the
    loss per request at the planned change, every guardrail at its margin. Raises
    ``InvalidInputError`` (with the reason) when it cannot be planned."""
    check_traffic(runs_per_hour, candidate_share)
    sizing = size_objective_window(
        baseline,
        objective,
        looks=looks,
        alpha=alpha,
        min_effect=min_effect,
        expected_effects=expected_effects,
        prediction_share=prediction_share,
    )
    refs, metrics, sizable = sizing.refs, sizing.metrics, sizing.sizable
    change, planned = sizing.change, sizing.planned
    runs_per_arm = math.ceil(planned.runs_per_arm * evidence_factor)
    window_s, needed_s = _window_length(
        runs_per_arm, runs_per_hour, candidate_share, min_window_s, max_window_s
    )
    notes = [
        f"judged by the owner's objective (loss per request {refs.loss(objective):.3g}, "
        f"powered for a {change:+.1%} change{_share_note(min_effect, prediction_share)}); "
        f"{runs_per_arm} runs per arm (limited by "
        f"{planned.limiting_metric}{_retry_note(evidence_factor)}) at {runs_per_hour:.0f} runs/h and a {candidate_share:.0%} "
        f"candidate share need {duration_text(needed_s)}",
        *_unplanned(metrics, sizable),
        *_cap_note(needed_s, max_window_s),
    ]
    return OnlinePlan(
        runs_per_arm=runs_per_arm,
        window_s=window_s,
        look_interval_s=window_s / looks,
        looks=looks,
        limiting_metric=planned.limiting_metric,
        metrics=[name for name in AB_METRICS if any(m.name == name for m in metrics)],
        margins={m.name: m.margin for m in metrics if m.role == "guardrail"},
        runs_per_hour=runs_per_hour,
        capped=needed_s > max_window_s,
        capacity=_capacity(needed_s, max_window_s),
        notes=notes,
        objective=objective,
        references=refs,
    )


def _retry_note(evidence_factor: float) -> str:
    if evidence_factor <= 1.0:
        return ""
    return f", x{evidence_factor:g} for a retry of an undecided test"


def check_traffic(runs_per_hour: float, candidate_share: float) -> None:
    """Raise ``InvalidInputError`` unless traffic flows and the candidate share splits it."""
    if runs_per_hour <= 0:
        raise InvalidInputError("the graph has no recent traffic: an online window cannot fill")
    if not 0 < candidate_share < 1:
        raise InvalidInputError(f"candidate_share must lie in (0, 1), got {candidate_share!r}")


def _window_length(
    runs_per_arm: int,
    runs_per_hour: float,
    candidate_share: float,
    min_window_s: float,
    max_window_s: float,
) -> tuple[float, float]:
    """The window's length (clamped) and the length the planned runs need."""
    needed_s = runs_per_arm / available_runs_per_arm(runs_per_hour, candidate_share, 1.0)
    return min(max(needed_s, min_window_s), max_window_s), needed_s


def _unplanned(metrics: Sequence[MetricSpec], sizable: Sequence[MetricSpec]) -> list[str]:
    """Guardrails judged although their baseline has no spread to size the window by."""
    names = [m.name for m in metrics if m not in sizable]
    if not names:
        return []
    return [
        f"{', '.join(names)} judged at every look although the baseline shows no spread to "
        "size the window by (a constant baseline: any change shows against the pooled spread)"
    ]


def _capacity(needed_s: float, max_window_s: float) -> float:
    """The share of the planned runs a window capped at ``max_window_s`` holds."""
    return 1.0 if needed_s <= max_window_s else max_window_s / needed_s


def _cap_note(needed_s: float, max_window_s: float) -> list[str]:
    if needed_s <= max_window_s:
        return []
    return [
        f"capped at {duration_text(max_window_s)}: the window will hold about "
        f"{max_window_s / needed_s:.0%} of the planned runs, with less power"
    ]


def look_fractions(
    previous: Sequence[float], current: float, looks: int, *, final: bool
) -> tuple[float, ...]:
    """The design's information fractions at this look: the ones observed so far, then the rest
    of the planned looks spread evenly up to 1. The final look is always at fraction 1."""
    done = len(previous) + 1
    if done > looks:
        raise InvalidInputError(f"look {done} exceeds the {looks} planned looks")
    if final or done == looks:
        return (*previous, 1.0)
    floor = previous[-1] if previous else 0.0
    step_room = 1e-6 * (looks - done + 1)
    value = min(max(current, floor + 1e-6), 1.0 - step_room)
    remaining = looks - done
    rest = tuple(value + (1.0 - value) * k / remaining for k in range(1, remaining + 1))
    return (*previous, value, *rest)


def decide_online_look(
    plan: OnlinePlan,
    primary: Metric,
    baseline: ArmMoments,
    candidate: ArmMoments,
    *,
    assignment: tuple[int, int],
    candidate_share: float,
    previous_fractions: Sequence[float],
    alpha: float,
    final: bool,
) -> tuple[Decision, float]:
    """Decide this look from both arms' aggregates (constant memory at any window size);
    returns the decision and the information fraction it was taken at (rising strictly across
    looks: pass it back in ``previous_fractions`` next time)."""
    if plan.objective is not None and plan.references is not None:
        return _decide_by_objective(
            plan,
            baseline,
            candidate,
            assignment=assignment,
            candidate_share=candidate_share,
            previous_fractions=previous_fractions,
            alpha=alpha,
            final=final,
        )
    arms = summary_stats(baseline), summary_stats(candidate)
    metrics = [
        _planned_spec(plan, name, primary)
        for name in plan.metrics
        if all(arm[name].count >= 2 for arm in arms)
    ]
    if not any(m.role == "primary" for m in metrics):
        raise InvalidInputError(f"not enough {primary!r} records in both arms yet")
    fraction = min(baseline.runs, candidate.runs) / plan.runs_per_arm
    final = final or fraction >= 1.0
    fractions = look_fractions(previous_fractions, fraction, plan.looks, final=final)
    look = len(previous_fractions) + 1
    if final:
        # Spend what is left now: the design shrinks to the looks actually taken. Earlier
        # looks keep their bounds (a Lan-DeMets bound depends only on the fractions up to it).
        fractions = fractions[:look]
    design = SequentialDesign(
        alpha=alpha, planned_looks=len(fractions), look_fractions=_normalised(fractions)
    )
    decision = decide_from_summaries(
        metrics,
        {m.name: arms[0][m.name] for m in metrics},
        {m.name: arms[1][m.name] for m in metrics},
        design=design,
        look=look,
        assignment=assignment,
        expected_share=candidate_share,
    )
    return decision, design.fractions[look - 1]


def _look_design(
    plan: OnlinePlan,
    baseline: ArmMoments,
    candidate: ArmMoments,
    previous_fractions: Sequence[float],
    alpha: float,
    final: bool,
) -> tuple[SequentialDesign, int]:
    """The design at this look (Lan-DeMets on the information gathered) and the look's index."""
    fraction = min(baseline.runs, candidate.runs) / plan.runs_per_arm
    final = final or fraction >= 1.0
    fractions = look_fractions(previous_fractions, fraction, plan.looks, final=final)
    look = len(previous_fractions) + 1
    if final:
        fractions = fractions[:look]
    design = SequentialDesign(
        alpha=alpha, planned_looks=len(fractions), look_fractions=_normalised(fractions)
    )
    return design, look


def _decide_by_objective(
    plan: OnlinePlan,
    baseline: ArmMoments,
    candidate: ArmMoments,
    *,
    assignment: tuple[int, int],
    candidate_share: float,
    previous_fractions: Sequence[float],
    alpha: float,
    final: bool,
) -> tuple[Decision, float]:
    assert plan.objective is not None and plan.references is not None
    if min(baseline.runs, candidate.runs) < MIN_JUDGED_RUNS:
        raise InvalidInputError("not enough runs in both arms yet")
    design, look = _look_design(plan, baseline, candidate, previous_fractions, alpha, final)
    decision, _ = judge(
        plan.objective,
        plan.references,
        baseline,
        candidate,
        design=design,
        look=look,
        assignment=assignment,
        expected_share=candidate_share,
    )
    return decision, design.fractions[look - 1]


MIN_JUDGED_RUNS = 2


def _planned_spec(plan: OnlinePlan, name: Metric, primary: Metric) -> MetricSpec:
    spec = judged_spec(name, primary)
    if name in plan.margins:
        spec = spec.model_copy(update={"margin": plan.margins[name]})
    return spec


def summary_stats(arm: ArmMoments) -> dict[str, SummaryStats]:
    """The engine's per-metric summaries of one arm (``spark.rsi.judgement.arm_summaries``)."""
    return arm_summaries(arm)


def moments_of(metrics: TraceMetrics) -> ArmMoments:
    """The aggregates of per-run arrays (what ``TelemetryStore.arm_moments`` computes in SQL)."""
    arrays = metric_arrays(metrics)

    def moments(values: Sequence[float]) -> Moments:
        return Moments(
            count=len(values), sum=math.fsum(values), sum_squares=math.fsum(v * v for v in values)
        )

    def cross(first: Sequence[float], second: Sequence[float]) -> float:
        return math.fsum(a * b for a, b in zip(first, second, strict=True))

    errors, latency, cost = arrays["error_rate"], arrays["latency"], arrays["cost"]
    return ArmMoments(
        runs=len(metrics.error),
        errors=int(sum(metrics.error)),
        log_latency=moments([math.log(v) for v in latency if v > 0]),
        latency=moments(latency),
        cost=moments(cost),
        quality=moments(arrays["quality"]),
        error_latency=cross(errors, latency),
        error_cost=cross(errors, cost),
        latency_cost=cross(latency, cost),
    )


def _normalised(fractions: tuple[float, ...]) -> tuple[float, ...]:
    """Fractions rising strictly and ending exactly at 1 (the design's invariant)."""
    result: list[float] = []
    for value in fractions[:-1]:
        floor = result[-1] if result else 0.0
        result.append(min(max(value, floor + 1e-9), 1.0 - 1e-9 * (len(fractions) - len(result))))
    return (*result, 1.0)


def duration_text(seconds: float) -> str:
    """A duration in the unit a reader expects: seconds, minutes, hours or days."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def observed_rate(traces: int, window_s: float) -> float:
    """Runs per hour from a trace count over a window."""
    return traces / window_s * 3600.0 if window_s > 0 and math.isfinite(window_s) else 0.0
