"""Tests for rates (0/1 outcomes per run, e.g. errors): two-proportion z, Fisher, McNemar.

The named test gives the p-values. Ratios, intervals and margins use Wald statistics on
proportions shrunk by half an event (``(x + 0.5) / (n + 1)``) so that an arm with no events
still has a finite ratio and a non-zero variance.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special
from scipy.stats import binomtest, fisher_exact

from spark.errors import InvalidInputError
from spark.rsi.stats.comparison import MeanComparison, standardise
from spark.rsi.stats.inputs import Samples, as_metric_samples, check_paired

SMALL_EXPECTED_COUNT = 5.0


def _shrunk(events: float, n: int) -> float:
    return (events + 0.5) / (n + 1.0)


def pooled_z(x_b: int, n_b: int, x_c: int, n_c: int) -> float:
    """Two-proportion z statistic with the pooled variance (positive: candidate rate higher)."""
    pooled = (x_b + x_c) / (n_b + n_c)
    variance = pooled * (1.0 - pooled) * (1.0 / n_b + 1.0 / n_c)
    return standardise(x_c / n_c - x_b / n_b, variance)


def needs_exact(x_b: int, n_b: int, x_c: int, n_c: int) -> bool:
    """True when some expected cell count of the 2x2 table is below 5 (use Fisher's test)."""
    pooled = (x_b + x_c) / (n_b + n_c)
    smallest = min(n_b, n_c) * min(pooled, 1.0 - pooled)
    return smallest < SMALL_EXPECTED_COUNT


def _fisher_tails(x_b: int, n_b: int, x_c: int, n_c: int) -> tuple[float, float, float]:
    table = [[x_c, n_c - x_c], [x_b, n_b - x_b]]
    tails = (fisher_exact(table, alternative=side).pvalue for side in ("less", "greater"))
    less, greater = tails
    return float(less), float(greater), float(fisher_exact(table).pvalue)


def compare_counts(x_b: int, n_b: int, x_c: int, n_c: int) -> MeanComparison:
    """Compare two event counts: pooled z test, or Fisher's exact test for small counts."""
    _check_counts(x_b, n_b, "baseline")
    _check_counts(x_c, n_c, "candidate")
    if needs_exact(x_b, n_b, x_c, n_c):
        method, (p_less, p_greater, p_two) = "fisher_exact", _fisher_tails(x_b, n_b, x_c, n_c)
    else:
        z = pooled_z(x_b, n_b, x_c, n_c)
        method, p_less, p_greater = (
            "two_proportion_z",
            float(special.ndtr(z)),
            float(special.ndtr(-z)),
        )
        p_two = min(1.0, 2.0 * min(p_less, p_greater))
    p_b, p_c = _shrunk(x_b, n_b), _shrunk(x_c, n_c)
    return MeanComparison(
        method=method,
        n_baseline=n_b,
        n_candidate=n_c,
        baseline_value=p_b,
        candidate_value=p_c,
        var_baseline=p_b * (1.0 - p_b) / n_b,
        var_candidate=p_c * (1.0 - p_c) / n_c,
        p_less=p_less,
        p_greater=p_greater,
        p_two_sided=p_two,
        reported_baseline=x_b / n_b,
        reported_candidate=x_c / n_c,
    )


def compare_rates(baseline: Samples, candidate: Samples) -> MeanComparison:
    """Compare two independent 0/1 samples (see ``compare_counts``)."""
    b = as_metric_samples(baseline, "rate", "baseline")
    c = as_metric_samples(candidate, "rate", "candidate")
    return compare_counts(int(b.sum()), b.size, int(c.sum()), c.size)


def mcnemar(baseline: Samples, candidate: Samples) -> MeanComparison:
    """McNemar's test for paired 0/1 outcomes: exact binomial below 25 discordant pairs,
    otherwise the chi-square (z) form without continuity correction."""
    b = as_metric_samples(baseline, "rate", "baseline")
    c = as_metric_samples(candidate, "rate", "candidate")
    check_paired(b, c, "mcnemar")
    only_c, only_b = int(np.sum((c == 1) & (b == 0))), int(np.sum((c == 0) & (b == 1)))
    p_less, p_greater = _mcnemar_tails(only_b, only_c)
    n = b.size
    p_b, p_c = _shrunk(float(b.sum()), n), _shrunk(float(c.sum()), n)
    both = float(np.sum((b == 1) & (c == 1))) / n
    return MeanComparison(
        method="mcnemar",
        n_baseline=n,
        n_candidate=n,
        baseline_value=p_b,
        candidate_value=p_c,
        var_baseline=p_b * (1.0 - p_b) / n,
        var_candidate=p_c * (1.0 - p_c) / n,
        covariance=(both - float(b.mean()) * float(c.mean())) / n,
        p_less=p_less,
        p_greater=p_greater,
        reported_baseline=float(b.mean()),
        reported_candidate=float(c.mean()),
    )


def _mcnemar_tails(only_b: int, only_c: int) -> tuple[float, float]:
    discordant = only_b + only_c
    if discordant == 0:
        return 1.0, 1.0
    if discordant < 25:
        less = binomtest(only_c, discordant, 0.5, alternative="less").pvalue
        greater = binomtest(only_c, discordant, 0.5, alternative="greater").pvalue
        return float(less), float(greater)
    z = (only_c - only_b) / math.sqrt(discordant)
    return float(special.ndtr(z)), float(special.ndtr(-z))


def _check_counts(events: int, n: int, label: str) -> None:
    if n < 2:
        raise InvalidInputError(f"{label!r} has {n} samples, needs 2")
    if not 0 <= events <= n:
        raise InvalidInputError(f"{label!r} has {events} events out of {n}")
