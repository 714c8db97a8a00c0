"""What every chat model shares: settings read from a node's config, the completion it returns,
and the reporting of its tokens and cost to the running node's span.

Settings come from the node's ``NodeConfig``, so a change the RSI loop ships (``set_config`` of
``model`` or ``temperature``, ``set_prompt``) changes the next request without code:

============================  ======================================================
``config.model``              the model called (required)
``config.temperature``        sampling temperature (OpenAI only; provider default when unset)
``config.prompt``             the system instructions
``config.timeout_s``          the HTTP timeout of one call (default 60 s)
``config.params["max_tokens"]``  the completion budget (OpenAI: none; Anthropic: 1024)
``config.params["top_p"]``    nucleus sampling (OpenAI only)
``config.params["stop"]``     stop sequences (a list of strings)
============================  ======================================================
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal, Self

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spark.errors import ConfigurationError, SparkMisuseError
from spark.graphs.api import current_context
from spark.graphs.registry import NodeContext
from spark.graphs.spec import NodeConfig
from spark.models import _sdk
from spark.models.pricing import PriceTable, TokenUsage, default_prices

log = structlog.get_logger(__name__)

DEFAULT_TIMEOUT_S = 60.0
_PARAMS = ("max_tokens", "top_p", "stop")
Provider = Literal["openai", "anthropic"]


class Message(BaseModel):
    """One turn of a conversation (system instructions travel separately)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["user", "assistant"]
    content: str


class LLMSettings(BaseModel):
    """The request settings of one model; see the module docstring for where each comes from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    system: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: list[str] | None = None
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0.0)

    @classmethod
    def from_node_config(cls, config: NodeConfig, **overrides: Any) -> LLMSettings:
        """The settings ``config`` describes; ``overrides`` replace single fields."""
        params = {key: config.params[key] for key in _PARAMS if key in config.params}
        data = {
            "model": config.model,
            "temperature": config.temperature,
            "system": config.prompt,
            "timeout_s": config.timeout_s or DEFAULT_TIMEOUT_S,
            **params,
            **overrides,
        }
        if not data["model"]:
            raise ConfigurationError("an LLM node needs a model: set 'model' in its config")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigurationError(f"invalid LLM settings in the node config: {exc}") from exc


class Completion(BaseModel):
    """A model's answer: its text, the tokens the provider counted and what they cost."""

    model_config = ConfigDict(frozen=True)

    text: str
    provider: Provider
    model: str = Field(description="the model requested (from the node's config)")
    response_model: str | None = Field(default=None, description="the model the provider named")
    usage: TokenUsage
    cost: float | None = Field(description="US dollars; None when the model has no known price")
    finish_reason: str | None = None


Prompt = str | Sequence[Message | Mapping[str, str]]


class ChatModel(abc.ABC):
    """A chat model called from inside a node; its usage lands on the node's span by itself.

    Build one per node execution with ``from_node_config(ctx)`` (or ``from_node_config()``
    inside ``Node.process``); the HTTP client behind it is shared across executions.
    """

    provider: ClassVar[Provider]
    api_key_var: ClassVar[str]
    base_url_var: ClassVar[str]
    sdk_error: ClassVar[str]

    def __init__(
        self,
        settings: LLMSettings | str | None = None,
        *,
        model_id: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        prices: PriceTable | None = None,
        context: NodeContext | None = None,
    ) -> None:
        self.settings = _settings_of(settings, model_id)
        self.sdk = _sdk.import_sdk(self.provider)
        self.api_key = _api_key(api_key, self.api_key_var, self.provider)
        self.base_url = base_url or os.environ.get(self.base_url_var) or None
        self.prices = prices if prices is not None else default_prices()
        self.context = context

    @classmethod
    def from_node_config(
        cls,
        source: NodeContext | NodeConfig | None = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        prices: PriceTable | None = None,
        **overrides: Any,
    ) -> Self:
        """A model configured by a node's config: from its ``NodeContext`` (usage reported
        there), a bare ``NodeConfig`` (usage reported to whichever node runs the call), or, with
        no argument, the context of the ``Node`` whose ``process`` is running."""
        if source is None:
            source = _running_context()
            if source is None:
                raise SparkMisuseError(
                    "from_node_config() without an argument works only inside Node.process; "
                    "pass the node's context or config"
                )
        context = source if isinstance(source, NodeContext) else None
        config = source.config if isinstance(source, NodeContext) else source
        settings = LLMSettings.from_node_config(config, **overrides)
        return cls(settings, api_key=api_key, base_url=base_url, prices=prices, context=context)

    @property
    def model(self) -> str:
        """The model this instance calls."""
        return self.settings.model

    async def complete(self, prompt: Prompt, *, system: str | None = None) -> Completion:
        """Ask the model; ``prompt`` is the user message or the whole conversation. ``system``
        replaces the configured instructions for this call. Reports tokens and cost to the
        running node's span; raises ``ModelRateLimitError``, ``ModelUnavailableError``
        (retryable by the node's policy) or ``ModelRequestError`` (not retried)."""
        messages = _messages(prompt)
        instructions = system if system is not None else self.settings.system
        sdk_error: type[Exception] = getattr(self.sdk, self.sdk_error)
        try:
            completion = await self._call(messages, instructions)
        except sdk_error as exc:
            error = _sdk.translate_error(self.sdk, exc, provider=self.provider, model=self.model)
            raise error from exc
        self._report(completion)
        return completion

    @abc.abstractmethod
    async def _call(self, messages: list[Message], system: str | None) -> Completion:
        """One request through the provider's SDK."""

    def _client(self, build: Callable[[], Any]) -> Any:
        return _sdk.shared_client((self.provider, self.api_key, self.base_url), build)

    def _completion(self, text: str, usage: TokenUsage, **fields: Any) -> Completion:
        cost = self.prices.cost(self._priced_as(fields.get("response_model")), usage)
        return Completion(
            text=text, provider=self.provider, model=self.model, usage=usage, cost=cost, **fields
        )

    def _priced_as(self, response_model: str | None) -> str:
        """The requested model, or the one the provider named when only that one has a price."""
        if self.prices.price_of(self.model) is not None or not response_model:
            return self.model
        return response_model if self.prices.price_of(response_model) is not None else self.model

    def _report(self, completion: Completion) -> None:
        context = self.context or _running_context()
        if context is not None:
            context.report_usage(tokens=completion.usage.total_tokens, cost=completion.cost or 0.0)
        log.debug(
            "llm.completion",
            provider=self.provider,
            model=self.model,
            node_id=context.node_id if context is not None else None,
            prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=completion.usage.completion_tokens,
            cost=completion.cost,
        )


def _settings_of(settings: LLMSettings | str | None, model_id: str | None) -> LLMSettings:
    """The settings given, or those of a model name (``model_id=``, the original's spelling)."""
    if (settings is None) == (model_id is None):
        raise SparkMisuseError("give a model: settings (or a model name) or model_id=, not both")
    if isinstance(settings, LLMSettings):
        return settings
    return LLMSettings(model=settings or model_id)


def _running_context() -> NodeContext | None:
    try:
        return current_context()
    except SparkMisuseError:
        return None


def _api_key(given: str | None, variable: str, provider: str) -> str:
    key = given or os.environ.get(variable)
    if not key:
        raise ConfigurationError(f"the {provider} model needs an API key: set {variable}")
    return key


def _messages(prompt: Prompt) -> list[Message]:
    if isinstance(prompt, str):
        return [Message(role="user", content=prompt)]
    try:
        messages = [m if isinstance(m, Message) else Message.model_validate(m) for m in prompt]
    except ValidationError as exc:
        raise SparkMisuseError(f"messages must be user/assistant turns with text: {exc}") from exc
    if not messages:
        raise SparkMisuseError("a completion needs at least one message")
    return messages
