"""Group-sequential boundaries: Lan-DeMets alpha spending with non-binding beta-spending futility.

Every metric's standardised statistic Z_k at look k (information fraction t_k) is compared with
an efficacy bound c_k. The bounds spend alpha over the looks with the Lan-DeMets spending
function (O'Brien-Fleming-type by default), so the chance that Z ever crosses is ``alpha``
however many of the planned looks are taken. Futility bounds a_k spend beta under the design
alternative (drift ``eta``); they are non-binding: the efficacy bounds ignore them, so stopping
or not stopping for futility never raises the false-positive rate.

Crossing probabilities use the numerical integration of Jennison and Turnbull (2000, ch. 19):
the density of Z_k on the continuation region is carried from look to look on a Simpson grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import special
from scipy.optimize import brentq

from spark.rsi.stats.models import SequentialDesign, Spending

GRID_POINTS = 401
GRID_HALF_WIDTH = 10.0
FloatArray = np.ndarray


def spent_alpha(fraction: float, alpha: float, spending: Spending) -> float:
    """Cumulative error spent by information fraction ``fraction`` (one-sided ``alpha``).

    O'Brien-Fleming type: ``2 - 2 Phi(z_{1-alpha/2} / sqrt(t))``; Pocock type:
    ``alpha ln(1 + (e - 1) t)`` (Lan and DeMets 1983).
    """
    if fraction <= 0:
        return 0.0
    if fraction >= 1:
        return alpha
    if spending == "pocock":
        return alpha * math.log1p((math.e - 1.0) * fraction)
    quantile = -special.ndtri(alpha / 2.0)
    return float(2.0 * special.ndtr(-quantile / math.sqrt(fraction)))


@dataclass
class _Density:
    """Sub-density of Z at the last look over its continuation region, as grid masses."""

    points: FloatArray
    mass: FloatArray
    fraction: float

    @classmethod
    def start(cls) -> _Density:
        """All mass at Z = 0 before the first look."""
        return cls(np.zeros(1), np.ones(1), 0.0)

    def _shift(self, fraction: float, drift: float) -> tuple[FloatArray, float]:
        step = fraction - self.fraction
        return self.points * math.sqrt(self.fraction) + drift * step, math.sqrt(step)

    def upper(self, fraction: float, drift: float, bound: float) -> float:
        """P(continue so far and Z >= bound at the look with ``fraction``)."""
        if bound == math.inf:
            return 0.0
        centre, scale = self._shift(fraction, drift)
        tails = special.ndtr((centre - bound * math.sqrt(fraction)) / scale)
        return float(np.dot(self.mass, tails))

    def lower(self, fraction: float, drift: float, bound: float) -> float:
        """P(continue so far and Z < bound at the look with ``fraction``)."""
        if bound == -math.inf:
            return 0.0
        centre, scale = self._shift(fraction, drift)
        tails = special.ndtr((bound * math.sqrt(fraction) - centre) / scale)
        return float(np.dot(self.mass, tails))

    def advance(self, fraction: float, drift: float, low: float, high: float) -> _Density:
        """The sub-density of Z at the next look on the continuation region (low, high)."""
        mean = drift * math.sqrt(fraction)
        low, high = max(low, mean - GRID_HALF_WIDTH), min(high, mean + GRID_HALF_WIDTH)
        if high <= low:
            return _Density(np.zeros(1), np.zeros(1), fraction)
        points, weights = _simpson(low, high)
        centre, scale = self._shift(fraction, drift)
        kernel = np.exp(
            -0.5 * ((points[:, None] * math.sqrt(fraction) - centre[None, :]) / scale) ** 2
        )
        density = kernel @ self.mass * math.sqrt(fraction) / (scale * math.sqrt(2.0 * math.pi))
        return _Density(points, weights * density, fraction)


def _simpson(low: float, high: float) -> tuple[FloatArray, FloatArray]:
    points = np.linspace(low, high, GRID_POINTS)
    weights = np.ones(GRID_POINTS)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    return points, weights * (high - low) / (3.0 * (GRID_POINTS - 1))


_LOWEST_Z, _HIGHEST_Z = -12.0, 60.0
"""Where bounds are searched for: beyond them no float probability moves."""


def _solve(
    function: Callable[[float], float],
    target: float,
    low: float = _LOWEST_Z,
    high: float = _HIGHEST_Z,
) -> float:
    """The x in [low, high] where the monotone ``function(x)`` equals ``target``."""
    return float(brentq(lambda x: function(x) - target, low, high, xtol=1e-10, rtol=1e-12))


def efficacy_bounds(
    fractions: tuple[float, ...], alpha: float, spending: Spending
) -> tuple[float, ...]:
    """Upper Z bounds that spend one-sided ``alpha`` at the given information fractions."""
    density, bounds, previous = _Density.start(), [], 0.0
    for fraction in fractions:
        spent = spent_alpha(fraction, alpha, spending)
        target, previous = spent - previous, spent
        bound = _bound_for_upper(density, fraction, target)
        bounds.append(bound)
        density = density.advance(fraction, 0.0, -math.inf, bound)
    return tuple(bounds)


def _bound_for_upper(density: _Density, fraction: float, target: float) -> float:
    if target <= 1e-300:
        return math.inf
    return _solve(lambda b: density.upper(fraction, 0.0, b), target)


def futility_bounds(
    fractions: tuple[float, ...],
    efficacy: tuple[float, ...],
    beta: float,
    drift: float,
    spending: Spending,
) -> tuple[tuple[float, ...], float]:
    """Lower Z bounds spending ``beta`` under drift ``drift``, and the resulting power.

    The last bound is set to the last efficacy bound so that every path ends decided.
    """
    density, bounds, power, previous = _Density.start(), [], 0.0, 0.0
    for look, (fraction, upper) in enumerate(zip(fractions, efficacy, strict=True)):
        spent = spent_alpha(fraction, beta, spending)
        target, previous = spent - previous, spent
        lower = (
            upper
            if look == len(fractions) - 1
            else _bound_for_lower(density, fraction, drift, target, upper)
        )
        bounds.append(lower)
        power += density.upper(fraction, drift, upper)
        density = density.advance(fraction, drift, lower, upper)
    return tuple(bounds), power


def _bound_for_lower(
    density: _Density, fraction: float, drift: float, target: float, upper: float
) -> float:
    """The futility bound that spends ``target`` of beta at this look: ``upper`` when even
    that spends no more, ``-inf`` (no futility stop at this look) when even the lowest bound
    spends more. The second happens early in a long design (a look at 0.3% of the planned
    information, where the share of beta to spend underflows far below the mass beyond any
    bound): without it the search had no root and the look failed."""
    if target <= 1e-300:
        return -math.inf
    if density.lower(fraction, drift, upper) <= target:
        return upper
    if density.lower(fraction, drift, _LOWEST_Z) >= target:
        return -math.inf
    return _solve(lambda a: density.lower(fraction, drift, a), target, high=min(upper, _HIGHEST_Z))


def power_without_futility(
    fractions: tuple[float, ...], efficacy: tuple[float, ...], drift: float
) -> float:
    """Chance of crossing an efficacy bound at drift ``drift`` (no futility stopping)."""
    density, power = _Density.start(), 0.0
    for fraction, upper in zip(fractions, efficacy, strict=True):
        power += density.upper(fraction, drift, upper)
        density = density.advance(fraction, drift, -math.inf, upper)
    return power


@dataclass(frozen=True)
class Boundaries:
    """The Z-scale bounds of a design at one-sided level ``alpha``.

    ``drift`` is the expected Z at full information under the design alternative; the
    sample-size inflation over a fixed-horizon test of equal power is
    ``(drift / (z_{1-alpha} + z_{1-beta}))**2``.
    """

    fractions: tuple[float, ...]
    alpha: float
    efficacy: tuple[float, ...]
    futility: tuple[float, ...] | None
    drift: float
    inflation: float

    def nominal_alpha(self, look: int) -> float:
        """One-sided nominal level that a look's own p-value must beat (1-based ``look``)."""
        return float(special.ndtr(-self.efficacy[look - 1]))


@lru_cache(maxsize=256)
def _boundaries(
    fractions: tuple[float, ...], alpha: float, beta: float, spending: Spending, futility: bool
) -> Boundaries:
    efficacy = efficacy_bounds(fractions, alpha, spending)
    fixed = float(-special.ndtri(alpha) - special.ndtri(beta))

    def power(drift: float) -> float:
        """Chance of shipping at ``drift`` under this design."""
        if futility:
            return futility_bounds(fractions, efficacy, beta, drift, spending)[1]
        return power_without_futility(fractions, efficacy, drift)

    drift = _solve(power, 1.0 - beta, 0.5 * fixed, 3.0 * fixed)
    lower = futility_bounds(fractions, efficacy, beta, drift, spending)[0] if futility else None
    return Boundaries(fractions, alpha, efficacy, lower, drift, (drift / fixed) ** 2)


def boundaries(design: SequentialDesign, *, alpha: float | None = None) -> Boundaries:
    """Bounds of ``design`` at one-sided level ``alpha`` (default: half the design's alpha)."""
    level = design.alpha / 2.0 if alpha is None else alpha
    beta = 1.0 - design.power
    return _boundaries(design.fractions, level, beta, design.spending, design.futility)


def constant_boundary(shape: Spending, looks: int, alpha: float) -> float:
    """The constant C of the classical two-sided tests with equally spaced looks.

    Pocock: reject at look k when |Z_k| >= C; O'Brien-Fleming: when |Z_k| >= C sqrt(K / k).
    Reproduces Jennison and Turnbull (2000), tables 2.1 and 2.3.
    """
    fractions = tuple(k / looks for k in range(1, looks + 1))
    widths = [1.0 if shape == "pocock" else math.sqrt(1.0 / t) for t in fractions]
    return _solve(
        lambda c: _two_sided_crossing(fractions, [c * w for w in widths]), alpha, 1.0, 10.0
    )


def _two_sided_crossing(fractions: tuple[float, ...], bounds: list[float]) -> float:
    density, total = _Density.start(), 0.0
    for fraction, bound in zip(fractions, bounds, strict=True):
        total += density.upper(fraction, 0.0, bound) + density.lower(fraction, 0.0, -bound)
        density = density.advance(fraction, 0.0, -bound, bound)
    return total
