"""The online A/B activities on a real SQLite database with real runs through routing."""

from __future__ import annotations

import asyncio
import random
import time

from activities.deps import ActivityDeps
from activities.online_ab import OnlineABActivities
from spark.rsi.changes import apply_changes
from spark.rsi.contracts import (
    EndWindowInput,
    OnlineLookInput,
    OnlineWindowInput,
    RSISettings,
)
from spark.rsi.hypotheses import SetConfig
from tests.integration.scenario import client_for, register_with_traffic, send_requests

GRAPH = "online-activities"


async def test_open_look_close_a_window(sqlite_database_url: str) -> None:
    client = client_for(sqlite_database_url)
    base = await register_with_traffic(client, GRAPH, requests=300)
    spec = apply_changes(base.spec, [SetConfig(node_id="classify", values={"retries": 3})])
    candidate = client.registry.create_version(base.version_id, spec, author="test", note="retries")
    deps = ActivityDeps.from_database_url(sqlite_database_url)
    online = OnlineABActivities(deps)
    settings = RSISettings(ab_looks=3, ab_min_window_s=5, ab_max_window_s=60)
    window = OnlineWindowInput(
        graph_id=GRAPH,
        cycle=1,
        baseline_version_id=base.version_id,
        candidate_version_id=candidate.version_id,
        primary_metric="error_rate",
        settings=settings.model_copy(update={"routing_propagation_s": 1.2}),
    )

    start = await online.start_online_window(window)
    again = await online.start_online_window(window)  # a retried activity splits traffic once

    assert start.plan is not None and again.plan is not None
    routing = client.routing.get(GRAPH)
    assert routing.candidate_version_id == candidate.version_id
    assert routing.candidate_share == 0.5
    assert [e.action for e in client.routing.history(GRAPH)].count("set_candidate") == 1
    # 300 runs sent within seconds: the rate is read over the graph's life (>= 1 minute),
    # not diluted over the whole hour-long analysis window
    assert 300 * 60 * 0.9 <= start.plan.runs_per_hour <= 300 * 60
    # counting starts once clients' routing caches (TTL 1 s) have seen the split
    assert 1.2 <= start.started_at - routing.updated_at.timestamp() <= 1.21
    await asyncio.sleep(max(0.0, start.started_at - time.time()))
    await send_requests(client, GRAPH, 400, random.Random(3))
    look = await online.online_ab_look(
        OnlineLookInput(
            graph_id=GRAPH,
            baseline_version_id=base.version_id,
            candidate_version_id=candidate.version_id,
            primary_metric="error_rate",
            plan=start.plan,
            started_at=start.started_at,
            candidate_share=0.5,
            alpha=settings.alpha,
        )
    )
    assert look.outcome in {"continue", "ship"}
    assert look.n_baseline + look.n_candidate == 400
    assert min(look.n_baseline, look.n_candidate) > 120  # sticky keys split about half-half
    primary = next(m for m in look.metrics if m.name == "error_rate")
    assert primary.estimate < -0.5  # three retries cure most transient failures

    close = EndWindowInput(
        graph_id=GRAPH, cycle=1, candidate_version_id=candidate.version_id, reason="test"
    )
    await online.end_online_window(close)
    await online.end_online_window(close)
    assert client.routing.get(GRAPH).candidate_version_id is None
    assert [e.action for e in client.routing.history(GRAPH)].count("clear_candidate") == 1
    client.close()
