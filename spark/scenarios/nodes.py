"""The node module of scenario graphs: one simulated implementation registered under every
node type a scenario uses.

A scenario is registered with ``node_modules=["spark.scenarios.nodes"]``. The process running the
scenario calls ``install``; a worker process imports this module with ``SPARK_SCENARIO_FILE``
(and ``SPARK_SCENARIO_STATE``, the shared cycle file) in its environment and installs the same
scenario, so replays in the worker behave like production.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from spark.graphs.registry import NodeContext, NodeRegistry, default_registry
from spark.scenarios.behaviour import Simulation
from spark.scenarios.model import Scenario, load_scenario

MODULE = __name__
SCENARIO_ENV = "SPARK_SCENARIO_FILE"
STATE_ENV = "SPARK_SCENARIO_STATE"

_SIMULATIONS: dict[str, Simulation] = {}


async def simulated_node(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
    """Run one call of the node as its graph's scenario describes."""
    return await _SIMULATIONS[ctx.graph_id].call(inputs, ctx)


def node_types(scenario: Scenario) -> list[str]:
    """Every type the scenario may run: its nodes', its fallback candidates' and ``types``."""
    types = {node.type for node in scenario.graph.nodes} | set(scenario.types)
    for node in scenario.graph.nodes:
        if node.config.fallback:
            types.add(node.config.fallback)
        candidates = node.config.params.get("fallback_candidates") or []
        types.update(c for c in ([candidates] if isinstance(candidates, str) else candidates))
    return sorted(t for t in types if isinstance(t, str) and t)


def install(
    scenario: Scenario, state_file: Path | None = None, registry: NodeRegistry | None = None
) -> Simulation:
    """Make the scenario's graph runnable in this process; returns its simulation."""
    simulation = Simulation(scenario, state_file)
    _SIMULATIONS[scenario.graph.id] = simulation
    target = registry if registry is not None else default_registry()
    for type_name in node_types(scenario):
        target.register(type_name, simulated_node)
    return simulation


def _install_from_environment() -> None:
    path = os.environ.get(SCENARIO_ENV)
    if path:
        state = os.environ.get(STATE_ENV)
        install(load_scenario(path), Path(state) if state else None)


_install_from_environment()
