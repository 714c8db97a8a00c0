"""The reviewer's workbench end to end on the real dev server, with a ``python -m spark.worker``
subprocess and the real CLI: a high-risk change (a model swap on the entry node, proposed by the
rules from a declared alternative) waits; ``spark review show`` prints its diff and why it is
high risk; a reviewer the graph does not list is refused; an allowed one approves; the cycle
ships; ``spark status`` and ``spark history`` show it."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import pytest

from spark.client import SparkClient
from spark.graphs.spec import GraphSpec, parse_graph_spec
from tests.integration.conftest import ROOT, WorkerProcess
from tests.integration.scenario import FAST_RSI, client_for

pytestmark = pytest.mark.devserver

GRAPH_ID = "workbench-graph"
NODE_MODULES = ["tests.integration.review_nodes"]
SPARK = ROOT / ".venv" / "bin" / "spark"
REQUESTS = 120


def workbench_spec() -> GraphSpec:
    """draft (entry, slow-model, fast-model declared) -> polish; only alice may review."""
    return parse_graph_spec(
        {
            "id": GRAPH_ID,
            "entry": "draft",
            "inputs": ["question"],
            "nodes": [
                {"id": "draft", "type": "workbench.draft", "inputs": ["question"],
                 "outputs": ["draft"],
                 "config": {"model": "slow-model", "params": {
                     "alternatives": [{"model": "fast-model", "latency_factor": 0.2}]}}},
                {"id": "polish", "type": "workbench.polish", "inputs": ["draft"],
                 "outputs": ["answer"]},
            ],
            "edges": [{"source": "draft", "target": "polish"}],
            "metadata": {"rsi": {**FAST_RSI, "reviewers": ["alice"], "review_timeout_s": 600}},
        }
    )  # fmt: skip


def spark_cli(worker: WorkerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``spark`` command, configured like the worker (server, queue, database)."""
    env = {**worker.env, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [str(SPARK), *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


async def status_in(worker: WorkerProcess, phases: set[str], timeout_s: float = 120) -> Any:
    """``spark status GRAPH`` (JSON) once its phase is one of ``phases``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        done = spark_cli(worker, "status", GRAPH_ID)
        if done.returncode == 0 and json.loads(done.stdout)["phase"] in phases:
            return json.loads(done.stdout)
        await asyncio.sleep(0.5)
    raise AssertionError(f"{GRAPH_ID} never reached {phases}: {done.stdout} {done.stderr}")


async def serve(client: SparkClient) -> None:
    """Production traffic on the registered graph (telemetry flushed)."""
    for start in range(0, REQUESTS, 20):
        await asyncio.gather(
            *(
                client.run(GRAPH_ID, {"question": f"q{n}"}, routing_key=f"c{n}")
                for n in range(start, start + 20)
            )
        )
    client.flush()


async def test_a_high_risk_change_waits_for_an_allowed_reviewer_then_ships(
    dev_server: str, worker_process: WorkerProcess, sqlite_database_url: str
) -> None:
    """Waits at high risk; show prints the diff; mallory is refused and nothing changes; alice
    approves; the cycle ships the model swap; status and history show it."""
    client = client_for(sqlite_database_url, address=dev_server)
    base = client.register_graph(workbench_spec(), NODE_MODULES)
    await serve(client)
    worker_process.start()
    handle = await client.start_improvement(GRAPH_ID)
    try:
        waiting = await status_in(worker_process, {"awaiting_review"})
        assert waiting["review"]["risk"] == "high"

        shown = spark_cli(worker_process, "review", "show", GRAPH_ID)
        assert shown.returncode == 0, shown.stderr
        assert "risk: high" in shown.stdout and "entry node" in shown.stdout
        diff = shown.stdout.split("\ndiff:\n", 1)[1].splitlines()
        assert diff[0].startswith(f"graph {GRAPH_ID!r}: {base.version_id} -> candidate"), diff
        assert '~ node \'draft\' config.model: "slow-model" -> "fast-model"' in diff

        refused = spark_cli(worker_process, "review", GRAPH_ID, "approve", "--reviewer", "mallory")
        assert refused.returncode != 0
        assert "mallory" in refused.stderr and "alice" in refused.stderr
        still = await status_in(worker_process, {"awaiting_review"})
        assert still["candidate_version_id"] is None

        approved = spark_cli(worker_process, "review", GRAPH_ID, "approve", "--reviewer", "alice")
        assert approved.returncode == 0, approved.stderr
        assert approved.stdout.startswith("approved ") and "(by alice)" in approved.stdout

        final = await asyncio.wait_for(handle.result(), timeout=240)
    finally:
        client.close()
    summary = final.history[-1]
    assert summary.outcome == "shipped", summary.reasons
    done = await status_in(worker_process, {"done"})
    assert done["active_version_id"] == summary.candidate_version_id != base.version_id
    history = spark_cli(worker_process, "history", GRAPH_ID)
    assert history.returncode == 0, history.stderr
    assert f"cycle 1 shipped: {summary.hypothesis_title}" in history.stdout
    assert "risk high" in history.stdout and "review: approved by alice" in history.stdout
