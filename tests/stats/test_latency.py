"""Latency tests against scipy and brute-force references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from spark.errors import InvalidInputError
from spark.rsi.stats import log_welch, mann_whitney_hl, paired_log_ratio, quantile_ratio
from spark.rsi.stats.latency import _kth_pairwise_difference

RNG = np.random.default_rng(7)
BASE = RNG.lognormal(6.0, 0.5, 60)
CAND = RNG.lognormal(5.9, 0.6, 45)


def test_log_welch_matches_scipy_welch_on_logs() -> None:
    """p-value and statistic equal ``ttest_ind(log c, log b, equal_var=False)``."""
    result = log_welch(BASE, CAND)
    reference = stats.ttest_ind(np.log(CAND), np.log(BASE), equal_var=False)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-10)
    assert result.statistic(1.0) == pytest.approx(reference.statistic, rel=1e-10)
    assert result.ratio == pytest.approx(math.exp(np.log(CAND).mean() - np.log(BASE).mean()))


def test_log_welch_interval_is_the_exponentiated_t_interval() -> None:
    """The 95% interval is exp of scipy's Welch interval of the log difference."""
    result = log_welch(BASE, CAND)
    low, high = stats.ttest_ind(np.log(CAND), np.log(BASE), equal_var=False).confidence_interval(
        0.95
    )
    crit = stats.t.ppf(0.975, result.df)
    assert result.ratio_interval(crit) == pytest.approx((math.exp(low), math.exp(high)), rel=1e-9)


def test_paired_log_ratio_matches_scipy_paired_t() -> None:
    """Paired log ratios give ``ttest_rel`` on logs."""
    b = BASE[:40]
    c = b * RNG.lognormal(-0.05, 0.2, 40)
    result = paired_log_ratio(b, c)
    reference = stats.ttest_rel(np.log(c), np.log(b))
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-10)


@pytest.mark.parametrize("side", ["less", "greater"])
def test_mann_whitney_one_sided_matches_scipy_asymptotic(side: str) -> None:
    """One-sided p-values equal scipy's asymptotic Mann-Whitney U with continuity correction."""
    result = mann_whitney_hl(BASE, CAND)
    reference = stats.mannwhitneyu(CAND, BASE, alternative=side, method="asymptotic")
    assert result.p_one_sided(side) == pytest.approx(reference.pvalue, rel=1e-10)  # type: ignore[arg-type]


def test_mann_whitney_with_ties_matches_scipy() -> None:
    """Tie-corrected variance: rounded latencies give scipy's two-sided p-value."""
    b, c = np.round(BASE, -2) + 100, np.round(CAND, -2) + 100
    reference = stats.mannwhitneyu(c, b, alternative="two-sided", method="asymptotic")
    assert mann_whitney_hl(b, c).p_value == pytest.approx(reference.pvalue, rel=1e-10)


def test_hodges_lehmann_is_the_median_pairwise_log_ratio() -> None:
    """The estimate is exp(median of all log c_j - log b_i)."""
    pairwise = np.subtract.outer(np.log(CAND), np.log(BASE)).ravel()
    assert mann_whitney_hl(BASE, CAND).ratio == pytest.approx(
        math.exp(np.median(pairwise)), rel=1e-12
    )


def test_hodges_lehmann_interval_uses_order_statistics() -> None:
    """The interval ends are the k-th smallest and largest pairwise log ratios,
    k = floor(mn/2 - z sqrt(mn(m+n+1)/12)) (Hollander and Wolfe)."""
    m, n = BASE.size, CAND.size
    pairwise = np.sort(np.subtract.outer(np.log(CAND), np.log(BASE)).ravel())
    k = math.floor(m * n / 2 - 1.959964 * math.sqrt(m * n * (m + n + 1) / 12))
    low, high = mann_whitney_hl(BASE, CAND).ratio_interval(1.959964)
    assert (low, high) == pytest.approx((math.exp(pairwise[k]), math.exp(pairwise[m * n - 1 - k])))


def test_large_arms_select_order_statistics_without_the_full_matrix() -> None:
    """The bisection path agrees with sorting all pairwise differences."""
    x, y = np.sort(RNG.normal(size=1100)), np.sort(RNG.normal(size=1000))
    every = np.sort(np.subtract.outer(y, x).ravel())
    for k in (0, 12345, every.size // 2, every.size - 1):
        assert _kth_pairwise_difference(x, y, k) == pytest.approx(every[k], abs=1e-12)


def test_quantile_ratio_estimates_the_p95_ratio() -> None:
    """A 20% slower tail shows as a p95 ratio near 1.2 with an interval covering it."""
    rng = np.random.default_rng(3)
    b, c = rng.lognormal(6, 0.5, 4000), rng.lognormal(6, 0.5, 4000) * 1.2
    result = quantile_ratio(b, c)
    low, high = result.ratio_interval(1.96)
    assert result.ratio == pytest.approx(np.quantile(c, 0.95) / np.quantile(b, 0.95))
    assert low < 1.2 < high and low > 1.05


@pytest.mark.parametrize(
    ("baseline", "message"),
    [
        ([], "empty"),
        ([100.0], "needs 2"),
        ([100.0, float("nan")], "NaN"),
        ([100.0, -5.0], "latency <= 0"),
    ],
)
def test_bad_latency_input_is_refused(baseline: list[float], message: str) -> None:
    """Empty arms, single samples, NaN and negative latencies raise InvalidInputError."""
    with pytest.raises(InvalidInputError, match=message):
        log_welch(baseline, [100.0, 120.0])


def test_paired_latency_needs_equal_lengths() -> None:
    """Paired arms of different lengths are refused."""
    with pytest.raises(InvalidInputError, match="paired"):
        paired_log_ratio([1.0, 2.0, 3.0], [1.0, 2.0])
