"""The graph model: a JSON-serialisable, validated description of a production graph.

A ``GraphSpec`` is data only. The runtime (``spark.graphs.runtime``) executes it through the node
registry; RSI change operations (``spark.rsi.changes``) produce new specs from old ones. Validation
errors always name the offending node or edge and the field.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from spark.errors import InvalidGraphSpecError

if TYPE_CHECKING:  # networkx is imported where a graph is built: the workflow side never needs it
    import networkx as nx

NodeTag = Literal["protected", "side_effects", "idempotent", "deterministic"]
"""Node properties: ``protected`` (config, implementation and activation are frozen),
``side_effects`` (acts on the world: never cached, never re-run by replay), ``idempotent`` (safe
to retry even with side effects), ``deterministic`` (the output is a pure function of the declared
inputs: not of time, randomness or outside state; the only nodes a cache may answer for). Not
declaring ``deterministic`` means "not deterministic", the safe default for LLM and tool nodes."""
ConditionOp = Literal["eq", "ne", "in", "not_in", "truthy", "falsy"]

_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_.\-]{0,127}$"


class NodeConfig(BaseModel):
    """Per-node policy and model settings; a config-only change alters behaviour without code."""

    model_config = ConfigDict(extra="forbid")

    prompt: str | None = Field(default=None, max_length=20_000)
    model: str | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    timeout_s: float | None = Field(default=None, gt=0.0, le=3600.0)
    retries: int = Field(default=0, ge=0, le=10)
    backoff_s: float = Field(default=0.05, ge=0.0, le=60.0)
    cache_ttl_s: float | None = Field(default=None, gt=0.0)
    fallback: str | None = Field(
        default=None, description="node type called when all attempts fail"
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="implementation-specific knobs"
    )


class NodeSpec(BaseModel):
    """One node: a registered implementation type plus its config, data contract and tags."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_ID_PATTERN)
    type: str = Field(min_length=1)
    config: NodeConfig = Field(default_factory=NodeConfig)
    inputs: list[str] = Field(default_factory=list, description="state fields the node reads")
    outputs: list[str] = Field(default_factory=list, description="state fields the node writes")
    tags: list[NodeTag] = Field(default_factory=list)
    description: str = ""

    @field_validator("tags")
    @classmethod
    def _sorted_unique_tags(cls, tags: list[NodeTag]) -> list[NodeTag]:
        return sorted(set(tags))

    def has_tag(self, tag: NodeTag) -> bool:
        """Whether the node carries ``tag``."""
        return tag in self.tags


class EdgeCondition(BaseModel):
    """A declarative, non-executable condition on the graph state (never code)."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(min_length=1)
    op: ConditionOp = "eq"
    value: Any = None

    def holds(self, state: dict[str, Any]) -> bool:
        """Evaluate the condition against the current graph state."""
        actual = state.get(self.field)
        match self.op:
            case "eq":
                return bool(actual == self.value)
            case "ne":
                return bool(actual != self.value)
            case "in":
                return actual in (self.value or [])
            case "not_in":
                return actual not in (self.value or [])
            case "truthy":
                return bool(actual)
            case "falsy":
                return not actual


class EdgeSpec(BaseModel):
    """A directed edge; with a condition it is taken only when the condition holds."""

    model_config = ConfigDict(extra="forbid")

    source: str
    target: str
    condition: EdgeCondition | None = None

    @property
    def key(self) -> tuple[str, str]:
        """The (source, target) pair that identifies the edge."""
        return (self.source, self.target)


class GraphSpec(BaseModel):
    """A whole graph: nodes, edges, entry node(s), declared inputs and free metadata.

    ``entry`` is the node a run starts at. A graph that starts with a fan-out lists all its
    entry nodes in ``entry_nodes`` (``entry`` then defaults to the first and must be one of
    them); every entry runs on the request's inputs, concurrently. ``entries`` gives them either
    way. A single-entry spec leaves ``entry_nodes`` empty and hashes as before it existed.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_ID_PATTERN)
    entry: str
    entry_nodes: list[str] = Field(
        default_factory=list, description="every entry node, when the graph has several"
    )
    nodes: list[NodeSpec] = Field(min_length=1)
    edges: list[EdgeSpec] = Field(default_factory=list)
    inputs: list[str] = Field(default_factory=list, description="fields a request must provide")
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _default_entry(cls, data: Any) -> Any:
        if isinstance(data, dict) and "entry" not in data and data.get("entry_nodes"):
            return {**data, "entry": data["entry_nodes"][0]}
        return data

    @model_validator(mode="after")
    def _check_structure(self) -> GraphSpec:
        if self.entry_nodes == [self.entry]:
            self.entry_nodes = []  # one entry: the single-entry form (same hash)
        check_structure(self)
        return self

    @property
    def entries(self) -> list[str]:
        """The entry nodes: ``entry_nodes`` when the graph has several, else ``[entry]``."""
        return list(self.entry_nodes) if self.entry_nodes else [self.entry]

    def is_entry(self, node_id: str) -> bool:
        """Whether ``node_id`` is an entry node (runs on the request's inputs)."""
        return node_id == self.entry or node_id in self.entry_nodes

    def node(self, node_id: str) -> NodeSpec:
        """The node with ``node_id``; raises ``InvalidGraphSpecError`` when absent."""
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise InvalidGraphSpecError(f"graph {self.id!r} has no node {node_id!r}")

    def has_node(self, node_id: str) -> bool:
        """Whether a node with ``node_id`` exists."""
        return any(node.id == node_id for node in self.nodes)

    def to_networkx(self) -> nx.DiGraph:
        """The spec as a networkx DiGraph (node ids only)."""
        return _digraph(self)

    def predecessors(self, node_id: str) -> list[str]:
        """Ids of the nodes with an edge into ``node_id``."""
        return [edge.source for edge in self.edges if edge.target == node_id]

    def successors(self, node_id: str) -> list[str]:
        """Ids of the nodes ``node_id`` has an edge to."""
        return [edge.target for edge in self.edges if edge.source == node_id]

    def canonical_json(self) -> str:
        """Deterministic JSON used for hashing and storage."""
        data = self.model_dump(mode="json", exclude=None if self.entry_nodes else {"entry_nodes"})
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def content_hash(self) -> str:
        """SHA-256 of the canonical JSON: equal specs hash equally."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


def parse_graph_spec(data: dict[str, Any] | str) -> GraphSpec:
    """Parse and validate a spec, turning pydantic errors into ``InvalidGraphSpecError``."""
    try:
        if isinstance(data, str):
            return GraphSpec.model_validate_json(data)
        return GraphSpec.model_validate(data)
    except ValidationError as exc:
        raise InvalidGraphSpecError(_describe_validation_error(exc, data)) from exc


def _describe_validation_error(exc: ValidationError, data: dict[str, Any] | str) -> str:
    raw = _loads_or_none(data) if isinstance(data, str) else data
    parts = []
    for err in exc.errors():
        location = list(err["loc"])
        where = ".".join(str(p) for p in location) or "spec"
        if len(location) >= 2 and location[0] == "nodes" and isinstance(location[1], int):
            nodes = raw.get("nodes", []) if isinstance(raw, dict) else []
            if location[1] < len(nodes) and isinstance(nodes[location[1]], dict):
                where += f" (node {nodes[location[1]].get('id')!r})"
        parts.append(f"{where}: {err['msg']}")
    return "invalid graph spec: " + "; ".join(parts)


def _loads_or_none(text: str) -> Any:
    """``text`` as JSON, or None when it is not JSON (pydantic already said why)."""
    try:
        return json.loads(text)
    except ValueError:
        return None


def check_structure(spec: GraphSpec) -> None:
    """Raise ``ValueError`` (pydantic turns it into a validation error) on structural faults."""
    ids = [node.id for node in spec.nodes]
    duplicates = sorted(i for i, count in Counter(ids).items() if count > 1)
    if duplicates:
        raise ValueError(f"nodes: duplicate node id(s) {duplicates}")
    _check_entries(spec, set(ids))
    _check_edges(spec, set(ids))
    successors = _successors(spec)
    order = _check_acyclic(spec, successors)
    _check_reachable(spec, successors)
    _check_data_flow(spec, successors, order)


def _check_edges(spec: GraphSpec, ids: set[str]) -> None:
    seen: set[tuple[str, str]] = set()
    for edge in spec.edges:
        for end in (edge.source, edge.target):
            if end not in ids:
                raise ValueError(
                    f"edges: edge {edge.source!r}->{edge.target!r} names unknown node {end!r}"
                )
        if edge.key in seen:
            raise ValueError(f"edges: duplicate edge {edge.source!r}->{edge.target!r}")
        if edge.source == edge.target:
            raise ValueError(f"edges: self-loop on node {edge.source!r}")
        seen.add(edge.key)
    for edge in spec.edges:
        if spec.is_entry(edge.target):
            raise ValueError(f"entry: entry node {edge.target!r} must have no incoming edge")


def _check_entries(spec: GraphSpec, ids: set[str]) -> None:
    duplicates = sorted(i for i, count in Counter(spec.entry_nodes).items() if count > 1)
    if duplicates:
        raise ValueError(f"entry_nodes: duplicate entry node(s) {duplicates}")
    if spec.entry_nodes and spec.entry not in spec.entry_nodes:
        raise ValueError(f"entry: node {spec.entry!r} is not one of entry_nodes")
    for entry in spec.entries:
        if entry not in ids:
            raise ValueError(f"entry: node {entry!r} does not exist")


def _digraph(spec: GraphSpec) -> nx.DiGraph:
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_nodes_from(node.id for node in spec.nodes)
    graph.add_edges_from(edge.key for edge in spec.edges)
    return graph


def _successors(spec: GraphSpec) -> dict[str, list[str]]:
    """Each node's successors (plain dicts: every check below is one linear pass over them)."""
    successors: dict[str, list[str]] = {node.id: [] for node in spec.nodes}
    for edge in spec.edges:
        successors[edge.source].append(edge.target)
    return successors


def _check_acyclic(spec: GraphSpec, successors: dict[str, list[str]]) -> list[str]:
    """The nodes in topological order (Kahn); a cycle is named from networkx on failure."""
    indegree = dict.fromkeys(successors, 0)
    for targets in successors.values():
        for target in targets:
            indegree[target] += 1
    ready = [node_id for node_id, degree in indegree.items() if degree == 0]
    order: list[str] = []
    while ready:
        node_id = ready.pop()
        order.append(node_id)
        for target in successors[node_id]:
            indegree[target] -= 1
            if indegree[target] == 0:
                ready.append(target)
    if len(order) < len(successors):
        import networkx as nx

        cycle = nx.find_cycle(_digraph(spec))
        raise ValueError(f"edges: graph must be acyclic; cycle through {[a for a, _ in cycle]}")
    return order


def _check_reachable(spec: GraphSpec, successors: dict[str, list[str]]) -> None:
    reached, frontier = set(spec.entries), list(spec.entries)
    while frontier:
        for target in successors[frontier.pop()]:
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    unreachable = sorted(set(successors) - reached)
    if unreachable:
        raise ValueError(
            f"nodes: node(s) {unreachable} unreachable from entry node(s) {spec.entries}"
        )


def _check_data_flow(spec: GraphSpec, successors: dict[str, list[str]], order: list[str]) -> None:
    """Every field a node reads is a graph input or an output of one of its ancestors.

    One topological pass: each node's upstream fields, as a bitmask over the fields some node
    reads, are its predecessors' upstream fields and outputs (linear in nodes and edges, times
    the mask width), instead of a walk of every node's ancestors (quadratic and worse)."""
    graph_inputs = set(spec.inputs)
    read = sorted({field for node in spec.nodes for field in node.inputs} - graph_inputs)
    bit = {field: 1 << index for index, field in enumerate(read)}
    provides = {node.id: _mask(node.outputs, bit) for node in spec.nodes}
    upstream = dict.fromkeys(provides, 0)
    for node_id in order:
        reached = upstream[node_id] | provides[node_id]
        for successor in successors[node_id]:
            upstream[successor] |= reached
    for node in spec.nodes:
        missing = sorted(
            f for f in set(node.inputs) - graph_inputs if not upstream[node.id] & bit[f]
        )
        if missing:
            raise ValueError(
                f"nodes: node {node.id!r} reads input field(s) {missing} that no upstream node "
                "or graph input provides"
            )


def _mask(fields: list[str], bit: dict[str, int]) -> int:
    mask = 0
    for field in fields:
        mask |= bit.get(field, 0)
    return mask
