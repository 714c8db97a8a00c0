"""A full cycle with the real activities and a SQLite database, on the time-skipping server."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import ActivityDeps, build_activities
from spark.registry import DeploymentStore
from spark.rsi.contracts import RSIWorkflowInput
from tests.integration.scenario import client_for, register_with_traffic
from workflows.rsi import RSIWorkflow

SEVEN_DAYS = 7 * 86400


def _worker(env: WorkflowEnvironment, database_url: str, queue: str) -> Worker:
    deps = ActivityDeps.from_database_url(database_url)
    return Worker(
        env.client, task_queue=queue, workflows=[RSIWorkflow], activities=build_activities(deps)
    )


async def test_cycle_with_seven_day_monitoring_window(
    time_skipping_env: WorkflowEnvironment, sqlite_database_url: str
) -> None:
    """Telemetry → analysis → retry hypothesis → candidate → replay A/B → deploy → 7 days of
    monitoring on durable timers → learning, in seconds of wall time."""
    client = client_for(sqlite_database_url)
    original = await register_with_traffic(
        client, "ts-graph", rsi={"monitor_window_s": SEVEN_DAYS, "monitor_checks": 7}
    )
    queue = uuid.uuid4().hex
    start = await time_skipping_env.get_current_time()
    async with _worker(time_skipping_env, sqlite_database_url, queue):
        handle = await time_skipping_env.client.start_workflow(
            RSIWorkflow.run,
            RSIWorkflowInput(graph_id="ts-graph"),
            id=f"rsi-ts-{queue[:6]}",
            task_queue=queue,
        )
        status = await handle.result()
    elapsed = await time_skipping_env.get_current_time() - start
    cycle = status.history[-1]
    assert cycle.outcome == "shipped", cycle.reasons
    assert elapsed >= timedelta(days=7)
    active = client.routing.get("ts-graph").active_version_id
    assert active == cycle.candidate_version_id != original.version_id
    assert client.registry.get_version(active).spec.node("classify").config.retries > 0
    assert client.registry.get_version(active).parent_id == original.version_id
    deployments = DeploymentStore(sqlite_database_url).list("ts-graph")
    assert [d.status for d in deployments] == ["deployed"]
    client.close()


async def test_unknown_graph_fails_at_once(
    time_skipping_env: WorkflowEnvironment, sqlite_database_url: str
) -> None:
    """An unknown graph_id fails the workflow on the first attempt with a non-retryable error."""
    queue = uuid.uuid4().hex
    async with _worker(time_skipping_env, sqlite_database_url, queue):
        handle = await time_skipping_env.client.start_workflow(
            RSIWorkflow.run,
            RSIWorkflowInput(graph_id="no-such-graph"),
            id=f"rsi-missing-{queue[:6]}",
            task_queue=queue,
        )
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    activity_error = failure.value.cause
    assert isinstance(activity_error, ActivityError)
    app_error = activity_error.cause
    assert isinstance(app_error, ApplicationError)
    assert app_error.type == "UnknownGraphError" and app_error.non_retryable
    assert "no-such-graph" in app_error.message
