"""Fixtures of the spark.models tests: a loopback LLM server and a clean provider environment."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from spark.models import close_clients
from tests.llm_server import LoopbackLLMServer, Provider, sdk_base_url, serve_llm

PROVIDER_VARS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")


@pytest.fixture(autouse=True)
def no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key or base URL leaks in from the machine's environment."""
    for name in PROVIDER_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def llm_server() -> Iterator[LoopbackLLMServer]:
    """A loopback OpenAI/Anthropic server on 127.0.0.1, stopped after the test."""
    with serve_llm(LoopbackLLMServer()) as server:
        yield server


@pytest.fixture
async def model_clients() -> AsyncIterator[None]:
    """Closes the SDK clients the test's models opened."""
    yield
    await close_clients()


@pytest.fixture
def point_at(
    monkeypatch: pytest.MonkeyPatch, llm_server: LoopbackLLMServer
) -> Callable[[Provider], None]:
    """Sets the provider's key and base URL variables to reach the loopback server."""

    def point(provider: Provider) -> None:
        prefix = provider.upper()
        monkeypatch.setenv(f"{prefix}_API_KEY", "sk-test-key")
        monkeypatch.setenv(f"{prefix}_BASE_URL", sdk_base_url(provider, llm_server.url))

    return point
