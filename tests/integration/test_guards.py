"""Guards a hostile or unlucky operator meets, on real stores and the real dev server: bad start
input fails at once naming the field (issue 8, item 2); one loop per graph whatever the
workflow id (item 7)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from spark.errors import LoopAlreadyRunningError
from spark.registry.loops import LoopLeaseStore
from spark.temporal import SparkPlugin
from tests.integration.conftest import WorkerProcess
from tests.integration.scenario import client_for, register_with_traffic
from tests.integration.test_devserver import temporal_cli, wait_for_phase


def test_lease_is_held_by_one_loop_until_it_stops_running(database_url: str) -> None:
    """The first loop takes the lease and renews it; a second is refused (naming the holder)
    while the first runs, takes it over once the first is gone; only the holder releases."""
    store = LoopLeaseStore(database_url)
    assert store.acquire("g", "loop-a", lambda _: True).workflow_id == "loop-a"
    assert store.acquire("g", "loop-a", lambda _: True).workflow_id == "loop-a"
    with pytest.raises(LoopAlreadyRunningError, match="loop-a"):
        store.acquire("g", "loop-b", lambda holder: holder == "loop-a")
    assert store.acquire("g", "loop-b", lambda _: False).workflow_id == "loop-b"
    assert not store.release("g", "loop-a")
    assert store.release("g", "loop-b")
    assert store.holder("g") is None


async def _start_cli(address: str, workflow_id: str, text: str) -> None:
    """``temporal workflow start --type RSIWorkflow --input TEXT``."""
    temporal_cli(
        address,
        "workflow",
        "start",
        "--task-queue",
        "spark-rsi",
        "--type",
        "RSIWorkflow",
        "--workflow-id",
        workflow_id,
        "--input",
        text,
    )


async def _failure_text(temporal: Client, workflow_id: str) -> str:
    """The failure chain of a workflow that must fail, as one string."""
    handle = temporal.get_workflow_handle(workflow_id)
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), timeout=60)
    texts: list[str] = []
    cause: BaseException | None = failure.value.cause
    while cause is not None:
        texts.append(str(cause))
        cause = cause.__cause__
    return " | ".join(texts)


async def test_cli_start_with_undecodable_input_fails_at_once(
    dev_server: str, worker_process: WorkerProcess
) -> None:
    """`temporal workflow start --input '{"graph_id": 5}'` (and `max_cycles: -1`, and the
    issue's `stage_hold_s: 1e15`) fail the workflow at once, naming the field, instead of
    retrying its first task forever or wedging later with routing half-changed."""
    worker_process.start()
    temporal = await Client.connect(dev_server, plugins=[SparkPlugin()])
    hold = '{"graph_id": "g", "settings": {"ab_mode": "replay", "stage_hold_s": 1e15}}'
    await _start_cli(dev_server, "bad-input-1", '{"graph_id": 5}')
    await _start_cli(dev_server, "bad-input-2", '{"graph_id": "g", "max_cycles": -1}')
    await _start_cli(dev_server, "bad-input-3", hold)
    assert "graph_id" in await _failure_text(temporal, "bad-input-1")
    assert "max_cycles" in await _failure_text(temporal, "bad-input-2")
    assert "stage_hold_s" in await _failure_text(temporal, "bad-input-3")


async def _wait_for_holder(store: LoopLeaseStore, graph_id: str, workflow_id: str) -> None:
    for _ in range(300):
        holder = store.holder(graph_id)
        if holder is not None and holder.workflow_id == workflow_id:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{workflow_id} never took the lease of {graph_id}")


async def test_second_loop_on_a_graph_is_refused_whatever_its_id(
    dev_server: str, worker_process: WorkerProcess, sqlite_database_url: str
) -> None:
    """A loop started under another id on a graph whose loop runs fails at its plan with a
    message naming the running loop; the client refuses before starting; once the first loop
    is terminated, a new one takes the graph over."""
    client = client_for(sqlite_database_url, address=dev_server)
    await register_with_traffic(client, "lease-graph", requests=40)
    worker_process.start()
    temporal = await client.temporal()
    store = LoopLeaseStore(sqlite_database_url)
    looping = '{"graph_id": "lease-graph", "continuous": true, "settings": {"interval_s": 3600}}'
    await _start_cli(dev_server, "loop-a", looping)
    await _wait_for_holder(store, "lease-graph", "loop-a")
    await _start_cli(dev_server, "loop-b", looping)
    refusal = await _failure_text(temporal, "loop-b")
    assert "already has a running RSI loop" in refusal and "loop-a" in refusal
    with pytest.raises(LoopAlreadyRunningError, match="loop-a"):
        await client.start_improvement("lease-graph")
    await temporal.get_workflow_handle("loop-a").terminate("test: first loop stopped")
    await _start_cli(dev_server, "loop-c", looping)
    await _wait_for_holder(store, "lease-graph", "loop-c")
    await temporal.get_workflow_handle("loop-c").terminate("test over")
    client.close()


async def _replay_attempts(handle: WorkflowHandle[Any, Any]) -> int:
    """How many attempts the replay A/B activity took (from the workflow's history)."""
    scheduled: set[int] = set()
    attempts = 0
    async for event in handle.fetch_history_events():
        kind = event.activity_task_scheduled_event_attributes.activity_type.name
        if kind == "replay_ab_test":
            scheduled.add(event.event_id)
        if event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            if started.scheduled_event_id in scheduled:
                attempts = max(attempts, started.attempt)
    return attempts


async def test_worker_killed_mid_replay_costs_a_heartbeat_not_the_activity_timeout(
    dev_server: str, worker_process: WorkerProcess, sqlite_database_url: str
) -> None:
    """SIGKILL the worker while the replay A/B test runs (its start-to-close is 30 minutes): the
    activity heartbeats, so a new worker picks it up after a 15 s heartbeat timeout and the
    cycle completes (the guard below is far under 30 minutes), deploying exactly once."""
    client = client_for(sqlite_database_url, address=dev_server)
    await register_with_traffic(client, "hb-graph", rsi={"replay_sample": 400})
    worker_process.start()
    handle = await client.start_improvement("hb-graph")
    await wait_for_phase(dev_server, handle.id, {"ab_testing"})
    worker_process.kill()
    await asyncio.sleep(0.5)
    worker_process.start()
    final = await asyncio.wait_for(handle.result(), timeout=240)
    assert final.history[-1].outcome in {"shipped", "rejected_test", "inconclusive"}
    assert await _replay_attempts(handle) == 2  # the killed attempt, then the one that finished
    switches = [
        e for e in client.routing.history("hb-graph") if e.idempotency_key.startswith("deploy:")
    ]
    assert len(switches) <= 1
    client.close()
