"""Simulated node implementations whose behaviour depends on their config, so a right change
really helps: the two searches are slow but independent (running them in parallel saves one of
them), and ``summarize`` costs and takes what its configured model costs and takes (a cheaper
model saves most of the run's cost). Latencies are simulated with sleeps.

Knobs, all in the node config so scenarios can be tuned without code:

- ``params["latency_ms"]``: mean service time (default per node; for LLM nodes, the model's);
- ``params["jitter"]``: lognormal sigma of the service time (default 0.25);
- ``model`` (LLM nodes): a key of ``MODELS``, which sets the price per token and the speed.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from spark.errors import InvalidInputError
from spark.graphs.registry import NodeContext, node


class ModelProfile(BaseModel):
    """Price and speed of one simulated LLM."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cost_per_1k_tokens: float = Field(gt=0)
    latency_ms: float = Field(gt=0, description="mean time of one call")


MODELS: dict[str, ModelProfile] = {
    "large-llm": ModelProfile(cost_per_1k_tokens=0.01, latency_ms=45.0),
    "small-llm": ModelProfile(cost_per_1k_tokens=0.002, latency_ms=12.0),
}


def model_profile(ctx: NodeContext) -> ModelProfile:
    """The profile of the node's configured model; a clear error for an unknown one."""
    name = ctx.config.model
    if name not in MODELS:
        raise InvalidInputError(
            f"node {ctx.node_id!r}: unknown model {name!r}; known models: {sorted(MODELS)}"
        )
    return MODELS[name]


async def _work(ctx: NodeContext, default_ms: float) -> None:
    """Sleep for the node's simulated service time (lognormal jitter around ``latency_ms``)."""
    params = ctx.config.params
    mean_ms = float(params.get("latency_ms", default_ms))
    jitter = float(params.get("jitter", 0.25))
    await asyncio.sleep(mean_ms * random.lognormvariate(0.0, jitter) / 1000.0)


def _bill(ctx: NodeContext, model: ModelProfile, tokens: int) -> None:
    """Report ``tokens`` at the model's price."""
    ctx.report_usage(tokens=tokens, cost=tokens * model.cost_per_1k_tokens / 1000)


def _hits(query: str, source: str, low: int, high: int) -> list[str]:
    """Deterministic search hits for a query: between ``low`` and ``high`` ids."""
    digest = hashlib.sha256(f"{source}:{query}".encode()).hexdigest()
    count = low + int(digest[:2], 16) % (high - low + 1)
    return [f"{source}-{digest[2 + 6 * i : 8 + 6 * i]}" for i in range(count)]


@node("research.plan_query")
async def plan_query(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
    """A small LLM turning the topic into a search query."""
    model = model_profile(ctx)
    await _work(ctx, model.latency_ms)
    topic = str(inputs["topic"]).lower()
    _bill(ctx, model, 60 + 4 * len(topic.split()))
    return {"query": " ".join(word.strip(":,") for word in topic.split())}


@node("research.search_web")
async def search_web(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
    """A slow web-search tool; needs only the query."""
    await _work(ctx, 70.0)
    return {"web_results": _hits(inputs["query"], "web", 3, 5)}


@node("research.search_papers")
async def search_papers(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
    """A slow paper-search tool; needs only the query (not the web results)."""
    await _work(ctx, 70.0)
    return {"papers": _hits(inputs["query"], "paper", 2, 4)}


@node("research.summarize")
async def summarize(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
    """An LLM writing the brief: tokens grow with the sources, price and speed follow the model."""
    model = model_profile(ctx)
    await _work(ctx, model.latency_ms)
    sources = [*inputs["web_results"], *inputs["papers"]]
    _bill(ctx, model, 250 + 90 * len(sources) + random.randint(0, 120))
    cited = ", ".join(sources[:3])
    return {"brief": f"{inputs['topic']}: {len(sources)} sources reviewed (see {cited})"}


@node("research.publish")
async def publish(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
    """Publishes the brief to the requester: a real side effect, never repeated by replay."""
    await _work(ctx, 3.0)
    receipt = hashlib.sha256(f"{inputs['requester']}:{inputs['brief']}".encode()).hexdigest()
    return {"brief_id": f"brief-{receipt[:12]}"}
