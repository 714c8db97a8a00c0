"""A loopback HTTP server speaking the OpenAI Chat Completions and Anthropic Messages wire
protocols, for tests that drive the real ``openai`` / ``anthropic`` clients.

A ``ThreadingHTTPServer`` on 127.0.0.1 records every request and answers with bodies shaped like
the real APIs'::

    with serve_llm(LoopbackLLMServer()) as server:
        client = openai.OpenAI(api_key="sk-test", base_url=sdk_base_url("openai", server.url))
        ...
        assert server.requests[-1].body["model"] == "gpt-4o-mini"

Set ``responder`` to answer differently (``http_error(429)``, ``model_text_reply("...")``), or
subclass and override ``default_reply``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

Provider = Literal["openai", "anthropic"]
ENDPOINTS: dict[Provider, str] = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}
PROMPT_TOKENS = 900
COMPLETION_TOKENS = 120
DEFAULT_TEXT = "ok"

Responder = Callable[[Provider, dict[str, Any]], tuple[int, bytes]]


@dataclass
class Received:
    """One request the server received."""

    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class LoopbackLLMServer:
    """Records requests; answers each with ``responder``, else ``default_reply``."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    responder: Responder | None = None

    def respond(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, bytes]:
        """Record the request and build the reply (404 for an unknown route)."""
        body: Any = json.loads(raw) if raw else None
        self.requests.append(Received(path, headers, body))
        provider = next((p for p, end in ENDPOINTS.items() if end == path), None)
        if provider is None:
            return 404, b'{"error": {"type": "not_found_error", "message": "no such route"}}'
        if self.responder is not None:
            return self.responder(provider, body)
        return self.default_reply(provider, body)

    def default_reply(self, provider: Provider, body: dict[str, Any]) -> tuple[int, bytes]:
        """A well-formed answer whose text is ``DEFAULT_TEXT``."""
        return model_text_reply(DEFAULT_TEXT)(provider, body)

    def models_requested(self) -> list[str]:
        """The ``model`` of every request, in order."""
        return [request.body["model"] for request in self.requests]


def chat_completion(
    model: str,
    content: str | None,
    *,
    prompt_tokens: int = PROMPT_TOKENS,
    completion_tokens: int = COMPLETION_TOKENS,
) -> bytes:
    """A Chat Completions response body with one choice."""
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    return json.dumps(
        {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": usage,
        }
    ).encode()


def anthropic_message(
    model: str,
    content: list[dict[str, Any]],
    *,
    input_tokens: int = PROMPT_TOKENS,
    output_tokens: int = COMPLETION_TOKENS,
) -> bytes:
    """A Messages API response body."""
    stop = "tool_use" if any(block["type"] == "tool_use" for block in content) else "end_turn"
    return json.dumps(
        {
            "id": "msg_test",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }
    ).encode()


def model_text_reply(text: str, **usage: int) -> Responder:
    """A responder whose model answer is ``text`` (message content / a text block); ``usage``
    overrides the token counts (``prompt_tokens``, ``completion_tokens``)."""
    prompt = usage.get("prompt_tokens", PROMPT_TOKENS)
    completion = usage.get("completion_tokens", COMPLETION_TOKENS)

    def respond(provider: Provider, body: dict[str, Any]) -> tuple[int, bytes]:
        if provider == "openai":
            return 200, chat_completion(
                body["model"], text, prompt_tokens=prompt, completion_tokens=completion
            )
        block = [{"type": "text", "text": text}]
        return 200, anthropic_message(
            body["model"], block, input_tokens=prompt, output_tokens=completion
        )

    return respond


def http_error(status: int) -> Responder:
    """A responder failing every request with ``status`` and the provider's error body."""
    error = {"type": "api_error", "message": f"status {status}"}

    def respond(provider: Provider, body: dict[str, Any]) -> tuple[int, bytes]:
        payload = {"error": error} if provider == "openai" else {"type": "error", "error": error}
        return status, json.dumps(payload).encode()

    return respond


def sdk_base_url(provider: Provider, url: str) -> str:
    """The SDK base URL for a server root (OpenAI's includes ``/v1``)."""
    return f"{url}/v1" if provider == "openai" else url


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length", 0)))
        path = urlsplit(self.path).path
        headers = {key.lower(): value for key, value in self.headers.items()}
        status, body = self.server.fake.respond(path, headers, raw)
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


class _Server(ThreadingHTTPServer):
    fake: LoopbackLLMServer


ServerT = TypeVar("ServerT", bound=LoopbackLLMServer)


@contextmanager
def serve_llm(fake: ServerT) -> Iterator[ServerT]:
    """Serve ``fake`` on a free 127.0.0.1 port (its ``url`` set); shut down and closed after."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = fake
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-llm", daemon=True
    )
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
