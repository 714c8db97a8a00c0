"""Phase 1: analyze the active version's telemetry into a diagnostic report."""

from __future__ import annotations

import time

from temporalio import activity

from activities._support import heartbeating, misuse_is_final, off_loop
from activities.deps import ActivityDeps
from spark.rsi.analysis import analyze
from spark.rsi.contracts import AnalyzeInput, AnalyzeResult, BottleneckSummary
from spark.rsi.regime import RegimeChange, failure_regime_change

REGIME_RUNS = 5_000
"""The latest runs searched for a change of the failure rate: the search's cost stays bounded
however long the window (a change before them is seen as part of the window)."""


class AnalysisActivities:
    """Reads telemetry aggregates (computed in SQL) and the version's spec."""

    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name="analyze_graph")
    @misuse_is_final
    @heartbeating
    async def analyze_graph(self, inp: AnalyzeInput) -> AnalyzeResult:
        """Diagnose bottlenecks of ``inp.version_id`` over the window ending now."""
        return await off_loop(self._analyze, inp)

    def _analyze(self, inp: AnalyzeInput) -> AnalyzeResult:
        spec = self._deps.registry.get_version(inp.version_id).spec
        telemetry = self._deps.telemetry
        since = time.time() - inp.window_s
        change = self._regime_change(inp, since)
        if change is not None:
            since = change.started_at
        node_stats = telemetry.node_stats(
            inp.graph_id, inp.version_id, since=since, source=self._deps.stats_source
        )
        version_stats = telemetry.version_stats(inp.graph_id, inp.version_id, since=since)
        report = analyze(spec, node_stats, version_stats, min_traces=inp.min_traces)
        if change is not None:
            report = report.model_copy(update={"regime_change": change.describe()})
        return AnalyzeResult(
            graph_id=inp.graph_id,
            version_id=inp.version_id,
            trace_count=version_stats.count,
            sufficient_data=report.sufficient_data,
            bottlenecks=[
                BottleneckSummary(
                    node_id=b.node_id, kind=b.kind, severity=b.severity, metric_value=b.metric_value
                )
                for b in report.bottlenecks
            ],
            report=report.model_dump(mode="json"),
        )

    def _regime_change(self, inp: AnalyzeInput, since: float) -> RegimeChange | None:
        """A change of the failure rate inside the window's latest ``REGIME_RUNS`` runs, with at
        least ``min_traces`` runs after it (``spark.rsi.regime``)."""
        runs = self._deps.telemetry.trace_metrics(
            inp.graph_id, inp.version_id, since=since, limit=REGIME_RUNS
        )
        return failure_regime_change(runs.started_at, runs.error, min_runs=inp.min_traces)
