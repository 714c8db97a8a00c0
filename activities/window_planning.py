"""Planning an online window from telemetry: what opening a window does, and what the ranking
asks of each hypothesis (how much of its planned window the graph's traffic can fill)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spark.rsi.contracts import RSISettings
from spark.rsi.decidability import decidability
from spark.rsi.objectives import Objective
from spark.rsi.online import observed_rate, plan_objective_window
from spark.rsi.online_plan import OnlinePlan
from spark.telemetry import TelemetryStore
from spark.telemetry.aggregates import TraceMetrics

PLANNING_RUNS = 5_000
MIN_RATE_SPAN_S = 60.0


@dataclass(frozen=True)
class PlanningData:
    """The baseline's recent runs and the graph's traffic, read once per planning."""

    baseline: TraceMetrics
    runs_per_hour: float


def planning_data(
    telemetry: TelemetryStore, graph_id: str, baseline_version_id: str, settings: RSISettings
) -> PlanningData:
    """The baseline's last ``PLANNING_RUNS`` runs within the analysis window, and the graph's
    rate of runs."""
    since = time.time() - settings.analysis_window_s
    baseline = telemetry.trace_metrics(
        graph_id, baseline_version_id, since=since, limit=PLANNING_RUNS
    )
    return PlanningData(baseline, traffic_rate(telemetry, graph_id, since))


def traffic_rate(telemetry: TelemetryStore, graph_id: str, since: float) -> float:
    """Runs per hour over the analysis window, or over the part of it the graph has lived
    (at least a minute), so a young graph's rate is not diluted by the empty rest."""
    stats = telemetry.version_stats(graph_id, since=since)
    if stats.first_started_at is None:
        return 0.0
    span = max(time.time() - max(since, stats.first_started_at), MIN_RATE_SPAN_S)
    return observed_rate(stats.count, span)


def plan_for(
    data: PlanningData,
    settings: RSISettings,
    objective: Objective,
    *,
    expected_effects: Mapping[str, float],
    evidence_factor: float,
    prediction_share: float | None,
) -> OnlinePlan:
    """The window the settings allow for a hypothesis with ``expected_effects``; raises
    ``InvalidInputError`` (with the reason) when none can be planned."""
    return plan_objective_window(
        data.baseline,
        objective,
        min_window_s=settings.ab_min_window_s,
        **_window_terms(data, settings),
        expected_effects=expected_effects,
        evidence_factor=evidence_factor,
        prediction_share=prediction_share,
    )


def decidability_for(
    data: PlanningData,
    settings: RSISettings,
    objective: Objective,
    *,
    expected_effects: Mapping[str, float],
    evidence_factor: float,
    prediction_share: float | None,
) -> float:
    """The ranking's ``spark.rsi.decidability`` of the window ``plan_for`` would plan; raises
    ``InvalidInputError`` (with the reason) when none can be planned."""
    return decidability(
        data.baseline,
        objective,
        **_window_terms(data, settings),
        expected_effects=expected_effects,
        evidence_factor=evidence_factor,
        prediction_share=prediction_share,
    )


def _window_terms(data: PlanningData, settings: RSISettings) -> dict[str, Any]:
    """The traffic and the settings' window terms both planners take."""
    return {
        "runs_per_hour": data.runs_per_hour,
        "candidate_share": settings.ab_candidate_share,
        "looks": settings.ab_looks,
        "alpha": settings.alpha,
        "max_window_s": settings.ab_max_window_s,
        "min_effect": settings.ab_min_effect,
    }
