"""Edge optimizer: edges and nodes the graph can do without, as typed changes with their effect.

Run-time semantics the findings rest on (``spark.graphs.runtime``): a node starts once every
predecessor has settled; it runs when one incoming edge is active (its source ran and its
condition held); the state is shared, so a node sees every field written before it starts.

Findings:

- ``redundant_edge``: ``a -> c`` when another path from ``a`` reaches ``c`` over unconditional
  edges only. Whenever ``a`` runs that path activates ``c`` and orders it after ``a``, so removing
  the edge changes no activation, no order and no data flow (``remove_edge``).
- ``unused_output``: a node whose outputs nothing downstream reads (no descendant input, no edge
  condition at or after it, every descendant declaring its inputs), without side effects, not
  protected, not the entry, with unconditional edges in and out and no side-effecting node
  downstream (its successors may now run before it settles, also on a run it fails). It moves off
  the path: each predecessor gets an edge to each successor (``add_edge``) and its own edges out
  go (``remove_edge``); it still runs, as a sink, so the run's answer keeps its fields.
- ``never_taken``: a conditional edge into a node that never ran in the analysis window (no
  executed span; skipped ones do not count) while other runs did, removed when the node keeps
  another incoming edge. Its successors stop waiting on that source; a run where the condition
  would hold no longer takes the branch, which the A/B test judges.
- ``unreachable``: a node that never ran in the window. The spec format requires every node
  reachable from the entry and the typed changes have no node removal, so this is reported
  without changes.

The expected effect of each change is the latency share it saves: the run's makespan (each node
weighing its mean latency per run, from the diagnostic report) before minus after, over the
critical path. Every change here is checked by applying it (``spark.rsi.changes``); one that the
spec validation refuses is not reported as a change.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field

from spark.errors import InvalidChangeError
from spark.graphs.spec import GraphSpec, NodeSpec
from spark.rsi.analysis import StructureReport, makespan_ms
from spark.rsi.changes import apply_changes
from spark.rsi.hypotheses import AddEdge, ChangeOp, RemoveEdge

EdgeFindingKind = Literal["redundant_edge", "unused_output", "never_taken", "unreachable"]


class EdgeFinding(BaseModel):
    """One simplification of the graph's edges, with the typed changes that make it."""

    model_config = ConfigDict(extra="forbid")

    kind: EdgeFindingKind
    node_ids: list[str]
    edges: list[tuple[str, str]] = Field(default_factory=list)
    changes: list[ChangeOp] = Field(default_factory=list)
    saved_ms: float = 0.0
    gain: float = Field(default=0.0, description="share of the critical path saved")
    reason: str


def find_edge_optimizations(spec: GraphSpec, structure: StructureReport) -> list[EdgeFinding]:
    """Every finding on ``spec`` (see the module docstring), with its expected latency gain."""
    weights = structure.node_latency_ms
    before = makespan_ms(spec, weights)
    findings = [
        *redundant_edges(spec),
        *unused_outputs(spec),
        *never_taken_edges(spec, structure.node_run_share),
        *never_run_nodes(spec, structure.node_run_share),
    ]
    gained = (_with_gain(spec, f, weights, before, structure.critical_path_ms) for f in findings)
    return [finding for finding in gained if finding is not None]


def _with_gain(
    spec: GraphSpec,
    finding: EdgeFinding,
    weights: Mapping[str, float],
    before_ms: float,
    path_ms: float,
) -> EdgeFinding | None:
    """The finding with the makespan its changes save (``before_ms`` minus after); None when
    the spec validation refuses its changes (each spec is built once: copies are costly)."""
    if not finding.changes:
        return finding
    try:
        after = apply_changes(spec, finding.changes)
    except InvalidChangeError:
        return None
    saved = max(0.0, before_ms - makespan_ms(after, weights))
    gain = min(1.0, saved / path_ms) if path_ms > 0 else 0.0
    return finding.model_copy(update={"saved_ms": round(saved, 3), "gain": round(gain, 4)})


# ----- redundant edges -----


def redundant_edges(spec: GraphSpec) -> Iterator[EdgeFinding]:
    """Edges implied by another all-unconditional path between the same nodes."""
    unconditional = nx.DiGraph([e.key for e in spec.edges if e.condition is None])
    for edge in spec.edges:
        path = _other_path(unconditional, *edge.key)
        changes: list[ChangeOp] = [RemoveEdge(source=edge.source, target=edge.target)]
        if path:
            yield EdgeFinding(
                kind="redundant_edge",
                node_ids=[edge.source, edge.target],
                edges=[edge.key],
                changes=changes,
                reason=f"edge {edge.source!r}->{edge.target!r} is implied by the unconditional "
                f"path {' -> '.join(path)}",
            )


def _other_path(graph: nx.DiGraph, source: str, target: str) -> list[str] | None:
    """A path ``source -> ... -> target`` of two edges or more in ``graph`` (None if none)."""
    if source not in graph or target not in graph:
        return None
    view = nx.restricted_view(graph, [], [(source, target)])
    try:
        path: list[str] = nx.shortest_path(view, source, target)
    except nx.NetworkXNoPath:
        return None
    return path


# ----- nodes whose output is unused -----


def unused_outputs(spec: GraphSpec) -> Iterator[EdgeFinding]:
    """Nodes taken off the path: nothing downstream reads what they write."""
    below = _downstream(spec)
    for node in spec.nodes:
        if _bypassable(spec, node, below[node.id]):
            changes = _bypass(spec, node.id)
            if changes is not None:
                yield _unused_finding(spec, node, changes)


@dataclass(frozen=True)
class _Below:
    """What the descendants of a node do: the fields they read (inputs, and edge conditions
    evaluated after them), whether one reads the whole state (declares no inputs), whether one
    has side effects."""

    fields: frozenset[str] = frozenset()
    whole_state: bool = False
    side_effects: bool = False


def _downstream(spec: GraphSpec) -> dict[str, _Below]:
    """``_Below`` of every node, in one pass from the sinks up."""
    graph, nodes = spec.to_networkx(), {node.id: node for node in spec.nodes}
    conditions = _condition_fields(spec)
    below: dict[str, _Below] = {}
    for node_id in reversed(list(nx.topological_sort(graph))):
        fields: set[str] = set()
        whole = side = False
        for successor in graph.successors(node_id):
            after, node = below[successor], nodes[successor]
            fields |= set(node.inputs) | conditions[successor] | after.fields
            whole = whole or not node.inputs or after.whole_state
            side = side or node.has_tag("side_effects") or after.side_effects
        below[node_id] = _Below(frozenset(fields), whole, side)
    return below


def _condition_fields(spec: GraphSpec) -> dict[str, set[str]]:
    """The fields read by each node's outgoing edge conditions."""
    fields: dict[str, set[str]] = {node.id: set() for node in spec.nodes}
    for edge in spec.edges:
        if edge.condition is not None:
            fields[edge.source].add(edge.condition.field)
    return fields


def _bypassable(spec: GraphSpec, node: NodeSpec, below: _Below) -> bool:
    own_edges = [e for e in spec.edges if node.id in e.key]
    read = below.fields | {e.condition.field for e in own_edges if e.condition}
    return (
        not spec.is_entry(node.id)
        and bool(node.outputs)
        and any(e.source == node.id for e in own_edges)
        and not node.has_tag("side_effects")
        and not node.has_tag("protected")
        and all(e.condition is None for e in own_edges)
        and not below.side_effects
        and not below.whole_state  # the runtime hands a node declaring no inputs everything
        and not read & set(node.outputs)
    )


def _bypass(spec: GraphSpec, node_id: str) -> list[ChangeOp] | None:
    """Each predecessor linked to each successor, the node's edges out removed; None when a
    predecessor already has a conditional edge to a successor (activation would change)."""
    conditions = {e.key: e.condition for e in spec.edges}
    changes: list[ChangeOp] = []
    for successor in spec.successors(node_id):
        for predecessor in spec.predecessors(node_id):
            key = (predecessor, successor)
            if key in conditions and conditions[key] is not None:
                return None
            if key not in conditions:
                changes.append(AddEdge(source=predecessor, target=successor))
    changes += [RemoveEdge(source=node_id, target=s) for s in spec.successors(node_id)]
    return changes


def _unused_finding(spec: GraphSpec, node: NodeSpec, changes: list[ChangeOp]) -> EdgeFinding:
    return EdgeFinding(
        kind="unused_output",
        node_ids=[node.id],
        edges=[(node.id, s) for s in spec.successors(node.id)],
        changes=changes,
        reason=f"nothing downstream of {node.id!r} reads {sorted(node.outputs)}; its successors "
        "need not wait for it (it still runs, off the path)",
    )


# ----- what never ran in the window -----


def _never_ran(spec: GraphSpec, run_share: Mapping[str, float]) -> list[str]:
    """Nodes with no executed span in the window (empty without telemetry or runs)."""
    if not run_share or not any(share > 0 for share in run_share.values()):
        return []
    return [n.id for n in spec.nodes if not spec.is_entry(n.id) and run_share.get(n.id, 0.0) == 0.0]


def never_taken_edges(spec: GraphSpec, run_share: Mapping[str, float]) -> Iterator[EdgeFinding]:
    """Conditional edges into never-run nodes, removed where the node keeps another edge in."""
    for node_id in _never_ran(spec, run_share):
        incoming = [e for e in spec.edges if e.target == node_id]
        for edge in incoming:
            changes: list[ChangeOp] = [RemoveEdge(source=edge.source, target=node_id)]
            if edge.condition is not None and len(incoming) > 1:
                yield EdgeFinding(
                    kind="never_taken",
                    node_ids=[edge.source, node_id],
                    edges=[edge.key],
                    changes=changes,
                    reason=f"edge {edge.source!r}->{node_id!r} (when {edge.condition.field} "
                    f"{edge.condition.op} {edge.condition.value!r}) was never taken in the "
                    f"window: {node_id!r} never ran",
                )


def never_run_nodes(spec: GraphSpec, run_share: Mapping[str, float]) -> Iterator[EdgeFinding]:
    """Nodes that never ran in the window (reported; no typed change removes a node)."""
    for node_id in _never_ran(spec, run_share):
        yield EdgeFinding(
            kind="unreachable",
            node_ids=[node_id],
            edges=[e.key for e in spec.edges if e.target == node_id],
            reason=f"{node_id!r} never ran in the window: none of its incoming edges was taken",
        )
