"""What cutting a node's slow calls at a timeout and retrying them is worth, from the measured
distribution of its latency.

A call slower than the timeout ``T`` is abandoned at ``T`` and run again; each attempt is a fresh
draw from the node's latency distribution (a tail made of slow calls, not of slow inputs: the
A/B test finds out when it is the other way round). With ``r`` retries the node's expected time
becomes

    E[min(X, T)] * (1 + p + ... + p^r) + sum_k p^k * wait_k,    p = P(X > T)

and a call fails when all ``r + 1`` attempts run past ``T`` (probability ``p^(r+1)``).
``E[min(X, T)] = mean - E[(X - T)+]``, and the excess ``E[(X - T)+]`` is integrated from the
measured quantiles (``NodeStats.latency_quantiles``), log-latency linear in the normal score of
the level between them (exact for a lognormal, close for other smooth tails). Above the highest
measured quantile nothing is known: the quantile function is held flat there, which understates
the excess the cut removes, so the expected saving is a conservative one (on lognormal, Weibull
and Pareto tails 5-35% below a simulation's, the failure probability within 2% or the
simulation's sampling error:
``tests/rsi/test_tail.py``).

``best_cut`` prices every candidate timeout (the measured quantiles and the midpoints between
them) with the owner's objective, the saved time as a share of the run's critical path against
the failures the cut adds, and returns the best one whose failures stay within a budget, or None
when no cut is worth its failures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from statistics import NormalDist

from spark.graphs.policies import expected_delay

LOWEST_CUT_QUANTILE = 0.75
"""Cuts below the upper quartile would abandon a quarter of all calls: such a node is slow, not
tailed, and a timeout is not its remedy."""


@dataclass(frozen=True, slots=True)
class TailProfile:
    """A node's mean latency and its measured upper quantiles ``(q, ms)``, ascending."""

    mean_ms: float
    quantiles: tuple[tuple[float, float], ...]

    @classmethod
    def of(cls, mean_ms: float, quantiles: Sequence[Sequence[float]]) -> TailProfile | None:
        """The profile, or None when the quantiles cannot carry one (fewer than two, or not
        ascending in both the level and the value)."""
        points = tuple((float(q), float(ms)) for q, ms in quantiles)
        if len(points) < 2 or mean_ms <= 0:
            return None
        ordered = all(a[0] < b[0] and a[1] <= b[1] for a, b in pairwise(points))
        return cls(mean_ms, points) if ordered else None

    def exceed_probability(self, cut_ms: float) -> float:
        """``P(X > cut_ms)`` read from the quantiles (the segment between them interpolated; the
        top quantile's remainder beyond the highest value)."""
        points = self.quantiles
        if cut_ms < points[0][1]:
            return 1.0 - points[0][0]
        for (q0, x0), (q1, x1) in pairwise(points):
            if cut_ms <= x1:
                return 1.0 - _Segment(q0, x0, q1, x1).level_at(cut_ms)
        return 0.0

    def excess_ms(self, cut_ms: float) -> float:
        """``E[(X - cut_ms)+]`` over the measured quantiles, flat above the highest one."""
        total = 0.0
        for (q0, x0), (q1, x1) in pairwise(self.quantiles):
            total += _Segment(q0, x0, q1, x1).excess(cut_ms)
        top_q, top_x = self.quantiles[-1]
        return total + (1.0 - top_q) * max(0.0, top_x - cut_ms)


_NORMAL = NormalDist()


@dataclass(frozen=True, slots=True)
class _Segment:
    """The quantile function between two measured quantiles: log-latency linear in the normal
    score of the level (``Q(u) = exp(a + b * z(u))``), exact for a lognormal and close for other
    smooth tails; linear in the level when a value is not positive."""

    q0: float
    x0: float
    q1: float
    x1: float

    def _log_fit(self) -> tuple[float, float] | None:
        if self.x0 <= 0 or self.x1 <= self.x0:
            return None
        z0, z1 = _NORMAL.inv_cdf(self.q0), _NORMAL.inv_cdf(self.q1)
        slope = (math.log(self.x1) - math.log(self.x0)) / (z1 - z0)
        return math.log(self.x0) - slope * z0, slope

    def level_at(self, value: float) -> float:
        """The level ``u`` in ``[q0, q1]`` where the quantile function reaches ``value``."""
        if value <= self.x0:
            return self.q0
        if value >= self.x1:
            return self.q1
        fit = self._log_fit()
        if fit is None:
            return self.q0 + (self.q1 - self.q0) * (value - self.x0) / (self.x1 - self.x0)
        intercept, slope = fit
        return _NORMAL.cdf((math.log(value) - intercept) / slope)

    def excess(self, cut: float) -> float:
        """The integral over ``u`` in ``[q0, q1]`` of ``max(0, Q(u) - cut)``."""
        if self.x1 <= cut:
            return 0.0
        start = self.level_at(cut)
        fit = self._log_fit()
        if fit is None:
            low = max(self.x0, cut)
            return (self.q1 - start) * ((low + self.x1) / 2 - cut)
        intercept, slope = fit
        z_start, z_end = _NORMAL.inv_cdf(start), _NORMAL.inv_cdf(self.q1)
        mass = math.exp(intercept + slope**2 / 2) * (
            _NORMAL.cdf(z_end - slope) - _NORMAL.cdf(z_start - slope)
        )
        return max(0.0, mass - cut * (self.q1 - start))


@dataclass(frozen=True, slots=True)
class Cut:
    """One timeout and what it is expected to do to the node and to the run."""

    timeout_ms: float
    exceed_probability: float
    node_saving_ms: float
    run_latency_change: float
    """Relative change of the run's mean latency (negative: faster)."""
    added_failure_rate: float
    """Absolute rise of the run's failure rate (every attempt timed out)."""
    objective_change: float
    """``latency weight * run_latency_change + error weight * added_failure_rate``."""


@dataclass(frozen=True, slots=True)
class CutTerms:
    """What a cut is priced with: the retries and backoff it comes with, the run's critical
    path, the share of runs that call the node (``reach``) and the owner's weights."""

    retries: int
    backoff_s: float
    critical_path_ms: float
    reach: float
    latency_weight: float
    error_weight: float


def price_cut(profile: TailProfile, timeout_ms: float, terms: CutTerms) -> Cut:
    """The expected effect of cutting at ``timeout_ms`` on ``terms``."""
    retries = terms.retries
    p = profile.exceed_probability(timeout_ms)
    attempt_ms = max(0.0, profile.mean_ms - profile.excess_ms(timeout_ms))
    attempts = sum(p**k for k in range(retries + 1))
    waits_ms = sum(
        p**k * 1000.0 * expected_delay(terms.backoff_s, k - 1) for k in range(1, retries + 1)
    )
    saving_ms = profile.mean_ms - (attempt_ms * attempts + waits_ms)
    path_ms = terms.critical_path_ms
    run_change = -terms.reach * saving_ms / path_ms if path_ms > 0 else 0.0
    failures = terms.reach * p ** (retries + 1)
    return Cut(
        timeout_ms=timeout_ms,
        exceed_probability=p,
        node_saving_ms=saving_ms,
        run_latency_change=run_change,
        added_failure_rate=failures,
        objective_change=terms.latency_weight * run_change + terms.error_weight * failures,
    )


def candidate_cuts(profile: TailProfile) -> list[float]:
    """The measured quantiles from ``LOWEST_CUT_QUANTILE`` up and the midpoints between them."""
    values = [x for q, x in profile.quantiles if q >= LOWEST_CUT_QUANTILE]
    midpoints = [(a + b) / 2 for a, b in pairwise(values)]
    return sorted({v for v in values + midpoints if v > 0})


def best_cut(profile: TailProfile, terms: CutTerms, failure_budget: float) -> Cut | None:
    """The candidate cut with the lowest objective change among those adding at most
    ``failure_budget`` failures, if it lowers the objective and the run's latency; else None."""
    priced = [price_cut(profile, cut, terms) for cut in candidate_cuts(profile)]
    worth = [
        c
        for c in priced
        if c.objective_change < 0
        and c.run_latency_change < 0
        and c.added_failure_rate <= failure_budget
    ]
    return min(worth, key=lambda c: (c.objective_change, -c.timeout_ms), default=None)
