"""Run GrowthBook's sequential two-sided t-test (gbstats 0.8.0) on summary statistics.

Runs inside bench/.gbstats-venv, never in the project's environment. Reads JSON from stdin:
``{"tests": [[kind, n_a, sum_a, sum_squares_a, n_b, sum_b, sum_squares_b], ...]}`` with
``kind`` "mean" or "proportion" (a = control, b = variation) and an optional eighth item,
the difference type ("relative" by default, "absolute"), and writes
``{"results": [[expected, p_value], ...]}`` in the same order. The test otherwise runs at
gbstats' defaults: alpha 0.05, sequential tuning parameter 5000.
"""

from __future__ import annotations

import json
import sys

from gbstats.frequentist.tests import SequentialConfig, SequentialTwoSidedTTest
from gbstats.models.statistics import ProportionStatistic, SampleMeanStatistic


def _statistic(kind: str, n: float, total: float, sum_squares: float):
    if kind == "proportion":
        return ProportionStatistic(n=int(n), sum=total)
    return SampleMeanStatistic(n=int(n), sum=total, sum_squares=sum_squares)


def run_test(row: list) -> list[float]:
    """One sequential test; returns the relative lift estimate and the always-valid p-value."""
    kind, n_a, sum_a, ss_a, n_b, sum_b, ss_b = row[:7]
    config = SequentialConfig(difference_type=row[7] if len(row) > 7 else "relative")
    test = SequentialTwoSidedTTest(
        _statistic(kind, n_a, sum_a, ss_a), _statistic(kind, n_b, sum_b, ss_b), config
    )
    result = test.compute_result()
    return [float(result.expected), float(result.p_value)]


def main() -> None:
    """Read the batch from stdin and print the results as JSON."""
    request = json.load(sys.stdin)
    json.dump({"results": [run_test(row) for row in request["tests"]]}, sys.stdout)


if __name__ == "__main__":
    main()
