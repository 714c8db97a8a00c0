"""Where telemetry goes and how it is batched: ``TelemetryConfig`` and its factories."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import URL

from spark.db import normalize_url, sqlite_url
from spark.telemetry.recorder import TelemetryRecorder
from spark.telemetry.store import TelemetryStore


class TelemetryConfig(BaseModel):
    """Database URL and write-path settings of the telemetry recorder.

    ``batch_size`` is the most runs written in one transaction; ``max_queue`` the most runs waiting
    in memory before new ones are dropped (and counted); ``capture_inputs=False`` strips the request
    inputs from traces before they are stored (no offline replay then).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    database_url: str
    enabled: bool = True
    batch_size: int = Field(default=500, ge=1)
    flush_interval_s: float = Field(default=0.5, gt=0)
    max_queue: int = Field(default=100_000, ge=1)
    capture_inputs: bool = True

    @classmethod
    def create_sqlite(
        cls, db_path: str | Path = "spark_telemetry.db", **kw: Any
    ) -> TelemetryConfig:
        """Telemetry in a SQLite file (WAL), created with its folder on first use."""
        return cls(database_url=sqlite_url(db_path), **kw)

    @classmethod
    def create_postgresql(
        cls,
        host: str = "localhost",
        port: int = 5432,
        database: str = "spark_telemetry",
        user: str | None = None,
        password: str | None = None,
        **kw: Any,
    ) -> TelemetryConfig:
        """Telemetry in PostgreSQL through psycopg 3; the database must exist."""
        url = URL.create(
            "postgresql+psycopg",
            username=user,
            password=password,
            host=host,
            port=port,
            database=database,
        )
        return cls(database_url=url.render_as_string(hide_password=False), **kw)

    @classmethod
    def create_memory(cls, **kw: Any) -> TelemetryConfig:
        """Telemetry private to this process: a SQLite file in a temporary folder removed at exit.

        A file rather than ``:memory:`` so the writer thread and readers share one database with
        WAL concurrency and the same SQL aggregations as the file and server stores.
        """
        folder = tempfile.mkdtemp(prefix="spark-telemetry-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        return cls.create_sqlite(Path(folder) / "telemetry.db", **kw)

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> TelemetryConfig:
        """Telemetry at a SQLAlchemy URL (``sqlite:///...``, ``postgresql://...``)."""
        return cls(database_url=normalize_url(url), **kw)

    def open_store(self) -> TelemetryStore:
        """The store (bulk writers and SQL aggregations) at ``database_url``."""
        return TelemetryStore(self.database_url)

    def open_recorder(self) -> TelemetryRecorder:
        """A started recorder writing to ``database_url``; a disabled one ignores every run."""
        return TelemetryRecorder(
            self.open_store() if self.enabled else None,
            batch_size=self.batch_size,
            flush_interval_s=self.flush_interval_s,
            max_queue=self.max_queue,
            capture_inputs=self.capture_inputs,
        )
