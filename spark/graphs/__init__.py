"""Graphs: the spec model, the node registry, the runtime and the Spark-style API.

Names are imported on first use (PEP 562), so ``import spark.graphs.spec`` (the workflow side,
through the contracts) loads neither the runtime nor the telemetry store.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spark.graphs.api import (
        ConditionalEdge,
        Graph,
        Node,
        SpecNode,
        TelemetryConfigLike,
        TelemetryRecorderLike,
        current_context,
        default_version_id,
    )
    from spark.graphs.policies import PolicyOutcome, ResultCache, canonical_json, input_fingerprint
    from spark.graphs.registry import (
        NodeContext,
        NodeImpl,
        NodeRegistry,
        NodeUsage,
        default_registry,
        node,
    )
    from spark.graphs.runtime import GraphRuntime, RunResult
    from spark.graphs.spec import (
        ConditionOp,
        EdgeCondition,
        EdgeSpec,
        GraphSpec,
        NodeConfig,
        NodeSpec,
        NodeTag,
        parse_graph_spec,
    )

_LAZY = {
    "ConditionalEdge": "spark.graphs.api",
    "Graph": "spark.graphs.api",
    "Node": "spark.graphs.api",
    "SpecNode": "spark.graphs.api",
    "TelemetryConfigLike": "spark.graphs.api",
    "TelemetryRecorderLike": "spark.graphs.api",
    "current_context": "spark.graphs.api",
    "default_version_id": "spark.graphs.api",
    "PolicyOutcome": "spark.graphs.policies",
    "ResultCache": "spark.graphs.policies",
    "canonical_json": "spark.graphs.policies",
    "input_fingerprint": "spark.graphs.policies",
    "NodeContext": "spark.graphs.registry",
    "NodeImpl": "spark.graphs.registry",
    "NodeRegistry": "spark.graphs.registry",
    "NodeUsage": "spark.graphs.registry",
    "default_registry": "spark.graphs.registry",
    "node": "spark.graphs.registry",
    "GraphRuntime": "spark.graphs.runtime",
    "RunResult": "spark.graphs.runtime",
    "ConditionOp": "spark.graphs.spec",
    "EdgeCondition": "spark.graphs.spec",
    "EdgeSpec": "spark.graphs.spec",
    "GraphSpec": "spark.graphs.spec",
    "NodeConfig": "spark.graphs.spec",
    "NodeSpec": "spark.graphs.spec",
    "NodeTag": "spark.graphs.spec",
    "parse_graph_spec": "spark.graphs.spec",
}

__all__ = [
    "ConditionOp",
    "ConditionalEdge",
    "EdgeCondition",
    "EdgeSpec",
    "Graph",
    "GraphRuntime",
    "GraphSpec",
    "Node",
    "NodeConfig",
    "NodeContext",
    "NodeImpl",
    "NodeRegistry",
    "NodeSpec",
    "NodeTag",
    "NodeUsage",
    "PolicyOutcome",
    "ResultCache",
    "RunResult",
    "SpecNode",
    "TelemetryConfigLike",
    "TelemetryRecorderLike",
    "canonical_json",
    "current_context",
    "default_registry",
    "default_version_id",
    "input_fingerprint",
    "node",
    "parse_graph_spec",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
