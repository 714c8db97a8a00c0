"""The OTLP attribute names Spark reads, and typed access to OTLP attribute lists."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

GRAPH_ID = "spark.graph.id"
VERSION_ID = "spark.version.id"
NODE_ID = "spark.node.id"
NODE_TYPE = "spark.node.type"
ROUTING_ARM = "spark.routing.arm"
ROUTING_KEY = "spark.routing.key"
COST = "spark.cost"
ATTEMPTS = "spark.attempts"
CACHE_HIT = "spark.cache_hit"

SERVICE_NAME = "service.name"
SERVICE_VERSION = "service.version"
GEN_AI_OPERATION = "gen_ai.operation.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_SYSTEM = "gen_ai.system"
INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
ERROR_TYPE = "error.type"
EXCEPTION_TYPE = "exception.type"

Attributes = Mapping[str, Any]


def to_dict(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    """OTLP key-value pairs as a plain dict of Python values."""
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return to_dict(value.kvlist_value.values)
    return getattr(value, kind)


def text(attrs: Attributes, name: str) -> str | None:
    """A non-empty attribute as text, or None."""
    value = attrs.get(name)
    return None if value is None or value == "" else str(value)
