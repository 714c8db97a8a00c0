"""A real cycle stores the attempt's full record: the diff, every statistic with its interval,
the decision, the deployment steps and the monitoring checks (time-skipping server, real
activities, SQLite)."""

from __future__ import annotations

import uuid

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import ActivityDeps, build_activities
from spark.experience import ExperienceStore
from spark.rsi.contracts import RSIWorkflowInput
from tests.integration.scenario import client_for, register_with_traffic
from workflows.rsi import RSIWorkflow


async def test_a_shipped_cycle_stores_its_full_record(
    time_skipping_env: WorkflowEnvironment, sqlite_database_url: str
) -> None:
    """After a shipped cycle, ``spark history``'s store holds the hypothesis with its changes,
    the unified and structured diff of the candidate, the A/B statistics with intervals, the
    decision's reasons, the deployment's routing steps, the health checks and the touched
    nodes' characteristics; and patterns are learned for the graph and across graphs."""
    client = client_for(sqlite_database_url)
    await register_with_traffic(client, "rec-graph", rsi={"monitor_checks": 2})
    queue = uuid.uuid4().hex
    deps = ActivityDeps.from_database_url(sqlite_database_url)
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[RSIWorkflow],
        activities=build_activities(deps),
    ):
        status = await (
            await time_skipping_env.client.start_workflow(
                RSIWorkflow.run,
                RSIWorkflowInput(graph_id="rec-graph"),
                id=f"rsi-rec-{queue[:6]}",
                task_queue=queue,
            )
        ).result()
    cycle = status.history[-1]
    assert cycle.outcome == "shipped", cycle.reasons

    store = ExperienceStore(sqlite_database_url)
    [entry] = store.history("rec-graph")
    record = entry.record
    assert record is not None and record.outcome == "shipped"
    assert record.candidate_version_id == cycle.candidate_version_id
    assert record.hypothesis.changes and record.hypothesis.rationale
    assert record.diff is not None and record.diff.unified.startswith("--- rec-graph@base")
    assert record.diff.structured["nodes_changed"]
    assert record.test is not None and record.test.outcome == "ship"
    primary = next(m for m in record.test.metrics if m.name == record.hypothesis.primary_metric)
    assert primary.ci_low <= primary.estimate <= primary.ci_high
    assert record.decision_reasons == cycle.reasons
    assert record.validation is not None and record.validation.approved
    assert record.deployment is not None and record.deployment.status == "deployed"
    assert record.deployment.steps[-1].action == "set_active"
    assert record.deployment.steps[-1].active_version_id == cycle.candidate_version_id
    # no traffic reaches the new version after the rollout here: both checks say so
    assert record.monitoring is not None and record.monitoring.outcome == "shipped"
    assert [c.status for c in record.monitoring.checks] == ["insufficient_data"] * 2
    assert all(c.reasons for c in record.monitoring.checks)
    assert record.targets and record.targets[0].node_id in record.hypothesis.target_nodes
    scopes = {p.scope for p in store.learned_patterns("rec-graph")}
    assert scopes == {"rec-graph", "*"}
    client.close()
