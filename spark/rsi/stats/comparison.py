"""The common shape of a two-arm comparison, and the two mean-based kinds most tests produce.

A comparison is built by one of the metric tests (``latency``, ``rates``, ``continuous``) and
read by the decision rule. It answers four questions at any critical value: the ratio estimate,
its interval, the standardised statistic against any hypothesised ratio (for non-inferiority)
and the one-sided p-values of the named test. Statistics are positive when the candidate is
*larger*; the decision rule turns them round for metrics that improve by decreasing.

**Exact grounds for degenerate arms.** A test's own variance estimate (Welch's, the paired
t's) can be zero or far too small when a metric is constant, or nearly so, in one or both arms
(a flat price per call, a quality that is always perfect, three ratings of 4). The engine then
*guards* the comparison with a null model (``guarded``): under the hypothesis being tested the
arms are exchangeable (independent arms: permutations) or each pair's sign is (paired arms:
sign flips), so the variance of the mean difference under that hypothesis is known exactly from
the pooled data, the between-arm difference included. A guarded statistic uses the larger of
the test's own variance and this null variance, so it rejects only when both the named test
and the permutation (score) test reject: valid when either is, and finite whenever the data
are not all equal. Its significance is also floored at the smallest p-value any exact test of
that null can reach at these counts (``1 / C(n_b + n_c, n_c)`` for permutations, ``2^-n``
for sign flips): [4, 4, 4] against [5, 5, 5] can never beat p = 1/20, while 30 runs per arm
at two different constant costs are decisively different.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol, cast

from scipy import special

from spark.errors import InvalidInputError

Side = Literal["less", "greater"]
NullModel = Literal["none", "permutation", "sign_flip"]


def standardise(numerator: float, variance: float) -> float:
    """``numerator / sqrt(variance)``, with a zero variance giving 0 or a signed infinity."""
    if variance > 0:
        return numerator / math.sqrt(variance)
    if numerator == 0:
        return 0.0
    return math.copysign(math.inf, numerator)


@functools.lru_cache(maxsize=4096)
def exact_floor(null_model: NullModel, n_baseline: int, n_candidate: int) -> float:
    """The smallest one-sided p-value an exact test under ``null_model`` can give.

    Permutations of n_b + n_c runs into arms have ``C(n_b + n_c, n_c)`` equally likely
    arrangements, sign flips of n pairs ``2^n``; with ties there are fewer, so no exact test
    can go below this.
    """
    if null_model == "permutation":
        total = n_baseline + n_candidate
        log_count = special.gammaln(total + 1) - special.gammaln(n_baseline + 1)
        return math.exp(-(log_count - special.gammaln(n_candidate + 1)))
    if null_model == "sign_flip":
        return 2.0**-n_baseline
    return 0.0


def capped(statistic: float, floor: float, df: float | None) -> float:
    """``statistic`` clipped so that its one-sided p-value is never below ``floor``."""
    bound = cap_bound(floor, df)
    return max(-bound, min(bound, statistic))


@functools.lru_cache(maxsize=4096)
def cap_bound(floor: float, df: float | None) -> float:
    """The statistic whose one-sided p-value is ``floor`` (infinite when there is no floor)."""
    return critical_value(floor, df) if floor > 0 else math.inf


def permutation_variance(
    within_ss: float, n_baseline: int, n_candidate: int, shift: float
) -> float:
    """Variance of a difference of means under random permutation of the pooled runs.

    ``within_ss`` is the sum of squares of both arms about their own means (on the scale of
    the hypothesis) and ``shift`` the difference of means the hypothesis removes; the pooled
    sample variance is ``(within_ss + n_b n_c / N shift^2) / (N - 1)``.
    """
    total = n_baseline + n_candidate
    between = n_baseline * n_candidate / total * shift * shift
    pooled = (within_ss + between) / (total - 1)
    return pooled * (1.0 / n_baseline + 1.0 / n_candidate)


def sign_flip_variance(n: int, variance_of_mean: float, shift: float) -> float:
    """Variance of a mean of n paired differences under random sign flips (about H0)."""
    squares = (n - 1) * n * variance_of_mean + n * shift * shift
    return squares / (n * n)


def statistic_limit(null_model: NullModel, n_baseline: int, n_candidate: int) -> float:
    """The largest |statistic| a guarded comparison can reach at any hypothesis: the null
    variance holds the shift itself, so the statistic stays below ``sqrt(N - 1)`` (permutation)
    or ``sqrt(n)`` (sign flips)."""
    if null_model == "permutation":
        return math.sqrt(n_baseline + n_candidate - 1)
    if null_model == "sign_flip":
        return math.sqrt(n_baseline)
    return math.inf


def null_factor(
    null_model: NullModel, n_baseline: int, n_candidate: int, crit: float
) -> float | None:
    """The factor that turns the null variance's spread into an interval's half-width^2.

    The guarded statistic rejects a hypothesis when ``shift^2 > crit^2 x null variance``; the
    null variance holds ``shift^2`` itself, so solving for the shift gives, for permutations,
    ``shift^2 <= within_ss x crit^2 (1/n_b + 1/n_c) / (N - 1 - crit^2)`` and, for sign flips,
    ``shift^2 <= crit^2 x var x (n - 1) / (n - crit^2)``: the factor returned multiplies
    ``within_ss`` (permutations) or ``crit^2 x var`` (sign flips). None when ``crit`` is
    beyond ``statistic_limit``: no hypothesis is ever rejected.
    """
    limit = statistic_limit(null_model, n_baseline, n_candidate)
    if crit >= limit:
        return None
    if null_model == "permutation":
        total = n_baseline + n_candidate
        spread = 1.0 / n_baseline + 1.0 / n_candidate
        return crit * crit * spread / (total - 1 - crit * crit)
    if null_model == "sign_flip":
        return (n_baseline - 1) / (n_baseline - crit * crit)
    return 0.0


def hull(*intervals: tuple[float, float]) -> tuple[float, float]:
    """The smallest interval holding all of ``intervals``."""
    return min(low for low, _ in intervals), max(high for _, high in intervals)


def upper_tail(statistic: float, df: float | None) -> float:
    """P(T >= statistic) under the reference distribution (normal when ``df`` is None)."""
    if df is None:
        return float(special.ndtr(-statistic))
    return float(special.stdtr(df, -statistic))


def critical_value(alpha_one_sided: float, df: float | None) -> float:
    """The quantile that leaves ``alpha_one_sided`` in the upper tail: ``+inf`` for a level of
    0 (or one too small for a float quantile: nothing can reach it), ``-inf`` for 1.

    A look early in a long design can have a nominal level that underflows to 0 (O'Brien-Fleming
    at 1% of the planned information). SciPy's ``stdtrit`` returns ``+inf`` at a probability of
    0, and at probabilities below about 1e-270 for few degrees of freedom, where the quantile is
    ``-inf`` or hugely negative: negated, that critical value of ``-inf`` would make every
    statistic significant in both directions (every metric harmful and non-inferior at once).
    A quantile of the wrong sign or not finite is therefore read as the unreachable bound."""
    if not alpha_one_sided > 0.0:  # 0, or NaN: no level to reach
        return math.inf
    if alpha_one_sided >= 1.0:
        return -math.inf
    if alpha_one_sided > 0.5:
        return -critical_value(1.0 - alpha_one_sided, df)
    quantile = float(
        special.ndtri(alpha_one_sided) if df is None else special.stdtrit(df, alpha_one_sided)
    )
    if not (math.isfinite(quantile) and quantile <= 0.0):
        return math.inf
    return -quantile


def z_to_reference(z: float, df: float | None) -> float:
    """Map a normal-scale bound onto the comparison's reference scale (same tail area), from
    the tail beyond ``z`` so that a bound far out keeps its sign and its precision."""
    if df is None or not math.isfinite(z) or z == 0.0:
        return z
    return math.copysign(critical_value(float(special.ndtr(-abs(z))), df), z)


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
    null_model: NullModel = "none"

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

    @property
    def floor(self) -> float:
        """The smallest one-sided p-value the null model allows (0 when unguarded)."""
        return exact_floor(self.null_model, self.n_baseline, self.n_candidate)

    def statistic(self, ratio0: float) -> float:
        """Welch-type statistic of H0 mean_c = ratio0 x mean_b (guarded: see the module)."""
        return self._guarded_statistic(ratio0, 0.0)

    def difference_statistic(self, difference0: float) -> float:
        """Welch-type statistic of H0 mean_c - mean_b = difference0 (guarded: see the module)."""
        return self._guarded_statistic(1.0, difference0)

    def _guarded_statistic(self, ratio0: float, difference0: float) -> float:
        """Statistic of H0 mean_c = ratio0 x mean_b + difference0."""
        shift = self.candidate_value - ratio0 * self.baseline_value - difference0
        variance = max(self._wald_variance(ratio0), self._null_variance(ratio0, shift))
        return capped(standardise(shift, variance), self.floor, self.df)

    def _wald_variance(self, ratio0: float) -> float:
        return (
            self.var_candidate
            + ratio0 * ratio0 * self.var_baseline
            - 2.0 * ratio0 * self.covariance
        )

    def _null_variance(self, ratio0: float, shift: float) -> float:
        """Variance of the mean difference under the null model, on the hypothesis' scale."""
        if self.null_model == "sign_flip":
            return sign_flip_variance(self.n_baseline, self._wald_variance(ratio0), shift)
        if self.null_model == "permutation":
            n_b, n_c = self.n_baseline, self.n_candidate
            within = (n_b - 1) * n_b * self.var_baseline * ratio0 * ratio0 + (
                n_c - 1
            ) * n_c * self.var_candidate
            return permutation_variance(within, n_b, n_c, shift)
        return 0.0

    def difference_interval(self, crit: float) -> tuple[float, float, float]:
        """candidate - baseline with its interval at ``crit`` (the scale of absolute margins:
        the margin test passes exactly when the interval stays on the good side of the
        margin). Wald's unless guarded, then widened to the guarded statistic's."""
        difference = self.candidate_value - self.baseline_value
        variance = self._wald_variance(1.0)
        half = crit * math.sqrt(max(variance, 0.0))
        if self.null_model != "none":
            factor = self._null_factor(crit)
            if factor is None:
                return difference, -math.inf, math.inf
            if self.null_model == "permutation":
                null_half = math.sqrt(factor * self._within_ss(1.0))
            else:
                null_half = crit * math.sqrt(factor * max(variance, 0.0))
            half = max(half, null_half)
        return difference, difference - half, difference + half

    def ratio_interval(self, crit: float) -> tuple[float, float]:
        """Fieller interval of the ratio of means, widened to the guarded statistic's: the set
        of ratios that neither the named test's statistic nor the null model's rejects."""
        wald = fieller_interval(
            self.candidate_value,
            self.baseline_value,
            self.var_candidate,
            self.var_baseline,
            self.covariance,
            crit,
        )
        if self.null_model == "none":
            return wald
        factor = self._null_factor(crit)
        if factor is None:
            return (-math.inf, math.inf)
        return hull(wald, self._null_fieller(crit, factor))

    def _null_factor(self, crit: float) -> float | None:
        if cap_bound(self.floor, self.df) < crit:
            return None  # the exact floor keeps every statistic below crit
        return null_factor(self.null_model, self.n_baseline, self.n_candidate, crit)

    def _within_ss(self, ratio0: float) -> float:
        n_b, n_c = self.n_baseline, self.n_candidate
        return (n_b - 1) * n_b * self.var_baseline * ratio0 * ratio0 + (
            n_c - 1
        ) * n_c * self.var_candidate

    def _null_fieller(self, crit: float, factor: float) -> tuple[float, float]:
        a, b = self.candidate_value, self.baseline_value
        if self.null_model == "sign_flip":
            var_a, var_b = factor * self.var_candidate, factor * self.var_baseline
            return fieller_interval(a, b, var_a, var_b, factor * self.covariance, crit)
        n_b, n_c = self.n_baseline, self.n_candidate
        var_a = factor * (n_c - 1) * n_c * self.var_candidate
        var_b = factor * (n_b - 1) * n_b * self.var_baseline
        return fieller_interval(a, b, var_a, var_b, 0.0, 1.0)


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
    within_ss: float = 0.0
    null_model: NullModel = "none"

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
        """t statistic of H0 log ratio = log(ratio0) (guarded: see the module)."""
        return self._log_statistic(math.log(ratio0))

    @property
    def floor(self) -> float:
        """The smallest one-sided p-value the null model allows (0 when unguarded)."""
        return exact_floor(self.null_model, self.n_baseline, self.n_candidate)

    def _log_statistic(self, log_ratio0: float) -> float:
        shift = self.log_candidate - self.log_baseline - log_ratio0
        variance = max(self.var_difference, self._null_variance(shift))
        return capped(standardise(shift, variance), self.floor, self.df)

    def _null_variance(self, shift: float) -> float:
        if self.null_model == "sign_flip":
            return sign_flip_variance(self.n_baseline, self.var_difference, shift)
        if self.null_model == "permutation":
            return permutation_variance(self.within_ss, self.n_baseline, self.n_candidate, shift)
        return 0.0

    def difference_statistic(self, difference0: float) -> float:
        """Not defined on a log scale: latency margins are relative."""
        raise InvalidInputError("log-scale comparisons take relative margins only")

    def ratio_interval(self, crit: float) -> tuple[float, float]:
        """Exponentiated interval of the log ratio (widened to the guarded statistic's)."""
        shift = self.log_candidate - self.log_baseline
        half = crit * math.sqrt(max(self.var_difference, 0.0))
        if self.null_model != "none":
            factor = None
            if cap_bound(self.floor, self.df) >= crit:
                factor = null_factor(self.null_model, self.n_baseline, self.n_candidate, crit)
            if factor is None:
                return (0.0, math.inf)
            if self.null_model == "permutation":
                half = max(half, math.sqrt(factor * self.within_ss))
            else:
                half = max(half, crit * math.sqrt(factor * max(self.var_difference, 0.0)))
        return (safe_exp(shift - half), safe_exp(shift + half))


def guarded(comparison: Comparison, null_model: NullModel) -> Comparison:
    """``comparison`` judged with the exact null model of its design (see the module); rank
    tests take only its floor. Comparisons without a ``null_model`` are returned as they are."""
    if not hasattr(comparison, "null_model"):
        return comparison
    df = comparison.df
    means = isinstance(comparison, MeanComparison | LogMeanComparison)
    if df is None and means and null_model == "permutation":
        # two constant arms leave Welch without degrees of freedom: the pooled variance has N-2
        df = float(comparison.n_baseline + comparison.n_candidate - 2)
    updated: Comparison = replace(cast(Any, comparison), null_model=null_model, df=df)
    return updated


def constant_arms(comparison: Comparison) -> list[str]:
    """The arms in which the compared values do not vary (to the precision of a float)."""
    if isinstance(comparison, MeanComparison) and comparison.null_model != "none":
        arms = (
            ("baseline", comparison.var_baseline, comparison.baseline_value),
            ("candidate", comparison.var_candidate, comparison.candidate_value),
        )
        return [name for name, variance, mean in arms if _flat(variance, mean)]
    if isinstance(comparison, LogMeanComparison) and comparison.null_model == "permutation":
        spread = comparison.within_ss / (comparison.n_baseline + comparison.n_candidate)
        return ["baseline", "candidate"] if spread <= _RESOLUTION**2 else []
    return []


_RESOLUTION = 1e-9


def _flat(variance_of_mean: float, mean: float) -> bool:
    """True when the spread is below the float resolution of the mean."""
    return math.sqrt(max(variance_of_mean, 0.0)) <= _RESOLUTION * max(abs(mean), 1e-300)
