"""Phase 0: resolve the graph, its active version and the cycle's effective settings, and hold
the graph's loop lease (one RSI loop per graph, whatever the workflow id)."""

from __future__ import annotations

from pydantic import ValidationError
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities._support import heartbeating, misuse_is_final, off_loop
from activities.deps import ActivityDeps
from spark.errors import InvalidInputError
from spark.registry.loops import LoopLeaseStore
from spark.rsi.contracts import (
    CyclePlan,
    PlanCycleInput,
    ReleaseLoopInput,
    RSISettings,
    describe_errors,
)


class PlanningActivities:
    """Reads the registry and the routing table; writes nothing."""

    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps
        self._leases = LoopLeaseStore(deps.database_url)

    @activity.defn(name="plan_cycle")
    @misuse_is_final
    @heartbeating
    async def plan_cycle(self, inp: PlanCycleInput) -> CyclePlan:
        """Fail at once for an unknown graph; merge graph metadata ``rsi`` with overrides; take
        (or renew) the graph's loop lease for this workflow, refusing a second loop with
        ``LoopAlreadyRunningError``."""
        plan = await off_loop(self._plan, inp)
        workflow_id = activity.info().workflow_id
        if workflow_id is not None:  # None only outside a workflow: no loop to guard
            await self._hold_lease(inp.graph_id, workflow_id)
        return plan

    @activity.defn(name="release_graph_loop")
    @heartbeating
    async def release_graph_loop(self, inp: ReleaseLoopInput) -> bool:
        """Give the graph's loop lease up when this workflow holds it (a loop that ends)."""
        workflow_id = activity.info().workflow_id
        if workflow_id is None:
            return False
        return await off_loop(self._leases.release, inp.graph_id, workflow_id)

    async def _hold_lease(self, graph_id: str, workflow_id: str) -> None:
        holder = await off_loop(self._leases.holder, graph_id)
        running = holder is not None and holder.workflow_id != workflow_id
        if running:
            assert holder is not None
            running = await _is_running(holder.workflow_id)
        await off_loop(self._leases.acquire, graph_id, workflow_id, lambda _: running)

    def _plan(self, inp: PlanCycleInput) -> CyclePlan:
        self._deps.registry.get_graph(inp.graph_id)
        routing = self._deps.routing.get(inp.graph_id)
        spec = self._deps.registry.get_version(routing.active_version_id).spec
        settings = effective_settings(spec.metadata.get("rsi", {}), inp.overrides)
        return CyclePlan(
            graph_id=inp.graph_id, active_version_id=routing.active_version_id, settings=settings
        )


def effective_settings(
    graph_defaults: dict[str, object], overrides: dict[str, object]
) -> RSISettings:
    """System defaults, overridden by the graph's ``rsi`` metadata, then by the workflow input."""
    try:
        return RSISettings.model_validate({**graph_defaults, **overrides})
    except ValidationError as exc:
        problems = describe_errors(exc.errors(include_url=False))
        raise InvalidInputError(f"invalid RSI settings: {problems}") from exc


async def _is_running(workflow_id: str) -> bool:
    """Whether the workflow holding a lease still runs (a terminated one cannot release it)."""
    handle = activity.client().get_workflow_handle(workflow_id)
    try:
        described = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return described.status == WorkflowExecutionStatus.RUNNING
