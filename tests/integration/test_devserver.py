"""Against the real dev server: the CLI contract, and a worker killed mid-monitoring."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess

from spark.registry import DeploymentStore
from spark.temporal import dev_server_path
from tests.integration.conftest import WorkerProcess
from tests.integration.scenario import client_for, register_with_traffic, send_requests


def temporal_cli(address: str, *args: str) -> str:
    """Run the real ``temporal`` CLI against the dev server; returns stdout."""
    command = [str(dev_server_path()), *args, "--address", address]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def wait_for_phase(
    address: str, workflow_id: str, phases: set[str], timeout_s: float = 90
) -> dict:
    """Poll the ``status`` query through the CLI until the phase is one of ``phases``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        try:
            out = temporal_cli(
                address,
                "workflow",
                "query",
                "--workflow-id",
                workflow_id,
                "--type",
                "status",
                "--output",
                "json",
            )
            status = json.loads(out)["queryResult"][0]
            if status["phase"] in phases:
                return status
        except AssertionError:
            pass  # the workflow may not have had its first task yet
        await asyncio.sleep(0.3)
    raise AssertionError(f"{workflow_id} never reached {phases}")


async def test_cli_start_completes_a_cycle_and_query_shows_phase(
    dev_server: str, worker_process: WorkerProcess, sqlite_database_url: str
) -> None:
    """`temporal workflow start --type RSIWorkflow --input '{"graph_id": ...}'` runs a cycle;
    `temporal workflow query --type status` reports the phase; the result says what shipped."""
    client = client_for(sqlite_database_url, address=dev_server)
    await register_with_traffic(client, "cli-graph")
    worker_process.start()
    temporal_cli(
        dev_server,
        "workflow",
        "start",
        "--task-queue",
        "spark-rsi",
        "--type",
        "RSIWorkflow",
        "--workflow-id",
        "rsi-cli-graph",
        "--input",
        '{"graph_id": "cli-graph"}',
    )
    seen = await wait_for_phase(
        dev_server, "rsi-cli-graph", {"ab_testing", "deploying", "monitoring", "done"}
    )
    assert seen["graph_id"] == "cli-graph"
    result = json.loads(
        temporal_cli(
            dev_server, "workflow", "result", "--workflow-id", "rsi-cli-graph", "--output", "json"
        )
    )
    final = result["result"]
    assert final["phase"] == "done"
    assert final["history"][-1]["outcome"] == "shipped"
    listed = temporal_cli(
        dev_server,
        "workflow",
        "list",
        "--query",
        "RsiGraphId='cli-graph' AND RsiDecision='shipped'",
    )
    assert "rsi-cli-graph" in listed
    client.close()


async def test_started_loops_carry_a_memo_for_the_web_ui(
    dev_server: str, sqlite_database_url: str
) -> None:
    """``start_improvement`` attaches the graph, its owner and the starting version as memo."""
    client = client_for(sqlite_database_url, address=dev_server)
    version = await register_with_traffic(client, "memo-graph", requests=20)
    handle = await client.start_improvement("memo-graph", settings={"min_traces": 10_000})
    memo = await (await handle.describe()).memo()
    assert memo == {
        "graph_id": "memo-graph",
        "started_from_version": version.version_id,
        "owner": "support-platform",
    }
    await handle.terminate("test over")
    client.close()


async def test_worker_killed_during_monitoring_deploys_exactly_once(
    dev_server: str, worker_process: WorkerProcess, sqlite_database_url: str
) -> None:
    """SIGKILL the worker while the monitoring timer runs; a new worker finishes the cycle and
    exactly one deployment (and one routing switch) is recorded."""
    client = client_for(sqlite_database_url, address=dev_server)
    original = await register_with_traffic(
        client, "kill-graph", rsi={"monitor_window_s": 8, "monitor_checks": 2}
    )
    worker_process.start()
    handle = await client.start_improvement("kill-graph")
    await wait_for_phase(dev_server, handle.id, {"monitoring"})
    worker_process.kill()
    await asyncio.sleep(1.0)
    worker_process.start()
    final = await asyncio.wait_for(handle.result(), timeout=120)
    assert final.history[-1].outcome == "shipped"
    deployments = DeploymentStore(sqlite_database_url).list("kill-graph")
    assert len(deployments) == 1 and deployments[0].status == "deployed"
    switches = [
        e for e in client.routing.history("kill-graph") if e.idempotency_key.startswith("deploy:")
    ]
    assert len(switches) == 1
    assert client.routing.get("kill-graph").active_version_id != original.version_id
    client.close()


async def test_online_window_splits_live_traffic_and_ships_on_evidence(
    dev_server: str, worker_process: WorkerProcess, sqlite_database_url: str
) -> None:
    """With ``ab_mode=online`` the candidate gets half of live traffic (sticky by routing key)
    for a window on durable timers; the engine ships the retry fix on the runs of both arms,
    and a gradual rollout takes it the rest of the way."""
    client = client_for(sqlite_database_url, address=dev_server)
    original = await register_with_traffic(
        client,
        "online-graph",
        requests=400,
        rsi={
            "ab_mode": "online",
            "ab_looks": 3,
            "ab_min_window_s": 6,
            "ab_max_window_s": 9,
            "routing_propagation_s": 1.5,
            "strategy": "gradual",
            "rollout_steps": [0.25, 0.75],
            "stage_hold_s": 3,
        },
    )
    worker_process.start()
    handle = await client.start_improvement("online-graph")
    stop = asyncio.Event()

    async def traffic() -> None:
        rng = random.Random(5)
        while not stop.is_set():
            await send_requests(client, "online-graph", 24, rng)

    sender = asyncio.create_task(traffic())
    try:
        final = await asyncio.wait_for(handle.result(), timeout=150)
    finally:
        stop.set()
        await sender
    summary = final.history[-1]
    assert summary.outcome == "shipped", summary.reasons
    events = client.routing.history("online-graph")
    opened = [e for e in events if e.idempotency_key.endswith(":open")]
    assert len(opened) == 1 and opened[0].candidate_share == 0.5
    # the window judged 50%: the 25% stage is skipped, the 75% stage is held and judged side
    # by side on live traffic, then all traffic moves
    deploys = [e for e in events if e.idempotency_key.startswith("deploy:")]
    assert [(e.action, e.candidate_share) for e in deploys] == [
        ("set_candidate", 0.75),
        ("set_active", 0.0),
    ]
    arms = client.telemetry.assignment_counts("online-graph", since=0, until=2e9)
    assert arms.get("candidate", 0) > 100 and arms.get("active", 0) > 100
    assert client.routing.get("online-graph").active_version_id != original.version_id
    client.close()
