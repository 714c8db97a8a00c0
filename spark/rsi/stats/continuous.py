"""Tests for continuous scores such as cost and quality: Welch, paired t, bootstrap interval."""

from __future__ import annotations

import math

import numpy as np

from spark.errors import InvalidInputError
from spark.rsi.stats.comparison import MeanComparison
from spark.rsi.stats.inputs import Samples, as_samples, check_paired


def welch_df(var_b: float, n_b: int, var_c: float, n_c: int) -> float | None:
    """Welch-Satterthwaite degrees of freedom from sample variances (None if both are 0)."""
    term_b, term_c = var_b / n_b, var_c / n_c
    denominator = term_b**2 / (n_b - 1) + term_c**2 / (n_c - 1)
    if denominator <= 0:
        return None
    return (term_b + term_c) ** 2 / denominator


def welch_from_moments(
    n_b: int, mean_b: float, var_b: float, n_c: int, mean_c: float, var_c: float
) -> MeanComparison:
    """Welch's unequal-variance t comparison from counts, means and sample variances."""
    return MeanComparison(
        method="welch_t",
        n_baseline=n_b,
        n_candidate=n_c,
        baseline_value=mean_b,
        candidate_value=mean_c,
        var_baseline=var_b / n_b,
        var_candidate=var_c / n_c,
        df=welch_df(var_b, n_b, var_c, n_c),
    )


def welch(baseline: Samples, candidate: Samples) -> MeanComparison:
    """Welch's t test of the means of two independent samples (as ``scipy.stats.ttest_ind``)."""
    b = as_samples(baseline, label="baseline")
    c = as_samples(candidate, label="candidate")
    return welch_from_moments(
        b.size, float(b.mean()), float(b.var(ddof=1)), c.size, float(c.mean()), float(c.var(ddof=1))
    )


def paired_t(baseline: Samples, candidate: Samples) -> MeanComparison:
    """Paired t test on per-input differences (as ``scipy.stats.ttest_rel``)."""
    b = as_samples(baseline, label="baseline")
    c = as_samples(candidate, label="candidate")
    check_paired(b, c, "paired_t")
    n = b.size
    covariance = float(np.cov(b, c, ddof=1)[0, 1])
    return MeanComparison(
        method="paired_t",
        n_baseline=n,
        n_candidate=n,
        baseline_value=float(b.mean()),
        candidate_value=float(c.mean()),
        var_baseline=float(b.var(ddof=1)) / n,
        var_candidate=float(c.var(ddof=1)) / n,
        covariance=covariance / n,
        df=float(n - 1),
    )


def bootstrap_ratio_interval(
    baseline: Samples,
    candidate: Samples,
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the relative change of means (candidate / baseline - 1).

    Resamples each arm independently; a fixed ``seed`` makes the interval reproducible.
    """
    if not 0 < confidence < 1:
        raise InvalidInputError(f"confidence must lie in (0, 1), got {confidence!r}")
    b = as_samples(baseline, label="baseline")
    c = as_samples(candidate, label="candidate")
    rng = np.random.default_rng(seed)
    mean_b = rng.choice(b, size=(resamples, b.size)).mean(axis=1)
    mean_c = rng.choice(c, size=(resamples, c.size)).mean(axis=1)
    if np.any(mean_b <= 0):
        raise InvalidInputError("bootstrap ratio needs a baseline whose resampled means are > 0")
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(mean_c / mean_b - 1.0, [tail, 1.0 - tail])
    return (float(low), float(high))


def summary_moments(
    count: int, total: float, sum_squares: float, label: str
) -> tuple[float, float]:
    """Mean and sample variance from count, sum and sum of squares (SQL aggregates)."""
    if count < 2:
        raise InvalidInputError(f"{label!r} has {count} samples, needs 2")
    if not all(math.isfinite(v) for v in (total, sum_squares)):
        raise InvalidInputError(f"{label!r} has a NaN or infinite aggregate")
    mean = total / count
    centred = sum_squares - total * mean
    if centred < -1e-9 * max(abs(sum_squares), 1.0):
        raise InvalidInputError(f"{label!r} has sum_squares below sum**2/count: not real data")
    return mean, max(centred, 0.0) / (count - 1)
