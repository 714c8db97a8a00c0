"""The research-brief graph spec: plan_query → search_web → search_papers → summarize → publish.

``search_web`` and ``search_papers`` both read only the planned query, yet they run one after
the other; ``summarize`` runs on an expensive model although ``params["cheaper_models"]`` names
a cheaper one (with its relative price, the figure the rule-based generator reads).

Node properties: no node is declared ``deterministic``: ``plan_query`` and ``summarize`` are LLM
calls, and web and paper searches return what the indexes hold today (tomorrow's results differ),
so none of them may be cached; ``publish`` has ``side_effects`` and is ``protected``.
"""

from __future__ import annotations

from typing import Any

from examples.research_brief.nodes import MODELS
from examples.spec_helpers import node_entry
from spark.graphs.spec import GraphSpec, parse_graph_spec

GRAPH_ID = "research-brief"
NODE_MODULES = ["examples.research_brief.nodes"]


def build_spec(
    graph_id: str = GRAPH_ID,
    *,
    search_latency_ms: float = 70.0,
    summarize_model: str = "large-llm",
    rsi: dict[str, Any] | None = None,
) -> GraphSpec:
    """The production graph as first deployed: sequential searches, the large model."""
    return parse_graph_spec(
        {
            "id": graph_id,
            "entry": "plan_query",
            "inputs": ["topic", "requester"],
            "metadata": {"owner": "research-platform", "rsi": rsi or {}},
            "nodes": [
                node_entry(
                    "plan_query",
                    "research.plan_query",
                    ["topic"],
                    ["query"],
                    tags=["idempotent"],
                    prompt="Turn the topic into a precise search query.",
                    model="small-llm",
                ),
                node_entry(
                    "search_web",
                    "research.search_web",
                    ["query"],
                    ["web_results"],
                    params={"latency_ms": search_latency_ms},
                    tags=["idempotent"],
                ),
                node_entry(
                    "search_papers",
                    "research.search_papers",
                    ["query"],
                    ["papers"],
                    params={"latency_ms": search_latency_ms},
                    tags=["idempotent"],
                ),
                node_entry(
                    "summarize",
                    "research.summarize",
                    ["topic", "web_results", "papers"],
                    ["brief"],
                    params={"cheaper_models": {"small-llm": _price_ratio("small-llm")}},
                    prompt="Write a one-paragraph brief citing the sources.",
                    model=summarize_model,
                ),
                node_entry(
                    "publish",
                    "research.publish",
                    ["brief", "requester"],
                    ["brief_id"],
                    tags=["side_effects", "protected"],
                ),
            ],
            "edges": [
                {"source": "plan_query", "target": "search_web"},
                {"source": "search_web", "target": "search_papers"},
                {"source": "search_papers", "target": "summarize"},
                {"source": "summarize", "target": "publish"},
            ],
        }
    )


def _price_ratio(model: str) -> float:
    """``model``'s price per token relative to the large model (from the nodes' price list)."""
    return MODELS[model].cost_per_1k_tokens / MODELS["large-llm"].cost_per_1k_tokens
