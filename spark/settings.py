"""Configuration read from the environment, with local defaults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, Field, SecretStr

from spark.db import sqlite_url
from spark.errors import ConfigurationError

DEFAULT_STATE_DIR = Path(".spark")

GeneratorKind = Literal["rules", "openai", "anthropic"]
GENERATOR_KINDS: tuple[GeneratorKind, ...] = get_args(GeneratorKind)

_ENV_FIELDS = {
    "temporal_address": "TEMPORAL_ADDRESS",
    "temporal_namespace": "TEMPORAL_NAMESPACE",
    "task_queue": "SPARK_TASK_QUEUE",
    "database_url": "SPARK_DATABASE_URL",
    "llm_model": "SPARK_LLM_MODEL",
    "openai_api_key": "OPENAI_API_KEY",
    "openai_base_url": "OPENAI_BASE_URL",
    "anthropic_api_key": "ANTHROPIC_API_KEY",
    "anthropic_base_url": "ANTHROPIC_BASE_URL",
}


class SparkSettings(BaseModel):
    """Where the worker, CLI and client find Temporal and the database, and which hypothesis
    generator the worker uses (``rules`` needs no key; ``openai``/``anthropic`` need theirs)."""

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "spark-rsi"
    database_url: str = Field(default_factory=lambda: sqlite_url(DEFAULT_STATE_DIR / "spark.db"))
    generator: GeneratorKind = "rules"
    llm_model: str | None = Field(default=None, description="None: the provider's default model")
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None

    @classmethod
    def from_env(cls) -> SparkSettings:
        """Read ``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``, ``SPARK_TASK_QUEUE``,
        ``SPARK_DATABASE_URL``, ``SPARK_GENERATOR``, ``SPARK_LLM_MODEL``, ``OPENAI_API_KEY``,
        ``OPENAI_BASE_URL``, ``ANTHROPIC_API_KEY`` and ``ANTHROPIC_BASE_URL``; unset or empty
        ones keep their defaults. Raises ``ConfigurationError`` for an unknown generator."""
        env: dict[str, str | None] = {key: os.environ.get(var) for key, var in _ENV_FIELDS.items()}
        env["generator"] = parse_generator_kind(os.environ.get("SPARK_GENERATOR"))
        return cls.model_validate({key: value for key, value in env.items() if value})


def parse_generator_kind(raw: str | None) -> GeneratorKind:
    """``SPARK_GENERATOR`` as a ``GeneratorKind`` (case and surrounding blanks ignored; unset or
    empty means ``rules``); anything else raises ``ConfigurationError`` naming the choices."""
    value = (raw or "rules").strip().lower() or "rules"
    for kind in GENERATOR_KINDS:
        if value == kind:
            return kind
    allowed = ", ".join(repr(kind) for kind in GENERATOR_KINDS)
    raise ConfigurationError(f"SPARK_GENERATOR={raw!r} is not one of {allowed}")
