"""Judging a candidate by the owner's objective: trade-offs, constant metrics, guardrails that
never vanish, hard constraints."""

from __future__ import annotations

import numpy as np

from spark.rsi.judgement import judge, references_of
from spark.rsi.monitoring import assess_objective_health
from spark.rsi.objectives import Constraint, Objective
from spark.rsi.online import moments_of
from spark.rsi.stats import SequentialDesign
from spark.telemetry.aggregates import ArmMoments, TraceMetrics

ONE_LOOK = SequentialDesign(alpha=0.02, planned_looks=1, futility=False)
N = 400


def _arm(
    rng: np.random.Generator,
    *,
    fail: float = 0.0,
    ok_ms: float = 1000.0,
    fail_ms: float = 100.0,
    cost: float | None = None,
    quality: float | None = None,
    quality_sd: float = 0.0,
    n: int = N,
) -> ArmMoments:
    failed = rng.random(n) < fail
    latency = np.where(failed, fail_ms, ok_ms) * rng.lognormal(0.0, 0.3, n)
    costs = np.full(n, cost) if cost is not None else rng.gamma(4.0, 0.01, n)
    scores: list[float | None] = [None] * n
    if quality is not None:
        drawn = np.clip(rng.normal(quality, quality_sd, n), 0.0, 1.0)
        scores = [float(q) for q in drawn]
    return moments_of(
        TraceMetrics(
            graph_id="g",
            latency_ms=latency.tolist(),
            error=failed.astype(float).tolist(),
            cost=costs.tolist(),
            quality=scores,
        )
    )


def _judge(objective: Objective, baseline: ArmMoments, candidate: ArmMoments) -> str:
    decision, _ = judge(
        objective, references_of(baseline), baseline, candidate, design=ONE_LOOK, look=1
    )
    return decision.outcome


def test_a_trade_of_latency_for_far_fewer_failures_ships_under_the_default_objective() -> None:
    """Half the requests failed; retries cure three quarters of the failures but the requests
    that succeed wait 60% longer. Per request, with failures priced, that is a clear gain."""
    rng = np.random.default_rng(1)
    baseline = _arm(rng, fail=0.5)
    candidate = _arm(rng, fail=0.125, ok_ms=1600.0)
    assert _judge(Objective(), baseline, candidate) == "ship"


def test_the_same_trade_is_refused_by_an_owner_who_values_latency_most() -> None:
    """The owner decides what a trade is worth: with latency weighted far above failures the
    slower candidate is a loss."""
    rng = np.random.default_rng(2)
    baseline = _arm(rng, fail=0.5)
    candidate = _arm(rng, fail=0.125, ok_ms=1600.0)
    latency_first = Objective(weights={"error_rate": 0.1, "latency": 2.0})
    assert _judge(latency_first, baseline, candidate) == "reject"


def test_a_trade_not_worth_taking_is_refused() -> None:
    """Halving a 2% failure rate is not worth 50% more latency on every request."""
    rng = np.random.default_rng(3)
    baseline = _arm(rng, fail=0.02)
    candidate = _arm(rng, fail=0.01, ok_ms=1500.0)
    assert _judge(Objective(), baseline, candidate) == "reject"


def test_a_flat_price_cut_ships_on_exact_grounds() -> None:
    """A node priced per call makes cost constant in each arm: a model ten times cheaper is a
    certain gain, neither untestable nor infinitely significant."""
    rng = np.random.default_rng(4)
    baseline = _arm(rng, cost=1.0)
    candidate = _arm(rng, cost=0.1)
    decision, _ = judge(
        Objective(),
        references_of(baseline),
        baseline,
        candidate,
        design=ONE_LOOK,
        look=1,
    )
    assert decision.outcome == "ship"
    assert np.isfinite(decision.metrics[0].z)


def test_an_always_perfect_quality_stays_guarded_and_stops_a_stale_cache() -> None:
    """Every baseline run scored 1.0; a cache that serves stale answers is much faster but
    scores 0.16: the quality guardrail (and the objective) must refuse it."""
    rng = np.random.default_rng(5)
    baseline = _arm(rng, quality=1.0)
    candidate = _arm(rng, ok_ms=300.0, quality=0.16, quality_sd=0.2)
    decision, _ = judge(
        Objective(), references_of(baseline), baseline, candidate, design=ONE_LOOK, look=1
    )
    assert decision.outcome == "reject"
    assert any(m.name == "quality" and m.significant_harm for m in decision.metrics)


def test_a_perfect_quality_kept_lets_a_faster_candidate_ship() -> None:
    """Both arms score 1.0 on every run: quality is non-inferior, the latency gain ships."""
    rng = np.random.default_rng(6)
    baseline = _arm(rng, quality=1.0)
    candidate = _arm(rng, ok_ms=500.0, quality=1.0)
    assert _judge(Objective(), baseline, candidate) == "ship"


def test_quality_the_candidate_has_not_been_rated_on_keeps_the_test_open() -> None:
    """The baseline records quality, the candidate has no rating yet: quality cannot be judged,
    so the outcome is not a ship, and the reasons say why."""
    rng = np.random.default_rng(7)
    baseline = _arm(rng, quality=0.8, quality_sd=0.1)
    candidate = _arm(rng, ok_ms=500.0)
    decision, _ = judge(
        Objective(), references_of(baseline), baseline, candidate, design=ONE_LOOK, look=1
    )
    assert decision.outcome == "inconclusive"
    assert any("quality cannot be judged" in r for r in decision.reasons)


def test_a_hard_constraint_refuses_a_gain_that_breaks_it() -> None:
    """Cost falls by 90% but p95 latency rises past the owner's 2 s SLO that the baseline kept:
    refused whatever the objective says."""
    rng = np.random.default_rng(8)
    baseline = _arm(rng, cost=1.0)
    candidate = _arm(rng, cost=0.1, ok_ms=2500.0)
    slo = Objective(
        weights={"latency": 0.01}, constraints=[Constraint(metric="p95_latency_ms", max=2000)]
    )
    decision, checks = judge(
        slo, references_of(baseline), baseline, candidate, design=ONE_LOOK, look=1
    )
    assert decision.outcome == "reject"
    assert [c.status for c in checks] == ["broken"]


def test_a_constraint_the_baseline_already_broke_does_not_block_an_improvement() -> None:
    """The graph fails 30% of requests against a 1% SLO: a candidate failing 10% is not held
    to the SLO it improves towards, only to not being worse than the baseline."""
    rng = np.random.default_rng(9)
    baseline = _arm(rng, fail=0.3)
    candidate = _arm(rng, fail=0.1)
    slo = Objective(constraints=[Constraint(metric="error_rate", max=0.01)])
    decision, checks = judge(
        slo, references_of(baseline), baseline, candidate, design=ONE_LOOK, look=1
    )
    assert decision.outcome == "ship"
    assert [c.status for c in checks] == ["holds"]


def test_an_unpriced_metric_is_a_guardrail() -> None:
    """An owner who gives cost no weight still does not want it to double: unpriced metrics
    keep their non-inferiority margin."""
    rng = np.random.default_rng(10)
    baseline = _arm(rng, cost=1.0)
    candidate = _arm(rng, cost=2.0, ok_ms=800.0)
    assert _judge(Objective(weights={"cost": 0.0}), baseline, candidate) == "reject"


def test_two_identical_arms_never_ship() -> None:
    """A/A on the objective: the same behaviour in both arms is not a gain."""
    ships = 0
    for seed in range(200):
        rng = np.random.default_rng(100 + seed)
        baseline = _arm(rng, fail=0.1, quality=0.8, quality_sd=0.1, n=100)
        candidate = _arm(rng, fail=0.1, quality=0.8, quality_sd=0.1, n=100)
        ships += _judge(Objective(), baseline, candidate) == "ship"
    assert ships <= 6  # alpha/2 = 1% of 200 is 2 expected; 6 is beyond p < 0.02 by chance


def test_monitoring_rolls_back_a_version_whose_quality_collapsed_after_deploy() -> None:
    """Post-deploy health judges every metric the objective names: a version that answers
    faster but whose ratings collapsed since the switch has regressed (error rate and p95 alone
    would call it healthy)."""
    rng = np.random.default_rng(11)
    before = _arm(rng, quality=1.0)
    after = _arm(rng, ok_ms=400.0, quality=0.2, quality_sd=0.2)
    verdict = assess_objective_health(Objective(), before, after)
    assert verdict.status == "regressed"
    assert any("quality" in reason for reason in verdict.reasons)


def test_monitoring_keeps_a_version_that_is_as_good_as_before() -> None:
    """No harm, no rollback: the same behaviour before and after the switch is healthy."""
    rng = np.random.default_rng(12)
    before = _arm(rng, fail=0.05, quality=0.8, quality_sd=0.1)
    after = _arm(rng, fail=0.05, quality=0.8, quality_sd=0.1)
    assert assess_objective_health(Objective(), before, after).status == "healthy"


def test_a_quality_floor_of_the_owner_replaces_the_default_quality_margin() -> None:
    """A model 6x cheaper costs 5.6% of quality (0.90 -> 0.85), past the default 5% margin. With
    the owner's floor at 0.8 and quality priced in the objective, that trade is the owner's to
    make, as with an error-rate SLO: it ships. Without a floor the default margin guards quality
    and it does not ship; a candidate that breaks the floor is rejected whatever it saves."""
    rng = np.random.default_rng(21)
    baseline = _arm(rng, cost=0.015, quality=0.90, quality_sd=0.05, n=600)
    cheaper = _arm(rng, cost=0.0025, quality=0.85, quality_sd=0.05, n=600)
    below_floor = _arm(rng, cost=0.0025, quality=0.70, quality_sd=0.05, n=600)
    weights = {"error_rate": 1.0, "latency": 0.25, "cost": 1.0, "quality": 0.5}
    floor = Objective(weights=weights, constraints=[Constraint(metric="quality", min=0.8)])

    decision, checks = judge(
        floor, references_of(baseline), baseline, cheaper, design=ONE_LOOK, look=1
    )
    assert decision.outcome == "ship"
    assert "quality" not in [m.name for m in decision.metrics if m.role == "guardrail"]
    assert [c.status for c in checks] == ["holds"]
    assert _judge(floor, baseline, below_floor) == "reject"
    no_floor, _ = judge(
        Objective(weights=weights),
        references_of(baseline),
        baseline,
        cheaper,
        design=ONE_LOOK,
        look=1,
    )
    assert "quality" in [m.name for m in no_floor.metrics if m.role == "guardrail"]
    assert no_floor.outcome != "ship"
