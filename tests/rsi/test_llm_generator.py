"""LLMGenerator against a loopback server speaking the OpenAI and Anthropic wire protocols.

The real ``openai`` / ``anthropic`` clients talk HTTP to the shared loopback server of
``tests.llm_server``, which records every request and answers with bodies shaped like the real
APIs'.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from structlog.testing import capture_logs

from activities.deps import ActivityDeps
from spark.errors import ConfigurationError, GeneratorUnavailableError
from spark.graphs.spec import GraphSpec
from spark.rsi.analysis import DiagnosticReport, analyze
from spark.rsi.generator import RuleBasedGenerator
from spark.rsi.hypotheses import AddCache, ChangeOp, Hypothesis, SetConfig
from spark.rsi.llm_generator import (
    DEFAULT_MODELS,
    TOOL_NAME,
    LLMGenerator,
    Provider,
    answer_schema,
    generator_from_settings,
)
from spark.rsi.validation import assess_risk
from spark.settings import SparkSettings
from tests.llm_server import (
    ENDPOINTS,
    LoopbackLLMServer,
    Received,
    anthropic_message,
    chat_completion,
    http_error,
    model_text_reply,
    serve_llm,
)
from tests.llm_server import sdk_base_url as base_url
from tests.rsi.builders import healthy_node_stats, node_stats, support_spec, version_stats

PROVIDERS: tuple[Provider, ...] = ("openai", "anthropic")
MODEL = "test-model-1"
ENV_VARS = (
    "SPARK_GENERATOR",
    "SPARK_LLM_MODEL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
)

RETRY = {
    "title": "Retry fetch_account",
    "diagnosis": "transient_errors: fetch_account times out on 15% of runs",
    "rationale": "Timeouts are transient and the node is idempotent.",
    "primary_metric": "error_rate",
    "expected_effects": {"error_rate": -0.12},
    "changes": [{"op": "set_config", "node_id": "fetch_account", "values": {"retries": 2}}],
}
CACHE = {
    "title": "Cache classify",
    "diagnosis": "repeated_inputs: classify sees repeated texts",
    "primary_metric": "latency",
    "expected_effects": {"latency": -0.05},
    "changes": [{"op": "add_cache", "node_id": "classify", "ttl_s": 600}],
}


# ----- the loopback server -----


@dataclass
class FakeLLMServer(LoopbackLLMServer):
    """By default answers with a well-formed body whose model answer is
    ``{"hypotheses": proposals}``."""

    proposals: list[Any] = field(default_factory=list)

    def default_reply(self, provider: Provider, body: dict[str, Any]) -> tuple[int, bytes]:
        """The proposals as JSON content (OpenAI) or as the tool call's input (Anthropic)."""
        answer = {"hypotheses": self.proposals}
        if provider == "openai":
            return 200, chat_completion(body["model"], json.dumps(answer))
        return 200, anthropic_message(body["model"], [tool_use_block(answer)])

    def user_context(self) -> dict[str, Any]:
        """The JSON context sent as the user message of the last request."""
        return json.loads(self.requests[-1].body["messages"][-1]["content"])


def tool_use_block(answer: Any) -> dict[str, Any]:
    """A ``tool_use`` content block calling the generator's tool."""
    return {"type": "tool_use", "id": "toolu_test", "name": TOOL_NAME, "input": answer}


@pytest.fixture
def llm_server() -> Iterator[FakeLLMServer]:
    """A fake provider on 127.0.0.1, shut down and closed after the test."""
    with serve_llm(FakeLLMServer()) as server:
        yield server


@pytest.fixture
def make_generator(llm_server: FakeLLMServer) -> Iterator[Callable[..., LLMGenerator]]:
    """Builds generators pointed at the fake server (no retries unless asked); closes them."""
    made: list[LLMGenerator] = []

    def make(provider: Provider, **options: Any) -> LLMGenerator:
        options = {"max_retries": 0, "timeout_s": 10.0, "model": MODEL, **options}
        options.setdefault("base_url", base_url(provider, llm_server.url))
        generator = LLMGenerator(provider, api_key="sk-test-key", **options)
        made.append(generator)
        return generator

    yield make
    for generator in made:
        generator.close()


# ----- report and spec -----


def failing_report(spec: GraphSpec) -> DiagnosticReport:
    """fetch_account fails with timeouts on 15% of 200 runs (rules propose retries)."""
    failing = node_stats("fetch_account", errors=30, error_types={"TimeoutError": 30})
    return analyze(spec, healthy_node_stats(fetch_account=failing), version_stats(errors=30))


def generate(generator: Any, spec: GraphSpec, max_hypotheses: int = 5) -> list[Hypothesis]:
    """Generate for ``failing_report`` on base version v7."""
    return generator.generate(
        failing_report(spec), spec, base_version_id="v7", max_hypotheses=max_hypotheses
    )


def changes(hypotheses: list[Hypothesis]) -> list[list[ChangeOp]]:
    """The changes of every hypothesis."""
    return [h.changes for h in hypotheses]


def events(logs: Sequence[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    """The captured log entries with event ``name``."""
    return [entry for entry in logs if entry["event"] == name]


def sent_key(request: Received) -> str | None:
    """The API key a request authenticated with (``x-api-key`` or a bearer token)."""
    bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
    return request.headers.get("x-api-key") or bearer or None


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ----- parsing a valid answer -----


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_valid_answer_becomes_typed_hypotheses(
    provider: Provider, llm_server: FakeLLMServer, make_generator: Callable[..., LLMGenerator]
) -> None:
    """Both proposals parse into typed changes on the spec's graph and the given base version,
    with source ``llm:<provider>:<model>`` and a risk computed here, in the model's order."""
    llm_server.proposals = [RETRY, CACHE]
    spec = support_spec()
    hypotheses = generate(make_generator(provider, fill_from_fallback=False), spec)
    assert changes(hypotheses) == [
        [SetConfig(node_id="fetch_account", values={"retries": 2})],
        [AddCache(node_id="classify", ttl_s=600.0)],
    ]
    assert {(h.graph_id, h.base_version_id, h.source) for h in hypotheses} == {
        ("support", "v7", f"llm:{provider}:{MODEL}")
    }
    assert [h.risk for h in hypotheses] == [assess_risk(spec, h.changes) for h in hypotheses]
    assert hypotheses[0].primary_metric == "error_rate"
    assert hypotheses[0].expected_effects == {"error_rate": -0.12}
    assert hypotheses[1].rationale == ""


@pytest.mark.parametrize("provider", PROVIDERS)
def test_fields_the_model_must_not_choose_are_ignored(
    provider: Provider, llm_server: FakeLLMServer, make_generator: Callable[..., LLMGenerator]
) -> None:
    """A graph id, base version, risk or source in the answer is replaced by ours."""
    forged = {**RETRY, "graph_id": "other", "base_version_id": "v0", "risk": "low"}
    llm_server.proposals = [{**forged, "source": "rules"}]
    spec = support_spec(fetch_account={"tags": ["side_effects", "idempotent"]})
    [hypothesis] = generate(make_generator(provider, fill_from_fallback=False), spec)
    assert (hypothesis.graph_id, hypothesis.base_version_id) == ("support", "v7")
    assert hypothesis.source == f"llm:{provider}:{MODEL}"
    assert hypothesis.risk == "medium"  # a side-effect node raises the risk one level


def test_openai_request_carries_model_spec_report_and_schema(
    llm_server: FakeLLMServer, make_generator: Callable[..., LLMGenerator]
) -> None:
    """The Chat Completions request names the model, asks for a JSON object, authenticates
    with the key and sends every node id, the protected flag, the bottlenecks and the schema."""
    llm_server.proposals = [RETRY]
    spec = support_spec()
    generate(make_generator("openai", fill_from_fallback=False), spec)
    [request] = llm_server.requests
    assert request.path == "/v1/chat/completions"
    assert sent_key(request) == "sk-test-key"
    assert request.body["model"] == MODEL
    assert request.body["response_format"] == {"type": "json_object"}
    assert [m["role"] for m in request.body["messages"]] == ["system", "user"]
    assert "at most 5 hypotheses" in request.body["messages"][0]["content"]
    assert "JSON" in request.body["messages"][0]["content"]
    assert_context_describes(llm_server.user_context(), spec)


def test_anthropic_request_forces_the_tool_with_the_answer_schema(
    llm_server: FakeLLMServer, make_generator: Callable[..., LLMGenerator]
) -> None:
    """The Messages request names the model, authenticates with the key, forces the one tool
    whose input schema is the answer schema, and sends the same context."""
    llm_server.proposals = [RETRY]
    spec = support_spec()
    generate(make_generator("anthropic", fill_from_fallback=False), spec, max_hypotheses=3)
    [request] = llm_server.requests
    assert request.path == "/v1/messages"
    assert sent_key(request) == "sk-test-key"
    assert request.body["model"] == MODEL
    assert request.body["tool_choice"] == {"type": "tool", "name": TOOL_NAME}
    [tool] = request.body["tools"]
    assert tool["name"] == TOOL_NAME and tool["input_schema"] == answer_schema()
    assert "at most 3 hypotheses" in request.body["system"]
    assert_context_describes(llm_server.user_context(), spec)


def assert_context_describes(context: dict[str, Any], spec: GraphSpec) -> None:
    """The user context holds the spec's nodes (with protection), the report's bottlenecks and
    a schema that admits every change operation and no other."""
    nodes = {node["id"]: node for node in context["graph"]["nodes"]}
    assert list(nodes) == [node.id for node in spec.nodes]
    assert [n for n, node in nodes.items() if node["protected"]] == ["audit"]
    assert nodes["classify"]["config"]["prompt"] == "Classify the text."
    assert {(e["source"], e["target"]) for e in context["graph"]["edges"]} == {
        edge.key for edge in spec.edges
    }
    assert context["diagnostic_report"] == failing_report(spec).model_dump(mode="json")
    bottlenecks = context["diagnostic_report"]["bottlenecks"]
    assert ("fetch_account", "errors") in [(b["node_id"], b["kind"]) for b in bottlenecks]
    assert context["answer_schema"] == answer_schema()
    ops = {
        definition["properties"]["op"]["const"]
        for definition in context["answer_schema"]["$defs"].values()
        if "const" in definition.get("properties", {}).get("op", {})
    }
    assert ops == {
        "set_prompt",
        "set_config",
        "replace_node",
        "add_edge",
        "remove_edge",
        "reroute_edge",
        "parallelize",
        "add_cache",
        "add_fallback",
    }


def test_anthropic_json_in_a_text_block_is_accepted(
    llm_server: FakeLLMServer, make_generator: Callable[..., LLMGenerator]
) -> None:
    """Without a tool call, a JSON object in the text (even fenced) is parsed."""
    text = "```json\n" + json.dumps({"hypotheses": [CACHE]}) + "\n```"
    llm_server.responder = model_text_reply(text)
    hypotheses = generate(make_generator("anthropic", fill_from_fallback=False), support_spec())
    assert changes(hypotheses) == [[AddCache(node_id="classify", ttl_s=600.0)]]


# ----- untrusted proposals -----

INVALID_PROPOSALS: list[tuple[Any, str]] = [
    (
        {**RETRY, "changes": [{"op": "delete_node", "node_id": "draft"}]},
        "changes.0: Input tag 'delete_node' found using 'op' does not match",
    ),
    (
        {**CACHE, "changes": [{"op": "add_cache", "node_id": "ghost", "ttl_s": 60}]},
        "names unknown node(s) ['ghost']",
    ),
    (
        {**CACHE, "changes": [{"op": "set_prompt", "node_id": "audit", "prompt": "Be brief."}]},
        "touches protected node 'audit'",
    ),
    (
        {**CACHE, "changes": [{"op": "add_fallback", "node_id": "notify", "fallback_type": "fn"}]},
        "would run the implementation of protected node 'audit'",
    ),
    ({key: v for key, v in RETRY.items() if key != "title"}, "title: Field required"),
    ({**RETRY, "primary_metric": "happiness"}, "primary_metric: Input should be"),
    ({**RETRY, "changes": []}, "changes: List should have at least 1 item"),
    ({**RETRY, "expected_effects": {"error_rate": 1e9}}, "expected_effects.error_rate"),
    ("retry everything", "Input should be a valid dictionary"),
]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_invalid_proposals_are_dropped_with_a_reason_and_valid_ones_kept(
    provider: Provider, llm_server: FakeLLMServer, make_generator: Callable[..., LLMGenerator]
) -> None:
    """Every invalid proposal is dropped with a warning naming its index and why; the valid
    ones around them survive in order."""
    llm_server.proposals = [RETRY, *(item for item, _ in INVALID_PROPOSALS), CACHE]
    with capture_logs() as logs:
        hypotheses = generate(make_generator(provider, fill_from_fallback=False), support_spec())
    assert [h.title for h in hypotheses] == ["Retry fetch_account", "Cache classify"]
    dropped = events(logs, "llm_generator.proposal_dropped")
    assert [entry["index"] for entry in dropped] == list(range(1, len(INVALID_PROPOSALS) + 1))
    for entry, (_, reason) in zip(dropped, INVALID_PROPOSALS, strict=True):
        assert reason in entry["reason"]
        assert entry["log_level"] == "warning"
    [summary] = events(logs, "llm_generator.proposed")
    assert (summary["received"], summary["accepted"]) == (len(INVALID_PROPOSALS) + 2, 2)


def test_a_dropped_reason_never_echoes_the_model_output(
    llm_server: FakeLLMServer, make_generator: Callable[..., LLMGenerator]
) -> None:
    """The log line says where validation failed, not what the model wrote."""
    llm_server.proposals = [{**RETRY, "primary_metric": "SECRET-PAYLOAD"}]
    with capture_logs() as logs:
        assert generate(make_generator("openai", fill_from_fallback=False), support_spec()) == []
    [entry] = events(logs, "llm_generator.proposal_dropped")
    assert "primary_metric" in entry["reason"] and "SECRET-PAYLOAD" not in entry["reason"]


def test_duplicates_are_removed_and_the_budget_respected(
    llm_server: FakeLLMServer, make_generator: Callable[..., LLMGenerator]
) -> None:
    """Proposals with the same changes collapse to the first; no more than max_hypotheses."""
    other = {**CACHE, "changes": [{"op": "add_cache", "node_id": "fetch_history", "ttl_s": 60}]}
    llm_server.proposals = [RETRY, {**RETRY, "title": "Same changes again"}, CACHE, other]
    generator = make_generator("openai", fill_from_fallback=False)
    hypotheses = generate(generator, support_spec(), max_hypotheses=2)
    assert [h.title for h in hypotheses] == ["Retry fetch_account", "Cache classify"]


def test_rule_proposals_fill_the_remaining_slots_after_the_models(
    llm_server: FakeLLMServer, make_generator: Callable[..., LLMGenerator]
) -> None:
    """By default the rules' hypotheses follow the model's; one with the same changes as a
    model proposal is not repeated."""
    spec = support_spec()
    rules = generate(RuleBasedGenerator(), spec)
    assert len(rules) == 1
    same_as_rules = {**RETRY, "changes": [c.model_dump() for c in rules[0].changes]}
    llm_server.proposals = [CACHE, same_as_rules]
    hypotheses = generate(make_generator("openai"), spec)
    assert [h.source for h in hypotheses] == [f"llm:openai:{MODEL}"] * 2
    assert changes(hypotheses) == [[AddCache(node_id="classify", ttl_s=600.0)], rules[0].changes]
    llm_server.proposals = [CACHE]
    filled = generate(make_generator("openai"), spec)
    assert [h.source for h in filled] == [f"llm:openai:{MODEL}", "rules"]
    assert filled[1] == rules[0]


# ----- failures fall back to the rules -----


def rules_answer(spec: GraphSpec) -> list[Hypothesis]:
    """What the rule-based generator proposes for ``failing_report``."""
    hypotheses = generate(RuleBasedGenerator(), spec)
    assert hypotheses, "the failing report must give the rules something to propose"
    return hypotheses


def assert_fell_back(logs: Sequence[MutableMapping[str, Any]], reason: str) -> None:
    """One fallback warning whose reason contains ``reason``."""
    [entry] = events(logs, "llm_generator.fallback")
    assert reason in entry["reason"], entry["reason"]
    assert entry["log_level"] == "warning" and entry["fallback"] == "RuleBasedGenerator"


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"hypotheses": [', "UnusableAnswerError: answer is not valid JSON"),
        ('{"proposals": []}', "no 'hypotheses' list"),
        ('"just a string"', "no 'hypotheses' list"),
    ],
)
def test_an_unusable_answer_falls_back_to_the_rules(
    provider: Provider,
    text: str,
    reason: str,
    llm_server: FakeLLMServer,
    make_generator: Callable[..., LLMGenerator],
) -> None:
    """Malformed JSON or the wrong shape: the rules' answer, a warning, no exception."""
    llm_server.responder = model_text_reply(text)
    spec = support_spec()
    with capture_logs() as logs:
        assert generate(make_generator(provider), spec) == rules_answer(spec)
    assert_fell_back(logs, reason)


def test_an_empty_openai_message_falls_back(
    llm_server: FakeLLMServer, make_generator: Callable[..., LLMGenerator]
) -> None:
    """A completion without content (a refusal) is unusable, not a crash."""
    llm_server.responder = lambda provider, body: (200, chat_completion(body["model"], None))
    spec = support_spec()
    with capture_logs() as logs:
        assert generate(make_generator("openai"), spec) == rules_answer(spec)
    assert_fell_back(logs, "no message content")


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("status", "error_type"),
    [(500, "InternalServerError"), (429, "RateLimitError"), (401, "AuthenticationError")],
)
def test_http_errors_fall_back_to_the_rules(
    provider: Provider,
    status: int,
    error_type: str,
    llm_server: FakeLLMServer,
    make_generator: Callable[..., LLMGenerator],
) -> None:
    """Server errors, rate limits and rejected keys: the rules' answer and the error logged."""
    llm_server.responder = http_error(status)
    spec = support_spec()
    with capture_logs() as logs:
        assert generate(make_generator(provider), spec) == rules_answer(spec)
    assert_fell_back(logs, error_type)
    assert len(llm_server.requests) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_retries_are_bounded_before_falling_back(
    provider: Provider, llm_server: FakeLLMServer, make_generator: Callable[..., LLMGenerator]
) -> None:
    """With max_retries=1 a persistent 503 costs exactly two requests, then the rules answer."""
    llm_server.responder = http_error(503)
    spec = support_spec()
    assert generate(make_generator(provider, max_retries=1), spec) == rules_answer(spec)
    assert [r.path for r in llm_server.requests] == [ENDPOINTS[provider]] * 2


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    "body", [b"<html>gateway</html>", b"{}", b'{"choices": 3, "content": "x"}', b"[]"]
)
def test_a_response_body_of_the_wrong_shape_falls_back(
    provider: Provider,
    body: bytes,
    llm_server: FakeLLMServer,
    make_generator: Callable[..., LLMGenerator],
) -> None:
    """A 200 whose body is not the API's (a proxy's HTML page, an empty or odd object) falls
    back too."""
    llm_server.responder = lambda provider, request: (200, body)
    spec = support_spec()
    with capture_logs() as logs:
        assert generate(make_generator(provider), spec) == rules_answer(spec)
    assert len(events(logs, "llm_generator.fallback")) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_connection_refused_falls_back_to_the_rules(
    provider: Provider, make_generator: Callable[..., LLMGenerator]
) -> None:
    """Nothing listening at the base URL: the rules' answer and a connection error logged."""
    url = base_url(provider, f"http://127.0.0.1:{closed_port()}")
    spec = support_spec()
    with capture_logs() as logs:
        assert generate(make_generator(provider, base_url=url), spec) == rules_answer(spec)
    assert_fell_back(logs, "APIConnectionError")


def test_without_a_fallback_a_failure_raises_a_retryable_error(
    llm_server: FakeLLMServer, make_generator: Callable[..., LLMGenerator]
) -> None:
    """fallback=None: the failure surfaces as GeneratorUnavailableError (a runtime error)."""
    llm_server.responder = http_error(500)
    generator = make_generator("anthropic", fallback=None)
    with pytest.raises(GeneratorUnavailableError, match="InternalServerError"):
        generate(generator, support_spec())


def test_no_call_is_made_without_sufficient_data(
    llm_server: FakeLLMServer, make_generator: Callable[..., LLMGenerator]
) -> None:
    """Like the rules, nothing is proposed for a report with too few traces, and no request
    (no cost) is made."""
    spec = support_spec()
    report = analyze(spec, healthy_node_stats(), version_stats(count=5))
    generator = make_generator("openai")
    assert generator.generate(report, spec, base_version_id="v7") == []
    assert llm_server.requests == []


# ----- configuration -----


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("key", [None, ""])
def test_a_missing_api_key_is_a_configuration_error(provider: Provider, key: str | None) -> None:
    """No key for the requested provider: ConfigurationError naming the variable to set."""
    variable = "OPENAI_API_KEY" if provider == "openai" else "ANTHROPIC_API_KEY"
    with pytest.raises(ConfigurationError, match=variable):
        LLMGenerator(provider, api_key=key)
    with pytest.raises(ConfigurationError, match=variable):
        generator_from_settings(SparkSettings(generator=provider))


def test_an_unknown_provider_is_a_configuration_error() -> None:
    """Only openai and anthropic are providers."""
    with pytest.raises(ConfigurationError, match="'openai', 'anthropic'"):
        LLMGenerator("mistral", api_key="sk-test")


@pytest.mark.parametrize(
    ("timeout_s", "max_retries", "match"),
    [(0.0, 2, "timeout_s must be > 0"), (30.0, -1, "max_retries >= 0"), (60.0, 2, "budget")],
)
def test_timeouts_and_retries_must_fit_the_call_budget(
    timeout_s: float, max_retries: int, match: str
) -> None:
    """Attempts that could outlast the activity (so it would never fall back) are refused."""
    with pytest.raises(ConfigurationError, match=match):
        LLMGenerator("openai", api_key="sk-test", timeout_s=timeout_s, max_retries=max_retries)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No generator, model, key or base URL variable set."""
    for variable in ENV_VARS:
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, "rules"), ("", "rules"), ("openai", "openai"), (" Anthropic ", "anthropic")],
)
def test_spark_generator_is_parsed_from_the_env(
    raw: str | None, expected: str, clean_env: pytest.MonkeyPatch
) -> None:
    """Unset or empty means rules; case and blanks are ignored."""
    if raw is not None:
        clean_env.setenv("SPARK_GENERATOR", raw)
    assert SparkSettings.from_env().generator == expected


def test_a_bad_spark_generator_names_the_allowed_values(clean_env: pytest.MonkeyPatch) -> None:
    """An unknown value is a ConfigurationError listing rules, openai and anthropic."""
    clean_env.setenv("SPARK_GENERATOR", "gpt")
    with pytest.raises(ConfigurationError) as caught:
        SparkSettings.from_env()
    assert str(caught.value) == "SPARK_GENERATOR='gpt' is not one of 'rules', 'openai', 'anthropic'"


def test_llm_settings_are_read_from_the_env_and_keys_stay_secret(
    clean_env: pytest.MonkeyPatch,
) -> None:
    """Model, keys and base URLs come from the standard variables; a key never shows in repr."""
    clean_env.setenv("SPARK_GENERATOR", "anthropic")
    clean_env.setenv("SPARK_LLM_MODEL", "claude-test")
    clean_env.setenv("ANTHROPIC_API_KEY", "sk-ant-secret")
    clean_env.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    settings = SparkSettings.from_env()
    assert settings.llm_model == "claude-test"
    assert settings.anthropic_base_url == "http://127.0.0.1:9"
    assert settings.anthropic_api_key is not None
    assert settings.anthropic_api_key.get_secret_value() == "sk-ant-secret"
    assert "sk-ant-secret" not in repr(settings)
    assert settings.openai_api_key is None


def test_rules_need_no_key(clean_env: pytest.MonkeyPatch) -> None:
    """The default settings give the rule-based generator."""
    assert isinstance(generator_from_settings(SparkSettings.from_env()), RuleBasedGenerator)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_settings_build_a_generator_that_calls_the_configured_base_url(
    provider: Provider, llm_server: FakeLLMServer
) -> None:
    """SPARK_GENERATOR selects the provider; its key and base URL are used, and the model
    defaults to the provider's default."""
    key_field, url_field = f"{provider}_api_key", f"{provider}_base_url"
    settings = SparkSettings.model_validate(
        {
            "generator": provider,
            key_field: "sk-from-settings",
            url_field: base_url(provider, llm_server.url),
        }
    )
    llm_server.proposals = [RETRY]
    generator = generator_from_settings(settings)
    assert isinstance(generator, LLMGenerator)
    with generator:
        [hypothesis, *_] = generate(generator, support_spec())
    assert hypothesis.source == f"llm:{provider}:{DEFAULT_MODELS[provider]}"
    [request] = llm_server.requests
    assert request.body["model"] == DEFAULT_MODELS[provider]
    assert sent_key(request) == "sk-from-settings"


def test_activity_deps_take_the_generator_from_settings(sqlite_database_url: str) -> None:
    """from_database_url keeps its one-argument form (rules) and builds the configured
    generator from settings; a missing key fails before any store opens."""
    assert isinstance(
        ActivityDeps.from_database_url(sqlite_database_url).generator, RuleBasedGenerator
    )
    settings = SparkSettings(
        database_url=sqlite_database_url, generator="openai", openai_api_key="sk-test"
    )
    deps = ActivityDeps.from_database_url(sqlite_database_url, settings=settings)
    assert isinstance(deps.generator, LLMGenerator) and deps.generator.provider == "openai"
    deps.generator.close()
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        ActivityDeps.from_database_url(
            sqlite_database_url, settings=SparkSettings(generator="openai")
        )
