"""``AnthropicModel``: the Anthropic Messages API from inside a node.

::

    class Triage(Node):
        async def process(self, inputs: dict[str, Any]) -> dict[str, Any]:
            reply = await AnthropicModel.from_node_config().complete(inputs["ticket"])
            return {"label": reply.text.strip()}

The key comes from ``api_key=`` or ``ANTHROPIC_API_KEY``; ``base_url=`` (or
``ANTHROPIC_BASE_URL``) points it elsewhere. The Messages API requires a completion budget:
``params["max_tokens"]`` in the node's config, 1024 when unset. It takes no sampling
parameters: a ``temperature`` or ``top_p`` in the config is not sent (a warning says so). The ``anthropic`` package is
imported only when a model is built (``pip install 'spark-rsi[anthropic]'``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import structlog

from spark.models.base import ChatModel, Completion, LLMSettings, Message, Provider
from spark.models.pricing import TokenUsage

log = structlog.get_logger(__name__)

DEFAULT_MAX_TOKENS = 1024
_SAMPLING = ("temperature", "top_p")
_WARNED: set[tuple[str, tuple[str, ...]]] = set()


class AnthropicModel(ChatModel):
    """A Messages API model; settings from the node's config (see ``spark.models.base``)."""

    provider: ClassVar[Provider] = "anthropic"
    api_key_var: ClassVar[str] = "ANTHROPIC_API_KEY"
    base_url_var: ClassVar[str] = "ANTHROPIC_BASE_URL"
    sdk_error: ClassVar[str] = "AnthropicError"

    async def _call(self, messages: list[Message], system: str | None) -> Completion:
        client = self._client(self._build_client)
        message = await client.messages.create(**self._request(messages, system))
        text = "".join(block.text for block in message.content if block.type == "text")
        return self._completion(
            text,
            _usage(message.usage, self.model),
            response_model=message.model,
            finish_reason=message.stop_reason,
        )

    def _build_client(self) -> Any:
        return self.sdk.AsyncAnthropic(api_key=self.api_key, base_url=self.base_url, max_retries=0)

    def _request(self, messages: list[Message], system: str | None) -> dict[str, Any]:
        settings = self.settings
        request: dict[str, Any] = {
            "model": settings.model,
            "max_tokens": settings.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": [message.model_dump() for message in messages],
            "timeout": settings.timeout_s,
        }
        optional = {"system": system or None, "stop_sequences": settings.stop}
        request.update({key: value for key, value in optional.items() if value is not None})
        _warn_unsent_sampling(settings)
        return request


def _warn_unsent_sampling(settings: LLMSettings) -> None:
    """The Messages API takes no ``temperature`` / ``top_p`` (the SDK has dropped them): say so,
    once per model and setting, rather than fail every call or pretend they apply."""
    unsent = tuple(name for name in _SAMPLING if getattr(settings, name) is not None)
    if unsent and (settings.model, unsent) not in _WARNED:
        _WARNED.add((settings.model, unsent))
        log.warning(
            "llm.settings_not_sent", provider="anthropic", model=settings.model, settings=unsent
        )


def _usage(usage: Any, model: str) -> TokenUsage:
    """Prompt tokens include cache writes and reads (Anthropic counts them apart)."""
    if usage is None:
        log.warning("llm.usage_missing", provider="anthropic", model=model)
        return TokenUsage()
    cached = (getattr(usage, "cache_creation_input_tokens", 0) or 0) + (
        getattr(usage, "cache_read_input_tokens", 0) or 0
    )
    return TokenUsage(
        prompt_tokens=(usage.input_tokens or 0) + cached,
        completion_tokens=usage.output_tokens or 0,
    )
