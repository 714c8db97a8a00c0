"""The infrastructure's retry loops (tenacity): a dev server that dies while starting is
reported at once, and a store write that loses a unique-key race is retried a bounded number
of times."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

import spark.devserver
from spark.registry._sql import retry_on_conflict


def test_dev_server_that_exits_while_starting_fails_without_waiting_out_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child exits at once: the wait stops on its exit (not after 60 s) with a clear error
    naming the log file."""
    probes: list[int] = []

    def port_open(host: str, port: int) -> bool:
        probes.append(port)
        return False

    monkeypatch.setattr(spark.devserver, "dev_server_command", lambda *a, **k: ["false"])
    monkeypatch.setattr(spark.devserver, "port_open", port_open)
    with pytest.raises(RuntimeError, match=r"did not start; see .*dev\.log"):
        spark.devserver.start_dev_server(tmp_path / "dev.db", port=1)
    # waiting out the 60 s deadline would probe about 300 times, 0.2 s apart
    assert 1 <= len(probes) < 100


def test_dev_server_start_returns_once_its_port_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The port opens on the third probe: start returns the running process."""
    probes: list[int] = []

    def port_open(host: str, port: int) -> bool:
        probes.append(port)
        return len(probes) >= 3

    monkeypatch.setattr(spark.devserver, "dev_server_command", lambda *a, **k: ["sleep", "30"])
    monkeypatch.setattr(spark.devserver, "port_open", port_open)
    process = spark.devserver.start_dev_server(tmp_path / "dev.db", port=1)
    try:
        assert process.poll() is None
        assert len(probes) == 3
    finally:
        process.kill()
        process.wait()
    assert isinstance(process, subprocess.Popen)


def test_write_conflicts_are_retried_then_surface() -> None:
    """A lost race is run again and succeeds; a conflict that never clears surfaces after the
    bounded attempts."""
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 2:
            raise IntegrityError("insert", {}, Exception("duplicate key"))
        return "stored"

    assert retry_on_conflict(flaky) == "stored"
    assert len(calls) == 2

    def always() -> str:
        raise IntegrityError("insert", {}, Exception("duplicate key"))

    with pytest.raises(IntegrityError):
        retry_on_conflict(always)
