"""LLM nodes through the real ``openai`` / ``anthropic`` SDKs against the loopback server of
``tests.llm_server``: the request carries the node config's settings, a shipped model swap
changes the model called, tokens and cost land in the telemetry store, and error answers
surface as typed errors retried (or not) by the node's policy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from spark.client import SparkClient
from spark.errors import ModelRateLimitError, ModelRequestError, ModelUnavailableError
from spark.graphs import Graph, Node
from spark.graphs.runtime import RunResult
from spark.graphs.spec import GraphSpec, NodeConfig, NodeSpec
from spark.models.anthropic import AnthropicModel
from spark.models.base import ChatModel
from spark.models.openai import OpenAIModel
from spark.models.pricing import LIST_PRICES, PriceTable, TokenUsage
from spark.rsi.changes import apply_changes
from spark.rsi.hypotheses import SetConfig
from spark.settings import SparkSettings
from spark.telemetry import TelemetryConfig, TelemetryStore
from spark.telemetry.aggregates import NodeStats
from tests.llm_server import (
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    LoopbackLLMServer,
    Provider,
    http_error,
    model_text_reply,
    sdk_base_url,
)
from tests.models.nodes import NODE_TYPES

pytestmark = pytest.mark.usefixtures("model_clients")

PROVIDERS: tuple[Provider, ...] = ("openai", "anthropic")
MODELS: dict[Provider, type[ChatModel]] = {"openai": OpenAIModel, "anthropic": AnthropicModel}
# (model before the swap, its list-price name), (model after, its list-price name)
SWAPS: dict[Provider, tuple[tuple[str, str], tuple[str, str]]] = {
    "openai": (("gpt-4o", "gpt-4o"), ("gpt-4o-mini", "gpt-4o-mini")),
    "anthropic": (
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
    ),
}
USAGE = TokenUsage(prompt_tokens=PROMPT_TOKENS, completion_tokens=COMPLETION_TOKENS)
QUESTION = {"question": "What is 2 + 2?"}


class ModelsTestAsk(Node):
    """Answers ``question`` with the provider in ``params["provider"]``; the model comes from
    the running node's config (``from_node_config()`` without an argument)."""

    async def process(self, inputs: dict[str, Any]) -> dict[str, Any]:
        model_class = MODELS[self.config.params["provider"]]
        reply = await model_class.from_node_config().complete(inputs["question"])
        return {"answer": reply.text}


def list_cost(price_name: str) -> float:
    """What one default loopback answer (900 in, 120 out) costs at ``price_name``'s price."""
    return LIST_PRICES[price_name].cost(USAGE)


def sent_settings(provider: Provider, body: dict[str, Any]) -> dict[str, Any]:
    """The model, temperature, instructions, budget and user text a request carried."""
    messages = body["messages"]
    if provider == "openai":
        system = messages[0]["content"] if messages[0]["role"] == "system" else None
        budget = body.get("max_completion_tokens")
    else:
        system, budget = body.get("system"), body["max_tokens"]
    return {
        "model": body["model"],
        "temperature": body.get("temperature"),
        "system": system,
        "max_tokens": budget,
        "user": messages[-1]["content"],
    }


def ask_graph(provider: Provider, tmp_path: Path, **config: Any) -> Graph:
    """One ``ModelsTestAsk`` node with ``config``, recording telemetry to a SQLite file."""
    params = {"provider": provider, **config.pop("params", {})}
    ask = ModelsTestAsk(
        id="ask", inputs=["question"], outputs=["answer"], config={**config, "params": params}
    )
    telemetry = TelemetryConfig.create_sqlite(tmp_path / "telemetry.db")
    return Graph(start=ask, graph_id=f"ask-{provider}", telemetry_config=telemetry)


async def run_once(graph: Graph) -> tuple[RunResult, NodeStats]:
    """Run the graph on ``QUESTION``, flush, and read the node's stats from the store."""
    result = await graph.run(QUESTION)
    await graph.close()
    assert isinstance(graph.telemetry_config, TelemetryConfig)
    store = TelemetryStore(graph.telemetry_config.database_url)
    [stats] = store.node_stats(graph.id)
    return result, stats


# ----- the request follows the node's config; usage lands in telemetry -----


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_llm_node_sends_its_config_and_records_tokens_and_cost(
    provider: Provider,
    llm_server: LoopbackLLMServer,
    point_at: Callable[[Provider], None],
    tmp_path: Path,
) -> None:
    """The request carries the config's model, temperature (OpenAI; Anthropic's API takes none
    and a warning says it was not sent), prompt and max_tokens; the span in the telemetry store
    holds the answer's tokens and their list-price cost."""
    point_at(provider)
    (model, price_name), _ = SWAPS[provider]
    config = {"temperature": 0.2, "prompt": "Answer in one word.", "params": {"max_tokens": 64}}
    graph = ask_graph(provider, tmp_path, model=model, **config)
    with capture_logs() as logs:
        result, stats = await run_once(graph)
    assert result.ok and result.outputs == {"answer": "ok"}
    [request] = llm_server.requests
    assert sent_settings(provider, request.body) == {
        "model": model,
        "temperature": 0.2 if provider == "openai" else None,
        "system": "Answer in one word.",
        "max_tokens": 64,
        "user": QUESTION["question"],
    }
    assert request.headers.get("x-api-key", request.headers.get("authorization")) in {
        "sk-test-key",
        "Bearer sk-test-key",
    }
    assert (stats.count, stats.total_tokens) == (1, PROMPT_TOKENS + COMPLETION_TOKENS)
    assert stats.total_cost == pytest.approx(list_cost(price_name))
    assert result.cost == pytest.approx(list_cost(price_name))
    unsent = [e["settings"] for e in logs if e["event"] == "llm.settings_not_sent"]
    assert unsent == ([] if provider == "openai" else [("temperature",)])


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_shipped_model_swap_changes_the_model_called(
    provider: Provider,
    llm_server: LoopbackLLMServer,
    point_at: Callable[[Provider], None],
    sqlite_database_url: str,
) -> None:
    """A ``set_config`` model change stored as a new version and promoted by routing: the next
    request asks the server for the new model; each version's spans carry its own price."""
    point_at(provider)
    (old_model, old_price), (new_model, new_price) = SWAPS[provider]
    client = SparkClient(SparkSettings(database_url=sqlite_database_url), routing_ttl_s=0.0)
    try:
        base = client.register_graph(answer_spec(provider, old_model), ["tests.models.nodes"])
        assert (await client.run(base.spec.id, QUESTION)).ok
        swapped = apply_changes(
            base.spec, [SetConfig(node_id="answer", values={"model": new_model})]
        )
        shipped = client.registry.create_version(base.version_id, swapped, author="rsi")
        promote(client, base.spec.id, shipped.version_id)
        second = await client.run(base.spec.id, QUESTION)
        client.flush()
        assert second.ok and second.version_id == shipped.version_id
        assert llm_server.models_requested() == [old_model, new_model]
        costs = {
            version.version_id: client.telemetry.node_stats(base.spec.id, version.version_id)[0]
            for version in (base, shipped)
        }
    finally:
        client.close()
    assert costs[base.version_id].total_cost == pytest.approx(list_cost(old_price))
    assert costs[shipped.version_id].total_cost == pytest.approx(list_cost(new_price))
    assert {stats.total_tokens for stats in costs.values()} == {PROMPT_TOKENS + COMPLETION_TOKENS}


def promote(client: SparkClient, graph_id: str, version_id: str) -> None:
    """Route all traffic to ``version_id``, as a finished deployment does."""
    client.routing.apply(
        graph_id,
        idempotency_key=f"{graph_id}:ship:{version_id}",
        action="promote",
        candidate_version_id=version_id,
        actor="test",
        reason="model swap shipped",
    )


def answer_spec(provider: Provider, model: str) -> GraphSpec:
    """A one-node graph answering with the provider's function node on ``model``."""
    node = NodeSpec(
        id="answer",
        type=NODE_TYPES[provider],
        config=NodeConfig(model=model),
        inputs=["question"],
        outputs=["answer"],
    )
    return GraphSpec(id=f"answer-{provider}", entry="answer", nodes=[node], inputs=["question"])


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_unpriced_model_records_tokens_but_invents_no_cost(
    provider: Provider,
    llm_server: LoopbackLLMServer,
    point_at: Callable[[Provider], None],
    tmp_path: Path,
) -> None:
    """A model missing from the price table: tokens are recorded, the span adds no cost, and a
    warning names the model (once per process: the model name is this test's own)."""
    point_at(provider)
    unpriced = f"acme-private-{provider}"
    graph = ask_graph(provider, tmp_path, model=unpriced)
    with capture_logs() as logs:
        result, stats = await run_once(graph)
    assert result.ok and stats.total_tokens == PROMPT_TOKENS + COMPLETION_TOKENS
    assert stats.total_cost == 0.0
    assert [e["model"] for e in logs if e["event"] == "llm.price_unknown"] == [unpriced]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_complete_returns_text_usage_and_cost_from_a_given_price_table(
    provider: Provider, llm_server: LoopbackLLMServer
) -> None:
    """Outside a graph: the completion holds the text, the provider's counts and the cost at
    the caller's price; a message list is sent as the conversation."""
    llm_server.responder = model_text_reply("four", prompt_tokens=10, completion_tokens=2)
    prices = PriceTable({}, include_list_prices=False)
    prices.set("house-model", input_per_mtok=1_000.0, output_per_mtok=5_000.0)
    model = MODELS[provider](
        "house-model",
        api_key="sk-arg-key",
        base_url=sdk_base_url(provider, llm_server.url),
        prices=prices,
    )
    turns = [
        {"role": "user", "content": "2 + 2?"},
        {"role": "assistant", "content": "Do you mean in base 10?"},
        {"role": "user", "content": "yes"},
    ]
    completion = await model.complete(turns)
    assert (completion.text, completion.model, completion.response_model) == (
        "four",
        "house-model",
        "house-model",
    )
    assert completion.usage == TokenUsage(prompt_tokens=10, completion_tokens=2)
    assert completion.cost == pytest.approx((10 * 1_000.0 + 2 * 5_000.0) / 1e6)
    assert llm_server.requests[0].body["messages"][-3:] == turns


# ----- errors and the node's retry policy -----


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, ModelRateLimitError),
        (500, ModelUnavailableError),
        (529, ModelUnavailableError),
        (400, ModelRequestError),
        (401, ModelRequestError),
        (404, ModelRequestError),
    ],
)
async def test_error_answers_raise_typed_errors(
    provider: Provider,
    status: int,
    error: type[ModelUnavailableError | ModelRequestError],
    llm_server: LoopbackLLMServer,
) -> None:
    """Each error status becomes its Spark error, carrying provider, model and status, after
    exactly one request (the SDK's own retries are off)."""
    llm_server.responder = http_error(status)
    model = MODELS[provider]("gpt-4o", api_key="k", base_url=sdk_base_url(provider, llm_server.url))
    with pytest.raises(error, match=f"answered {status}: status {status}") as raised:
        await model.complete("hi")
    failure = raised.value
    assert type(failure) is error
    assert (failure.provider, failure.model, failure.status_code) == (provider, "gpt-4o", status)
    assert len(llm_server.requests) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("status", "retries", "error_type", "requests"),
    [
        (429, 0, "ModelRateLimitError", 1),
        (429, 2, "ModelRateLimitError", 3),
        (503, 2, "ModelUnavailableError", 3),
        (401, 2, "ModelRequestError", 1),
    ],
)
async def test_the_node_policy_decides_the_retries(
    provider: Provider,
    status: int,
    retries: int,
    error_type: str,
    requests: int,
    llm_server: LoopbackLLMServer,
    point_at: Callable[[Provider], None],
    tmp_path: Path,
) -> None:
    """Rate limits and 5xx are retried up to the node's ``retries``; a refused request (401) is
    not retried at all; the run fails with the typed error and the span counts the attempts."""
    point_at(provider)
    llm_server.responder = http_error(status)
    graph = ask_graph(provider, tmp_path, model="gpt-4o", retries=retries, backoff_s=0.0)
    result, stats = await run_once(graph)
    assert (result.status, result.error_type, result.failed_node_id) == ("error", error_type, "ask")
    assert len(llm_server.requests) == requests
    assert (stats.error_count, stats.mean_attempts) == (1, requests)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_retry_that_succeeds_counts_only_the_answered_call(
    provider: Provider,
    llm_server: LoopbackLLMServer,
    point_at: Callable[[Provider], None],
    tmp_path: Path,
) -> None:
    """A 503 then an answer, with retries=1: the run succeeds on attempt 2 and the span holds
    the tokens of the one call that was answered."""
    point_at(provider)
    answers = [http_error(503), model_text_reply("ok")]
    llm_server.responder = lambda p, body: answers.pop(0)(p, body)
    graph = ask_graph(provider, tmp_path, model="gpt-4o-mini", retries=1, backoff_s=0.0)
    result, stats = await run_once(graph)
    assert result.ok and len(llm_server.requests) == 2
    assert (stats.mean_attempts, stats.total_tokens) == (2, PROMPT_TOKENS + COMPLETION_TOKENS)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_unpriced_alias_is_priced_as_the_model_the_provider_names(
    provider: Provider, llm_server: LoopbackLLMServer
) -> None:
    """A requested name the table lacks (a router alias) answered by a priced model: the cost
    is that model's list price, and no warning is logged."""
    answered = {"openai": "gpt-4o-2024-08-06", "anthropic": "claude-3-5-haiku-20241022"}[provider]
    reply = model_text_reply("ok")
    llm_server.responder = lambda p, body: reply(p, {**body, "model": answered})
    url = sdk_base_url(provider, llm_server.url)
    model = MODELS[provider](f"router-alias-{provider}", api_key="k", base_url=url)
    with capture_logs() as logs:
        completion = await model.complete("hi")
    assert completion.response_model == answered
    assert completion.cost == pytest.approx(PriceTable().cost(answered, USAGE))
    assert not [entry for entry in logs if entry["event"] == "llm.price_unknown"]
