"""Looks whose nominal level is 0 or nearly so (early in a long design): no statistic can reach
them, in either direction, whatever the reference distribution."""

from __future__ import annotations

import itertools
import math

import pytest

from spark.rsi.stats import MetricSpec, SequentialDesign
from spark.rsi.stats.comparison import MeanComparison, critical_value, z_to_reference
from spark.rsi.stats.decision import decide_from_comparisons
from spark.rsi.stats.sequential import boundaries

OBJECTIVE = MetricSpec(name="objective", kind="continuous", improves="decrease", role="primary")
ERRORS = MetricSpec(
    name="error_rate", kind="continuous", improves="decrease", margin=0.02, margin_scale="absolute"
)
# O'Brien-Fleming at 0.01% of the planned information spends less than the smallest float
EARLY_LOOK = SequentialDesign(alpha=0.02, planned_looks=2, look_fractions=(0.0001, 1.0))
LEVELS = [0.0, 1e-320, 1e-300, 1e-200, 1e-12, 1e-4, 0.01, 0.025, 0.2, 0.5]
REFERENCES = [None, 1.0, 2.0, 5.0, 30.0, 200.0, 1e6]


@pytest.mark.parametrize("df", REFERENCES)
def test_critical_values_never_fall_as_the_level_shrinks_and_stay_positive(
    df: float | None,
) -> None:
    values = [critical_value(level, df) for level in LEVELS]

    assert values[0] == math.inf
    assert all(value >= 0.0 for value in values)
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert critical_value(1.0, df) == -math.inf
    assert critical_value(0.975, df) == pytest.approx(-critical_value(0.025, df))


@pytest.mark.parametrize("df", REFERENCES)
@pytest.mark.parametrize("z", [-60.0, -40.0, -3.0, -0.5, 0.5, 3.0, 40.0, 60.0])
def test_a_normal_bound_keeps_its_sign_on_any_reference(df: float | None, z: float) -> None:
    mapped = z_to_reference(z, df)

    assert math.copysign(1.0, mapped) == math.copysign(1.0, z)
    assert abs(mapped) >= abs(z) - 1e-9  # a t quantile lies beyond the normal one


@pytest.mark.parametrize("df", [None, 5.0, 40.0])
def test_a_look_with_a_level_of_zero_neither_rejects_nor_ships(df: float | None) -> None:
    """The first look of ``EARLY_LOOK`` has a nominal level of exactly 0. A candidate that looks
    better must not be called significantly worse there (a t reference's quantile at 0 once
    came back as +inf, its negated critical value -inf made every metric harmful), nor shipped."""
    assert boundaries(EARLY_LOOK).nominal_alpha(1) == 0.0
    better = _comparison("objective_z", (1.0, 0.78), (0.02, 0.015), df)
    same_errors = _comparison("welch", (0.01, 0.01), (1e-4, 7e-5), df)

    decision = decide_from_comparisons(
        [OBJECTIVE, ERRORS], [better, same_errors], design=EARLY_LOOK, look=1
    )

    assert decision.outcome == "continue"
    assert not any(result.significant_harm for result in decision.metrics)
    assert not any(result.significant_improvement for result in decision.metrics)
    assert not any(result.non_inferior for result in decision.metrics)


def _comparison(
    method: str, values: tuple[float, float], variances: tuple[float, float], df: float | None
) -> MeanComparison:
    """Baseline and candidate means (and variances of the means) of a 99/147-run look."""
    return MeanComparison(
        method=method,
        n_baseline=99,
        n_candidate=147,
        baseline_value=values[0],
        candidate_value=values[1],
        var_baseline=variances[0],
        var_candidate=variances[1],
        df=df,
    )


@pytest.mark.parametrize("first", [1e-5, 1e-4, 1e-3, 3e-3, 0.01])
@pytest.mark.parametrize("looks", [2, 3, 4])
@pytest.mark.parametrize("spending", ["obrien_fleming", "pocock"])
def test_designs_with_looks_early_in_their_information_have_bounds(
    first: float, looks: int, spending: str
) -> None:
    """A window capped far below its planned runs looks at a small share of its information.
    The futility search once had no root there (the share of beta to spend underflows below
    the mass beyond any bound) and every look of such a window failed."""
    fractions = (*(first * (k + 1) for k in range(looks - 1)), 1.0)
    design = SequentialDesign(
        alpha=0.02, planned_looks=looks, look_fractions=fractions, spending=spending
    )

    bounds = boundaries(design)

    assert bounds.futility is not None
    assert all(low <= high for low, high in zip(bounds.futility, bounds.efficacy, strict=True))
    assert bounds.futility[-1] == bounds.efficacy[-1]
    assert math.isfinite(bounds.efficacy[-1]) and bounds.drift > 0
