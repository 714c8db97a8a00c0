"""Graphs: the spec model, the node registry, the runtime and the Spark-style API."""

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
