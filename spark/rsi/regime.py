"""Whether a graph's failure rate changed inside the analysis window, and where.

An analysis window mixes whatever happened in it. When a provider starts throttling a minute
before the analysis, 35% failures since then are diluted by the quiet hours before into a rate
too low to diagnose; when an outage ended, the hours before still show it. So before it
diagnoses, the analysis looks for a change point in the failures of the window's runs (oldest
first): the split, among those leaving ``min_runs`` on both sides, that maximises the
likelihood ratio of two failure rates against one (Bernoulli). Its significance is a
permutation test: the same maximum over ``PERMUTATIONS`` shuffles of the series, since no
textbook reference fits the maximum over many splits. A significant change puts the window's
start at the first run after it.

Latency is not scanned: it drifts with load through a day, and a scan that finds a "regime" in
every drift would shrink every window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

PERMUTATIONS = 399
"""Shuffles per test: the smallest p-value is 1/400."""
PERMUTATION_BATCH = 40
"""Shuffles drawn at once; the test stops after a batch once the p-value cannot reach alpha."""
DEFAULT_ALPHA = 0.01


@dataclass(frozen=True, slots=True)
class RegimeChange:
    """A significant change of the failure rate: the recent regime starts at run ``index``."""

    index: int
    started_at: float
    before: float
    after: float
    p_value: float

    def describe(self) -> str:
        """One line for the diagnostic report."""
        return (
            f"the failure rate changed from {self.before:.1%} to {self.after:.1%} inside the "
            f"window (permutation p={self.p_value:.3g}): diagnosed on the runs since"
        )


def failure_regime_change(
    started_at: Sequence[float],
    failed: Sequence[float],
    *,
    min_runs: int,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
) -> RegimeChange | None:
    """The change point of the failure rate in runs ordered oldest first, or None (fewer than
    ``2 * min_runs`` runs, failures all alike, or no significant change)."""
    n, min_runs = len(failed), max(min_runs, 1)
    if n != len(started_at) or n < 2 * min_runs:
        return None
    series = np.asarray(failed, dtype=float)
    if np.ptp(series) == 0:
        return None
    observed = _split_statistics(series[np.newaxis, :], min_runs)[0]
    best = int(np.argmax(observed))
    exceeded = _null_exceedances(series, observed[best], min_runs, alpha, seed)
    if exceeded is None:
        return None
    p_value = (1 + exceeded) / (PERMUTATIONS + 1)
    index = best + min_runs
    return RegimeChange(
        index=index,
        started_at=float(started_at[index]),
        before=float(series[:index].mean()),
        after=float(series[index:].mean()),
        p_value=p_value,
    )


def _null_exceedances(
    series: NDArray[np.float64], observed: float, min_runs: int, alpha: float, seed: int
) -> int | None:
    """How many of ``PERMUTATIONS`` shuffles reach ``observed``, or None as soon as so many did
    that the p-value cannot come under ``alpha`` (a steady window stops after one batch)."""
    rng = np.random.default_rng(seed)
    allowed = math.floor(alpha * (PERMUTATIONS + 1) + 1e-9) - 1  # p = (1 + k) / (B + 1) <= alpha
    exceeded, done = 0, 0
    while done < PERMUTATIONS:
        size = min(PERMUTATION_BATCH, PERMUTATIONS - done)
        shuffled = rng.permuted(np.tile(series, (size, 1)), axis=1)
        exceeded += int(np.sum(_split_statistics(shuffled, min_runs).max(axis=1) >= observed))
        done += size
        if exceeded > allowed:
            return None
    return exceeded


def _split_statistics(rows: NDArray[np.float64], min_runs: int) -> NDArray[np.float64]:
    """Per row, per split ``k`` in ``[min_runs, n - min_runs]`` (column ``k - min_runs``): the
    log-likelihood ratio of one failure rate before ``k`` and another from ``k`` on."""
    n = rows.shape[1]
    cumulative = np.cumsum(rows, axis=1)
    k = np.arange(min_runs, n - min_runs + 1)
    left = cumulative[:, k - 1]
    total = cumulative[:, -1:]
    n_left = k.astype(float)
    n_right = n - n_left
    return (
        _log_likelihood(left, n_left)
        + _log_likelihood(total - left, n_right)
        - _log_likelihood(total, np.full_like(n_left, float(n)))
    )


def _log_likelihood(
    failures: NDArray[np.float64], runs: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Bernoulli log-likelihood at the maximum-likelihood rate (0 log 0 taken as 0)."""
    rate = failures / runs
    with np.errstate(divide="ignore", invalid="ignore"):
        hits = np.where(failures > 0, failures * np.log(rate), 0.0)
        misses = np.where(runs - failures > 0, (runs - failures) * np.log1p(-rate), 0.0)
    return np.asarray(hits + misses, dtype=float)
