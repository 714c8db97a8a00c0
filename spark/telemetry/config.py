"""Where telemetry goes and how it is batched: ``TelemetryConfig`` and its factories."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import URL

from spark.db import is_postgres, normalize_url, sqlite_url
from spark.telemetry.process_recorder import ProcessRecorder
from spark.telemetry.recorder import Recorder, TelemetryRecorder
from spark.telemetry.store import TelemetryStore

log = structlog.get_logger(__name__)


class TelemetryConfig(BaseModel):
    """Database URL and write-path settings of the telemetry recorder.

    ``batch_size`` is the most runs written in one transaction; ``max_queue`` the most runs held
    in memory (the batch being written included) before new ones are refused and counted as
    dropped; ``capture_inputs=False`` strips the request inputs from traces before they are
    stored (no offline replay then).

    While the database is unreachable a batch is retried every ``retry_initial_s`` seconds,
    doubling up to ``retry_max_s``, for as long as the outage lasts (runs keep queueing up to
    ``max_queue``); a batch the database rejects is given up after ``write_attempts``. ``close``
    waits at most ``close_timeout_s`` for the database, then abandons (and counts) what is left.

    ``sampling_rate`` is the share of runs kept, decided per trace from the trace id alone
    (``spark.telemetry.sampling``: a trace and all its spans are kept or dropped together, the
    same way in every process). Each kept trace stores the rate, so traffic counts scale back
    (``VersionStats.estimated_count``); means, error rates, percentiles and A/B statistics of the
    kept traces are unbiased for the whole traffic, with the power of the kept sample. Feedback
    on a trace that was not kept is stored and matches nothing.

    ``writers`` is how many threads write batches at once: by default two on PostgreSQL (one
    formats and sends a batch while the server stores the other's: about 1.3-1.5x the spans a
    second of one thread on two cores, ``BENCHMARKS.md``) and one on SQLite, which takes one
    writer at a time.

    ``writer_process=True`` writes from a child process instead of threads of this one
    (``spark.telemetry.process_recorder``): the writer then never waits for this process's
    GIL (figures for both in ``BENCHMARKS.md``, "Request path"). The child starts at the
    recorder's first run, score or flush, and uses ``writers`` threads of its own.

    ``enable_metrics`` and ``enable_events`` are accepted for the original API. Here they control
    nothing: there are no separate metric or event streams, every metric (latency, errors, cost,
    tokens, quality) is aggregated in SQL from traces and spans, which are always kept together
    because the RSI analysis needs both. Turning either off logs ``telemetry.flag_ignored``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    database_url: str
    enabled: bool = True
    batch_size: int = Field(default=500, ge=1, le=100_000)
    flush_interval_s: float = Field(default=0.5, gt=0, le=3600)
    max_queue: int = Field(default=100_000, ge=1, le=10_000_000)
    capture_inputs: bool = True
    write_attempts: int = Field(default=3, ge=1, le=100)
    retry_initial_s: float = Field(default=0.1, gt=0, le=60)
    retry_max_s: float = Field(default=5.0, gt=0, le=300)
    close_timeout_s: float = Field(default=10.0, ge=0, le=3600)
    sampling_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    writers: int | None = Field(default=None, ge=1, le=16)
    writer_process: bool = False
    enable_metrics: bool = True
    enable_events: bool = True

    @model_validator(mode="after")
    def _backoff_grows(self) -> TelemetryConfig:
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError(
                f"retry_max_s ({self.retry_max_s!r}) must be at least "
                f"retry_initial_s ({self.retry_initial_s!r})"
            )
        return self

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

    def open_recorder(self) -> Recorder:
        """A started recorder writing to ``database_url`` (from a child process with
        ``writer_process``); a disabled one ignores every run."""
        self._note_ignored_flags()
        if self.enabled and self.writer_process:
            self.open_store()  # migrate here, so a schema error surfaces in this process
            return ProcessRecorder(self)
        return TelemetryRecorder(
            self.open_store() if self.enabled else None,
            batch_size=self.batch_size,
            flush_interval_s=self.flush_interval_s,
            max_queue=self.max_queue,
            capture_inputs=self.capture_inputs,
            write_attempts=self.write_attempts,
            retry_initial_s=self.retry_initial_s,
            retry_max_s=self.retry_max_s,
            close_timeout_s=self.close_timeout_s,
            sampling_rate=self.sampling_rate,
            writers=self.writer_threads,
        )

    @property
    def writer_threads(self) -> int:
        """``writers``, or the default for the database: two on PostgreSQL, one on SQLite."""
        if self.writers is not None:
            return self.writers
        return 2 if is_postgres(self.database_url) else 1

    def _note_ignored_flags(self) -> None:
        for flag in ("enable_metrics", "enable_events"):
            if not getattr(self, flag):
                log.info(
                    "telemetry.flag_ignored",
                    flag=flag,
                    reason="metrics and events are aggregated from traces and spans, always kept",
                )
