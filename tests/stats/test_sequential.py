"""Sequential bounds against published values, and their error rates by simulation."""

from __future__ import annotations

import numpy as np
import pytest

from spark.rsi.stats import SequentialDesign, boundaries, constant_boundary
from spark.rsi.stats.sequential import efficacy_bounds, spent_alpha

FIVE_LOOKS = (0.2, 0.4, 0.6, 0.8, 1.0)


def test_obrien_fleming_spending_bounds_match_published_values() -> None:
    """Lan-DeMets O'Brien-Fleming spending, K=5, one-sided 0.025: 4.877 3.357 2.680 2.290 2.031
    (as tabulated by gsDesign / rpact)."""
    bounds = efficacy_bounds(FIVE_LOOKS, 0.025, "obrien_fleming")
    assert bounds == pytest.approx([4.8769, 3.3570, 2.6803, 2.2898, 2.0310], abs=2e-4)


def test_pocock_spending_bounds_match_published_values() -> None:
    """Lan-DeMets Pocock spending, K=5, one-sided 0.025: 2.438 2.427 2.410 2.397 2.386."""
    bounds = efficacy_bounds(FIVE_LOOKS, 0.025, "pocock")
    assert bounds == pytest.approx([2.4380, 2.4268, 2.4102, 2.3966, 2.3860], abs=2e-4)


@pytest.mark.parametrize(
    ("looks", "obrien_fleming", "pocock"),
    [
        (2, 1.977, 2.178),
        (3, 2.004, 2.289),
        (4, 2.024, 2.361),
        (5, 2.040, 2.413),
        (10, 2.087, 2.555),
    ],
)
def test_classical_constants_match_jennison_turnbull(
    looks: int, obrien_fleming: float, pocock: float
) -> None:
    """C_B(K, 0.05) and C_P(K, 0.05) reproduce Jennison and Turnbull (2000) tables 2.1 and 2.3."""
    assert constant_boundary("obrien_fleming", looks, 0.05) == pytest.approx(
        obrien_fleming, abs=1e-3
    )
    assert constant_boundary("pocock", looks, 0.05) == pytest.approx(pocock, abs=1e-3)


def test_single_look_is_the_fixed_horizon_test() -> None:
    """With one look the bound is z_{0.975} and no inflation is needed."""
    bounds = boundaries(SequentialDesign(planned_looks=1))
    assert bounds.efficacy[0] == pytest.approx(1.959964, abs=1e-6)
    assert bounds.inflation == pytest.approx(1.0, abs=1e-6)


def test_spending_function_spends_all_alpha_at_full_information() -> None:
    """The O'Brien-Fleming-type function spends almost nothing early and alpha at t=1."""
    assert spent_alpha(0.1, 0.025, "obrien_fleming") < 1e-11
    assert spent_alpha(1.0, 0.025, "obrien_fleming") == 0.025


def _paths(drift: float, looks: int, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    steps = rng.normal(drift / looks, np.sqrt(1.0 / looks), size=(count, looks))
    fractions = np.arange(1, looks + 1) / looks
    return np.cumsum(steps, axis=1) / np.sqrt(fractions)


def test_ten_looks_keep_the_one_sided_error_at_alpha() -> None:
    """Simulated Brownian paths cross the 10-look bounds with probability 0.025 under H0."""
    bounds = boundaries(SequentialDesign(planned_looks=10))
    z = _paths(0.0, 10, 200_000, seed=1)
    crossed = np.any(z >= np.array(bounds.efficacy), axis=1).mean()
    assert crossed == pytest.approx(0.025, abs=0.0015)


def test_futility_design_has_its_planned_power() -> None:
    """At the design drift, paths that are stopped for futility still leave power 0.8."""
    bounds = boundaries(SequentialDesign(planned_looks=10))
    assert bounds.futility is not None
    z = _paths(bounds.drift, 10, 100_000, seed=2)
    upper, lower = np.array(bounds.efficacy), np.array(bounds.futility)
    first_up = np.where(np.any(z >= upper, axis=1), np.argmax(z >= upper, axis=1), 99)
    first_low = np.where(np.any(z < lower, axis=1), np.argmax(z < lower, axis=1), 99)
    assert np.mean(first_up < first_low) == pytest.approx(0.8, abs=0.006)
    assert bounds.futility[-1] == bounds.efficacy[-1]


def test_futility_inflates_the_maximum_sample() -> None:
    """Beta-spending futility costs maximum sample; without it OBF inflation is small."""
    with_futility = boundaries(SequentialDesign(planned_looks=10))
    without = boundaries(SequentialDesign(planned_looks=10, futility=False))
    assert 1.0 < without.inflation < 1.05 < with_futility.inflation < 1.25


def test_design_rejects_bad_look_fractions() -> None:
    """Look fractions must rise strictly to 1 and match the planned looks."""
    with pytest.raises(ValueError, match="look_fractions"):
        SequentialDesign(planned_looks=2, look_fractions=(0.6, 0.5))
    with pytest.raises(ValueError, match="look_fractions"):
        SequentialDesign(planned_looks=3, look_fractions=(0.5, 1.0))
