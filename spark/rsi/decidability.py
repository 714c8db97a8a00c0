"""How likely an online window is to decide a hypothesis on this graph's traffic, for the ranking.

A window is sized (``spark.rsi.online``) so that every judged metric reaches its power: the
owner's loss at the planned change, each guardrail at its margin *as if the candidate changed
nothing there*. That is right for the window (a guardrail must catch harm it did not expect),
but it makes every hypothesis look alike on a graph where one guardrail limits them all: with
a fifth of the requests failing, showing the error rate within 2 points takes thousands of runs
per arm, whether the change cures those failures or speeds up another node.

The ranking asks another question: if the hypothesis does what it predicts, how likely is the
longest window allowed to ship it? Each metric needs ``n`` runs per arm at its planned power
``p`` (the planner's own sizes); a guardrail the hypothesis expects to improve by ``d`` (in the
margin's units, at the share of predictions that come true) is as easy as one with margin
``margin + d``, so it needs ``n * (margin / (margin + d))**2``, and one it expects to worsen
needs more (no shrinking of a stated cost). With ``A`` runs per arm in the longest window, a
metric passes with probability about ``Phi(sqrt(A / n) * (z_alpha + z_p) - z_alpha)`` (one-sided
level ``alpha / 2``); the window ships when all pass (their product). ``decidability`` is that
over the design's power, at most 1: 1 when the window can hold what the hypothesis needs.
The ranking multiplies a hypothesis' expected gain by it, so a change whose window cannot decide
no longer takes the cycle from one that can (a cycle spent on an undecidable window ships
nothing).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from scipy import special

from spark.rsi.objectives import Objective
from spark.rsi.online import (
    PLANNED_SHARE_OF_PREDICTION,
    available_runs_per_arm,
    check_traffic,
    size_objective_window,
)
from spark.rsi.stats import MetricSpec, SequentialDesign
from spark.telemetry.aggregates import TraceMetrics

DESIGN_POWER = SequentialDesign.model_fields["power"].default
"""The power every window is planned at."""


def metric_power(available: float, needed: float, alpha: float, power: float) -> float:
    """The chance a metric planned to need ``needed`` runs per arm at ``power`` passes with
    ``available`` runs per arm (two-sided ``alpha``)."""
    if needed <= 0:
        return 1.0
    if available <= 0 or math.isinf(needed):
        return 0.0
    z_alpha = -float(special.ndtri(alpha / 2.0))
    z_power = -float(special.ndtri(1.0 - power))
    return float(special.ndtr(math.sqrt(available / needed) * (z_alpha + z_power) - z_alpha))


def decidability(
    baseline: TraceMetrics,
    objective: Objective,
    *,
    runs_per_hour: float,
    candidate_share: float,
    looks: int,
    alpha: float,
    max_window_s: float,
    min_effect: float | None = None,
    expected_effects: Mapping[str, float] | None = None,
    evidence_factor: float = 1.0,
    prediction_share: float | None = None,
) -> float:
    """The chance the longest window allowed ships the hypothesis if it does what it predicts
    (at the share of predictions that come true), over the design's power, at most 1 (see the
    module docstring). Raises ``InvalidInputError`` when no window can be planned (no recent
    traffic, too small a baseline)."""
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
    available = available_runs_per_arm(runs_per_hour, candidate_share, max_window_s)
    trust = PLANNED_SHARE_OF_PREDICTION if prediction_share is None else prediction_share
    longest = max(len(sizing.arrays[m.name]) for m in sizing.sizable)
    chance = 1.0
    for spec in sizing.sizable:
        coverage = longest / max(len(sizing.arrays[spec.name]), 1)
        needed = sizing.planned.samples_per_arm[spec.name] * coverage * evidence_factor
        if spec.role == "guardrail":
            needed *= _guardrail_factor(spec, sizing.arrays[spec.name], expected_effects, trust)
        chance *= metric_power(available, needed, alpha, sizing.planned.power_per_metric)
    return min(1.0, chance / DESIGN_POWER)


def _guardrail_factor(
    spec: MetricSpec,
    baseline: list[float],
    expected_effects: Mapping[str, float] | None,
    trust: float,
) -> float:
    """How many times the planned runs the guardrail needs when the candidate moves it as
    expected: (margin / (margin + expected favourable difference))**2, an expected gain counted
    at the share of predictions that come true, an expected harm in full; infinite when the
    harm is expected to reach the margin."""
    effect = (expected_effects or {}).get(spec.name, 0.0)
    favourable = -effect if spec.improves == "decrease" else effect
    if favourable > 0:
        favourable *= trust
    if spec.margin_scale == "absolute":
        favourable *= sum(baseline) / len(baseline) if baseline else 0.0
    distance = spec.margin + favourable
    if distance <= 0:
        return math.inf
    return (spec.margin / distance) ** 2
