"""Decidability: the chance the longest window allowed ships a hypothesis that does what it
predicts, relative to the design's power."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from spark.errors import InvalidInputError
from spark.rsi.decidability import DESIGN_POWER, decidability, metric_power
from spark.rsi.objectives import Objective
from spark.telemetry.aggregates import TraceMetrics

ALPHA = 0.05


def failing_baseline(runs: int = 2_000, error_rate: float = 0.2, seed: int = 3) -> TraceMetrics:
    """Runs of which ``error_rate`` fail at random, lognormal latency around 80 ms, cost 0.01."""
    rng = np.random.default_rng(seed)
    return TraceMetrics(
        graph_id="g",
        version_id="v1",
        trace_ids=[f"t{i}" for i in range(runs)],
        latency_ms=rng.lognormal(np.log(80), 0.4, runs).tolist(),
        error=(rng.random(runs) < error_rate).astype(float).tolist(),
        cost=[0.01] * runs,
        quality=[None] * runs,
    )


def decidable(max_window_s: float, effects: dict[str, float], **extra: Any) -> float:
    """Decidability at 300 runs an hour, half of them on the candidate, five looks."""
    return decidability(
        failing_baseline(),
        Objective(),
        runs_per_hour=300.0,
        candidate_share=0.5,
        looks=5,
        alpha=ALPHA,
        max_window_s=max_window_s,
        expected_effects=effects,
        **extra,
    )


CURE = {"error_rate": -0.8, "latency": 0.05, "cost": 0.05}
"""A retry curing most failures, at some latency and cost."""
SPEED_UP = {"latency": -0.3}
"""A cache making requests faster, changing nothing about failures."""


def test_a_metric_with_the_runs_it_was_planned_for_has_its_planned_power() -> None:
    """At the planned size the power is the planned one; fewer runs, less; none, none."""
    assert metric_power(500, 500, ALPHA, 0.9) == pytest.approx(0.9)
    assert metric_power(125, 500, ALPHA, 0.9) < metric_power(250, 500, ALPHA, 0.9) < 0.9
    assert metric_power(0, 500, ALPHA, 0.9) == 0.0
    assert metric_power(500, float("inf"), ALPHA, 0.9) == 0.0


def test_a_window_that_holds_what_it_needs_is_fully_decidable() -> None:
    """A week of traffic holds every planned run: decidability 1 for either change."""
    assert decidable(7 * 86_400.0, CURE) == 1.0
    assert decidable(7 * 86_400.0, SPEED_UP) == 1.0


def test_a_change_that_cures_the_limiting_guardrail_decides_where_another_cannot() -> None:
    """With a fifth of the requests failing, the error guardrail (within 2 points) limits every
    window. In ten hours a cure of those failures still decides (its guardrail is an expected
    gain); a speed-up elsewhere must show the error rate unchanged and mostly cannot."""
    cure, speed_up = decidable(36_000.0, CURE), decidable(36_000.0, SPEED_UP)
    assert cure == 1.0
    assert 0.0 < speed_up < 0.3
    assert decidable(3_600.0, SPEED_UP) < speed_up  # a shorter window decides less


def test_an_expected_harm_at_the_margin_cannot_ship() -> None:
    """A change stating it adds 3 points of failures (margin 2) can never pass its guardrail."""
    assert decidable(7 * 86_400.0, {"error_rate": 0.15, "latency": -0.5}) == 0.0


def test_retries_of_undecided_tests_need_more_evidence() -> None:
    """A retried test asks for twice the evidence of the one before, so it decides less."""
    assert decidable(36_000.0, CURE, evidence_factor=4.0) < decidable(36_000.0, CURE) == 1.0


def test_too_few_baseline_runs_cannot_be_judged() -> None:
    """As the planner: no decidability without a baseline to plan from."""
    with pytest.raises(InvalidInputError, match="runs"):
        decidability(
            failing_baseline(runs=5),
            Objective(),
            runs_per_hour=300.0,
            candidate_share=0.5,
            looks=5,
            alpha=ALPHA,
            max_window_s=3_600.0,
            expected_effects=CURE,
        )


def test_the_design_power_is_the_planners() -> None:
    """Decidability is relative to the power windows are planned at."""
    assert DESIGN_POWER == 0.8


def test_without_traffic_there_is_no_figure() -> None:
    """No recent traffic: no window can fill, so no decidability (not a zero for everyone)."""
    with pytest.raises(InvalidInputError, match="no recent traffic"):
        decidability(
            failing_baseline(),
            Objective(),
            runs_per_hour=0.0,
            candidate_share=0.5,
            looks=5,
            alpha=ALPHA,
            max_window_s=3_600.0,
            expected_effects=CURE,
        )
