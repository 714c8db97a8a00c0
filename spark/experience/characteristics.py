"""Where nodes sit in their graph: type, depth from the entry, fan-out and fan-in.

Patterns are correlated with these characteristics: a change that failed on an LLM node three
levels deep says more about another LLM node than about a router at the entry.
"""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

from spark.experience.records import NodeCharacteristics
from spark.graphs.spec import GraphSpec


def node_characteristics(spec: GraphSpec, node_ids: Iterable[str]) -> list[NodeCharacteristics]:
    """The characteristics of each of ``node_ids`` that exists in ``spec`` (others are skipped:
    a change may name a node it adds)."""
    depths = _depths(spec)
    graph = spec.to_networkx()
    return [
        NodeCharacteristics(
            node_id=node_id,
            node_type=spec.node(node_id).type,
            depth=depths.get(node_id, 0),
            fan_out=graph.out_degree(node_id),
            fan_in=graph.in_degree(node_id),
        )
        for node_id in dict.fromkeys(node_ids)
        if spec.has_node(node_id)
    ]


def graph_depth(spec: GraphSpec) -> int:
    """The largest depth of any node reachable from the entry."""
    return max(_depths(spec).values(), default=0)


def _depths(spec: GraphSpec) -> dict[str, int]:
    """Edges on the shortest path from the entry to each reachable node."""
    lengths = nx.single_source_shortest_path_length(spec.to_networkx(), spec.entry)
    return {str(node): int(length) for node, length in lengths.items()}
