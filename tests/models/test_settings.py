"""Model settings come from the node's config; misconfiguration fails before any call."""

from __future__ import annotations

import subprocess
import sys

import pytest

from spark.errors import ConfigurationError, MissingDependencyError, SparkMisuseError
from spark.graphs.spec import NodeConfig
from spark.models.anthropic import AnthropicModel
from spark.models.base import DEFAULT_TIMEOUT_S, LLMSettings
from spark.models.openai import OpenAIModel

MODELS = {"openai": OpenAIModel, "anthropic": AnthropicModel}


def test_settings_read_every_field_from_the_node_config() -> None:
    """model, temperature, prompt (as instructions), timeout and the params knobs."""
    config = NodeConfig(
        model="gpt-4o-mini",
        temperature=0.3,
        prompt="Be brief.",
        timeout_s=12.0,
        params={"max_tokens": 50, "top_p": 0.9, "stop": ["END"], "cheaper_models": ["x"]},
    )
    assert LLMSettings.from_node_config(config) == LLMSettings(
        model="gpt-4o-mini",
        temperature=0.3,
        system="Be brief.",
        timeout_s=12.0,
        max_tokens=50,
        top_p=0.9,
        stop=["END"],
    )


def test_unset_fields_stay_unset_and_the_timeout_has_a_default() -> None:
    """Only the model is required; the provider's defaults apply to the rest."""
    settings = LLMSettings.from_node_config(NodeConfig(model="m"))
    assert (settings.temperature, settings.system, settings.max_tokens) == (None, None, None)
    assert settings.timeout_s == DEFAULT_TIMEOUT_S


def test_a_node_without_a_model_is_a_configuration_error() -> None:
    """No model in the config: the error says where to set it."""
    with pytest.raises(ConfigurationError, match="set 'model' in its config"):
        LLMSettings.from_node_config(NodeConfig())


def test_invalid_params_are_a_configuration_error() -> None:
    """A max_tokens of zero is refused with the field named."""
    with pytest.raises(ConfigurationError, match="max_tokens"):
        LLMSettings.from_node_config(NodeConfig(model="m", params={"max_tokens": 0}))


@pytest.mark.parametrize(
    ("provider", "variable"), [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")]
)
def test_a_missing_key_names_the_variable(provider: str, variable: str) -> None:
    """Neither api_key= nor the environment variable: ConfigurationError naming the variable."""
    with pytest.raises(ConfigurationError, match=variable):
        MODELS[provider].from_node_config(NodeConfig(model="m"))


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_missing_sdk_names_the_extra_to_install(
    provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK not importable: MissingDependencyError naming spark-rsi[<provider>]."""
    monkeypatch.setitem(sys.modules, provider, None)
    with pytest.raises(MissingDependencyError, match=rf"spark-rsi\[{provider}\]"):
        MODELS[provider]("m", api_key="sk-test")


def test_importing_the_model_modules_does_not_import_the_sdks() -> None:
    """The SDKs load only when a model is built (they are optional extras)."""
    code = (
        "import sys, spark.models.openai, spark.models.anthropic; "
        "assert 'openai' not in sys.modules and 'anthropic' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_an_argument_outside_a_node_is_misuse() -> None:
    """from_node_config() with no argument needs a running Node.process."""
    with pytest.raises(SparkMisuseError, match=r"only inside Node\.process"):
        OpenAIModel.from_node_config(api_key="sk-test")
