"""Run GrowthBook's sequential two-sided t-test (gbstats 0.8.0) on summary statistics.

Runs inside bench/.gbstats-venv, never in the project's environment. Reads JSON from stdin:
``{"tests": [[kind, n_a, sum_a, sum_squares_a, n_b, sum_b, sum_squares_b], ...]}`` with
``kind`` "mean" or "proportion" (a = control, b = variation) and two optional items: the
difference type ("relative" by default, "absolute") and a second sequential tuning parameter
to try. Writes ``{"results": [[expected, p_value, p_value_tuned], ...]}`` in the same order:
``p_value`` at gbstats' default tuning parameter (5000), ``p_value_tuned`` at the given one
(NaN when none is given). The test otherwise runs at gbstats' defaults (alpha 0.05). A test
that gbstats cannot compute (it raises, or returns NaN) is reported as NaN, no answer.
"""

from __future__ import annotations

import json
import math
import sys

from gbstats.frequentist.tests import SequentialConfig, SequentialTwoSidedTTest
from gbstats.models.statistics import ProportionStatistic, SampleMeanStatistic


def _statistic(kind: str, n: float, total: float, sum_squares: float):
    if kind == "proportion":
        return ProportionStatistic(n=int(n), sum=total)
    return SampleMeanStatistic(n=int(n), sum=total, sum_squares=sum_squares)


def _test(row: list, tuning: float | None) -> tuple[float, float]:
    """One sequential test at ``tuning`` (gbstats' default when None)."""
    kind, n_a, sum_a, ss_a, n_b, sum_b, ss_b = row[:7]
    options = {"difference_type": row[7] if len(row) > 7 else "relative"}
    if tuning is not None:
        options["sequential_tuning_parameter"] = tuning
    test = SequentialTwoSidedTTest(
        _statistic(kind, n_a, sum_a, ss_a),
        _statistic(kind, n_b, sum_b, ss_b),
        SequentialConfig(**options),
    )
    try:
        result = test.compute_result()
    except (ValueError, ZeroDivisionError, FloatingPointError):
        return math.nan, math.nan
    return float(result.expected), float(result.p_value)


def run_test(row: list) -> list[float]:
    """The relative lift estimate and the always-valid p-values at both tuning parameters."""
    expected, p_default = _test(row, None)
    tuning = row[8] if len(row) > 8 else None
    p_tuned = _test(row, float(tuning))[1] if tuning is not None else math.nan
    return [expected, p_default, p_tuned]


def main() -> None:
    """Read the batch from stdin and print the results as JSON."""
    request = json.load(sys.stdin)
    json.dump({"results": [run_test(row) for row in request["tests"]]}, sys.stdout)


if __name__ == "__main__":
    main()
