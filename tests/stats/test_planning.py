"""Sample-size planning against textbook values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spark.errors import InvalidInputError
from spark.rsi.stats import (
    MetricSpec,
    SequentialDesign,
    boundaries,
    decide,
    plan_sample_size,
    plan_window,
    window_hours,
)
from spark.rsi.stats.planning import (
    fixed_sample_size_rates,
    fixed_sample_size_t,
    plan_noninferiority,
)


@pytest.mark.parametrize(("effect", "n"), [(0.8, 26), (0.5, 64), (0.2, 394)])
def test_t_test_sizes_match_cohen_and_gpower(effect: float, n: int) -> None:
    """Two-sample t, alpha 0.05 two-sided, power 0.8: d=0.8 -> 26, d=0.5 -> 64 (Cohen 1988
    table 2.4.1), d=0.2 -> 394 per group (G*Power's exact noncentral-t value)."""
    assert fixed_sample_size_t(effect, 0.025, 0.8) == n


def test_two_proportion_size_matches_fleiss() -> None:
    """0.5 vs 0.6, alpha 0.05 two-sided, power 0.8: 388 per group without continuity
    correction (Fleiss, Levin and Paik 2003, eq. 4.14)."""
    assert fixed_sample_size_rates(0.5, 0.6, 0.025, 0.8) == 388


def test_latency_plan_uses_log_sd_and_the_sequential_inflation() -> None:
    """With the point estimate of the log SD, the plan is the t-based size of
    d = |ln 0.9| / sqrt(sd(ln x)^2 + ln(0.9)^2 / 4) (the spread the guarded test sees: the
    pooled runs' variance under no difference holds the shift too), times the design's
    inflation."""
    pilot = np.random.default_rng(1).lognormal(7.0, 0.5, 2000)
    design = SequentialDesign(planned_looks=10)
    shift = abs(math.log(0.9))
    effect = shift / math.sqrt(np.log(pilot).var(ddof=1) + shift**2 / 4)
    expected = math.ceil(fixed_sample_size_t(effect, 0.025, 0.8) * boundaries(design).inflation)
    assert (
        plan_sample_size(pilot, "latency", -0.10, design=design, variance_confidence=None)
        == expected
    )


def test_a_confident_variance_bound_plans_a_larger_sample() -> None:
    """Planning at the upper 80% limit of the SD asks for more than the point estimate."""
    pilot = np.random.default_rng(2).lognormal(7.0, 0.5, 200)
    design = SequentialDesign()
    point = plan_sample_size(pilot, "latency", -0.10, design=design, variance_confidence=None)
    assert plan_sample_size(pilot, "latency", -0.10, design=design) > point


def test_rate_plan_for_a_twenty_percent_reduction() -> None:
    """5% -> 4% errors at alpha 0.05 two-sided, power 0.8: Fleiss gives 6744.93, so 6,745."""
    pilot = np.r_[np.ones(500), np.zeros(9500)]
    planned = plan_sample_size(
        pilot, "rate", -0.20, design=SequentialDesign(), variance_confidence=None
    )
    assert planned == fixed_sample_size_rates(0.05, 0.04, 0.025, 0.8) == 6745


def test_window_plan_scales_sparse_metrics_to_runs() -> None:
    """Quality recorded on a third of runs needs three times the runs; the largest wins."""
    rng = np.random.default_rng(4)
    metrics = [
        MetricSpec(name="latency", kind="latency", improves="decrease", role="primary"),
        MetricSpec(name="quality", kind="continuous", improves="increase", margin=0.03),
    ]
    baseline = {"latency": rng.lognormal(7, 0.5, 900), "quality": rng.beta(7, 3, 300)}
    plan = plan_window(
        metrics, baseline, {"latency": -0.1}, design=SequentialDesign(planned_looks=5)
    )
    assert plan.power_per_metric == pytest.approx(0.9)
    assert plan.limiting_metric == "quality"
    assert plan.runs_per_arm == math.ceil(plan.samples_per_arm["quality"] * 3)


def test_window_hours_follow_the_smaller_arm() -> None:
    """1,000 runs per arm at 400 runs/hour with a 25% candidate share take 10 hours."""
    assert window_hours(1000, 400, 0.25) == pytest.approx(10.0)


def test_planning_refuses_useless_input() -> None:
    """A zero effect or a constant pilot has no sample size."""
    with pytest.raises(InvalidInputError, match="min_relative_effect"):
        plan_sample_size([1.0, 2.0, 3.0], "latency", 0.0, design=SequentialDesign())
    with pytest.raises(InvalidInputError, match="no spread"):
        plan_sample_size([5.0, 5.0, 5.0], "continuous", 0.1, design=SequentialDesign())


def test_a_baseline_that_never_fails_plans_its_error_guardrail_at_the_rate_bound() -> None:
    """Zero errors in the pilot: the error guardrail is planned at the rate's upper confidence
    bound, and at that size two arms that still never fail are shown within the margin."""
    guard = MetricSpec(
        name="error_rate",
        kind="rate",
        improves="decrease",
        role="guardrail",
        margin=0.02,
        margin_scale="absolute",
    )
    design = SequentialDesign(alpha=0.02)
    n = plan_noninferiority(np.zeros(400), guard, design=design)
    assert 50 < n < 1000
    rng = np.random.default_rng(4)
    latency = MetricSpec(name="latency", kind="latency", improves="decrease", role="primary")
    decision = decide(
        [latency, guard],
        {"latency": rng.lognormal(5, 0.5, n), "error_rate": np.zeros(n)},
        {"latency": rng.lognormal(5, 0.5, n), "error_rate": np.zeros(n)},
        design=design,
    )
    assert decision.metrics[1].non_inferior
    smaller = decide(
        [latency, guard],
        {"latency": rng.lognormal(5, 0.5, n // 3), "error_rate": np.zeros(n // 3)},
        {"latency": rng.lognormal(5, 0.5, n // 3), "error_rate": np.zeros(n // 3)},
        design=design,
    )
    assert not smaller.metrics[1].non_inferior  # the plan is not oversized by a wide margin


def test_a_rare_event_guardrail_gets_the_power_it_was_planned_for() -> None:
    """At a 0.5% error rate the rate test's half-event shrinkage widens the interval; planned
    with it, two arms that both keep failing 0.5% of the time are shown within the 2-point
    margin at about the planned 80% (seeded, 400 simulated windows: 297 runs per arm, 77.5%
    shown; planned without the shrinkage, 218 runs per arm, 68%)."""
    guard = MetricSpec(
        name="error_rate",
        kind="rate",
        improves="decrease",
        role="guardrail",
        margin=0.02,
        margin_scale="absolute",
    )
    latency = MetricSpec(name="latency", kind="latency", improves="decrease", role="primary")
    design = SequentialDesign(alpha=0.02)
    rng = np.random.default_rng(7)
    pilot = (rng.random(4000) < 0.005).astype(float)
    n = plan_noninferiority(pilot, guard, design=design)
    shown = 0
    for _ in range(400):
        arms = [
            {"latency": rng.lognormal(5, 0.5, n), "error_rate": (rng.random(n) < 0.005) * 1.0}
            for _ in range(2)
        ]
        decision = decide([latency, guard], arms[0], arms[1], design=design)
        shown += bool(decision.metrics[1].non_inferior)
    assert shown / 400 >= 0.74
