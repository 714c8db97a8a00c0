"""Configuration read from the environment, with local defaults."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field

from spark.db import sqlite_url

DEFAULT_STATE_DIR = Path(".spark")


class SparkSettings(BaseModel):
    """Where the worker, CLI and client find Temporal and the database."""

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "spark-rsi"
    database_url: str = Field(default_factory=lambda: sqlite_url(DEFAULT_STATE_DIR / "spark.db"))
    llm_provider: str = "rules"

    @classmethod
    def from_env(cls) -> SparkSettings:
        """Read ``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``, ``SPARK_TASK_QUEUE``,
        ``SPARK_DATABASE_URL`` and ``SPARK_LLM_PROVIDER``; unset ones keep their defaults."""
        env = {
            "temporal_address": os.environ.get("TEMPORAL_ADDRESS"),
            "temporal_namespace": os.environ.get("TEMPORAL_NAMESPACE"),
            "task_queue": os.environ.get("SPARK_TASK_QUEUE"),
            "database_url": os.environ.get("SPARK_DATABASE_URL"),
            "llm_provider": os.environ.get("SPARK_LLM_PROVIDER"),
        }
        return cls(**{key: value for key, value in env.items() if value})
