"""What waiting for the slowest of several concurrent nodes costs, from their measured latency
distributions.

Nodes run side by side finish when the slowest does: the group lasts ``E[max(X_1, ..., X_k)]``,
which is more than the largest mean whenever the latencies vary (two independent calls of mean
50 ms and a typical spread wait about 65 ms, not 50). A saving computed from mean latencies alone
(the sum of the means minus the largest) therefore overstates what parallelizing them gives.

``fan_in_wait_ms`` is that excess, ``E[max] - max_i E[X_i]``, for independent nodes, each
distribution rebuilt from its measured quantiles (``NodeStats.latency_quantiles``, p50 to
p99.9) as ``spark.rsi.tail`` does: log-latency linear in the normal score between quantiles, the
lowest segment extended below the median, held flat above the highest quantile. Both terms come
from the same rebuilt distributions, so what the rebuild misses (the tail above p99.9) mostly
cancels; the wait is never negative.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from statistics import NormalDist

from spark.rsi.tail import TailProfile

GRID_POINTS = 800
"""Points of the geometric grid the expectations are integrated on."""
_NORMAL = NormalDist()


def fan_in_wait_ms(profiles: Sequence[TailProfile]) -> float:
    """``E[max] - max_i E[X_i]`` of independent nodes with these latency profiles (ms); 0 for
    fewer than two."""
    if len(profiles) < 2:
        return 0.0
    grid = _grid(profiles)
    if not grid:
        return 0.0
    levels = [[cdf(profile, t) for t in grid] for profile in profiles]
    each = max(_integral(grid, column) for column in levels)
    together = _integral(grid, [math.prod(row) for row in zip(*levels, strict=True)])
    return max(0.0, together - each)


def cdf(profile: TailProfile, value: float) -> float:
    """``P(X <= value)`` of the rebuilt distribution."""
    (q0, x0), (q1, x1) = profile.quantiles[0], profile.quantiles[1]
    if value <= 0:
        return 0.0
    if value < x0:
        return _below_lowest(q0, x0, q1, x1, value)
    if value >= profile.quantiles[-1][1]:
        return 1.0
    return 1.0 - profile.exceed_probability(value)


def _below_lowest(q0: float, x0: float, q1: float, x1: float, value: float) -> float:
    """The lowest segment's fit carried below the lowest quantile; when that segment is flat
    (the two lowest quantiles equal: the latency sits at one value) the mass below stays at
    that value too."""
    if x1 <= x0:
        return 0.0
    slope = (math.log(x1) - math.log(x0)) / (_NORMAL.inv_cdf(q1) - _NORMAL.inv_cdf(q0))
    intercept = math.log(x0) - slope * _NORMAL.inv_cdf(q0)
    return min(q0, _NORMAL.cdf((math.log(value) - intercept) / slope))


def _grid(profiles: Sequence[TailProfile]) -> list[float]:
    """Geometric points from far below the lowest positive quantile to the highest quantile;
    empty when no quantile is positive."""
    positive = [x for p in profiles for _q, x in p.quantiles if x > 0]
    if not positive:
        return []
    low, high = min(positive) / 1_000, max(positive)
    ratio = (high / low) ** (1 / (GRID_POINTS - 1))
    return [low * ratio**i for i in range(GRID_POINTS)]


def _integral(grid: Sequence[float], levels: Sequence[float]) -> float:
    """``E[X]`` of a distribution given by its CDF on the grid: the integral of ``1 - F``
    (trapezoids, the stretch from 0 to the first point counted whole)."""
    total = grid[0] * (1.0 - levels[0])
    for (left, right), (f_left, f_right) in zip(pairwise(grid), pairwise(levels), strict=True):
        total += (right - left) * (2.0 - f_left - f_right) / 2
    return total
