"""Pick and run the right test for a metric, from arrays or from summary statistics.

Every test but the rates' (already exact: Fisher below five expected events, the pooled z
otherwise) is guarded by the null model of its design, permutations of independent arms or sign
flips of pairs, so that a metric constant in one or both arms is judged on exact grounds
(see ``comparison``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from spark.errors import InvalidInputError
from spark.rsi.stats.comparison import Comparison, guarded
from spark.rsi.stats.continuous import paired_t, summary_moments, welch, welch_from_moments
from spark.rsi.stats.cuped import cuped_adjust
from spark.rsi.stats.inputs import FloatArray, Samples, as_pair, check_paired
from spark.rsi.stats.latency import (
    log_welch,
    log_welch_from_moments,
    mann_whitney_hl,
    paired_log_ratio,
    quantile_ratio,
)
from spark.rsi.stats.models import MetricSpec, SummaryStats
from spark.rsi.stats.rates import compare_counts, compare_rates, mcnemar

PrePeriod = tuple[Mapping[str, Samples], Mapping[str, Samples]]


def _arms(
    spec: MetricSpec, baseline: Mapping[str, object], candidate: Mapping[str, object]
) -> tuple[object, object]:
    for label, arm in (("baseline", baseline), ("candidate", candidate)):
        if spec.name not in arm:
            raise InvalidInputError(f"{label} has no samples for metric {spec.name!r}")
    return baseline[spec.name], candidate[spec.name]


def compare_arrays(
    spec: MetricSpec,
    baseline: Mapping[str, Samples],
    candidate: Mapping[str, Samples],
    *,
    paired: bool = False,
    pre: PrePeriod = ({}, {}),
) -> Comparison:
    """Run the metric's test on per-run arrays (paired tests when ``paired``)."""
    raw_b, raw_c = _arms(spec, baseline, candidate)
    b, c = as_pair(raw_b, raw_c, spec.kind, spec.name)  # type: ignore[arg-type]
    has_pre = spec.name in pre[0] or spec.name in pre[1]
    if paired:
        check_paired(b, c, spec.name)
        if has_pre:
            raise InvalidInputError(f"CUPED does not apply to paired metric {spec.name!r}")
        return _exact(spec, _paired(spec, b, c), paired=True)
    if has_pre:
        return _exact(spec, _with_cuped(spec, b, c, pre), paired=False)
    return _exact(spec, _unpaired(spec, b, c), paired=False)


def _exact(spec: MetricSpec, comparison: Comparison, *, paired: bool) -> Comparison:
    """Guard every non-rate comparison with its design's exact null model."""
    if spec.kind == "rate":
        return comparison
    return guarded(comparison, "sign_flip" if paired else "permutation")


def _paired(spec: MetricSpec, b: FloatArray, c: FloatArray) -> Comparison:
    if spec.kind == "latency":
        return paired_log_ratio(b, c)
    if spec.kind == "rate":
        return mcnemar(b, c)
    return paired_t(b, c)


def _unpaired(spec: MetricSpec, b: FloatArray, c: FloatArray) -> Comparison:
    if spec.kind == "rate":
        return compare_rates(b, c)
    if spec.kind == "continuous":
        return welch(b, c)
    if spec.method == "mann_whitney":
        return mann_whitney_hl(b, c)
    if spec.method == "p95":
        return quantile_ratio(b, c, 0.95)
    return log_welch(b, c)


def _with_cuped(spec: MetricSpec, b: FloatArray, c: FloatArray, pre: PrePeriod) -> Comparison:
    if spec.kind == "rate" or (spec.kind == "latency" and spec.method != "log_welch"):
        raise InvalidInputError(
            f"CUPED applies to log_welch latency and continuous metrics, not {spec.name!r}"
        )
    if spec.name not in pre[0] or spec.name not in pre[1]:
        raise InvalidInputError(f"CUPED needs pre-window values of {spec.name!r} for both arms")
    pre_b, pre_c = as_pair(
        pre[0][spec.name], pre[1][spec.name], spec.kind, f"{spec.name} pre-window"
    )
    if spec.kind == "latency":
        b, c, pre_b, pre_c = np.log(b), np.log(c), np.log(pre_b), np.log(pre_c)
    adjusted_b, adjusted_c, _ = cuped_adjust(b, c, pre_b, pre_c)
    moments = (
        adjusted_b.size, float(adjusted_b.mean()), float(adjusted_b.var(ddof=1)),
        adjusted_c.size, float(adjusted_c.mean()), float(adjusted_c.var(ddof=1)),
    )  # fmt: skip
    if spec.kind == "latency":
        return log_welch_from_moments(*moments)
    return welch_from_moments(*moments)


def compare_summaries(
    spec: MetricSpec, baseline: Mapping[str, SummaryStats], candidate: Mapping[str, SummaryStats]
) -> Comparison:
    """Run the metric's test on per-arm aggregates (unpaired tests only)."""
    raw_b, raw_c = _arms(spec, baseline, candidate)
    b, c = SummaryStats.model_validate(raw_b), SummaryStats.model_validate(raw_c)
    if spec.kind == "rate":
        return compare_counts(
            _events(b, spec.name, "baseline"), b.count, _events(c, spec.name, "candidate"), c.count
        )
    if spec.kind == "latency" and spec.method != "log_welch":
        raise InvalidInputError(
            f"latency method {spec.method!r} of {spec.name!r} needs arrays, not sums"
        )
    if b.scale != c.scale:
        raise InvalidInputError(f"arms of {spec.name!r} are summarised on different scales")
    moments = (*_moments(b, spec.name, "baseline"), *_moments(c, spec.name, "candidate"))
    if spec.kind == "latency" and b.scale == "log":
        return _exact(spec, log_welch_from_moments(*moments), paired=False)
    return _exact(spec, welch_from_moments(*moments), paired=False)


def _moments(summary: SummaryStats, name: str, arm: str) -> tuple[int, float, float]:
    if summary.sum_squares is None:
        raise InvalidInputError(f"{arm}[{name}] needs sum_squares")
    mean, variance = summary_moments(
        summary.count, summary.sum, summary.sum_squares, f"{arm}[{name}]"
    )
    return summary.count, mean, variance


def _events(summary: SummaryStats, name: str, arm: str) -> int:
    events = round(summary.sum)
    if abs(summary.sum - events) > 1e-9 or not 0 <= events <= summary.count:
        raise InvalidInputError(
            f"{arm}[{name}] must count events: sum {summary.sum!r} of {summary.count}"
        )
    return events
