"""Tests for latency and other skewed positive metrics, all on the log scale.

* ``log_welch``: Welch's t on log values; estimate = ratio of geometric means (the default).
* ``paired_log_ratio``: paired t on per-input log ratios (offline replay).
* ``mann_whitney_hl``: Mann-Whitney U with the Hodges-Lehmann shift of log values, i.e. a
  ratio-of-medians-type estimate with its distribution-free interval.
* ``quantile_ratio``: ratio of a high quantile (p95 by default), with order-statistic errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.stats import rankdata

from spark.errors import InvalidInputError
from spark.rsi.stats.comparison import (
    LogMeanComparison,
    NullModel,
    Side,
    capped,
    exact_floor,
    safe_exp,
    standardise,
)
from spark.rsi.stats.continuous import welch_df
from spark.rsi.stats.inputs import FloatArray, Samples, as_metric_samples, check_paired


def _logs(values: Samples, label: str) -> FloatArray:
    return np.log(as_metric_samples(values, "latency", label))


def log_welch_from_moments(
    n_b: int, mean_b: float, var_b: float, n_c: int, mean_c: float, var_c: float
) -> LogMeanComparison:
    """Welch's t on log values, from counts, means and variances of ``ln(value)``."""
    return LogMeanComparison(
        method="welch_t_log",
        n_baseline=n_b,
        n_candidate=n_c,
        log_baseline=mean_b,
        log_candidate=mean_c,
        var_difference=var_b / n_b + var_c / n_c,
        df=welch_df(var_b, n_b, var_c, n_c),
        within_ss=(n_b - 1) * var_b + (n_c - 1) * var_c,
    )


def log_welch(baseline: Samples, candidate: Samples) -> LogMeanComparison:
    """Welch's t test on ``ln(latency)``; same p-value as ``scipy.stats.ttest_ind`` on logs."""
    b, c = _logs(baseline, "baseline"), _logs(candidate, "candidate")
    return log_welch_from_moments(
        b.size, float(b.mean()), float(b.var(ddof=1)), c.size, float(c.mean()), float(c.var(ddof=1))
    )


def paired_log_ratio(baseline: Samples, candidate: Samples) -> LogMeanComparison:
    """Paired t test on ``ln(candidate_i / baseline_i)`` (as ``scipy.stats.ttest_rel`` on logs)."""
    b, c = _logs(baseline, "baseline"), _logs(candidate, "candidate")
    check_paired(b, c, "paired_log_ratio")
    differences = c - b
    return LogMeanComparison(
        method="paired_t_log",
        n_baseline=b.size,
        n_candidate=c.size,
        log_baseline=float(b.mean()),
        log_candidate=float(c.mean()),
        var_difference=float(differences.var(ddof=1)) / b.size,
        df=float(b.size - 1),
    )


def quantile_ratio(
    baseline: Samples, candidate: Samples, quantile: float = 0.95
) -> LogMeanComparison:
    """Ratio of a high quantile (p95 by default) with distribution-free standard errors.

    Each arm's error of ``ln(quantile)`` comes from the order statistics that bound the
    quantile's 95% binomial interval, as in Price and Bonett (2002) for medians.
    """
    if not 0 < quantile < 1:
        raise InvalidInputError(f"quantile must lie in (0, 1), got {quantile!r}")
    b, c = np.sort(_logs(baseline, "baseline")), np.sort(_logs(candidate, "candidate"))
    minimum = math.ceil(2 / min(quantile, 1 - quantile))
    if min(b.size, c.size) < minimum:
        raise InvalidInputError(f"quantile {quantile} needs at least {minimum} samples per arm")
    (log_b, var_b), (log_c, var_c) = _log_quantile(b, quantile), _log_quantile(c, quantile)
    return LogMeanComparison(
        method=f"p{round(quantile * 100)}_log_ratio",
        n_baseline=b.size,
        n_candidate=c.size,
        log_baseline=log_b,
        log_candidate=log_c,
        var_difference=var_b + var_c,
        within_ss=float(np.sum((b - b.mean()) ** 2) + np.sum((c - c.mean()) ** 2)),
    )


def _log_quantile(sorted_logs: FloatArray, quantile: float) -> tuple[float, float]:
    n = sorted_logs.size
    half_width = 1.959963984540054 * math.sqrt(n * quantile * (1 - quantile))
    low = max(math.floor(n * quantile - half_width), 0)
    high = min(math.ceil(n * quantile + half_width), n - 1)
    se = (sorted_logs[high] - sorted_logs[low]) / (2 * 1.959963984540054)
    return float(np.quantile(sorted_logs, quantile)), float(se * se)


@dataclass(frozen=True)
class RankComparison:
    """Mann-Whitney U on log values with the Hodges-Lehmann estimate of the log shift."""

    log_baseline: FloatArray
    log_candidate: FloatArray
    method: str = "mann_whitney_hl"
    df: float | None = None
    null_model: NullModel = "none"

    @property
    def floor(self) -> float:
        """The smallest one-sided p-value an exact rank test allows at these counts."""
        return exact_floor(self.null_model, self.n_baseline, self.n_candidate)

    @property
    def n_baseline(self) -> int:
        """Baseline sample size."""
        return int(self.log_baseline.size)

    @property
    def n_candidate(self) -> int:
        """Candidate sample size."""
        return int(self.log_candidate.size)

    @property
    def baseline_value(self) -> float:
        """Baseline median."""
        return math.exp(float(np.median(self.log_baseline)))

    @property
    def candidate_value(self) -> float:
        """Candidate median."""
        return math.exp(float(np.median(self.log_candidate)))

    @property
    def ratio(self) -> float:
        """exp of the Hodges-Lehmann shift: the median pairwise ratio candidate / baseline."""
        pairs = self.n_baseline * self.n_candidate
        low = _kth_pairwise_difference(self._sorted_b, self._sorted_c, (pairs - 1) // 2)
        high = _kth_pairwise_difference(self._sorted_b, self._sorted_c, pairs // 2)
        return math.exp((low + high) / 2)

    @property
    def p_value(self) -> float:
        """Two-sided asymptotic p-value with continuity and tie corrections (as scipy)."""
        return min(1.0, 2.0 * min(self.p_one_sided("less"), self.p_one_sided("greater")))

    def p_one_sided(self, side: Side) -> float:
        """One-sided asymptotic Mann-Whitney p-value with continuity and tie corrections
        (``scipy.stats.mannwhitneyu``), never below the exact test's floor."""
        result = stats.mannwhitneyu(
            self.log_candidate,
            self.log_baseline,
            alternative=side,
            method="asymptotic",
            use_continuity=True,
        )
        return max(self.floor, float(result.pvalue))

    def statistic(self, ratio0: float) -> float:
        """Normal score of U for H0 candidate = ratio0 x baseline (no continuity correction;
        scipy returns U and p but not this score, which margins and intervals need)."""
        shifted = self.log_candidate - math.log(ratio0)
        u_candidate, mean, variance = _u_statistic(self.log_baseline, shifted)
        return capped(standardise(u_candidate - mean, variance), self.floor, self.df)

    def difference_statistic(self, difference0: float) -> float:
        """Not defined: rank tests here work on the log (relative) scale."""
        raise InvalidInputError("rank comparisons take relative margins only")

    def ratio_interval(self, crit: float) -> tuple[float, float]:
        """Distribution-free interval from order statistics of the pairwise log ratios."""
        pairs = self.n_baseline * self.n_candidate
        sd = math.sqrt(pairs * (self.n_baseline + self.n_candidate + 1) / 12.0)
        k = math.floor(pairs / 2.0 - crit * sd)
        if k < 0:
            return (0.0, math.inf)
        low = _kth_pairwise_difference(self._sorted_b, self._sorted_c, k)
        high = _kth_pairwise_difference(self._sorted_b, self._sorted_c, pairs - 1 - k)
        return (safe_exp(low), safe_exp(high))

    @property
    def _sorted_b(self) -> FloatArray:
        return np.sort(self.log_baseline)

    @property
    def _sorted_c(self) -> FloatArray:
        return np.sort(self.log_candidate)


def mann_whitney_hl(baseline: Samples, candidate: Samples) -> RankComparison:
    """Mann-Whitney U test with a Hodges-Lehmann ratio estimate and interval."""
    return RankComparison(_logs(baseline, "baseline"), _logs(candidate, "candidate"))


def _u_statistic(x: FloatArray, y: FloatArray) -> tuple[float, float, float]:
    """U of ``y`` against ``x``, its null mean and its tie-corrected null variance."""
    n_x, n_y = x.size, y.size
    ranks = rankdata(np.concatenate([x, y]))
    u_y = float(ranks[n_x:].sum()) - n_y * (n_y + 1) / 2.0
    total = n_x + n_y
    _, counts = np.unique(ranks, return_counts=True)
    ties = float(np.sum(counts.astype(np.float64) ** 3 - counts))
    variance = n_x * n_y / 12.0 * ((total + 1) - ties / (total * (total - 1)))
    return u_y, n_x * n_y / 2.0, variance


def _kth_pairwise_difference(sorted_x: FloatArray, sorted_y: FloatArray, k: int) -> float:
    """The k-th smallest (0-based) of all ``y_j - x_i``, without forming the n x m matrix."""
    if sorted_x.size * sorted_y.size <= 1_000_000:
        differences = np.subtract.outer(sorted_y, sorted_x).ravel()
        return float(np.partition(differences, k)[k])
    low = float(sorted_y[0] - sorted_x[-1]) - 1.0
    high = float(sorted_y[-1] - sorted_x[0])
    for _ in range(200):
        middle = (low + high) / 2.0
        if middle in (low, high):
            break
        at_most = int(np.searchsorted(sorted_y, sorted_x + middle, side="right").sum())
        low, high = (low, middle) if at_most >= k + 1 else (middle, high)
    return high
