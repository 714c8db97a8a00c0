"""Metrics that do not vary: decided on exact grounds, never infinitely significant, never
untestable, with the reason in the decision."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spark.rsi.stats import (
    Decision,
    MetricSpec,
    SequentialDesign,
    SummaryStats,
    decide,
    decide_from_summaries,
    mann_whitney_hl,
)
from spark.rsi.stats.compare import compare_arrays

QUALITY = MetricSpec(name="quality", kind="continuous", improves="increase", role="primary")
QUALITY_GUARD = MetricSpec(name="quality", kind="continuous", improves="increase", margin=0.03)
COST = MetricSpec(name="cost", kind="continuous", improves="decrease", role="primary")
COST_GUARD = MetricSpec(name="cost", kind="continuous", improves="decrease", margin=0.05)
LATENCY = MetricSpec(name="latency", kind="latency", improves="decrease", role="primary")
SUCCESS = MetricSpec(name="success", kind="rate", improves="increase", role="primary")
ONE_LOOK = SequentialDesign(alpha=0.02)
TEN_LOOKS = SequentialDesign(alpha=0.02, planned_looks=10)


def _summary(values: list[float] | np.ndarray) -> SummaryStats:
    array = np.asarray(values, dtype=float)
    return SummaryStats(count=array.size, sum=float(array.sum()), sum_squares=float(array @ array))


def _all_finite(decision: Decision) -> bool:
    return all(
        math.isfinite(value)
        for result in decision.metrics
        for value in (result.z, result.p_value, result.nominal_alpha)
    )


def test_three_ratings_of_4_against_three_of_5_never_ship() -> None:
    """[4, 4, 4] vs [5, 5, 5] is no evidence at any look: the exact permutation p-value is
    1/20 one-sided, the statistic stays finite and the reason names the constant arms."""
    for look in range(1, 11):
        decision = decide(
            [QUALITY], {"quality": [4, 4, 4]}, {"quality": [5, 5, 5]}, design=TEN_LOOKS, look=look
        )
        result = decision.metrics[0]
        assert decision.outcome != "ship"
        assert not result.significant_improvement
        assert result.p_value == pytest.approx(2 / 20)
        assert _all_finite(decision)
    assert "constant in both arms" in decision.reasons[0]
    assert "too few runs" in decision.reasons[0]


def test_zero_variance_windows_do_not_ship_even_at_a_single_look() -> None:
    """A one-look test at alpha 0.05 still refuses [4, 4, 4] vs [5, 5, 5] (p = 0.05 exactly
    is not below the one-sided 0.025)."""
    decision = decide(
        [QUALITY],
        {"quality": [4, 4, 4]},
        {"quality": [5, 5, 5]},
        design=SequentialDesign(alpha=0.05),
    )
    assert decision.outcome != "ship"


def test_a_deterministic_cost_difference_is_decisive() -> None:
    """30 runs per arm at a flat 1.0 per call against a flat 0.1 ship at once, from arrays and
    from SQL sums alike, with a finite p-value far below the level."""
    baseline, candidate = [1.0] * 30, [0.1] * 30
    from_arrays = decide([COST], {"cost": baseline}, {"cost": candidate}, design=ONE_LOOK)
    from_sums = decide_from_summaries(
        [COST], {"cost": _summary(baseline)}, {"cost": _summary(candidate)}, design=ONE_LOOK
    )
    for decision in (from_arrays, from_sums):
        assert decision.outcome == "ship"
        assert 0 < decision.metrics[0].p_value < 1e-6
        assert decision.metrics[0].estimate == pytest.approx(-0.9)
        assert "constant in both arms" in decision.reasons[0]


def test_a_flat_cost_guardrail_kept_at_its_price_is_non_inferior() -> None:
    """A cost guardrail with the same flat price in both arms (decent count) is shown
    non-inferior, so a real latency win ships."""
    rng = np.random.default_rng(3)
    baseline = {"latency": rng.lognormal(6, 0.5, 400), "cost": np.full(400, 0.02)}
    candidate = {"latency": rng.lognormal(6, 0.5, 400) * 0.7, "cost": np.full(400, 0.02)}
    decision = decide([LATENCY, COST_GUARD], baseline, candidate, design=ONE_LOOK)
    assert decision.outcome == "ship"
    assert decision.metrics[1].non_inferior


def _broken_quality(n: int, seed: int = 4) -> np.ndarray:
    """A candidate whose quality fell from always 1.0 to a mean near 0.16, with spread."""
    return np.clip(np.random.default_rng(seed).normal(0.16, 0.2, n), 0.0, 1.0)


def test_an_always_perfect_quality_broken_by_the_candidate_is_significant_harm() -> None:
    """Baseline quality always 1.0, candidate mean ~0.16: a primary is significantly worse and
    a guardrail significantly beyond its margin, whether decided from arrays or sums."""
    baseline, candidate = np.ones(60), _broken_quality(60)
    for spec in (QUALITY, QUALITY_GUARD):
        metrics = [spec] if spec.role == "primary" else [COST, spec]
        arms_b = {"quality": baseline, "cost": np.full(60, 1.0)}
        arms_c = {"quality": candidate, "cost": np.full(60, 0.1)}
        decisions = [
            decide(metrics, arms_b, arms_c, design=TEN_LOOKS, look=3),
            decide_from_summaries(
                metrics,
                {k: _summary(v) for k, v in arms_b.items()},
                {k: _summary(v) for k, v in arms_c.items()},
                design=TEN_LOOKS,
                look=3,
            ),
        ]
        for decision in decisions:
            quality = next(r for r in decision.metrics if r.name == "quality")
            assert decision.outcome == "reject"
            assert quality.significant_harm
            assert quality.p_value < 1e-6
            assert "constant in the baseline arm" in " ".join(quality.notes)


def test_an_always_perfect_quality_kept_by_the_candidate_stays_a_guardrail() -> None:
    """Quality 1.0 in every run of both arms is judged, not dropped: non-inferior at a decent
    count, so a cheaper candidate ships."""
    arms_b = {"cost": np.full(100, 1.0), "quality": np.ones(100)}
    arms_c = {"cost": np.full(100, 0.1), "quality": np.ones(100)}
    decision = decide([COST, QUALITY_GUARD], arms_b, arms_c, design=ONE_LOOK)
    assert [r.name for r in decision.metrics] == ["cost", "quality"]
    assert decision.metrics[1].non_inferior
    assert decision.outcome == "ship"


def test_identical_constant_arms_at_a_tiny_count_are_not_evidence_of_safety() -> None:
    """Three perfect scores per arm cannot show a guardrail non-inferior: the window is
    inconclusive at its end, and the reason says there were too few runs."""
    arms_b = {"cost": [1.0, 1.1, 0.9], "quality": [1.0, 1.0, 1.0]}
    arms_c = {"cost": [0.1, 0.11, 0.09], "quality": [1.0, 1.0, 1.0]}
    decision = decide([COST, QUALITY_GUARD], arms_b, arms_c, design=SequentialDesign(alpha=0.05))
    assert decision.metrics[1].non_inferior is False
    assert decision.outcome != "ship"
    assert any("too few runs" in reason for reason in decision.reasons)


def test_an_absolute_margin_on_a_constant_metric_reports_an_interval_consistent_with_it() -> None:
    """With an absolute margin the reported difference interval (inverted from the guarded
    statistic) stays inside the margin exactly when the metric is non-inferior."""
    guard = QUALITY_GUARD.model_copy(update={"margin": 0.05, "margin_scale": "absolute"})
    for candidate in (np.ones(200), np.r_[np.ones(190), np.zeros(10)], np.ones(4)):
        decision = decide(
            [COST, guard],
            {"cost": np.full(candidate.size, 1.0), "quality": np.ones(candidate.size)},
            {"cost": np.full(candidate.size, 0.5), "quality": candidate},
            design=ONE_LOOK,
        )
        result = decision.metrics[1]
        assert result.difference_low is not None
        assert result.non_inferior == (result.difference_low >= -0.05)


def test_constant_latencies_are_judged_on_the_log_scale_exactly() -> None:
    """Flat latencies of 100 ms against 50 ms: decisive at 30 runs per arm, no evidence at 3,
    for the log-scale Welch test, its SQL-sum form and the p95 test."""
    assert (
        decide([LATENCY], {"latency": [100.0] * 30}, {"latency": [50.0] * 30}, design=ONE_LOOK)
    ).outcome == "ship"
    logs_b, logs_c = np.log([100.0] * 30), np.log([50.0] * 30)
    summaries = decide_from_summaries(
        [LATENCY],
        {"latency": _summary(logs_b).model_copy(update={"scale": "log"})},
        {"latency": _summary(logs_c).model_copy(update={"scale": "log"})},
        design=ONE_LOOK,
    )
    assert summaries.outcome == "ship"
    tiny = decide([LATENCY], {"latency": [100.0] * 3}, {"latency": [50.0] * 3}, design=ONE_LOOK)
    assert tiny.outcome != "ship" and _all_finite(tiny)
    p95 = LATENCY.model_copy(update={"method": "p95"})
    flat = decide([p95], {"latency": [100.0] * 60}, {"latency": [50.0] * 60}, design=ONE_LOOK)
    assert flat.outcome == "ship" and _all_finite(flat)


def test_the_rank_test_never_claims_more_than_an_exact_test_can() -> None:
    """Mann-Whitney on three constant latencies per arm: its normal approximation would say
    p ~ 0.02; guarded by the engine it is never below the exact 1/20."""
    spec = LATENCY.model_copy(update={"method": "mann_whitney"})
    guarded = compare_arrays(spec, {"latency": [100.0] * 3}, {"latency": [50.0] * 3})
    raw = mann_whitney_hl([100.0] * 3, [50.0] * 3)
    assert raw.p_one_sided("less") < 0.05
    assert guarded.p_one_sided("less") == pytest.approx(0.05)


def test_paired_replays_with_a_constant_difference_use_sign_flips() -> None:
    """Offline replay where every pair saves exactly 0.9: decisive at 30 pairs, no evidence at
    3 pairs (no sign-flip test can go below 1/8)."""
    for n, ships in ((30, True), (3, False)):
        decision = decide(
            [COST],
            {"cost": [1.0] * n},
            {"cost": [0.1] * n},
            design=ONE_LOOK,
            paired=True,
        )
        assert (decision.outcome == "ship") is ships
        assert _all_finite(decision)
    assert decision.metrics[0].p_value == pytest.approx(2 / 8)


def test_zero_one_quality_as_a_rate_is_exact() -> None:
    """0/1 outcomes declared as a rate go through Fisher's exact test: three failures against
    three successes is p = 1/20 one-sided, not a ship."""
    decision = decide([SUCCESS], {"success": [0, 0, 0]}, {"success": [1, 1, 1]}, design=ONE_LOOK)
    assert decision.metrics[0].method == "fisher_exact"
    assert decision.metrics[0].p_value == pytest.approx(0.1)
    assert decision.outcome != "ship"


@pytest.mark.parametrize(
    ("baseline", "candidate"),
    [
        ([1.0, 1.0], [1.0, 1.0]),
        ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
        ([0.0, 0.0, 0.0], [0.5, 0.5, 0.5]),
        ([1.0] * 50, [1.0] * 49 + [0.999999999]),
        ([3.0, 3.0], [3.0, 7.0]),
    ],
)
def test_degenerate_arms_give_finite_json_decisions(
    baseline: list[float], candidate: list[float]
) -> None:
    """Any constant, zero or nearly constant arms give finite z and p values and a decision
    that round-trips through JSON."""
    decision = decide(
        [COST, QUALITY_GUARD],
        {"cost": baseline, "quality": baseline},
        {"cost": candidate, "quality": candidate},
        design=TEN_LOOKS,
        look=10,
    )
    assert _all_finite(decision)
    assert Decision.model_validate_json(decision.model_dump_json()).outcome == decision.outcome


def _aa_ship_rate(draw, sizes: list[int], experiments: int, seed: int) -> float:
    """Share of A/A windows (both arms from ``draw``) shipped over the looks at ``sizes``."""
    rng = np.random.default_rng(seed)
    ships = 0
    for _ in range(experiments):
        baseline, candidate = draw(rng, sizes[-1]), draw(rng, sizes[-1])
        for look, n in enumerate(sizes, start=1):
            decision = decide(
                [QUALITY],
                {"quality": baseline[:n]},
                {"quality": candidate[:n]},
                design=TEN_LOOKS,
                look=look,
            )
            if decision.outcome != "continue":
                ships += decision.outcome == "ship"
                break
    return ships / experiments


@pytest.mark.parametrize(
    ("label", "draw"),
    [
        ("ratings 1-5, mostly 5", lambda rng, n: rng.choice(5, n, p=[0, 0, 0.1, 0.3, 0.6]) + 1.0),
        ("ratings 1-5, uniform", lambda rng, n: rng.choice(5, n) + 1.0),
        ("0/1 quality, 80% good", lambda rng, n: (rng.random(n) < 0.8).astype(float)),
    ],
)
def test_small_discrete_aa_windows_ship_at_most_alpha_over_two(label: str, draw) -> None:
    """Seeded A/A simulation: ten looks at 2..11 ratings per arm (a design at alpha 0.02)
    ship a neutral candidate at most 1% of the time. Judging zero-variance arms by their own
    spread shipped 2.1-4.2% of these windows (same seeds)."""
    sizes = list(range(2, 12))
    assert _aa_ship_rate(draw, sizes, experiments=1000, seed=7) <= 0.01, label


@pytest.mark.parametrize(
    ("spec", "baseline", "candidate", "paired"),
    [
        (COST, [1.0] * 40, list(np.linspace(0.05, 0.2, 40)), False),
        (QUALITY, list(np.random.default_rng(2).beta(7, 3, 60)), [0.9] * 50, False),
        (COST, list(np.linspace(1.0, 2.0, 30)), list(np.linspace(1.0, 2.0, 30) - 0.3), True),
        (LATENCY, [100.0] * 25, list(np.linspace(40.0, 90.0, 25)), True),
    ],
)
def test_guarded_intervals_end_where_the_guarded_statistic_reaches_the_critical_value(
    spec: MetricSpec, baseline: list[float], candidate: list[float], paired: bool
) -> None:
    """The reported interval is exactly the set of ratios (and differences) the guarded test
    does not reject: at each end the statistic equals the critical value."""
    comparison = compare_arrays(spec, {spec.name: baseline}, {spec.name: candidate}, paired=paired)
    crit = 2.5
    for end in comparison.ratio_interval(crit):
        assert abs(comparison.statistic(end)) == pytest.approx(crit, rel=1e-7)
    if spec.kind == "continuous":
        difference, low, high = comparison.difference_interval(crit)  # type: ignore[attr-defined]
        assert low < difference < high
        for end in (low, high):
            assert abs(comparison.difference_statistic(end)) == pytest.approx(crit, rel=1e-7)


def test_two_constant_arms_at_a_decent_count_pin_the_ratio_exactly() -> None:
    """Flat 1.0 against flat 0.1 at 20 runs per arm: every other ratio is rejected (the
    guarded statistic is sqrt(N - 1) away from the observed one), so the interval is the
    point -90%; at 3 runs per arm nothing is rejected and the interval is unbounded."""
    decision = decide([COST], {"cost": [1.0] * 20}, {"cost": [0.1] * 20}, design=ONE_LOOK)
    result = decision.metrics[0]
    assert (result.ci_low, result.ci_high) == pytest.approx((-0.9, -0.9))
    tiny = decide([COST], {"cost": [1.0] * 3}, {"cost": [0.1] * 3}, design=ONE_LOOK)
    assert (tiny.metrics[0].ci_low, tiny.metrics[0].ci_high) == (-math.inf, math.inf)
