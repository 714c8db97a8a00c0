"""The common shape of a two-arm comparison, and the two mean-based kinds most tests produce.

A comparison is built by one of the metric tests (``latency``, ``rates``, ``continuous``) and
read by the decision rule. It answers four questions at any critical value: the ratio estimate,
its interval, the standardised statistic against any hypothesised ratio (for non-inferiority)
and the one-sided p-values of the named test. Statistics are positive when the candidate is
*larger*; the decision rule turns them round for metrics that improve by decreasing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

from scipy import special

from spark.errors import InvalidInputError

Side = Literal["less", "greater"]


def standardise(numerator: float, variance: float) -> float:
    """``numerator / sqrt(variance)``, with a zero variance giving 0 or a signed infinity."""
    if variance > 0:
        return numerator / math.sqrt(variance)
    if numerator == 0:
        return 0.0
    return math.copysign(math.inf, numerator)


def upper_tail(statistic: float, df: float | None) -> float:
    """P(T >= statistic) under the reference distribution (normal when ``df`` is None)."""
    if df is None:
        return float(special.ndtr(-statistic))
    return float(special.stdtr(df, -statistic))


def critical_value(alpha_one_sided: float, df: float | None) -> float:
    """The quantile that leaves ``alpha_one_sided`` in the upper tail."""
    if df is None:
        return float(-special.ndtri(alpha_one_sided))
    return float(-special.stdtrit(df, alpha_one_sided))


def z_to_reference(z: float, df: float | None) -> float:
    """Map a normal-scale bound onto the comparison's reference scale (same tail area)."""
    if df is None or not math.isfinite(z):
        return z
    return float(special.stdtrit(df, special.ndtr(z)))


def one_sided(statistic: float, df: float | None, side: Side) -> float:
    """One-sided p-value of ``statistic`` in the direction ``side``."""
    return upper_tail(statistic, df) if side == "greater" else upper_tail(-statistic, df)


def safe_exp(value: float) -> float:
    """``exp`` that saturates to infinity instead of raising ``OverflowError``."""
    return math.exp(value) if value < 700 else math.inf


def fieller_interval(
    a: float, b: float, var_a: float, var_b: float, cov: float, crit: float
) -> tuple[float, float]:
    """Fieller's interval for the ratio ``a / b`` of two (possibly correlated) means.

    It is the set of ratios r that the statistic ``(a - r b) / sd(a - r b)`` does not reject at
    ``crit``, so it agrees exactly with the Welch-type statistics used for the tests.
    """
    q_a = b * b - crit * crit * var_b
    q_b = -2.0 * (a * b - crit * crit * cov)
    q_c = a * a - crit * crit * var_a
    if q_a <= 0:
        return (-math.inf, math.inf)
    root = math.sqrt(max(q_b * q_b - 4.0 * q_a * q_c, 0.0))
    return ((-q_b - root) / (2.0 * q_a), (-q_b + root) / (2.0 * q_a))


class Comparison(Protocol):
    """What the decision rule needs from a two-arm test."""

    @property
    def method(self) -> str:
        """Name of the test."""
        ...

    @property
    def n_baseline(self) -> int:
        """Baseline sample size."""
        ...

    @property
    def n_candidate(self) -> int:
        """Candidate sample size."""
        ...

    @property
    def baseline_value(self) -> float:
        """The baseline's location (mean, geometric mean, median or quantile)."""
        ...

    @property
    def candidate_value(self) -> float:
        """The candidate's location, on the same footing as ``baseline_value``."""
        ...

    @property
    def df(self) -> float | None:
        """Degrees of freedom of the t reference, or None for a normal reference."""
        ...

    @property
    def ratio(self) -> float:
        """Point estimate of candidate / baseline."""
        ...

    @property
    def p_value(self) -> float:
        """Two-sided p-value of the named test for 'no difference'."""
        ...

    def p_one_sided(self, side: Side) -> float:
        """One-sided p-value of the named test that the candidate is ``side`` than baseline."""
        ...

    def statistic(self, ratio0: float) -> float:
        """Standardised statistic of H0 candidate = ratio0 x baseline (positive: larger)."""
        ...

    def difference_statistic(self, difference0: float) -> float:
        """Standardised statistic of H0 candidate - baseline = difference0."""
        ...

    def ratio_interval(self, crit: float) -> tuple[float, float]:
        """Interval for candidate / baseline at critical value ``crit``."""
        ...


@dataclass(frozen=True)
class MeanComparison:
    """Means of two arms with the variances of the means (Welch, paired t, proportions).

    ``p_less`` / ``p_greater`` override the Wald p-values when the named test is another one
    (pooled z, Fisher exact, McNemar); intervals and margins always use the Wald statistic.
    """

    method: str
    n_baseline: int
    n_candidate: int
    baseline_value: float
    candidate_value: float
    var_baseline: float
    var_candidate: float
    covariance: float = 0.0
    df: float | None = None
    p_less: float | None = None
    p_greater: float | None = None
    p_two_sided: float | None = None
    reported_baseline: float | None = None
    reported_candidate: float | None = None

    @property
    def ratio(self) -> float:
        """Ratio of the candidate mean to the baseline mean (NaN unless the baseline is > 0)."""
        if self.baseline_value <= 0:
            return math.nan
        return self.candidate_value / self.baseline_value

    @property
    def p_value(self) -> float:
        """Two-sided p-value: the override, else twice the smaller one-sided one, capped at 1."""
        if self.p_two_sided is not None:
            return self.p_two_sided
        return min(1.0, 2.0 * min(self.p_one_sided("less"), self.p_one_sided("greater")))

    def p_one_sided(self, side: Side) -> float:
        """One-sided p-value, from the override when there is one."""
        override = self.p_less if side == "less" else self.p_greater
        if override is not None:
            return override
        return one_sided(self.difference_statistic(0.0), self.df, side)

    def statistic(self, ratio0: float) -> float:
        """Welch-type statistic of H0 mean_c = ratio0 x mean_b."""
        variance = (
            self.var_candidate
            + ratio0 * ratio0 * self.var_baseline
            - 2.0 * ratio0 * self.covariance
        )
        return standardise(self.candidate_value - ratio0 * self.baseline_value, variance)

    def difference_statistic(self, difference0: float) -> float:
        """Welch-type statistic of H0 mean_c - mean_b = difference0."""
        variance = self.var_candidate + self.var_baseline - 2.0 * self.covariance
        return standardise(self.candidate_value - self.baseline_value - difference0, variance)

    def difference_interval(self, crit: float) -> tuple[float, float, float]:
        """candidate - baseline with its Wald interval at ``crit`` (the scale of absolute
        margins: the margin test passes exactly when the interval stays on the good side of the
        margin)."""
        difference = self.candidate_value - self.baseline_value
        variance = self.var_candidate + self.var_baseline - 2.0 * self.covariance
        half = crit * math.sqrt(max(variance, 0.0))
        return difference, difference - half, difference + half

    def ratio_interval(self, crit: float) -> tuple[float, float]:
        """Fieller interval of the ratio of means."""
        return fieller_interval(
            self.candidate_value,
            self.baseline_value,
            self.var_candidate,
            self.var_baseline,
            self.covariance,
            crit,
        )


@dataclass(frozen=True)
class LogMeanComparison:
    """Means of log values: the ratio of geometric means (log-scale Welch or paired log t)."""

    method: str
    n_baseline: int
    n_candidate: int
    log_baseline: float
    log_candidate: float
    var_difference: float
    df: float | None = None

    @property
    def baseline_value(self) -> float:
        """Geometric mean of the baseline."""
        return math.exp(self.log_baseline)

    @property
    def candidate_value(self) -> float:
        """Geometric mean of the candidate."""
        return math.exp(self.log_candidate)

    @property
    def ratio(self) -> float:
        """Ratio of geometric means."""
        return math.exp(self.log_candidate - self.log_baseline)

    @property
    def p_value(self) -> float:
        """Two-sided p-value of the t test on log values."""
        return min(1.0, 2.0 * upper_tail(abs(self.statistic(1.0)), self.df))

    def p_one_sided(self, side: Side) -> float:
        """One-sided p-value of the t test on log values."""
        return one_sided(self.statistic(1.0), self.df, side)

    def statistic(self, ratio0: float) -> float:
        """t statistic of H0 log ratio = log(ratio0)."""
        shift = self.log_candidate - self.log_baseline - math.log(ratio0)
        return standardise(shift, self.var_difference)

    def difference_statistic(self, difference0: float) -> float:
        """Not defined on a log scale: latency margins are relative."""
        raise InvalidInputError("log-scale comparisons take relative margins only")

    def ratio_interval(self, crit: float) -> tuple[float, float]:
        """Exponentiated interval of the log ratio."""
        half = crit * math.sqrt(max(self.var_difference, 0.0))
        shift = self.log_candidate - self.log_baseline
        return (safe_exp(shift - half), safe_exp(shift + half))
