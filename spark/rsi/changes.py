"""Apply typed change operations to a graph spec, strictly, and summarise how two specs differ.

Every change must take effect. An unknown node, a missing or duplicate edge, an unknown config key,
an invalid config value or a change that alters nothing raises ``InvalidChangeError`` naming the
change (its position and operation) and the node or edge. The batch is then re-validated as a whole
through ``parse_graph_spec`` (acyclic, reachable from the entry, data flow satisfied), so a batch
that leaves the graph broken is refused with the validation message. Inputs are never mutated.

Precise effects:

- ``set_prompt`` / ``set_config`` / ``add_cache`` / ``add_fallback``: set ``config`` fields
  (``prompt``; the given keys; ``cache_ttl_s``; ``fallback``), validated through ``NodeConfig``.
- ``replace_node``: new ``type`` (and ``config`` when given); id, edges, inputs, outputs, tags kept.
- ``add_edge`` / ``remove_edge`` / ``reroute_edge``: edges are identified by ``(source, target)``;
  a rerouted edge keeps its condition and its position.
- ``parallelize``: the nodes must form a simple chain ``n1 -> ... -> nk`` (each inner link is the
  only way out of its source and into its target, and unconditional). Every predecessor ``p`` of
  ``n1`` gets ``p -> ni`` for each ``ni`` (with the condition of ``p -> n1``), every ``ni`` gets
  ``ni -> s`` for each successor ``s`` of ``nk`` (with the condition of ``nk -> s``, so every
  fan-in edge carries the same condition) and the chain links are removed. When ``n1`` is the
  entry (a run starts there, and the spec needs one entry with no incoming edge), the entry stays
  the fan-out source: ``n2 .. nk`` run in parallel after it, which needs at least two of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, assert_never

from pydantic import ValidationError

from spark.errors import InvalidChangeError, InvalidGraphSpecError
from spark.graphs.spec import (
    EdgeCondition,
    EdgeSpec,
    GraphSpec,
    NodeConfig,
    NodeSpec,
    parse_graph_spec,
)
from spark.rsi.hypotheses import (
    AddCache,
    AddEdge,
    AddFallback,
    ChangeOp,
    Parallelize,
    RemoveEdge,
    ReplaceNode,
    RerouteEdge,
    SetConfig,
    SetPrompt,
    touched_nodes,
)

CONFIG_KEYS: frozenset[str] = frozenset(NodeConfig.model_fields)


class _Refused(Exception):
    """Internal: one change cannot apply; ``apply_changes`` adds which change it was."""


def apply_changes(spec: GraphSpec, changes: Sequence[ChangeOp]) -> GraphSpec:
    """A new spec with every change applied in order; ``InvalidChangeError`` if any cannot apply."""
    if not changes:
        raise InvalidChangeError(f"no changes to apply to graph {spec.id!r}")
    draft = _Draft.of(spec)
    for index, change in enumerate(changes):
        try:
            _apply(draft, change)
        except _Refused as exc:
            raise InvalidChangeError(
                f"change #{index} ({describe_change(change)}) on graph {spec.id!r}: {exc}"
            ) from None
    return _revalidated(spec, draft, changes)


def describe_change(change: ChangeOp) -> str:
    """A short human-readable description of one change, naming its node(s) or edge."""
    match change:
        case SetPrompt():
            return f"set_prompt on node {change.node_id!r}"
        case SetConfig():
            return f"set_config {sorted(change.values)} on node {change.node_id!r}"
        case ReplaceNode():
            return f"replace_node {change.node_id!r} with type {change.new_type!r}"
        case AddEdge() | RemoveEdge():
            return f"{change.op} {change.source!r}->{change.target!r}"
        case RerouteEdge():
            return f"reroute_edge {change.source!r}->{change.target!r} to {change.new_target!r}"
        case Parallelize():
            return f"parallelize {change.node_ids!r}"
        case AddCache():
            return f"add_cache on node {change.node_id!r} (ttl {change.ttl_s:g}s)"
        case AddFallback():
            return f"add_fallback {change.fallback_type!r} on node {change.node_id!r}"
        case _:
            assert_never(change)


def nodes_affected(spec: GraphSpec, change: ChangeOp) -> set[str]:
    """The nodes a change touches plus those whose edges it rewires (a parallelized chain's
    predecessors and successors); used for the blast radius of a change's risk."""
    nodes = touched_nodes(change)
    if isinstance(change, Parallelize):
        nodes |= set(spec.predecessors(change.node_ids[0]))
        nodes |= set(spec.successors(change.node_ids[-1]))
    return nodes


@dataclass
class _Draft:
    """A mutable working copy of a spec's nodes and edges (the entry nodes never change)."""

    nodes: dict[str, NodeSpec]
    edges: list[EdgeSpec]
    entries: list[str]

    @classmethod
    def of(cls, spec: GraphSpec) -> _Draft:
        """A deep copy of ``spec``'s nodes and edges."""
        nodes = {node.id: node.model_copy(deep=True) for node in spec.nodes}
        return cls(nodes, [edge.model_copy(deep=True) for edge in spec.edges], spec.entries)

    def node(self, node_id: str) -> NodeSpec:
        """The node, or a refusal naming the missing id."""
        if node_id not in self.nodes:
            raise _Refused(f"node {node_id!r} does not exist")
        return self.nodes[node_id]

    def find_edge(self, source: str, target: str) -> int | None:
        """Index of the edge ``source -> target``, or None."""
        for index, edge in enumerate(self.edges):
            if edge.key == (source, target):
                return index
        return None

    def edge(self, source: str, target: str) -> int:
        """Index of the edge ``source -> target``, or a refusal naming it."""
        index = self.find_edge(source, target)
        if index is None:
            raise _Refused(f"edge {source!r}->{target!r} does not exist")
        return index

    def require_no_edge(self, source: str, target: str) -> None:
        """Refuse when the edge ``source -> target`` exists."""
        if self.find_edge(source, target) is not None:
            raise _Refused(f"edge {source!r}->{target!r} already exists")

    def predecessors(self, node_id: str) -> list[str]:
        """Sources of the edges into ``node_id``."""
        return [edge.source for edge in self.edges if edge.target == node_id]

    def successors(self, node_id: str) -> list[str]:
        """Targets of the edges out of ``node_id``."""
        return [edge.target for edge in self.edges if edge.source == node_id]


def _apply(draft: _Draft, change: ChangeOp) -> None:
    match change:
        case SetPrompt():
            _set_config(draft, change.node_id, {"prompt": change.prompt})
        case SetConfig():
            _set_config(draft, change.node_id, change.values)
        case AddCache():
            _set_config(draft, change.node_id, {"cache_ttl_s": change.ttl_s})
        case AddFallback():
            _set_config(draft, change.node_id, {"fallback": change.fallback_type})
        case ReplaceNode():
            _replace_node(draft, change)
        case AddEdge():
            _add_edge(draft, change.source, change.target, change.condition)
        case RemoveEdge():
            del draft.edges[draft.edge(change.source, change.target)]
        case RerouteEdge():
            _reroute_edge(draft, change)
        case Parallelize():
            _parallelize(draft, change.node_ids)
        case _:
            assert_never(change)


def _set_config(draft: _Draft, node_id: str, values: dict[str, Any]) -> None:
    node = draft.node(node_id)
    unknown = sorted(set(values) - CONFIG_KEYS)
    if unknown:
        raise _Refused(
            f"unknown config key(s) {unknown} for node {node_id!r}; known: {sorted(CONFIG_KEYS)}"
        )
    config = _validated_config(node_id, {**node.config.model_dump(), **values})
    if config == node.config:
        raise _Refused(f"node {node_id!r} already has {values!r}; the change alters nothing")
    draft.nodes[node_id] = node.model_copy(update={"config": config})


def _validated_config(node_id: str, data: dict[str, Any]) -> NodeConfig:
    try:
        return NodeConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise _Refused(f"invalid config for node {node_id!r}: {problems}") from None


def _replace_node(draft: _Draft, change: ReplaceNode) -> None:
    node = draft.node(change.node_id)
    config = node.config if change.config is None else change.config.model_copy(deep=True)
    if change.new_type == node.type and config == node.config:
        raise _Refused(f"node {node.id!r} already has type {node.type!r} and that config")
    draft.nodes[node.id] = node.model_copy(update={"type": change.new_type, "config": config})


def _add_edge(
    draft: _Draft, source: str, target: str, condition: EdgeCondition | None = None
) -> None:
    draft.node(source)
    draft.node(target)
    draft.require_no_edge(source, target)
    draft.edges.append(EdgeSpec(source=source, target=target, condition=condition))


def _reroute_edge(draft: _Draft, change: RerouteEdge) -> None:
    index = draft.edge(change.source, change.target)
    draft.node(change.new_target)
    if change.new_target == change.target:
        raise _Refused(f"edge {change.source!r}->{change.target!r} already points there")
    draft.require_no_edge(change.source, change.new_target)
    draft.edges[index] = draft.edges[index].model_copy(update={"target": change.new_target})


def _parallelize(draft: _Draft, chain: list[str]) -> None:
    _check_chain(draft, chain)
    if chain[0] in draft.entries:
        chain = chain[1:]  # the entry stays the fan-out source of the rest
    members = set(chain)
    incoming = [edge for edge in draft.edges if edge.target == chain[0]]
    outgoing = [edge for edge in draft.edges if edge.source == chain[-1]]
    kept = [e for e in draft.edges if e.source not in members and e.target not in members]
    fan_out = [_edge(e.source, node, e.condition) for e in incoming for node in chain]
    fan_in = [_edge(node, e.target, e.condition) for node in chain for e in outgoing]
    draft.edges = kept + fan_out + fan_in


def _edge(source: str, target: str, condition: EdgeCondition | None) -> EdgeSpec:
    copied = None if condition is None else condition.model_copy(deep=True)
    return EdgeSpec(source=source, target=target, condition=copied)


def _check_chain(draft: _Draft, chain: list[str]) -> None:
    if len(set(chain)) != len(chain):
        raise _Refused(f"chain {chain!r} repeats a node")
    for node_id in chain:
        draft.node(node_id)
    for source, target in pairwise(chain):
        _check_link(draft, source, target)
    if chain[0] in draft.entries and len(chain) < 3:
        raise _Refused(
            f"chain {chain!r} is headed by the entry, which stays first: at least two nodes "
            "must follow it to run in parallel"
        )


def _check_link(draft: _Draft, source: str, target: str) -> None:
    index = draft.find_edge(source, target)
    if index is None:
        raise _Refused(f"nodes {source!r} and {target!r} are not linked by an edge")
    if draft.edges[index].condition is not None:
        raise _Refused(f"chain link {source!r}->{target!r} is conditional")
    if draft.successors(source) != [target]:
        raise _Refused(f"node {source!r} has successors other than {target!r}; not a simple chain")
    if draft.predecessors(target) != [source]:
        raise _Refused(
            f"node {target!r} has predecessors other than {source!r}; not a simple chain"
        )


def _revalidated(spec: GraphSpec, draft: _Draft, changes: Sequence[ChangeOp]) -> GraphSpec:
    data = spec.model_dump()
    data["nodes"] = [node.model_dump() for node in draft.nodes.values()]
    data["edges"] = [edge.model_dump() for edge in draft.edges]
    try:
        return parse_graph_spec(data)
    except InvalidGraphSpecError as exc:
        described = "; ".join(describe_change(change) for change in changes)
        raise InvalidChangeError(
            f"changes [{described}] leave graph {spec.id!r} invalid: {exc}"
        ) from exc


# ----- diff -----


def diff_specs(old: GraphSpec, new: GraphSpec) -> list[str]:
    """Human-readable lines describing how ``new`` differs from ``old`` (empty when equal)."""
    return [*_diff_graph(old, new), *_diff_nodes(old, new), *_diff_edges(old, new)]


def _diff_graph(old: GraphSpec, new: GraphSpec) -> list[str]:
    lines = []
    if old.id != new.id:
        lines.append(f"graph id {old.id!r} -> {new.id!r}")
    if old.entry != new.entry:
        lines.append(f"entry {old.entry!r} -> {new.entry!r}")
    if old.entry_nodes != new.entry_nodes:
        lines.append(f"entry nodes {old.entries!r} -> {new.entries!r}")
    if old.inputs != new.inputs:
        lines.append(f"graph inputs {old.inputs!r} -> {new.inputs!r}")
    changed = sorted(k for k in old.metadata.keys() | new.metadata.keys() if _differs(old, new, k))
    if changed:
        lines.append(f"metadata key(s) {changed} changed")
    return lines


def _differs(old: GraphSpec, new: GraphSpec, key: str) -> bool:
    return bool(old.metadata.get(key) != new.metadata.get(key))


def _diff_nodes(old: GraphSpec, new: GraphSpec) -> list[str]:
    old_nodes = {node.id: node for node in old.nodes}
    new_nodes = {node.id: node for node in new.nodes}
    lines = [f"node {i!r} removed" for i in old_nodes if i not in new_nodes]
    lines += [f"node {n.id!r} added (type {n.type!r})" for n in new.nodes if n.id not in old_nodes]
    for node_id, before in old_nodes.items():
        if node_id in new_nodes:
            lines += _diff_node(before, new_nodes[node_id])
    return lines


def _diff_node(old: NodeSpec, new: NodeSpec) -> list[str]:
    where = f"node {old.id!r}"
    lines = []
    for field in ("type", "inputs", "outputs", "tags", "description"):
        before, after = getattr(old, field), getattr(new, field)
        if before != after:
            lines.append(f"{where}: {field} {before!r} -> {after!r}")
    return lines + list(_diff_config(where, old.config, new.config))


def _diff_config(where: str, old: NodeConfig, new: NodeConfig) -> Iterable[str]:
    for field in NodeConfig.model_fields:
        before, after = getattr(old, field), getattr(new, field)
        if before == after:
            continue
        if field == "prompt":
            yield f"{where}: prompt changed ({len(before or '')} -> {len(after or '')} chars)"
        else:
            yield f"{where}: config.{field} {before!r} -> {after!r}"


def _diff_edges(old: GraphSpec, new: GraphSpec) -> list[str]:
    old_edges = {edge.key: edge for edge in old.edges}
    new_edges = {edge.key: edge for edge in new.edges}
    lines = [f"edge {_name(e)} removed" for k, e in old_edges.items() if k not in new_edges]
    lines += [f"edge {_name(e)} added" for k, e in new_edges.items() if k not in old_edges]
    for key, edge in old_edges.items():
        if key in new_edges and edge.condition != new_edges[key].condition:
            lines.append(f"edge {_name(edge)} condition changed to {_when(new_edges[key])}")
    return lines


def _name(edge: EdgeSpec) -> str:
    suffix = "" if edge.condition is None else f" (when {_when(edge)})"
    return f"{edge.source!r}->{edge.target!r}{suffix}"


def _when(edge: EdgeSpec) -> str:
    if edge.condition is None:
        return "always"
    condition = edge.condition
    return f"{condition.field} {condition.op} {condition.value!r}"
