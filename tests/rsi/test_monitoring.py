"""assess_health: noise stays healthy, real regressions roll back, small samples wait."""

from __future__ import annotations

import numpy as np
import pytest

from spark.errors import InvalidInputError
from spark.rsi.monitoring import assess_health, error_increase_p_value
from tests.rsi.builders import version_stats


def test_noise_within_the_margin_is_healthy() -> None:
    """A small error-rate wobble and a similar p95 are healthy."""
    verdict = assess_health(
        version_stats(count=1000, errors=20), version_stats(count=100, errors=4, p95_ms=260)
    )
    assert verdict.status == "healthy"
    assert verdict.figures["error_rate_increase"] == pytest.approx(0.02)


def test_a_jump_beyond_the_margin_but_not_significant_is_healthy() -> None:
    """2 failures in 25 runs exceed the 5-point margin but are not significant at alpha."""
    verdict = assess_health(version_stats(count=30, errors=0), version_stats(count=25, errors=2))
    assert verdict.status == "healthy"
    assert verdict.figures["error_p_value"] > 0.01


def test_a_big_error_jump_is_a_regression() -> None:
    """2% -> 15% over hundreds of runs regresses, with both figures in the reason."""
    verdict = assess_health(
        version_stats(count=500, errors=10), version_stats(count=200, errors=30)
    )
    assert verdict.status == "regressed"
    assert "2.00% to 15.00%" in verdict.reasons[0]
    assert verdict.figures["error_p_value"] < 1e-6


def test_a_p95_blow_up_is_a_regression() -> None:
    """p95 doubling beyond the 1.5x margin regresses."""
    verdict = assess_health(version_stats(p95_ms=250), version_stats(p95_ms=500))
    assert verdict.status == "regressed"
    assert verdict.reasons == ["p95 latency rose from 250 ms to 500 ms (x2.00 > x1.5)"]


def test_a_tiny_absolute_p95_rise_is_not_a_regression() -> None:
    """2 ms -> 4 ms is a large ratio but below the absolute floor: healthy."""
    verdict = assess_health(version_stats(p95_ms=2), version_stats(p95_ms=4))
    assert verdict.status == "healthy"


def test_few_traces_are_insufficient_data() -> None:
    """Below min_traces on either side there is no verdict, whatever the numbers."""
    verdict = assess_health(version_stats(count=500), version_stats(count=10, errors=9))
    assert verdict.status == "insufficient_data"
    assert "10 current" in verdict.reasons[0]


def test_the_false_rollback_rate_under_no_change_stays_below_alpha() -> None:
    """Simulated A/A windows (same 5% error rate, default policy) regress at most about alpha
    (1%) of the time: the estimate stays within three standard errors of it."""
    rng = np.random.default_rng(7)
    reps = 1000
    flagged = 0
    for base_errors, current_errors in rng.binomial(200, 0.05, size=(reps, 2)):
        verdict = assess_health(
            version_stats(count=200, errors=int(base_errors)),
            version_stats(count=200, errors=int(current_errors)),
        )
        flagged += verdict.status == "regressed"
    assert flagged / reps <= 0.01 + 3 * (0.01 * 0.99 / reps) ** 0.5


def test_small_samples_use_the_exact_test() -> None:
    """With few expected failures the p-value is Fisher's exact one-sided value."""
    p_value = error_increase_p_value(
        version_stats(count=30, errors=0), version_stats(count=30, errors=3)
    )
    assert p_value == pytest.approx(0.1186, abs=1e-3)


def test_inconsistent_inputs_are_refused() -> None:
    """Different graphs or more errors than runs are misuse."""
    with pytest.raises(InvalidInputError, match="'other'"):
        assess_health(version_stats(), version_stats(graph_id="other"))
    with pytest.raises(InvalidInputError, match="error_count 30"):
        assess_health(version_stats(), version_stats(count=20, errors=30))
