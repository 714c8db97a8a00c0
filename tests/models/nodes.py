"""Function nodes that answer a question through an LLM, one per provider; registered with
``SparkClient.register_graph(spec, ["tests.models.nodes"])``."""

from __future__ import annotations

from typing import Any

from spark.graphs.registry import NodeContext, node
from spark.models.anthropic import AnthropicModel
from spark.models.openai import OpenAIModel

NODE_TYPES = {"openai": "models_test_openai_answer", "anthropic": "models_test_anthropic_answer"}


@node(NODE_TYPES["openai"])
async def openai_answer(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
    """Answer ``question`` with the OpenAI model the node's config names."""
    reply = await OpenAIModel.from_node_config(ctx).complete(inputs["question"])
    return {"answer": reply.text}


@node(NODE_TYPES["anthropic"])
async def anthropic_answer(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
    """Answer ``question`` with the Anthropic model the node's config names."""
    reply = await AnthropicModel.from_node_config(ctx).complete(inputs["question"])
    return {"answer": reply.text}
