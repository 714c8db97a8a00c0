"""Predictions checked against what the tests measured: the share of a predicted gain a window
is powered for follows the realised / expected ratio of earlier attempts of the same kind."""

from __future__ import annotations

import numpy as np
import pytest

from spark.rsi.analysis import analyze
from spark.rsi.hypotheses import Hypothesis, SetConfig
from spark.rsi.objectives import Objective
from spark.rsi.online import plan_objective_window
from spark.rsi.patterns import (
    PREDICTION_SHARE_BOUNDS,
    PRIOR_PREDICTION_SHARE,
    LearnedPattern,
    prediction_share,
)
from spark.rsi.ranking import rank_hypotheses
from spark.telemetry.aggregates import TraceMetrics
from tests.rsi.builders import healthy_node_stats, support_spec, version_stats


def baseline(runs: int, seed: int) -> TraceMetrics:
    """``runs`` successful runs with lognormal latency around 50 ms."""
    latency = np.random.default_rng(seed).lognormal(np.log(50), 0.4, runs).tolist()
    return TraceMetrics(
        graph_id="g",
        version_id="v1",
        trace_ids=[f"t{i}" for i in range(runs)],
        latency_ms=latency,
        error=[0.0] * runs,
        cost=[0.001] * runs,
        quality=[None] * runs,
    )


def pattern(ratio: float | None, count: int) -> LearnedPattern:
    """A pattern of timeouts on latency with ``count`` checked predictions at ``ratio``."""
    return LearnedPattern(
        scope="*",
        diagnosis_kind="latency",
        change_kind="set_config",
        attempts=max(count, 1),
        successes=max(count, 1),
        success_rate=1.0,
        effect_ratio=ratio,
        effect_ratio_count=count,
    )


def test_the_share_is_the_checked_ratio_shrunk_toward_the_prior() -> None:
    """No checked prediction: no share (the planning default holds). Two checks at 0.2 weigh as
    much as the prior 1/2; twenty pull the share close to 0.2. Bounds hold either way."""
    assert prediction_share(pattern(None, 0)) is None
    assert prediction_share(pattern(float("inf"), 3)) is None
    assert prediction_share(pattern(0.2, 2)) == pytest.approx((PRIOR_PREDICTION_SHARE + 0.2) / 2)
    assert prediction_share(pattern(0.2, 20)) == pytest.approx((1.0 + 20 * 0.2) / 22)
    low, high = PREDICTION_SHARE_BOUNDS
    assert prediction_share(pattern(-3.0, 20)) == low
    assert prediction_share(pattern(4.0, 20)) == high


def test_the_ranking_carries_the_governing_patterns_share() -> None:
    """A hypothesis governed by a pattern with checked predictions carries its share; one no
    pattern matches carries none."""
    hypothesis = Hypothesis(
        graph_id="support",
        base_version_id="v1",
        title="tune fetch_account",
        diagnosis="latency problem",
        changes=[SetConfig(node_id="fetch_account", values={"timeout_s": 1.0})],
        expected_effects={"latency": -0.2},
    )
    report = analyze(support_spec(), healthy_node_stats(), version_stats())

    def share(learned: list[LearnedPattern]) -> float | None:
        (ranked,) = rank_hypotheses(
            [hypothesis], objective=Objective(), report=report, learned=learned, node_types={}
        )
        return ranked.prediction_share

    assert share([]) is None
    assert share([pattern(0.9, 6)]) == pytest.approx((1.0 + 6 * 0.9) / 8)


def test_a_window_is_powered_for_the_share_of_the_prediction() -> None:
    """The same prediction: trusted in full, the window needs fewer runs than at the default
    half; trusted at a tenth, more."""

    def runs(share: float | None) -> int:
        plan = plan_objective_window(
            baseline(2000, seed=3),
            Objective(weights={"latency": 1.0}),
            runs_per_hour=10_000.0,
            candidate_share=0.5,
            looks=4,
            alpha=0.05,
            min_window_s=60.0,
            max_window_s=30 * 86400.0,
            expected_effects={"latency": -0.2},
            prediction_share=share,
        )
        return plan.runs_per_arm

    default, trusted, doubted = runs(None), runs(1.0), runs(0.1)
    assert runs(PRIOR_PREDICTION_SHARE) == default
    assert trusted < default < doubted


def test_the_plan_says_where_its_share_came_from() -> None:
    """A learned share is named in the plan's first note; the default is not."""

    def note(share: float | None) -> str:
        plan = plan_objective_window(
            baseline(500, seed=4),
            Objective(),
            runs_per_hour=10_000.0,
            candidate_share=0.5,
            looks=4,
            alpha=0.05,
            min_window_s=60.0,
            max_window_s=86400.0,
            expected_effects={"latency": -0.2},
            prediction_share=share,
        )
        return plan.notes[0]

    assert "80% of the predicted gain, as earlier predictions came true" in note(0.8)
    assert "of the predicted gain" not in note(None)
