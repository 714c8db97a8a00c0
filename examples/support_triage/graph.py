"""The support-triage graph spec: parse → classify → lookup_kb → draft_reply → send_reply.

Node properties: ``parse`` (text normalisation) and ``lookup_kb`` (a search of a curated,
versioned knowledge base, keyed by category) are ``deterministic``: the same input gives the same
output, so a cache answers them honestly. ``classify`` and ``draft_reply`` are LLM calls (not
declared deterministic: never cached); ``send_reply`` sends the reply (``side_effects``,
``protected``).
"""

from __future__ import annotations

from typing import Any

from examples.spec_helpers import node_entry
from spark.graphs.spec import GraphSpec, parse_graph_spec

GRAPH_ID = "support-triage"
NODE_MODULES = ["examples.support_triage.nodes"]


def build_spec(
    graph_id: str = GRAPH_ID,
    *,
    classify_failure_rate: float = 0.2,
    kb_latency_ms: float = 60.0,
    rsi: dict[str, Any] | None = None,
) -> GraphSpec:
    """The production graph as first deployed: no retries, no cache."""
    return parse_graph_spec(
        {
            "id": graph_id,
            "entry": "parse",
            "inputs": ["ticket", "customer_id"],
            "metadata": {"owner": "support-platform", "rsi": rsi or {}},
            "nodes": [
                node_entry(
                    "parse", "support.parse_ticket", ["ticket"], ["text"], tags=["deterministic"]
                ),
                node_entry(
                    "classify",
                    "support.classify",
                    ["text"],
                    ["category", "priority"],
                    params={"failure_rate": classify_failure_rate},
                    tags=["idempotent"],
                    prompt="Classify the support ticket into one of: billing, login, shipping, refund, bug, other.",
                    model="small-llm",
                ),
                node_entry(
                    "lookup_kb",
                    "support.lookup_kb",
                    ["category"],
                    ["articles"],
                    params={"latency_ms": kb_latency_ms},
                    tags=["idempotent", "deterministic"],
                ),
                node_entry(
                    "draft_reply",
                    "support.draft_reply",
                    ["text", "category", "priority", "articles"],
                    ["reply"],
                    prompt="Write a short, friendly reply citing the articles.",
                    model="large-llm",
                ),
                node_entry(
                    "send_reply",
                    "support.send_reply",
                    ["reply", "customer_id"],
                    ["delivery_id"],
                    tags=["side_effects", "protected"],
                ),
            ],
            "edges": [
                {"source": "parse", "target": "classify"},
                {"source": "classify", "target": "lookup_kb"},
                {"source": "lookup_kb", "target": "draft_reply"},
                {"source": "draft_reply", "target": "send_reply"},
            ],
        }
    )
