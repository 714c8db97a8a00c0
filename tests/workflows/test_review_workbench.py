"""The reviewer's workbench on the time-skipping server: a high-risk change waits with its dossier
in ``status`` and in the review store; ``spark review show`` and ``spark review list`` print it;
an unlisted reviewer is refused on the signal and the update paths; an approval never lets a
change that fails its A/B test ship.

Validation, the review activities and candidate building are the real ones on a SQLite database
holding a registered graph; telemetry analysis, the hypothesis and the A/B verdict are scripted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import ActivityDeps
from activities.candidate import CandidateActivities
from activities.hypotheses import HypothesisActivities
from activities.reviews import ReviewActivities
from examples.support_triage.graph import NODE_MODULES, build_spec
from spark.cli import main
from spark.registry import RegistryStore, ReviewStore
from spark.rsi.contracts import (
    CyclePlan,
    HypothesizeInput,
    HypothesizeResult,
    PlanCycleInput,
    ReviewDecision,
    ReviewRequest,
    RSIStatus,
    RSIWorkflowInput,
)
from spark.rsi.hypotheses import Hypothesis, SetConfig
from spark.rsi.review import GATES_AHEAD
from spark.temporal import rsi_workflow_id
from tests.workflows.fakes import FakeRSI
from workflows.rsi import RSIWorkflow


def _risky(graph_id: str, base_version_id: str) -> Hypothesis:
    """A model swap on the entry node: medium by its kind, raised to high (entry node)."""
    return Hypothesis(
        graph_id=graph_id,
        base_version_id=base_version_id,
        title="cheaper parse model",
        diagnosis="parse dominates cost",
        changes=[SetConfig(node_id="parse", values={"model": "small-parse"})],
        rationale="parse only extracts fields; a small model does that as well",
        primary_metric="cost",
        expected_effects={"cost": -0.4, "latency": -0.1},
    )


class Loops:
    """Graphs registered in the database (id -> base version), and the activities their loops
    run with."""

    def __init__(self, database_url: str, fake: FakeRSI, count: int = 1) -> None:
        self.fake = fake
        registry = RegistryStore(database_url)
        self.bases: dict[str, str] = {}
        for _ in range(count):
            graph_id = f"wb-{uuid.uuid4().hex[:8]}"
            spec = build_spec(graph_id)
            self.bases[graph_id] = registry.register_graph(spec, NODE_MODULES).version_id
        self.graph_ids = list(self.bases)
        self.deps = ActivityDeps.from_database_url(database_url)

    def activities(self) -> list[Callable[..., Any]]:
        """The fake loop, with the real validation, review and candidate activities and a
        scripted plan and hypothesis on the registered graph."""

        @activity.defn(name="plan_cycle")
        async def plan_cycle(inp: PlanCycleInput) -> CyclePlan:
            settings = self.fake.settings.model_copy(update=inp.overrides)
            base = self.bases[inp.graph_id]
            return CyclePlan(graph_id=inp.graph_id, active_version_id=base, settings=settings)

        @activity.defn(name="generate_hypotheses")
        async def generate_hypotheses(inp: HypothesizeInput) -> HypothesizeResult:
            return HypothesizeResult(hypotheses=[_risky(inp.graph_id, inp.version_id)])

        reviews = ReviewActivities(self.deps)
        real: list[Callable[..., Any]] = [
            plan_cycle,
            generate_hypotheses,
            HypothesisActivities(self.deps).validate_hypotheses,
            CandidateActivities(self.deps).create_candidate,
            reviews.open_review,
            reviews.close_review,
        ]
        replaced = {activity._Definition.must_from_callable(fn).name for fn in real}
        kept = [
            fn
            for fn in self.fake.activities()
            if activity._Definition.must_from_callable(fn).name not in replaced
        ]
        return kept + real


@asynccontextmanager
async def _running(
    env: WorkflowEnvironment, loops: Loops, settings: dict[str, Any] | None = None
) -> AsyncIterator[list[WorkflowHandle[Any, RSIStatus]]]:
    """A worker for ``loops`` and each graph's loop, awaiting review."""
    queue = uuid.uuid4().hex
    async with Worker(
        env.client, task_queue=queue, workflows=[RSIWorkflow], activities=loops.activities()
    ):
        handles = [
            await env.client.start_workflow(
                RSIWorkflow.run,
                RSIWorkflowInput(graph_id=graph_id, settings=settings or {}),
                id=rsi_workflow_id(graph_id),
                task_queue=queue,
            )
            for graph_id in loops.graph_ids
        ]
        try:
            for handle in handles:
                await _awaiting_review(handle)
            yield handles
        finally:  # a failed test must not leave a loop running on the shared test server
            for handle in handles:
                with contextlib.suppress(RPCError):
                    await handle.terminate("test finished")


async def _awaiting_review(handle: WorkflowHandle[Any, RSIStatus]) -> RSIStatus:
    for _ in range(400):
        status = await handle.query(RSIWorkflow.status)
        if status.awaiting_review and status.review is not None:
            return status
        await asyncio.sleep(0.05)
    raise AssertionError("the review never opened with its dossier")


async def test_high_risk_change_waits_with_its_dossier_in_status_and_store(
    time_skipping_env: WorkflowEnvironment, sqlite_database_url: str
) -> None:
    """The review shows operations, diff, risk and why, rationale, effects and evidence; it is
    stored pending, then approved with its reviewer, and the approved change ships."""
    fake = FakeRSI()
    loop = Loops(sqlite_database_url, fake)
    async with _running(time_skipping_env, loop) as [handle]:
        status = await handle.query(RSIWorkflow.status)
        dossier = status.review
        assert dossier is not None and status.phase == "awaiting_review"
        assert dossier.changes == ["set_config ['model'] on node 'parse'"]
        assert dossier.operations == [
            {"op": "set_config", "node_id": "parse", "values": {"model": "small-parse"}}
        ]
        assert "~ node 'parse' config.model: (absent) -> \"small-parse\"" in dossier.diff
        assert dossier.risk == "high"
        assert "raised one level: modifies the entry node 'parse'" in dossier.risk_reasons
        assert dossier.rationale.startswith("parse only extracts fields")
        assert dossier.expected_effects == {"cost": -0.4, "latency": -0.1}
        assert dossier.evidence == [GATES_AHEAD]
        assert "create_candidate" not in fake.calls
        [stored] = ReviewStore(sqlite_database_url).list(graph_id=loop.graph_ids[0])
        assert (stored.status, stored.title, stored.dossier["diff"]) == (
            "pending",
            "cheaper parse model",
            dossier.diff,
        )
        await handle.signal(RSIWorkflow.approve_review, ReviewDecision(reviewer="alice"))
        final = await handle.result()
    assert final.history[-1].outcome == "shipped"
    assert final.review is not None and final.review.state == "approved"
    [stored] = ReviewStore(sqlite_database_url).list(graph_id=loop.graph_ids[0])
    assert (stored.status, stored.reviewer) == ("approved", "alice")


async def test_unlisted_reviewer_is_refused_on_signal_and_update_and_the_change_waits(
    time_skipping_env: WorkflowEnvironment, sqlite_database_url: str
) -> None:
    """With ``reviewers: [alice]``, mallory's approval (signal) is listed as refused and her
    update fails with the reason; nothing is decided until alice approves."""
    fake = FakeRSI()
    loop = Loops(sqlite_database_url, fake)
    async with _running(time_skipping_env, loop, {"reviewers": ["alice"]}) as [handle]:
        await handle.signal(RSIWorkflow.approve_review, ReviewDecision(reviewer="mallory"))
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                RSIWorkflow.review, ReviewRequest(approve=True, reviewer="mallory")
            )
        assert "'mallory' is not an allowed reviewer" in str(refused.value.cause)
        status = await handle.query(RSIWorkflow.status)
        assert [m.name for m in status.refused_messages] == ["approve_review", "review"]
        assert all("not an allowed reviewer" in m.reason for m in status.refused_messages)
        assert status.awaiting_review and status.phase == "awaiting_review"
        assert status.review is not None and status.review.allowed_reviewers == ["alice"]
        assert "create_candidate" not in fake.calls
        await handle.execute_update(
            RSIWorkflow.review, ReviewRequest(approve=True, reviewer="alice")
        )
        final = await handle.result()
    assert final.history[-1].outcome == "shipped"
    assert final.review is not None and final.review.reviewer == "alice"


async def test_approval_never_ships_a_change_that_fails_its_ab_test(
    time_skipping_env: WorkflowEnvironment, sqlite_database_url: str
) -> None:
    """An approved change still goes through the A/B test; rejected there, nothing deploys."""
    fake = FakeRSI(ab_outcome="reject")
    loop = Loops(sqlite_database_url, fake)
    async with _running(time_skipping_env, loop) as [handle]:
        await handle.signal(RSIWorkflow.approve_review, ReviewDecision(reviewer="alice"))
        final = await handle.result()
    assert final.history[-1].outcome == "rejected_test"
    assert "replay_ab_test" in fake.calls and "deploy_version" not in fake.calls
    assert final.active_version_id == loop.bases[loop.graph_ids[0]]
    assert [a.outcome for a in fake.attempts] == ["rejected_test"]


async def test_spark_review_show_and_list_print_reviews_of_two_graphs(
    time_skipping_env: WorkflowEnvironment,
    sqlite_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``spark review show`` prints the open review (text and JSON) from the server;
    ``spark review list`` lists the stored reviews of both graphs, and filters them."""
    target = time_skipping_env.client.service_client.config.target_host
    monkeypatch.setenv("SPARK_DATABASE_URL", sqlite_database_url)
    monkeypatch.setenv("TEMPORAL_ADDRESS", target)
    loops = Loops(sqlite_database_url, FakeRSI(), count=2)
    first, second = loops.graph_ids
    async with _running(time_skipping_env, loops) as handles:
        assert await asyncio.to_thread(main, ["review", "show", first]) == 0
        text = capsys.readouterr().out
        assert "hypothesis h-" in text and "cheaper parse model" in text
        assert "risk: high" in text and "modifies the entry node 'parse'" in text
        assert 'config.model: (absent) -> "small-parse"' in text
        assert "expected effects (primary: cost): cost -40%, latency -10%" in text
        assert await asyncio.to_thread(main, ["review", "show", second, "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert (shown["graph_id"], shown["state"]) == (second, "pending")

        assert await asyncio.to_thread(main, ["review", "list", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)["reviews"]
        assert {r["graph_id"] for r in listed} == {first, second}
        await handles[0].signal(RSIWorkflow.reject_review, ReviewDecision(reviewer="bob"))
        await handles[0].result()
        args = ["review", "list", "--state", "rejected"]
        assert await asyncio.to_thread(main, args) == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 1 and first in lines[0] and "(by bob)" in lines[0]
        args = ["review", "list", "--graph", second, "--json"]
        assert await asyncio.to_thread(main, args) == 0
        [pending] = json.loads(capsys.readouterr().out)["reviews"]
        assert (pending["graph_id"], pending["status"]) == (second, "pending")
        await handles[1].signal(RSIWorkflow.reject_review, ReviewDecision(reviewer="bob"))
        await handles[1].result()
