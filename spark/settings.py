"""Configuration read from the environment, with local defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from spark.errors import ConfigurationError

DEFAULT_STATE_DIR = Path(".spark")

GeneratorKind = Literal["rules", "openai", "anthropic"]
GENERATOR_KINDS: tuple[GeneratorKind, ...] = get_args(GeneratorKind)


def _default_database_url() -> str:
    """The local SQLite file. ``spark.db`` (SQLAlchemy) is imported here, not at module level, so
    that a workflow-only worker, which reads these settings, never loads SQLAlchemy."""
    from spark.db import sqlite_url

    return sqlite_url(DEFAULT_STATE_DIR / "spark.db")


def _env(name: str, variable: str) -> AliasChoices:
    """Accept the field's own name (keyword arguments) and its environment variable."""
    return AliasChoices(name, variable)


class SparkSettings(BaseSettings):
    """Where the worker, CLI and client find Temporal and the database, and which hypothesis
    generator the worker uses (``rules`` needs no key; ``openai``/``anthropic`` need theirs).

    Read from the environment by pydantic-settings: ``TEMPORAL_ADDRESS``,
    ``TEMPORAL_NAMESPACE``, ``SPARK_TASK_QUEUE``, ``SPARK_DATABASE_URL``, ``SPARK_GENERATOR``,
    ``SPARK_LLM_MODEL``, ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``ANTHROPIC_API_KEY``,
    ``ANTHROPIC_BASE_URL`` and ``SPARK_TELEMETRY_WRITER_PROCESS``; keyword arguments win over the environment, unset or empty
    variables keep the defaults."""

    model_config = SettingsConfigDict(
        env_ignore_empty=True, extra="forbid", populate_by_name=True, case_sensitive=False
    )

    temporal_address: str = Field(
        default="localhost:7233", validation_alias=_env("temporal_address", "TEMPORAL_ADDRESS")
    )
    temporal_namespace: str = Field(
        default="default", validation_alias=_env("temporal_namespace", "TEMPORAL_NAMESPACE")
    )
    task_queue: str = Field(
        default="spark-rsi", validation_alias=_env("task_queue", "SPARK_TASK_QUEUE")
    )
    database_url: str = Field(
        default_factory=_default_database_url,
        validation_alias=_env("database_url", "SPARK_DATABASE_URL"),
    )
    generator: GeneratorKind = Field(
        default="rules", validation_alias=_env("generator", "SPARK_GENERATOR")
    )
    llm_model: str | None = Field(
        default=None,
        description="None: the provider's default model",
        validation_alias=_env("llm_model", "SPARK_LLM_MODEL"),
    )
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("openai_api_key", "OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=_env("openai_base_url", "OPENAI_BASE_URL")
    )
    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("anthropic_api_key", "ANTHROPIC_API_KEY")
    )
    anthropic_base_url: str | None = Field(
        default=None, validation_alias=_env("anthropic_base_url", "ANTHROPIC_BASE_URL")
    )
    telemetry_writer_process: bool = Field(
        default=False,
        description="SparkClient writes telemetry from a child process (TelemetryConfig."
        "writer_process): about 1.5 us less a node on the serving thread, for about 90 MB and "
        "1 s of start-up in the child",
        validation_alias=_env("telemetry_writer_process", "SPARK_TELEMETRY_WRITER_PROCESS"),
    )

    @field_validator("generator", mode="before")
    @classmethod
    def _generator_kind(cls, raw: object) -> object:
        return parse_generator_kind(raw) if raw is None or isinstance(raw, str) else raw

    @classmethod
    def from_env(cls) -> SparkSettings:
        """The settings the environment gives (see the class docstring). Raises
        ``ConfigurationError`` naming the variable for a value that does not fit."""
        try:
            return cls()
        except ValidationError as exc:
            error = exc.errors()[0]
            cause = error.get("ctx", {}).get("error")
            if isinstance(cause, ConfigurationError):
                raise cause from None
            variable = _variable_of(error["loc"][0] if error["loc"] else None)
            raise ConfigurationError(
                f"invalid {variable}: {error['msg']} (got {error.get('input')!r})"
            ) from None


def _variable_of(field: object) -> str:
    """The environment variable a settings field (or alias) is read from."""
    for name, info in SparkSettings.model_fields.items():
        alias = info.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else []
        if field == name or field in choices:
            return str(choices[-1]) if choices else name.upper()
    return "Spark settings in the environment"


def parse_generator_kind(raw: str | None) -> GeneratorKind:
    """``SPARK_GENERATOR`` as a ``GeneratorKind`` (case and surrounding blanks ignored; unset or
    empty means ``rules``); anything else raises ``ConfigurationError`` naming the choices."""
    value = (raw or "rules").strip().lower() or "rules"
    for kind in GENERATOR_KINDS:
        if value == kind:
            return kind
    allowed = ", ".join(repr(kind) for kind in GENERATOR_KINDS)
    raise ConfigurationError(f"SPARK_GENERATOR={raw!r} is not one of {allowed}")
