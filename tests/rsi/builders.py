"""Small hand-built specs and telemetry aggregates for the RSI logic tests."""

from __future__ import annotations

from typing import Any

from spark.graphs.spec import GraphSpec, parse_graph_spec
from spark.telemetry.aggregates import NodeStats, VersionStats

GRAPH_ID = "support"


def node(
    node_id: str,
    inputs: list[str] | None = None,
    outputs: list[str] | None = None,
    *,
    tags: list[str] | None = None,
    node_type: str = "fn",
    **config: Any,
) -> dict[str, Any]:
    """A node dict for ``make_spec``."""
    return {
        "id": node_id,
        "type": node_type,
        "inputs": inputs or [],
        "outputs": outputs or [],
        "tags": tags or [],
        "config": config,
    }


def edge(source: str, target: str, **condition: Any) -> dict[str, Any]:
    """An edge dict for ``make_spec``; keyword arguments make an ``EdgeCondition``."""
    return {"source": source, "target": target, "condition": condition or None}


def make_spec(
    nodes: list[dict[str, Any]],
    edges: list[dict[str, Any]],
    *,
    inputs: list[str] | None = None,
    graph_id: str = GRAPH_ID,
) -> GraphSpec:
    """A validated spec whose entry is the first node."""
    return parse_graph_spec(
        {
            "id": graph_id,
            "entry": nodes[0]["id"],
            "nodes": nodes,
            "edges": edges,
            "inputs": ["request"] if inputs is None else inputs,
        }
    )


def support_spec(**overrides: dict[str, Any]) -> GraphSpec:
    """ingest -> classify -> fetch_account -> fetch_history -> draft -> {notify, audit}.

    classify, fetch_account and fetch_history only read ``text`` (a parallelizable chain);
    draft reads all three; notify has side effects; audit is protected. ``overrides`` maps a
    node id to extra node-dict fields (merged over the defaults).
    """
    nodes = [
        node("ingest", ["request"], ["text"]),
        node("classify", ["text"], ["category"], tags=["idempotent"], prompt="Classify the text."),
        node("fetch_account", ["text"], ["account"], tags=["idempotent"]),
        node("fetch_history", ["text"], ["history"]),
        node("draft", ["category", "account", "history"], ["reply"], prompt="Draft a reply."),
        node("notify", ["reply"], ["sent"], tags=["side_effects"]),
        node("audit", ["reply"], ["audit_id"], tags=["protected", "side_effects"]),
    ]
    for item in nodes:
        item.update(overrides.get(item["id"], {}))
    edges = [
        edge("ingest", "classify"),
        edge("classify", "fetch_account"),
        edge("fetch_account", "fetch_history"),
        edge("fetch_history", "draft"),
        edge("draft", "notify"),
        edge("draft", "audit"),
    ]
    return make_spec(nodes, edges)


def node_stats(
    node_id: str,
    *,
    count: int = 200,
    errors: int = 0,
    mean_ms: float = 20.0,
    p50_ms: float | None = None,
    p95_ms: float | None = None,
    p99_ms: float | None = None,
    total_cost: float = 0.0,
    distinct_input_ratio: float = 1.0,
    error_types: dict[str, int] | None = None,
    graph_id: str = GRAPH_ID,
) -> NodeStats:
    """Aggregates of one node; percentiles default to a mild spread around the mean."""
    return NodeStats(
        graph_id=graph_id,
        version_id="v1",
        node_id=node_id,
        count=count,
        error_count=errors,
        error_rate=errors / count if count else 0.0,
        mean_ms=mean_ms,
        p50_ms=mean_ms if p50_ms is None else p50_ms,
        p95_ms=mean_ms * 1.5 if p95_ms is None else p95_ms,
        p99_ms=mean_ms * 2 if p99_ms is None else p99_ms,
        total_cost=total_cost,
        mean_cost=total_cost / count if count else 0.0,
        distinct_input_ratio=distinct_input_ratio,
        error_types=error_types or {},
    )


def version_stats(
    *,
    count: int = 200,
    errors: int = 0,
    p50_ms: float = 150.0,
    p95_ms: float = 250.0,
    mean_quality: float | None = None,
    window_s: float | None = 86_400.0,
    graph_id: str = GRAPH_ID,
    version_id: str = "v1",
) -> VersionStats:
    """Whole-run aggregates of one version over a window starting at epoch 1.7e9."""
    start = 1_700_000_000.0
    return VersionStats(
        graph_id=graph_id,
        version_id=version_id,
        count=count,
        error_count=errors,
        error_rate=errors / count if count else 0.0,
        mean_ms=p50_ms,
        p50_ms=p50_ms,
        p95_ms=p95_ms,
        p99_ms=p95_ms * 1.5,
        mean_quality=mean_quality,
        quality_count=count if mean_quality is not None else 0,
        first_started_at=start if window_s is not None else None,
        last_started_at=start + window_s if window_s is not None else None,
    )


QUIET_MEAN_MS = {
    "ingest": 20.0,
    "classify": 2.0,
    "fetch_account": 2.0,
    "fetch_history": 2.0,
    "draft": 30.0,
    "notify": 20.0,
    "audit": 20.0,
}


def healthy_node_stats(**overrides: NodeStats) -> list[NodeStats]:
    """Quiet stats for every node of ``support_spec`` (the independent chain is too fast to be
    worth parallelizing), with some replaced by ``overrides``."""
    quiet = {node_id: node_stats(node_id, mean_ms=ms) for node_id, ms in QUIET_MEAN_MS.items()}
    quiet.update(overrides)
    return list(quiet.values())


def structural_spec(**overrides: dict[str, Any]) -> GraphSpec:
    """``support_spec`` plus structure the edge optimizer acts on (``overrides`` as there):

    - ``score`` (after draft) writes ``score``, which nothing reads; ``report`` (a sink) follows
      it, and the edge draft -> report is implied by draft -> score -> report;
    - ``escalate`` is entered only on conditions (from ingest, and from ``slow_branch``), and
      draft waits for it.
    """
    base = support_spec(**overrides).model_dump(mode="json")
    extra_nodes = [
        node("score", ["reply"], ["score"]),
        node("report", ["reply"], ["report"]),
        node("slow_branch", ["text"], ["extra"]),
        node("escalate", ["text"], ["ticket"]),
    ]
    for item in extra_nodes:
        item.update(overrides.get(item["id"], {}))
    extra_edges = [
        edge("draft", "score"),
        edge("score", "report"),
        edge("draft", "report"),
        edge("ingest", "slow_branch"),
        edge("ingest", "escalate", field="text", op="eq", value="URGENT"),
        edge("slow_branch", "escalate", field="extra", op="truthy"),
        edge("escalate", "draft"),
    ]
    base["nodes"] += extra_nodes
    base["edges"] += extra_edges
    return parse_graph_spec(base)


STRUCTURAL_MEAN_MS = {"score": 300.0, "report": 400.0, "slow_branch": 500.0}


def structural_node_stats(**overrides: NodeStats) -> list[NodeStats]:
    """``healthy_node_stats`` for ``structural_spec``: score and slow_branch are slow, escalate
    never ran (no stats: skipped spans are not counted)."""
    extra = {n: node_stats(n, mean_ms=ms) for n, ms in STRUCTURAL_MEAN_MS.items()}
    stats = {s.node_id: s for s in healthy_node_stats()} | extra | overrides
    return list(stats.values())
