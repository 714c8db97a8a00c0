"""Sample-ratio-mismatch check and CUPED adjustment."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from spark.errors import InvalidInputError
from spark.rsi.stats import SequentialDesign, cuped_adjust, has_sample_ratio_mismatch, srm_p_value
from spark.rsi.stats.srm import srm_threshold


def test_srm_matches_scipy_chisquare() -> None:
    """The p-value equals ``chisquare`` against the expected split."""
    expected = stats.chisquare([5100, 4900], f_exp=[5000, 5000]).pvalue
    assert srm_p_value(5100, 4900, 0.5) == pytest.approx(expected, rel=1e-12)


def test_srm_with_an_uneven_split() -> None:
    """A 10% candidate share is judged against 90/10, not 50/50."""
    assert not has_sample_ratio_mismatch(9000, 1000, 0.1)
    assert has_sample_ratio_mismatch(9000, 1000, 0.5)


def test_srm_threshold_is_one_in_a_thousand() -> None:
    """5,000 vs 5,200 (p ~ 0.046) passes; 5,000 vs 5,400 (p ~ 8e-5) is a mismatch."""
    assert not has_sample_ratio_mismatch(5000, 5200, 0.5)
    assert has_sample_ratio_mismatch(5000, 5400, 0.5)


def test_srm_threshold_is_spent_over_the_looks() -> None:
    """One look: p < 0.001 exactly; ten looks: about 1.6e-4 at each look, so that the chance
    of voiding a healthy window stays at 0.001."""
    assert srm_threshold(SequentialDesign(), 1) == pytest.approx(0.001, rel=1e-6)
    ten = SequentialDesign(planned_looks=10)
    thresholds = [srm_threshold(ten, look) for look in range(1, 11)]
    assert all(1.4e-4 < t < 1.8e-4 for t in thresholds)


def test_ten_srm_checks_void_a_healthy_window_one_time_in_a_thousand() -> None:
    """Simulated 50/50 assignments checked at 10 looks are voided at a rate near 0.001."""
    rng = np.random.default_rng(12)
    slices = rng.binomial(1000, 0.5, size=(400_000, 10))
    candidates, totals = np.cumsum(slices, axis=1), 1000 * np.arange(1, 11)
    z = (candidates - totals / 2) / np.sqrt(totals / 4)
    p_values = 2 * stats.norm.sf(np.abs(z))
    ten = SequentialDesign(planned_looks=10)
    thresholds = np.array([srm_threshold(ten, look) for look in range(1, 11)])
    assert np.any(p_values < thresholds, axis=1).mean() == pytest.approx(0.001, abs=0.0002)


def test_srm_refuses_negative_counts() -> None:
    """Negative assignment counts are an input error."""
    with pytest.raises(InvalidInputError, match="assignment"):
        srm_p_value(-1, 5, 0.5)


def test_cuped_removes_the_predictable_part_of_the_variance() -> None:
    """With corr(pre, post) = 0.8 the adjusted variance drops by about 1 - 0.64."""
    rng = np.random.default_rng(9)
    pre = rng.normal(10, 2, (2, 5000))
    post = 0.8 * (pre - 10) + rng.normal(0, 1.2, (2, 5000)) + 10
    adjusted_b, adjusted_c, theta = cuped_adjust(post[0], post[1], pre[0], pre[1])
    assert theta == pytest.approx(0.8, abs=0.02)
    assert adjusted_b.var() / post[0].var() == pytest.approx(0.36, abs=0.03)
    assert adjusted_c.mean() - adjusted_b.mean() == pytest.approx(
        post[1].mean() - post[0].mean(), abs=0.05
    )


def test_cuped_needs_one_pre_value_per_run() -> None:
    """Pre-window arrays of another length are refused."""
    with pytest.raises(InvalidInputError, match="pre-window"):
        cuped_adjust([1.0, 2.0, 3.0], [1.0, 2.0], [1.0, 2.0], [1.0, 2.0])
