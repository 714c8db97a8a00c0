"""The worker's Prometheus endpoint: the SDK's metrics and the loop's own, scraped over HTTP
after a real cycle (scripted activities) on the time-skipping server."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
import uuid

from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from spark import temporal as wiring
from spark.observability.runtime import prometheus_runtime
from spark.rsi.contracts import ReviewDecision, RSIStatus, RSIWorkflowInput
from tests.conftest import register_search_attributes
from tests.workflows.fakes import FakeRSI
from workflows.rsi import RSIWorkflow

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrape(address: str) -> tuple[set[str], Samples]:
    """Metric family names, and every sample by name and labels (SDK labels dropped)."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        text = response.read().decode()
    names, samples = set(), {}
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        for sample in family.samples:
            labels = {
                k: v
                for k, v in sample.labels.items()
                if k in ("graph_id", "outcome", "kind", "strategy", "trigger", "verdict")
            }
            samples[(sample.name, frozenset(labels.items()))] = sample.value
    return names, samples


async def _phase(handle, phase: str) -> None:
    for _ in range(200):
        if (await handle.query(RSIWorkflow.status)).phase == phase:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached {phase!r}")


async def _reviewed_cycle_that_rolls_back(env: WorkflowEnvironment, graph_id: str) -> RSIStatus:
    fake, queue = FakeRSI(requires_review=True, health=["healthy", "regressed"]), uuid.uuid4().hex
    async with Worker(
        env.client, task_queue=queue, workflows=[RSIWorkflow], activities=fake.activities()
    ):
        handle = await env.client.start_workflow(
            RSIWorkflow.run,
            RSIWorkflowInput(graph_id=graph_id),
            id=f"rsi-{graph_id}",
            task_queue=queue,
        )
        await _phase(handle, "awaiting_review")
        await handle.signal(RSIWorkflow.approve_review, ReviewDecision(reviewer="bob"))
        return await handle.result()


async def test_worker_metrics_count_the_cycle_and_include_the_sdks() -> None:
    """After an approved, deployed, then rolled-back cycle, /metrics counts one cycle, its
    decision, the hypothesis by kind, the deployment, the health rollback and the review wait,
    next to the SDK's own metrics."""
    address = f"127.0.0.1:{_free_port()}"
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(wiring.test_server_path()),
        plugins=[wiring.SparkPlugin()],
        runtime=prometheus_runtime(address),
    )
    try:
        await register_search_attributes(env.client)
        status = await _reviewed_cycle_that_rolls_back(env, "metrics-g")
        names, samples = await asyncio.to_thread(_scrape, address)
    finally:
        await env.shutdown()
    assert status.history[-1].outcome == "rolled_back"
    graph = ("graph_id", "metrics-g")
    assert samples[("spark_cycles_total", frozenset({graph}))] == 1
    assert samples[("spark_decisions_total", frozenset({graph, ("outcome", "rolled_back")}))] == 1
    assert samples[("spark_hypotheses_total", frozenset({graph, ("kind", "set_config")}))] == 1
    assert samples[("spark_rollbacks_total", frozenset({graph, ("trigger", "health")}))] == 1
    deployed = [v for (name, _), v in samples.items() if name == "spark_deployments_total"]
    assert deployed == [1]
    review = frozenset({graph, ("verdict", "approved")})
    assert samples[("spark_review_wait_seconds_count", review)] == 1
    assert any(name.startswith("temporal_") for name in names)
