"""Planning and deciding online A/B windows (pure logic, no Temporal, no database)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spark.errors import InvalidInputError
from spark.rsi.hypotheses import Metric
from spark.rsi.online import (
    AB_METRICS,
    OnlinePlan,
    decide_online_look,
    duration_text,
    look_fractions,
    metric_arrays,
    moments_of,
    plan_online_window,
)
from spark.rsi.stats import SequentialDesign, decide, plan_window
from spark.telemetry.aggregates import ArmMoments, Moments, TraceMetrics


def _runs(
    rng: np.random.Generator, n: int, *, factor: float = 1.0, error_rate: float = 0.05
) -> TraceMetrics:
    latency = rng.lognormal(math.log(200.0), 0.5, n) * factor
    errors = (rng.random(n) < error_rate).astype(float)
    return TraceMetrics(
        graph_id="g",
        trace_ids=[str(i) for i in range(n)],
        latency_ms=latency.tolist(),
        error=errors.tolist(),
        cost=[0.0] * n,
        quality=[None] * n,
    )


def _arm(rng: np.random.Generator, n: int, **kwargs: float) -> ArmMoments:
    return moments_of(_runs(rng, n, **kwargs))


def _plan(
    runs_per_arm: int = 400, looks: int = 4, metrics: list[Metric] | None = None
) -> OnlinePlan:
    return OnlinePlan(
        runs_per_arm=runs_per_arm,
        window_s=3600.0,
        look_interval_s=3600.0 / looks,
        looks=looks,
        limiting_metric="latency",
        metrics=metrics or ["latency", "error_rate"],
        runs_per_hour=1000.0,
    )


def test_metric_arrays_judge_latency_and_cost_per_request_failed_runs_included() -> None:
    """Latency and cost are what the caller waited and paid for, failed requests included:
    curing failures must never be penalised for making the cured requests visible."""
    runs = TraceMetrics(
        graph_id="g",
        latency_ms=[100.0, 5.0, 120.0],
        error=[0.0, 1.0, 0.0],
        cost=[0.1, 0.0, 0.2],
        quality=[0.9, None, None],
    )
    arrays = metric_arrays(runs)
    assert arrays["latency"] == [100.0, 5.0, 120.0]
    assert arrays["error_rate"] == [0.0, 1.0, 0.0]
    assert arrays["cost"] == [0.1, 0.0, 0.2]
    assert arrays["quality"] == [0.9]


def test_plan_matches_the_statistical_planner_and_the_traffic_rate() -> None:
    baseline = _runs(np.random.default_rng(1), 3000)
    plan = plan_online_window(
        baseline,
        "latency",
        runs_per_hour=2000.0,
        candidate_share=0.5,
        looks=5,
        alpha=0.05,
        min_window_s=60.0,
        max_window_s=7 * 86400.0,
    )
    arrays = metric_arrays(baseline)
    specs = [
        AB_METRICS["latency"].model_copy(update={"role": "primary"}),
        AB_METRICS["error_rate"].model_copy(update={"role": "guardrail"}),
    ]
    expected = plan_window(
        specs,
        {s.name: arrays[s.name] for s in specs},
        {"latency": -0.10},
        design=SequentialDesign(alpha=0.05, planned_looks=5),
    )
    assert plan.metrics == ["latency", "error_rate"]  # cost is constant: nothing to guard
    assert plan.runs_per_arm == expected.runs_per_arm
    assert plan.window_s == pytest.approx(plan.runs_per_arm / (2000.0 * 0.5) * 3600.0)
    assert plan.look_interval_s == pytest.approx(plan.window_s / 5)
    assert not plan.capped and plan.capacity == 1.0


def test_a_baseline_that_never_fails_still_guards_the_error_rate() -> None:
    """Zero baseline errors cannot size the window, but the window still judges errors, so a
    candidate that starts failing is not shipped on its latency win alone."""
    rng = np.random.default_rng(11)
    plan = plan_online_window(
        _runs(rng, 2000, error_rate=0.0),
        "latency",
        runs_per_hour=2000.0,
        candidate_share=0.5,
        looks=3,
        alpha=0.05,
        min_window_s=60.0,
        max_window_s=86400.0,
    )
    assert plan.metrics == ["latency", "error_rate"]
    assert plan.limiting_metric == "latency"
    decision, _ = decide_online_look(
        plan,
        "latency",
        _arm(rng, plan.runs_per_arm, error_rate=0.0),
        _arm(rng, plan.runs_per_arm, factor=0.7, error_rate=0.08),
        assignment=(plan.runs_per_arm, plan.runs_per_arm),
        candidate_share=0.5,
        previous_fractions=[],
        alpha=0.05,
        final=True,
    )
    assert decision.outcome != "ship"
    assert any("error_rate" in reason for reason in decision.reasons)


def test_plan_is_capped_at_the_longest_window_with_a_note() -> None:
    plan = plan_online_window(
        _runs(np.random.default_rng(2), 2000),
        "latency",
        runs_per_hour=10.0,
        candidate_share=0.1,
        looks=3,
        alpha=0.05,
        min_window_s=60.0,
        max_window_s=3600.0,
    )
    assert plan.capped and plan.window_s == 3600.0
    assert any("capped" in note for note in plan.notes)
    # 10 runs/h, a tenth to the candidate: an hour holds one candidate run of the plan's
    needed_s = plan.runs_per_arm / (10.0 * 0.1) * 3600.0
    assert plan.capacity == pytest.approx(3600.0 / needed_s)


@pytest.mark.parametrize(
    ("rate", "share", "message"),
    [(0.0, 0.5, "no recent traffic"), (100.0, 1.0, "candidate_share")],
)
def test_plan_refuses_impossible_windows(rate: float, share: float, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        plan_online_window(
            _runs(np.random.default_rng(3), 500),
            "latency",
            runs_per_hour=rate,
            candidate_share=share,
            looks=3,
            alpha=0.05,
            min_window_s=60.0,
            max_window_s=3600.0,
        )


def test_plan_refuses_a_primary_without_records() -> None:
    with pytest.raises(InvalidInputError, match="'quality'"):
        plan_online_window(
            _runs(np.random.default_rng(4), 500),
            "quality",
            runs_per_hour=100.0,
            candidate_share=0.5,
            looks=3,
            alpha=0.05,
            min_window_s=60.0,
            max_window_s=3600.0,
        )


def test_look_fractions_follow_information_and_end_at_one() -> None:
    assert look_fractions([], 0.2, 4, final=False) == pytest.approx(
        (0.2, 0.4667, 0.7333, 1.0), abs=1e-3
    )
    assert look_fractions([0.2], 0.5, 4, final=True) == (0.2, 1.0)
    # no new information: still strictly rising, so the design stays valid
    stalled = look_fractions([0.3], 0.3, 4, final=False)
    assert stalled[1] > stalled[0] and stalled[-1] == 1.0
    with pytest.raises(InvalidInputError, match="exceeds"):
        look_fractions([0.2, 0.4], 0.6, 2, final=False)


def test_clear_win_ships_at_an_interim_look() -> None:
    rng = np.random.default_rng(5)
    baseline, candidate = _arm(rng, 300), _arm(rng, 300, factor=0.6)
    decision, fraction = decide_online_look(
        _plan(runs_per_arm=400, metrics=["latency"]),
        "latency",
        baseline,
        candidate,
        assignment=(300, 300),
        candidate_share=0.5,
        previous_fractions=[],
        alpha=0.05,
        final=False,
    )
    assert decision.outcome == "ship"
    assert fraction == pytest.approx(0.75)
    assert decision.look == 1 and decision.planned_looks == 4


def test_no_difference_never_ships_at_the_final_look() -> None:
    rng = np.random.default_rng(6)
    decision, _ = decide_online_look(
        _plan(runs_per_arm=400),
        "latency",
        _arm(rng, 400),
        _arm(rng, 400),
        assignment=(400, 400),
        candidate_share=0.5,
        previous_fractions=[0.25, 0.5],
        alpha=0.05,
        final=True,
    )
    assert decision.outcome in {"reject", "inconclusive"}
    assert decision.planned_looks == 3  # the design shrank to the looks actually taken


def test_aggregates_decide_like_the_per_run_arrays() -> None:
    """The look reads SQL aggregates; on the same runs the engine on arrays decides alike."""
    rng = np.random.default_rng(9)
    baseline, candidate = _runs(rng, 350), _runs(rng, 350, factor=0.85)
    plan = _plan(runs_per_arm=400)
    decision, _ = decide_online_look(
        plan,
        "latency",
        moments_of(baseline),
        moments_of(candidate),
        assignment=(350, 350),
        candidate_share=0.5,
        previous_fractions=[0.4],
        alpha=0.05,
        final=False,
    )
    specs = [
        AB_METRICS[name].model_copy(
            update={"role": "primary" if name == "latency" else "guardrail"}
        )
        for name in plan.metrics
    ]
    arrays = metric_arrays(baseline), metric_arrays(candidate)
    reference = decide(
        specs,
        {s.name: arrays[0][s.name] for s in specs},
        {s.name: arrays[1][s.name] for s in specs},
        design=SequentialDesign(
            alpha=0.05, planned_looks=4, look_fractions=look_fractions([0.4], 0.875, 4, final=False)
        ),
        look=2,
        assignment=(350, 350),
    )
    assert decision.outcome == reference.outcome
    for got, want in zip(decision.metrics, reference.metrics, strict=True):
        assert got.name == want.name
        assert [got.estimate, got.ci_low, got.ci_high, got.p_value] == pytest.approx(
            [want.estimate, want.ci_low, want.ci_high, want.p_value], rel=1e-9
        )


def test_an_unproven_guardrail_keeps_a_winning_window_open() -> None:
    """Latency wins clearly, but 300 runs cannot yet show errors within 2 points at this
    look's level: the window continues rather than shipping on the primary alone."""
    rng = np.random.default_rng(5)
    decision, _ = decide_online_look(
        _plan(runs_per_arm=400),
        "latency",
        _arm(rng, 300),
        _arm(rng, 300, factor=0.6),
        assignment=(300, 300),
        candidate_share=0.5,
        previous_fractions=[],
        alpha=0.05,
        final=False,
    )
    assert decision.outcome == "continue"
    assert any("not shown non-inferior" in reason for reason in decision.reasons)


def test_sample_ratio_mismatch_voids_the_window() -> None:
    rng = np.random.default_rng(7)
    decision, _ = decide_online_look(
        _plan(),
        "latency",
        _arm(rng, 200),
        _arm(rng, 200, factor=0.6),
        assignment=(700, 500),
        candidate_share=0.5,
        previous_fractions=[],
        alpha=0.05,
        final=False,
    )
    assert decision.outcome == "invalid"
    assert "sample ratio mismatch" in decision.reasons[0]


def test_a_look_without_candidate_runs_is_an_input_error() -> None:
    rng = np.random.default_rng(8)
    with pytest.raises(InvalidInputError, match="not enough"):
        decide_online_look(
            _plan(),
            "latency",
            _arm(rng, 100),
            _arm(rng, 1),
            assignment=(100, 1),
            candidate_share=0.5,
            previous_fractions=[],
            alpha=0.05,
            final=False,
        )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(12.4, "12 s"), (600, "10 min"), (3 * 3600, "3.0 h"), (7 * 86400, "7.0 days")],
)
def test_window_lengths_read_in_their_natural_unit(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


def _moments_of_logs(logs: np.ndarray, runs: int) -> ArmMoments:
    return ArmMoments(
        runs=runs,
        errors=0,
        log_latency=Moments(
            count=runs,
            sum=float(logs[:runs].sum()),
            sum_squares=float(np.square(logs[:runs]).sum()),
        ),
    )


def test_peeking_at_uneven_information_keeps_the_false_ship_rate_at_alpha() -> None:
    """A/A windows looked at 5 times with bursty, uneven traffic (15, 40 or 70 new runs per arm
    between looks, so the looks land on different information fractions in different windows):
    spending on the observed information keeps shipping at <= alpha / 2. Seeded simulation of
    1,000 windows at alpha 0.1 (one-sided 0.05; 3 standard errors of slack). Without spending
    (each look at the final level) the same windows ship 12.8% of the time."""
    rng = np.random.default_rng(2026)
    plan = _plan(runs_per_arm=200, looks=5, metrics=["latency"])
    ships = 0
    windows = 1000
    for _ in range(windows):
        base, cand = rng.normal(5.0, 0.5, 400), rng.normal(5.0, 0.5, 400)
        arrivals = np.cumsum(rng.choice([15, 40, 70], 5))
        fractions: list[float] = []
        for look, runs in enumerate(arrivals, start=1):
            runs = int(min(max(runs, 2), 400))
            decision, taken = decide_online_look(
                plan,
                "latency",
                _moments_of_logs(base, runs),
                _moments_of_logs(cand, runs),
                assignment=(runs, runs),
                candidate_share=0.5,
                previous_fractions=fractions,
                alpha=0.1,
                final=look == 5,
            )
            if decision.outcome != "continue":
                ships += decision.outcome == "ship"
                break
            if taken > (fractions[-1] if fractions else 0.0):
                fractions.append(taken)
    rate = ships / windows
    assert rate <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / windows)
