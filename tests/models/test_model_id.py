"""``OpenAIModel(model_id=...)`` / ``AnthropicModel(model_id=...)``: the description's spelling of
a model name, exclusive with ``settings``."""

from __future__ import annotations

import pytest

from spark.errors import SparkMisuseError
from spark.models.anthropic import AnthropicModel
from spark.models.base import ChatModel, LLMSettings
from spark.models.openai import OpenAIModel


@pytest.mark.parametrize("model_class", [OpenAIModel, AnthropicModel])
def test_model_id_names_the_model(
    model_class: type[ChatModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    """model_id= gives the model called, as a positional name or settings do."""
    monkeypatch.setenv(model_class.api_key_var, "sk-test")
    assert model_class(model_id="m-1").settings == LLMSettings(model="m-1")
    assert model_class("m-1").settings == model_class(model_id="m-1").settings


def test_settings_and_model_id_together_or_neither_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Exactly one of settings (or a name) and model_id."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with pytest.raises(SparkMisuseError, match="not both"):
        OpenAIModel("a", model_id="b")
    with pytest.raises(SparkMisuseError, match="give a model"):
        OpenAIModel()
