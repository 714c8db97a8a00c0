"""Continuous-score tests against scipy references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from spark.errors import InvalidInputError
from spark.rsi.stats import bootstrap_ratio_interval, paired_t, welch
from spark.rsi.stats.comparison import fieller_interval
from spark.rsi.stats.continuous import summary_moments

RNG = np.random.default_rng(11)
BASE = RNG.beta(7, 3, 80)
CAND = RNG.beta(7.5, 3, 70)


def test_welch_matches_scipy() -> None:
    """p-value, statistic and Welch-Satterthwaite df equal scipy's ``ttest_ind``."""
    result = welch(BASE, CAND)
    reference = stats.ttest_ind(CAND, BASE, equal_var=False)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-10)
    assert result.difference_statistic(0.0) == pytest.approx(reference.statistic, rel=1e-10)
    assert result.df == pytest.approx(reference.df, rel=1e-10)


def test_paired_t_matches_scipy() -> None:
    """Paired t equals ``ttest_rel`` including the statistic at ratio 1."""
    b = BASE[:50]
    c = b + RNG.normal(0.02, 0.05, 50)
    result = paired_t(b, c)
    reference = stats.ttest_rel(c, b)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-10)
    assert result.statistic(1.0) == pytest.approx(reference.statistic, rel=1e-10)


def test_fieller_interval_inverts_the_ratio_statistic() -> None:
    """At both interval ends the ratio statistic equals the critical value exactly."""
    result = welch(BASE, CAND)
    low, high = result.ratio_interval(2.0)
    assert abs(result.statistic(low)) == pytest.approx(2.0, rel=1e-9)
    assert abs(result.statistic(high)) == pytest.approx(2.0, rel=1e-9)


def test_fieller_textbook_example() -> None:
    """Means 4 and 2 with variances 0.25 and 0.04 (independent) at crit 1.96:
    roots of (4 - 2r)^2 = 1.96^2 (0.25 + 0.04 r^2)."""
    low, high = fieller_interval(4.0, 2.0, 0.25, 0.04, 0.0, 1.96)
    quadratic = np.poly1d([4 - 1.96**2 * 0.04, -16.0, 16 - 1.96**2 * 0.25])
    assert (low, high) == pytest.approx(sorted(quadratic.roots))


def test_fieller_is_unbounded_when_the_baseline_is_noise() -> None:
    """A baseline mean indistinguishable from 0 gives an unbounded interval."""
    assert fieller_interval(1.0, 0.1, 0.01, 1.0, 0.0, 1.96) == (-np.inf, np.inf)


def test_bootstrap_interval_is_reproducible_and_covers_the_truth() -> None:
    """Same seed, same interval; a 10% lift on means is inside the 95% interval."""
    rng = np.random.default_rng(5)
    b, c = rng.gamma(4, 1.0, 500), rng.gamma(4, 1.1, 500)
    first = bootstrap_ratio_interval(b, c, seed=3)
    assert first == bootstrap_ratio_interval(b, c, seed=3)
    assert first[0] < 0.1 < first[1]


def test_summary_moments_match_the_arrays() -> None:
    """Mean and sample variance from count, sum and sum of squares equal numpy's."""
    mean, variance = summary_moments(BASE.size, BASE.sum(), (BASE**2).sum(), "x")
    assert (mean, variance) == pytest.approx((BASE.mean(), BASE.var(ddof=1)), rel=1e-10)


def test_impossible_sums_are_refused() -> None:
    """A sum of squares below sum^2 / n cannot come from real data."""
    with pytest.raises(InvalidInputError, match="sum_squares"):
        summary_moments(10, 100.0, 10.0, "x")


def test_constant_arms_do_not_warn() -> None:
    """Zero variance in both arms gives statistic 0 and p = 1 without runtime warnings."""
    result = welch([1.0, 1.0, 1.0], [1.0, 1.0])
    assert result.p_value == 1.0
    assert result.ratio_interval(1.96) == (1.0, 1.0)
