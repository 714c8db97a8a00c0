"""A loop's own ``hypothesis_model``: generate_hypotheses calls that provider's model with the
worker's key and base URL, and fails non-retryably, naming the variable, when the worker has no
key for that provider (never another generator in its place)."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from spark.rsi.contracts import HypothesisModel
from spark.settings import SparkSettings
from tests.activities.test_hypotheses_activities import Loop
from tests.llm_server import LoopbackLLMServer, sdk_base_url, serve_llm
from tests.rsi.builders import support_spec


async def test_the_loops_model_is_called_with_the_workers_key(sqlite_database_url: str) -> None:
    """hypothesis_model openai/gpt-4o on a worker whose own generator is the rules: the request
    goes to gpt-4o at the worker's OPENAI_BASE_URL, in the generator's JSON mode."""
    loop = Loop(sqlite_database_url, support_spec())
    with serve_llm(LoopbackLLMServer()) as llm:
        loop.deps.settings = SparkSettings(
            openai_api_key="sk-worker", openai_base_url=sdk_base_url("openai", llm.url)
        )
        await loop.generate(
            errors=40, hypothesis_model=HypothesisModel(provider="openai", model="gpt-4o")
        )
        await loop.generate(errors=40)
    assert [r.body["model"] for r in llm.requests] == ["gpt-4o"]
    assert llm.requests[0].body["response_format"] == {"type": "json_object"}
    assert llm.requests[0].headers["authorization"] == "Bearer sk-worker"


async def test_a_worker_without_the_providers_key_fails_the_activity_for_good(
    sqlite_database_url: str,
) -> None:
    """No ANTHROPIC_API_KEY on the worker: a non-retryable ConfigurationError naming it."""
    loop = Loop(sqlite_database_url, support_spec())
    loop.deps.settings = SparkSettings(openai_api_key="sk-worker", anthropic_api_key=None)
    wanted = HypothesisModel(provider="anthropic", model="claude-3-5-haiku-latest")
    with pytest.raises(ApplicationError) as failure:
        await loop.generate(errors=40, hypothesis_model=wanted)
    assert failure.value.non_retryable and failure.value.type == "ConfigurationError"
    assert "set ANTHROPIC_API_KEY on the worker" in str(failure.value)
