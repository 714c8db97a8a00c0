"""Hypotheses and the closed set of typed change operations they are made of.

LLM output is untrusted data: it is parsed into these models or rejected; nothing in it runs.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from spark.graphs.spec import EdgeCondition, NodeConfig

Metric = Literal["latency", "error_rate", "cost", "quality"]
RiskLevel = Literal["low", "medium", "high", "critical"]
ChangeKind = Literal[
    "set_prompt",
    "set_config",
    "replace_node",
    "add_edge",
    "remove_edge",
    "reroute_edge",
    "parallelize",
    "add_cache",
    "add_fallback",
]
"""The closed set of change operations (each ``op`` below)."""
RISK_ORDER: dict[RiskLevel, int] = {"low": 0, "medium": 1, "high": 2, "critical": 3}


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SetPrompt(_Op):
    """Replace a node's prompt."""

    op: Literal["set_prompt"] = "set_prompt"
    node_id: str
    prompt: str = Field(min_length=1, max_length=10_000)


class SetConfig(_Op):
    """Set config fields (retries, timeout_s, cache_ttl_s, model, temperature...) of a node."""

    op: Literal["set_config"] = "set_config"
    node_id: str
    values: dict[str, Any] = Field(min_length=1)


class ReplaceNode(_Op):
    """Swap a node's implementation type, keeping its id, edges and data contract."""

    op: Literal["replace_node"] = "replace_node"
    node_id: str
    new_type: str = Field(min_length=1)
    config: NodeConfig | None = None


class AddEdge(_Op):
    """Add an edge between existing nodes."""

    op: Literal["add_edge"] = "add_edge"
    source: str
    target: str
    condition: EdgeCondition | None = None


class RemoveEdge(_Op):
    """Remove an existing edge."""

    op: Literal["remove_edge"] = "remove_edge"
    source: str
    target: str


class RerouteEdge(_Op):
    """Point an existing edge at a different target."""

    op: Literal["reroute_edge"] = "reroute_edge"
    source: str
    target: str
    new_target: str


class Parallelize(_Op):
    """Turn a chain of independent nodes into a fan-out from its head's predecessors and a fan-in
    into its tail's successors."""

    op: Literal["parallelize"] = "parallelize"
    node_ids: list[str] = Field(min_length=2)


class AddCache(_Op):
    """Cache a node's outputs by its inputs for ``ttl_s`` seconds."""

    op: Literal["add_cache"] = "add_cache"
    node_id: str
    ttl_s: float = Field(gt=0)


class AddFallback(_Op):
    """Call ``fallback_type`` when the node fails after its retries."""

    op: Literal["add_fallback"] = "add_fallback"
    node_id: str
    fallback_type: str = Field(min_length=1)


ChangeOp = Annotated[
    SetPrompt
    | SetConfig
    | ReplaceNode
    | AddEdge
    | RemoveEdge
    | RerouteEdge
    | Parallelize
    | AddCache
    | AddFallback,
    Field(discriminator="op"),
]


def touched_nodes(change: ChangeOp) -> set[str]:
    """Every node id a change reads or modifies (used for protection and blast radius)."""
    match change:
        case AddEdge() | RemoveEdge():
            return {change.source, change.target}
        case RerouteEdge():
            return {change.source, change.target, change.new_target}
        case Parallelize():
            return set(change.node_ids)
        case _:
            return {change.node_id}


class Hypothesis(BaseModel):
    """A proposed improvement: the diagnosis it answers, its changes and what it should move."""

    model_config = ConfigDict(extra="forbid")

    graph_id: str
    base_version_id: str
    title: str
    diagnosis: str
    changes: list[ChangeOp] = Field(min_length=1)
    rationale: str = ""
    primary_metric: Metric = "latency"
    expected_effects: dict[Metric, float] = Field(
        default_factory=dict, description="expected relative change per metric, e.g. -0.3"
    )
    risk: RiskLevel = "low"
    source: str = "rules"

    @property
    def hypothesis_id(self) -> str:
        """A stable id: the same changes on the same base version give the same id."""
        payload = json.dumps(
            [self.base_version_id, [c.model_dump(mode="json") for c in self.changes]],
            sort_keys=True,
        )
        return "h-" + hashlib.sha256(payload.encode()).hexdigest()[:16]

    @property
    def change_kinds(self) -> list[str]:
        """The operation names, in order."""
        return [change.op for change in self.changes]

    @property
    def target_nodes(self) -> list[str]:
        """Sorted ids of all nodes the hypothesis touches."""
        nodes: set[str] = set()
        for change in self.changes:
            nodes |= touched_nodes(change)
        return sorted(nodes)
