"""Rate tests against textbook and scipy references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from spark.errors import InvalidInputError
from spark.rsi.stats import compare_counts, compare_rates, mcnemar


def test_lady_tasting_tea_uses_fisher_exact() -> None:
    """Fisher's tea table [[3,1],[1,3]]: two-sided p = 0.4857, one-sided 0.2429."""
    result = compare_counts(1, 4, 3, 4)
    assert result.method == "fisher_exact"
    assert result.p_value == pytest.approx(0.485714, abs=1e-6)
    assert result.p_one_sided("greater") == pytest.approx(0.242857, abs=1e-6)


def test_large_counts_use_the_pooled_z_test() -> None:
    """z squared equals Pearson's chi-square without continuity correction."""
    result = compare_counts(50, 1000, 30, 1000)
    table = [[30, 970], [50, 950]]
    _, p_value, _, _ = stats.chi2_contingency(table, correction=False)
    assert result.method == "two_proportion_z"
    assert result.p_value == pytest.approx(p_value, rel=1e-10)
    assert result.p_one_sided("less") == pytest.approx(p_value / 2, rel=1e-10)


def test_pooled_z_textbook_value() -> None:
    """45/100 vs 60/100: pooled p = 0.525, z = 0.15 / sqrt(0.525 * 0.475 * 0.02) = 2.12398."""
    result = compare_counts(45, 100, 60, 100)
    assert result.p_one_sided("greater") == pytest.approx(stats.norm.sf(2.12398), rel=1e-4)


def test_rate_ratio_interval_contains_the_estimate() -> None:
    """The relative change is the ratio of rates minus one; its interval brackets it."""
    result = compare_rates(np.r_[np.ones(50), np.zeros(950)], np.r_[np.ones(40), np.zeros(960)])
    low, high = result.ratio_interval(1.96)
    assert result.ratio == pytest.approx(40.5 / 50.5, rel=1e-12)
    assert low < 0.8 < high


def test_zero_events_in_both_arms_is_not_significant() -> None:
    """No events anywhere: p = 1 and a finite ratio of 1."""
    result = compare_rates(np.zeros(30), np.zeros(30))
    assert result.p_value == 1.0
    assert result.ratio == 1.0


def test_mcnemar_exact_matches_binomial_test() -> None:
    """With 10 discordant pairs (8 vs 2) the exact McNemar p is binomtest(2, 10)."""
    baseline = np.r_[np.ones(8), np.zeros(2), np.ones(5), np.zeros(5)]
    candidate = np.r_[np.zeros(8), np.ones(2), np.ones(5), np.zeros(5)]
    result = mcnemar(baseline, candidate)
    assert result.p_value == pytest.approx(stats.binomtest(2, 10, 0.5).pvalue, rel=1e-10)
    assert result.p_one_sided("less") == pytest.approx(
        stats.binomtest(2, 10, 0.5, alternative="less").pvalue
    )


def test_mcnemar_large_uses_chi_square() -> None:
    """With 60 discordant pairs (40 vs 20) the statistic is (40-20)^2/60 on 1 df."""
    baseline = np.r_[np.ones(40), np.zeros(20), np.zeros(100)]
    candidate = np.r_[np.zeros(40), np.ones(20), np.zeros(100)]
    assert mcnemar(baseline, candidate).p_value == pytest.approx(
        stats.chi2.sf(400 / 60, 1), rel=1e-10
    )


def test_rates_must_be_zero_or_one() -> None:
    """A rate array holding 0.5 is refused."""
    with pytest.raises(InvalidInputError, match="only 0 and 1"):
        compare_rates([0, 1, 0.5], [0, 1, 1])
