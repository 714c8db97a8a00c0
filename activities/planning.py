"""Phase 0: resolve the graph, its active version and the cycle's effective settings."""

from __future__ import annotations

from pydantic import ValidationError
from temporalio import activity

from activities._support import misuse_is_final, off_loop
from activities.deps import ActivityDeps
from spark.errors import InvalidInputError
from spark.rsi.contracts import CyclePlan, PlanCycleInput, RSISettings


class PlanningActivities:
    """Reads the registry and the routing table; writes nothing."""

    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name="plan_cycle")
    @misuse_is_final
    async def plan_cycle(self, inp: PlanCycleInput) -> CyclePlan:
        """Fail at once for an unknown graph; merge graph metadata ``rsi`` with overrides."""
        return await off_loop(self._plan, inp)

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
        raise InvalidInputError(f"invalid RSI settings: {exc.errors(include_url=False)}") from exc
