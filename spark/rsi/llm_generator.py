"""LLM hypothesis generators: OpenAI (Chat Completions, JSON mode) and Anthropic (Messages API,
one forced tool whose input schema is the answer's schema).

The model receives the graph spec (nodes, types, configs, tags, a ``protected`` flag, edges), the
diagnostic report (bottlenecks with their evidence, run figures, structure), the learned patterns
and the exact JSON schema of an answer, derived from the pydantic models below: ``{"hypotheses":
[...]}``, each with a title, diagnosis, rationale, primary metric, expected effects and changes
from the closed ``ChangeOp`` set.

Its answer is untrusted data. Each proposed hypothesis is parsed on its own; graph id, base
version, risk and ``source`` (``llm:<provider>:<model>``) are filled in here, never taken from
the model. A proposal is dropped, with a structured log line saying why, when it does not parse,
names a node the spec lacks, or would break a protected node's guarantee (see
``spark.rsi.validation``). The static
validation phase still checks everything else (DAG, data flow, retry safety, budgets).

Results: the model's proposals first (in its order), then, unless ``fill_from_fallback`` is
off, the fallback generator's (rules by default) to fill the remaining slots; deduplicated by
``hypothesis_id``; at most ``max_hypotheses``. Like the rules, nothing is proposed (and no call
is made) when the report lacks data.

Failures never lose the cycle: connection errors, timeouts, 5xx, rate limits (after the SDK's
bounded retries) and unusable answers (malformed JSON, wrong shape, refusals) are logged and
answered by the fallback generator; with ``fallback=None`` they raise
``GeneratorUnavailableError`` (retryable). Misconfiguration (no API key, unknown provider) raises
``ConfigurationError`` when the generator is built.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol, get_args

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spark.errors import (
    ConfigurationError,
    GeneratorUnavailableError,
    InvalidInputError,
    MissingDependencyError,
)
from spark.graphs.spec import GraphSpec, NodeSpec
from spark.rsi.analysis import DiagnosticReport
from spark.rsi.generator import (
    DiagnosisKind,
    HypothesisGenerator,
    PatternHint,
    RuleBasedGenerator,
)
from spark.rsi.hypotheses import ChangeOp, Hypothesis, Metric, touched_nodes
from spark.rsi.objectives import Objective, objective_of
from spark.rsi.patterns import LearnedPattern
from spark.rsi.validation import assess_risk, protection_refusals
from spark.settings import SparkSettings

if TYPE_CHECKING:
    import anthropic
    import openai

log = structlog.get_logger(__name__)

Provider = Literal["openai", "anthropic"]
PROVIDERS: tuple[Provider, ...] = get_args(Provider)
DEFAULT_MODELS: dict[Provider, str] = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-3-5-haiku-latest",
}
API_KEY_VARS: dict[Provider, str] = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_RETRIES = 2
# Worst case of one generate call, all attempts timing out: it must end well inside the
# generate_hypotheses activity's start-to-close timeout (2 min), or the activity would time out
# and be retried instead of falling back to the rules.
MAX_CALL_BUDGET_S = 100.0
MAX_OUTPUT_TOKENS = 4096
MAX_PROPOSALS_READ = 20
MAX_REASON_ERRORS = 3
TOOL_NAME = "propose_hypotheses"
# what a 200 body that is JSON but not the API's response shape raises (SDKs do not validate it)
_SHAPE_ERRORS = (AttributeError, TypeError, IndexError, KeyError)

Effect = Annotated[float, Field(ge=-10.0, le=10.0, allow_inf_nan=False)]


class ProposedHypothesis(BaseModel):
    """One hypothesis as the model writes it. Graph, base version, risk and source are filled in
    by the generator; extra keys the model adds (an id, a risk...) are ignored."""

    model_config = ConfigDict(extra="ignore")

    title: str = Field(min_length=1, max_length=200)
    diagnosis: str = Field(
        min_length=1,
        max_length=1000,
        description="'<diagnosis kind>: <evidence>', e.g. 'transient_errors: node x fails 12%'",
    )
    rationale: str = Field(default="", max_length=4000)
    primary_metric: Metric = Field(description="the metric the A/B test decides on")
    expected_effects: dict[Metric, Effect] = Field(
        default_factory=dict, description="expected relative change per metric, e.g. -0.3"
    )
    changes: list[ChangeOp] = Field(min_length=1, max_length=10)


class ProposalBatch(BaseModel):
    """The whole answer: ``{"hypotheses": [...]}``, best first."""

    hypotheses: list[ProposedHypothesis]


def answer_schema() -> dict[str, Any]:
    """The JSON schema of an answer, as sent to the model."""
    return ProposalBatch.model_json_schema()


class UnusableAnswerError(Exception):
    """The model answered, but not with a JSON object holding a list of hypotheses."""


class RejectedProposalError(ValueError):
    """One proposed hypothesis is unusable; the message says why."""


# ----- prompt -----

SYSTEM_PROMPT = """\
You improve production LLM workflow graphs. You get a graph spec, a diagnostic report computed \
from its telemetry, and learned patterns (how often each change kind succeeded for each \
diagnosis kind, on this graph and across graphs, with an interval on the success rate). \
Propose at most {max_hypotheses} hypotheses, best first. Each answers one \
diagnosed problem with a small list of typed changes.

Rules:
- Use only the change operations of the answer schema; every node id must exist in the graph.
- Never change a node with "protected": true, and never make it run on other requests or \
read other inputs (no condition, removed edge or reroute on its way, no fallback or replacement \
running its type); reorganizing its neighbours (e.g. parallelizing lookups before it) is fine.
- Retries only on nodes tagged idempotent or without side effects; cache only nodes tagged \
deterministic and without side effects.
- The owner's objective (weights over error_rate, latency, cost, quality, and hard \
constraints) is the graph's "objective": propose what improves it, not one metric at any price.
- Start each diagnosis with one of {diagnosis_kinds} followed by ": " and the evidence.
- expected_effects: expected relative change per metric (-0.3 means 30% lower); primary_metric \
is the metric the A/B test decides on.
- Prefer change kinds that succeeded for that diagnosis in the learned patterns \
("success_patterns").
- Avoid the "anti_patterns": change kinds that failed or did harm for that diagnosis on similar \
nodes; propose one only if the report shows why this case differs, and say so in the rationale.
- Propose nothing rather than a change the report does not support.

{reply_instruction}"""


def build_prompt(
    report: DiagnosticReport,
    spec: GraphSpec,
    patterns: Sequence[PatternHint],
    objective: Objective | None = None,
) -> str:
    """The user message: the spec with the owner's objective, the report, the patterns (all of
    them, then the success patterns and anti-patterns described in a line each) and the answer
    schema, as JSON."""
    context = {
        "graph": graph_view(spec, objective),
        "diagnostic_report": report.model_dump(mode="json"),
        "learned_patterns": [pattern.model_dump(mode="json") for pattern in patterns],
        "success_patterns": _described(patterns, "success", spec.id),
        "anti_patterns": _described(patterns, "anti", spec.id),
        "answer_schema": answer_schema(),
    }
    return json.dumps(context, ensure_ascii=False)


def _described(patterns: Sequence[PatternHint], verdict: str, graph_id: str) -> list[str]:
    """One line per learned pattern with ``verdict``, its interval and graph weight included."""
    return [
        p.describe(graph_id)
        for p in patterns
        if isinstance(p, LearnedPattern) and p.verdict == verdict
    ]


def system_prompt(max_hypotheses: int, reply_instruction: str) -> str:
    """The instructions, with the hypothesis budget and the provider's reply format."""
    return SYSTEM_PROMPT.format(
        max_hypotheses=max_hypotheses,
        diagnosis_kinds=", ".join(get_args(DiagnosisKind)),
        reply_instruction=reply_instruction,
    )


def graph_view(spec: GraphSpec, objective: Objective | None = None) -> dict[str, Any]:
    """The spec as the model sees it: every node with an explicit ``protected`` flag, and the
    owner's objective (``objective``, else the graph's declared one, else the defaults)."""
    return {
        "id": spec.id,
        "entry": spec.entry,
        "inputs": spec.inputs,
        "nodes": [_node_view(node) for node in spec.nodes],
        "edges": [edge.model_dump(mode="json", exclude_none=True) for edge in spec.edges],
        "objective": (objective or objective_of(spec.metadata)).model_dump(mode="json"),
    }


def _node_view(node: NodeSpec) -> dict[str, Any]:
    return {
        "id": node.id,
        "type": node.type,
        "protected": node.has_tag("protected"),
        "tags": node.tags,
        "inputs": node.inputs,
        "outputs": node.outputs,
        "config": node.config.model_dump(mode="json", exclude_none=True),
        "description": node.description,
    }


# ----- parsing the answer -----


def decode_answer(text: str) -> Any:
    """Decode a JSON answer, tolerating a surrounding markdown code fence."""
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[-1].rsplit("```", 1)[0]
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise UnusableAnswerError(f"answer is not valid JSON ({exc.msg} at {exc.pos})") from exc


def proposal_items(answer: Any) -> list[Any]:
    """The raw proposals of an answer: ``{"hypotheses": [...]}`` (a bare list is accepted)."""
    items = answer.get("hypotheses") if isinstance(answer, dict) else answer
    if not isinstance(items, list):
        raise UnusableAnswerError("answer holds no 'hypotheses' list")
    return items


def parse_proposal(item: Any, spec: GraphSpec, *, base_version_id: str, source: str) -> Hypothesis:
    """One proposal as a hypothesis on ``base_version_id``; raises ``RejectedProposalError``
    when it does not parse, names unknown nodes or touches protected ones."""
    try:
        proposed = ProposedHypothesis.model_validate(item)
    except ValidationError as exc:
        raise RejectedProposalError(_describe(exc)) from None
    _check_nodes(spec, proposed.changes)
    return Hypothesis(
        graph_id=spec.id,
        base_version_id=base_version_id,
        title=proposed.title,
        diagnosis=proposed.diagnosis,
        changes=proposed.changes,
        rationale=proposed.rationale,
        primary_metric=proposed.primary_metric,
        expected_effects=proposed.expected_effects,
        risk=assess_risk(spec, proposed.changes),
        source=source,
    )


def _describe(exc: ValidationError) -> str:
    """Where and why validation failed, without echoing the (untrusted) input."""
    errors = exc.errors(include_input=False, include_url=False)
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in errors]
    more = len(parts) - MAX_REASON_ERRORS
    return "; ".join(parts[:MAX_REASON_ERRORS]) + (f" (+{more} more)" if more > 0 else "")


def _check_nodes(spec: GraphSpec, changes: Sequence[ChangeOp]) -> None:
    named = set().union(*(touched_nodes(change) for change in changes))
    unknown = sorted(n for n in named if not spec.has_node(n))
    if unknown:
        raise RejectedProposalError(f"names unknown node(s) {unknown}")
    refusals = protection_refusals(spec, changes)
    if refusals:
        raise RejectedProposalError("; ".join(refusals))


def _dedupe(hypotheses: Iterable[Hypothesis]) -> list[Hypothesis]:
    by_id: dict[str, Hypothesis] = {}
    for hypothesis in hypotheses:
        by_id.setdefault(hypothesis.hypothesis_id, hypothesis)
    return list(by_id.values())


# ----- providers -----


class ModelCall(Protocol):
    """One provider's request for an answer: the decoded JSON the model returned."""

    reply_instruction: str
    errors: tuple[type[Exception], ...]

    def ask(self, system: str, prompt: str) -> Any:
        """Send the instructions and the context; return the decoded answer."""
        ...

    def close(self) -> None:
        """Release the HTTP connection pool."""
        ...


def import_provider_sdk(provider: Provider) -> Any:
    """The provider's SDK module; ``MissingDependencyError`` naming the extra when absent."""
    try:
        return importlib.import_module(provider)
    except ImportError as exc:
        raise MissingDependencyError(
            f"SPARK_GENERATOR={provider!r} needs the {provider!r} package, which is not "
            f"installed: pip install 'spark-rsi[{provider}]' (or 'spark-rsi[llm]' for both)"
        ) from exc


class OpenAIChat:
    """Chat Completions in JSON mode (``response_format={"type": "json_object"}``)."""

    reply_instruction = (
        'Reply with one JSON object {"hypotheses": [...]} matching answer_schema, nothing else.'
    )

    def __init__(
        self, model: str, api_key: str, base_url: str | None, timeout_s: float, max_retries: int
    ) -> None:
        sdk = import_provider_sdk("openai")
        self.model = model
        self.errors: tuple[type[Exception], ...] = (sdk.OpenAIError, json.JSONDecodeError)
        self._client: openai.OpenAI = sdk.OpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=max_retries
        )

    def ask(self, system: str, prompt: str) -> Any:
        """One completion; its message content decoded as JSON."""
        completion = self._client.chat.completions.create(
            model=self.model,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": prompt}],
            response_format={"type": "json_object"},
            max_completion_tokens=MAX_OUTPUT_TOKENS,
        )
        try:
            return _openai_answer(completion)
        except _SHAPE_ERRORS as exc:
            raise UnusableAnswerError(f"not a chat completion ({type(exc).__name__})") from exc

    def close(self) -> None:
        """Close the client's connection pool."""
        self._client.close()


class AnthropicMessages:
    """The Messages API with one tool, forced, whose input schema is the answer schema; a JSON
    object in a text block is accepted too."""

    reply_instruction = f"Answer by calling the {TOOL_NAME} tool once with every hypothesis."

    def __init__(
        self, model: str, api_key: str, base_url: str | None, timeout_s: float, max_retries: int
    ) -> None:
        sdk = import_provider_sdk("anthropic")
        self.model = model
        self.errors: tuple[type[Exception], ...] = (sdk.AnthropicError, json.JSONDecodeError)
        self._client: anthropic.Anthropic = sdk.Anthropic(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=max_retries
        )

    def ask(self, system: str, prompt: str) -> Any:
        """One message; the tool call's input, else the text decoded as JSON."""
        message = self._client.messages.create(
            model=self.model,
            max_tokens=MAX_OUTPUT_TOKENS,
            system=system,
            messages=[{"role": "user", "content": prompt}],
            tools=[
                {
                    "name": TOOL_NAME,
                    "description": "Submit the proposed hypotheses, best first.",
                    "input_schema": answer_schema(),
                }
            ],
            tool_choice={"type": "tool", "name": TOOL_NAME},
        )
        try:
            return _anthropic_answer(message)
        except _SHAPE_ERRORS as exc:
            raise UnusableAnswerError(f"not a Messages response ({type(exc).__name__})") from exc

    def close(self) -> None:
        """Close the client's connection pool."""
        self._client.close()


def _openai_answer(completion: openai.types.chat.ChatCompletion) -> Any:
    """The decoded message content of the first choice."""
    content = completion.choices[0].message.content if completion.choices else None
    if not isinstance(content, str) or not content:
        raise UnusableAnswerError("the completion has no message content")
    return decode_answer(content)


def _anthropic_answer(message: anthropic.types.Message) -> Any:
    """The input of the tool call, else the text decoded as JSON."""
    from anthropic.types import TextBlock, ToolUseBlock

    if not isinstance(message.content, list):
        raise UnusableAnswerError("the message has no content list")
    for block in message.content:
        if isinstance(block, ToolUseBlock) and block.name == TOOL_NAME:
            return block.input
    text = "".join(block.text for block in message.content if isinstance(block, TextBlock))
    if not text.strip():
        raise UnusableAnswerError(f"no {TOOL_NAME} call and no text (stop: {message.stop_reason})")
    return decode_answer(text)


_CALLS: dict[Provider, type[OpenAIChat] | type[AnthropicMessages]] = {
    "openai": OpenAIChat,
    "anthropic": AnthropicMessages,
}


# ----- the generator -----

_RULES = RuleBasedGenerator()


@dataclass(frozen=True)
class _Request:
    """The arguments of one ``generate`` call."""

    report: DiagnosticReport
    spec: GraphSpec
    patterns: Sequence[PatternHint]
    base_version_id: str
    max_hypotheses: int
    objective: Objective | None = None


class LLMGenerator:
    """Proposes hypotheses with an LLM; the fallback (rules by default) answers when the model
    cannot, and fills the slots the model leaves (see the module docstring)."""

    def __init__(
        self,
        provider: str,
        *,
        api_key: str | None,
        model: str | None = None,
        base_url: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
        fallback: HypothesisGenerator | None = _RULES,
        fill_from_fallback: bool = True,
    ) -> None:
        checked = _check_provider(provider)
        if not api_key:
            raise ConfigurationError(
                f"the {checked!r} hypothesis generator needs an API key: set "
                f"{API_KEY_VARS[checked]} (or SPARK_GENERATOR=rules, which needs none)"
            )
        _check_budget(timeout_s, max_retries)
        self.provider: Provider = checked
        self.model = model or DEFAULT_MODELS[checked]
        self.fallback, self.fill_from_fallback = fallback, fill_from_fallback
        self._call: ModelCall = _CALLS[checked](
            self.model, api_key, base_url, timeout_s, max_retries
        )

    @property
    def source(self) -> str:
        """The ``source`` recorded on this generator's hypotheses."""
        return f"llm:{self.provider}:{self.model}"

    def generate(
        self,
        report: DiagnosticReport,
        spec: GraphSpec,
        *,
        patterns: Sequence[PatternHint] = (),
        base_version_id: str,
        max_hypotheses: int = 5,
        objective: Objective | None = None,
    ) -> list[Hypothesis]:
        """At most ``max_hypotheses`` hypotheses on ``base_version_id``: the model's first, then
        the fallback's; the fallback's alone when the model fails."""
        if report.graph_id != spec.id:
            raise InvalidInputError(f"report is for graph {report.graph_id!r}, not {spec.id!r}")
        if not report.sufficient_data or max_hypotheses <= 0:
            return []
        args = _Request(report, spec, patterns, base_version_id, max_hypotheses, objective)
        recoverable: tuple[type[Exception], ...] = (UnusableAnswerError, *self._call.errors)
        try:
            proposed = self._ask_model(args)
        except recoverable as exc:
            return self._fall_back(args, exc)
        filled = self._from_fallback(args) if self.fill_from_fallback else []
        return _dedupe([*proposed, *filled])[:max_hypotheses]

    def close(self) -> None:
        """Release the HTTP client."""
        self._call.close()

    def __enter__(self) -> LLMGenerator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _ask_model(self, args: _Request) -> list[Hypothesis]:
        system = system_prompt(args.max_hypotheses, self._call.reply_instruction)
        answer = self._call.ask(
            system, build_prompt(args.report, args.spec, args.patterns, args.objective)
        )
        items = proposal_items(answer)
        accepted = _dedupe(self._accept(items[:MAX_PROPOSALS_READ], args))
        log.info(
            "llm_generator.proposed",
            graph_id=args.spec.id,
            source=self.source,
            received=len(items),
            accepted=len(accepted),
        )
        return accepted[: args.max_hypotheses]

    def _accept(self, items: Sequence[Any], args: _Request) -> list[Hypothesis]:
        accepted = []
        for index, item in enumerate(items):
            try:
                accepted.append(
                    parse_proposal(
                        item, args.spec, base_version_id=args.base_version_id, source=self.source
                    )
                )
            except RejectedProposalError as exc:
                log.warning(
                    "llm_generator.proposal_dropped",
                    graph_id=args.spec.id,
                    source=self.source,
                    index=index,
                    reason=str(exc),
                )
        return accepted

    def _fall_back(self, args: _Request, exc: Exception) -> list[Hypothesis]:
        reason = f"{type(exc).__name__}: {exc}"
        log.warning(
            "llm_generator.fallback",
            graph_id=args.spec.id,
            source=self.source,
            reason=reason,
            fallback=type(self.fallback).__name__ if self.fallback else None,
        )
        if self.fallback is None:
            raise GeneratorUnavailableError(f"{self.source} gave no usable answer: {reason}")
        return self._from_fallback(args)

    def _from_fallback(self, args: _Request) -> list[Hypothesis]:
        if self.fallback is None:
            return []
        return self.fallback.generate(
            args.report,
            args.spec,
            patterns=args.patterns,
            base_version_id=args.base_version_id,
            max_hypotheses=args.max_hypotheses,
            objective=args.objective,
        )


def _check_budget(timeout_s: float, max_retries: int) -> None:
    """Every attempt timing out must still leave time to fall back inside the activity."""
    if timeout_s <= 0 or max_retries < 0:
        raise ConfigurationError(
            f"timeout_s must be > 0 and max_retries >= 0, got {timeout_s!r}, {max_retries!r}"
        )
    if (max_retries + 1) * timeout_s > MAX_CALL_BUDGET_S:
        raise ConfigurationError(
            f"{max_retries + 1} attempts of {timeout_s:g}s exceed the {MAX_CALL_BUDGET_S:g}s "
            "budget of one generate call"
        )


def _check_provider(provider: str) -> Provider:
    for known in PROVIDERS:
        if provider == known:
            return known
    allowed = ", ".join(repr(p) for p in PROVIDERS)
    raise ConfigurationError(f"unknown LLM provider {provider!r}; expected one of {allowed}")


# ----- settings -----


def generator_from_settings(settings: SparkSettings) -> HypothesisGenerator:
    """The generator ``SPARK_GENERATOR`` names: rules (no key needed), or an ``LLMGenerator``
    for ``openai``/``anthropic`` with its key, base URL and ``SPARK_LLM_MODEL``, falling back
    to the rules. Raises ``ConfigurationError`` when the provider's key is missing."""
    if settings.generator == "rules":
        return RuleBasedGenerator()
    key, base_url = _provider_access(settings, settings.generator)
    return LLMGenerator(
        settings.generator, api_key=key, model=settings.llm_model, base_url=base_url
    )


def generator_for_model(settings: SparkSettings, provider: Provider, model: str) -> LLMGenerator:
    """An ``LLMGenerator`` for ``model`` of ``provider`` with the worker's key and base URL (the
    model a loop's settings name, ``hypothesis_model``). Raises ``ConfigurationError`` naming
    the environment variable when the worker has no key for that provider: the loop asked for
    that model, so the worker's own generator is no substitute."""
    key, base_url = _provider_access(settings, provider)
    if not key:
        raise ConfigurationError(
            f"the loop asks for {provider} model {model!r} to generate hypotheses, but this "
            f"worker has no {provider} API key: set {API_KEY_VARS[provider]} on the worker"
        )
    return LLMGenerator(provider, api_key=key, model=model, base_url=base_url)


def _provider_access(settings: SparkSettings, provider: str) -> tuple[str | None, str | None]:
    """The worker's API key (None when unset) and base URL for ``provider``."""
    if provider == "openai":
        key, base_url = settings.openai_api_key, settings.openai_base_url
    else:
        key, base_url = settings.anthropic_api_key, settings.anthropic_base_url
    return (key.get_secret_value() if key else None), base_url
