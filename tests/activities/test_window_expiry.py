"""An online window's routing expires at its cap by itself: with no worker to close it,
clients stop sending the candidate traffic, and a late look counts no run after the cap."""

from __future__ import annotations

import asyncio
import random
import time

from activities.deps import ActivityDeps
from activities.online_ab import OnlineABActivities
from spark.rsi.changes import apply_changes
from spark.rsi.contracts import OnlineLookInput, OnlineWindowInput, RSISettings
from spark.rsi.hypotheses import SetConfig
from tests.integration.scenario import client_for, register_with_traffic, send_requests

GRAPH = "window-expiry"


async def test_window_exposure_ends_at_its_cap_without_a_worker(sqlite_database_url: str) -> None:
    """The window opens with an expiry at started_at + window_s; after it, requests go to the
    active version although nothing closed the window, and a look made late counts only the
    runs inside the window."""
    client = client_for(sqlite_database_url)
    base = await register_with_traffic(client, GRAPH, requests=300)
    spec = apply_changes(base.spec, [SetConfig(node_id="classify", values={"retries": 3})])
    candidate = client.registry.create_version(base.version_id, spec, author="test", note="r")
    online = OnlineABActivities(ActivityDeps.from_database_url(sqlite_database_url))
    settings = RSISettings(
        ab_looks=2, ab_min_window_s=2, ab_max_window_s=3, routing_propagation_s=0.5
    )
    window = OnlineWindowInput(
        graph_id=GRAPH,
        cycle=1,
        baseline_version_id=base.version_id,
        candidate_version_id=candidate.version_id,
        primary_metric="error_rate",
        settings=settings,
    )
    start = await online.start_online_window(window)
    assert start.plan is not None and start.ends_at is not None
    assert abs((start.ends_at - start.started_at) - start.plan.window_s) < 0.1

    await asyncio.sleep(max(0.0, start.started_at - time.time()))
    await send_requests(client, GRAPH, 200, random.Random(5))
    inside = client.telemetry.arm_moments(
        GRAPH, candidate.version_id, since=start.started_at, routing_arm="candidate"
    ).runs
    assert inside > 0
    await asyncio.sleep(max(0.0, start.ends_at - time.time()) + 1.1)  # + the cache's TTL
    await send_requests(client, GRAPH, 200, random.Random(6))

    routing = client.routing.get(GRAPH)
    assert routing.candidate_version_id == candidate.version_id  # nobody closed the window
    assert routing.serving_share() == 0.0
    after_cap = client.telemetry.arm_moments(
        GRAPH, candidate.version_id, since=start.ends_at, routing_arm="candidate"
    ).runs
    assert after_cap == 0

    look = await online.online_ab_look(
        OnlineLookInput(
            graph_id=GRAPH,
            baseline_version_id=base.version_id,
            candidate_version_id=candidate.version_id,
            primary_metric="error_rate",
            plan=start.plan,
            started_at=start.started_at,
            ends_at=start.ends_at,
            candidate_share=settings.ab_candidate_share,
            alpha=settings.alpha,
            final=True,
        )
    )
    assert look.n_candidate == inside
    assert look.n_baseline + look.n_candidate <= 200
