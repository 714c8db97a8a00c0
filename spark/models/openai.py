"""``OpenAIModel``: OpenAI Chat Completions from inside a node.

::

    @node("summarize")
    async def summarize(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        reply = await OpenAIModel.from_node_config(ctx).complete(inputs["text"])
        return {"summary": reply.text}

The key comes from ``api_key=`` or ``OPENAI_API_KEY``; ``base_url=`` (or ``OPENAI_BASE_URL``)
points it at a proxy or a compatible server. The ``openai`` package is imported only when a
model is built (``pip install 'spark-rsi[openai]'``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import structlog

from spark.models.base import ChatModel, Completion, Message, Provider
from spark.models.pricing import TokenUsage

log = structlog.get_logger(__name__)


class OpenAIModel(ChatModel):
    """A Chat Completions model; settings from the node's config (see ``spark.models.base``)."""

    provider: ClassVar[Provider] = "openai"
    api_key_var: ClassVar[str] = "OPENAI_API_KEY"
    base_url_var: ClassVar[str] = "OPENAI_BASE_URL"
    sdk_error: ClassVar[str] = "OpenAIError"

    async def _call(self, messages: list[Message], system: str | None) -> Completion:
        client = self._client(self._build_client)
        response = await client.chat.completions.create(**self._request(messages, system))
        choice = response.choices[0] if response.choices else None
        return self._completion(
            (choice.message.content if choice is not None else None) or "",
            _usage(response.usage, self.model),
            response_model=response.model,
            finish_reason=choice.finish_reason if choice is not None else None,
        )

    def _build_client(self) -> Any:
        return self.sdk.AsyncOpenAI(api_key=self.api_key, base_url=self.base_url, max_retries=0)

    def _request(self, messages: list[Message], system: str | None) -> dict[str, Any]:
        settings = self.settings
        turns = [{"role": "system", "content": system}] if system else []
        turns += [message.model_dump() for message in messages]
        request: dict[str, Any] = {
            "model": settings.model,
            "messages": turns,
            "timeout": settings.timeout_s,
        }
        optional = {
            "temperature": settings.temperature,
            "max_completion_tokens": settings.max_tokens,
            "top_p": settings.top_p,
            "stop": settings.stop,
        }
        request.update({key: value for key, value in optional.items() if value is not None})
        return request


def _usage(usage: Any, model: str) -> TokenUsage:
    if usage is None:
        log.warning("llm.usage_missing", provider="openai", model=model)
        return TokenUsage()
    return TokenUsage(
        prompt_tokens=usage.prompt_tokens or 0, completion_tokens=usage.completion_tokens or 0
    )
