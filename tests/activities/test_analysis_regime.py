"""The analysis activity diagnoses what happens now: when the failure rate changed inside the
window, it reads the runs since the change, and its report says why."""

from __future__ import annotations

import time

from activities.analysis import AnalysisActivities
from activities.deps import ActivityDeps
from spark.rsi.contracts import AnalyzeInput
from spark.telemetry.models import RunTelemetry
from tests.rsi.builders import support_spec
from tests.telemetry import factories

QUIET_RUNS, THROTTLED_RUNS = 3000, 150


def runs(version_id: str, node_ids: list[str], throttled_every: int) -> list[RunTelemetry]:
    """3,000 clean runs over the last ten minutes, then 150 in the last few seconds in which
    ``fetch_account`` fails one run in ``throttled_every`` with a 429."""
    now, built = time.time(), []
    for i in range(QUIET_RUNS + THROTTLED_RUNS):
        recent = i >= QUIET_RUNS
        failed = recent and i % throttled_every == 0
        started = now - 600 + i * 0.18 if not recent else now - 10 + (i - QUIET_RUNS) * 0.05
        parent = factories.trace(
            graph_id="support",
            version_id=version_id,
            started_at=started,
            status="error" if failed else "ok",
            error_type="RateLimitError" if failed else None,
        )
        spans = [
            factories.span(
                parent,
                node_id,
                status="error" if failed and node_id == "fetch_account" else "ok",
                error_type="RateLimitError" if failed and node_id == "fetch_account" else None,
            )
            for node_id in node_ids
        ]
        built.append(RunTelemetry(parent, spans))
    return built


async def test_a_throttling_onset_inside_the_window_is_diagnosed(sqlite_database_url: str) -> None:
    """Diluted over the whole window, a third of the last 150 runs failing is 1.6% of runs (a
    low-severity bottleneck); read since the change, it is a critical one at fetch_account."""
    deps = ActivityDeps.from_database_url(sqlite_database_url)
    spec = support_spec()
    version_id = deps.registry.register_graph(spec, []).version_id
    deps.telemetry.write_runs(runs(version_id, [n.id for n in spec.nodes], throttled_every=3))
    inp = AnalyzeInput(graph_id="support", version_id=version_id, window_s=3600, min_traces=100)
    result = await AnalysisActivities(deps).analyze_graph(inp)
    assert result.report["regime_change"] is not None
    assert "inside the window" in result.report["regime_change"]
    assert result.trace_count < QUIET_RUNS
    found = {(b.node_id, b.kind): b.severity for b in result.bottlenecks}
    assert found[("fetch_account", "errors")] == "critical"


async def test_a_steady_window_is_read_whole(sqlite_database_url: str) -> None:
    """No failure anywhere: no change, the whole window analysed."""
    deps = ActivityDeps.from_database_url(sqlite_database_url)
    spec = support_spec()
    version_id = deps.registry.register_graph(spec, []).version_id
    deps.telemetry.write_runs(runs(version_id, [n.id for n in spec.nodes], throttled_every=10**9))
    inp = AnalyzeInput(graph_id="support", version_id=version_id, window_s=3600, min_traces=100)
    result = await AnalysisActivities(deps).analyze_graph(inp)
    assert result.report["regime_change"] is None
    assert result.trace_count == QUIET_RUNS + THROTTLED_RUNS
