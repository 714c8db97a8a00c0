"""Activities reading rollups (``ActivityDeps.stats_source="rollups"``) decide as they do on
the exact queries: the online look and the analysis on the same runs, real SQLite database,
real traffic."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from typing import Any

import pytest

from activities.analysis import AnalysisActivities
from activities.deps import ActivityDeps
from activities.online_ab import OnlineABActivities
from spark.rsi.changes import apply_changes
from spark.rsi.contracts import AnalyzeInput, OnlineLookInput, OnlineWindowInput, RSISettings
from spark.rsi.hypotheses import SetConfig
from tests.integration.scenario import client_for, register_with_traffic, send_requests

GRAPH = "stats-source"


async def test_look_and_analysis_from_rollups_match_exact(sqlite_database_url: str) -> None:
    """The same look (up to float rounding) and the same bottlenecks from rollups as from the
    exact queries."""
    client = client_for(sqlite_database_url)
    base = await register_with_traffic(client, GRAPH, requests=300)
    spec = apply_changes(base.spec, [SetConfig(node_id="classify", values={"retries": 3})])
    candidate = client.registry.create_version(base.version_id, spec, author="test", note="r")
    exact = ActivityDeps.from_database_url(sqlite_database_url)
    rolled = dataclasses.replace(exact, stats_source="rollups")
    settings = RSISettings(ab_looks=3, ab_min_window_s=5, ab_max_window_s=60)
    window = OnlineWindowInput(
        graph_id=GRAPH,
        cycle=1,
        baseline_version_id=base.version_id,
        candidate_version_id=candidate.version_id,
        primary_metric="error_rate",
        settings=settings.model_copy(update={"routing_propagation_s": 1.2}),
    )
    start = await OnlineABActivities(exact).start_online_window(window)
    assert start.plan is not None
    await asyncio.sleep(max(0.0, start.started_at - time.time()))
    await send_requests(client, GRAPH, 400, random.Random(3))
    look = OnlineLookInput(
        graph_id=GRAPH,
        baseline_version_id=base.version_id,
        candidate_version_id=candidate.version_id,
        primary_metric="error_rate",
        plan=start.plan,
        started_at=start.started_at,
        candidate_share=0.5,
        alpha=settings.alpha,
    )
    from_exact = await OnlineABActivities(exact).online_ab_look(look)
    from_rollups = await OnlineABActivities(rolled).online_ab_look(look)
    assert from_exact.n_baseline + from_exact.n_candidate == 400
    _assert_same_look(from_rollups.model_dump(), from_exact.model_dump())

    analyze = AnalyzeInput(graph_id=GRAPH, version_id=base.version_id, window_s=3600, min_traces=10)
    report_exact = await AnalysisActivities(exact).analyze_graph(analyze)
    report_rolled = await AnalysisActivities(rolled).analyze_graph(analyze)
    assert report_exact.trace_count > 0
    assert report_exact.bottlenecks
    assert [(b.node_id, b.kind, b.severity) for b in report_rolled.bottlenecks] == [
        (b.node_id, b.kind, b.severity) for b in report_exact.bottlenecks
    ]
    for r, e in zip(report_rolled.bottlenecks, report_exact.bottlenecks, strict=True):
        assert r.metric_value == pytest.approx(e.metric_value, rel=0.02)  # p95: sketch error


def _assert_same_look(rolled: dict[str, Any], exact: dict[str, Any]) -> None:
    """Equal but for float rounding (the rollups add the same terms in another order)."""
    assert rolled.keys() == exact.keys()
    for key, value in exact.items():
        if key == "metrics":
            for r, e in zip(rolled[key], value, strict=True):
                _assert_same_look(r, e)
        elif isinstance(value, float):
            assert rolled[key] == pytest.approx(value, rel=1e-9), key
        else:
            assert rolled[key] == value, key
