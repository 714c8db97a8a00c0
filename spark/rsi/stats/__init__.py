"""A statistical decision engine for A/B windows, independent of Temporal.

Call ``decide`` (or ``decide_from_summaries``) at every interim look and at the end of a
window; plan the window with ``plan_sample_size`` / ``plan_window`` before it starts.

Modules, one noun each: ``models`` (boundary models), ``latency`` / ``rates`` /
``continuous`` (the two-arm tests), ``sequential`` (alpha-spending bounds), ``planning``
(sample sizes), ``srm``, ``cuped`` and ``decision`` (the ship rule).
"""

from spark.rsi.stats.continuous import bootstrap_ratio_interval, paired_t, welch
from spark.rsi.stats.cuped import cuped_adjust
from spark.rsi.stats.decision import decide, decide_from_comparisons, decide_from_summaries
from spark.rsi.stats.latency import log_welch, mann_whitney_hl, paired_log_ratio, quantile_ratio
from spark.rsi.stats.models import (
    Decision,
    MetricResult,
    MetricSpec,
    SequentialDesign,
    SummaryStats,
)
from spark.rsi.stats.planning import (
    WindowPlan,
    fixed_sample_size,
    plan_noninferiority,
    plan_sample_size,
    plan_window,
    window_hours,
)
from spark.rsi.stats.rates import compare_counts, compare_rates, mcnemar
from spark.rsi.stats.sequential import Boundaries, boundaries, constant_boundary
from spark.rsi.stats.srm import has_sample_ratio_mismatch, srm_p_value

__all__ = [
    "Boundaries",
    "Decision",
    "MetricResult",
    "MetricSpec",
    "SequentialDesign",
    "SummaryStats",
    "WindowPlan",
    "bootstrap_ratio_interval",
    "boundaries",
    "compare_counts",
    "compare_rates",
    "constant_boundary",
    "cuped_adjust",
    "decide",
    "decide_from_comparisons",
    "decide_from_summaries",
    "fixed_sample_size",
    "has_sample_ratio_mismatch",
    "log_welch",
    "mann_whitney_hl",
    "mcnemar",
    "paired_log_ratio",
    "paired_t",
    "plan_noninferiority",
    "plan_sample_size",
    "plan_window",
    "quantile_ratio",
    "srm_p_value",
    "welch",
    "window_hours",
]
