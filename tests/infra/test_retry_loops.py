"""The infrastructure's retry loops (tenacity): a dev server that dies while starting is
reported at once, and a store write that loses a unique-key race is retried a bounded number
of times."""

from __future__ import annotations

import re
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

    command = ["sh", "-c", "echo 'listen tcp 127.0.0.1:1: bind: address already in use'; exit 1"]
    monkeypatch.setattr(spark.devserver, "dev_server_command", lambda *a, **k: command)
    monkeypatch.setattr(spark.devserver, "port_open", port_open)
    with pytest.raises(spark.devserver.DevServerStartError) as raised:
        spark.devserver.start_dev_server(tmp_path / "dev.db", port=1)
    assert raised.value.exited
    message = str(raised.value)
    assert re.search(r"did not start \(exited at once\); see .*dev\.log", message)
    assert "address already in use" in message  # the log's end, quoted: it may not outlive us
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


def test_a_scenario_server_that_loses_its_port_starts_again_on_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two scenarios starting at once can be handed the same free port: the server that loses
    it exits at once and is started again on a fresh port; one that hangs is not retried."""
    from spark import devserver
    from spark.scenarios import runner

    ports = iter([7001, 7002, 7003])
    started: list[int] = []

    def start(db_file: Path, port: int, ui_port: int | None, log_file: Path | None) -> object:
        started.append(port)
        if port == 7001:
            raise spark.devserver.DevServerStartError(tmp_path / "t.log", exited=True)
        return "server"

    monkeypatch.setattr(devserver, "free_ports", lambda count: [next(ports)])
    monkeypatch.setattr(devserver, "start_dev_server", start)
    assert runner._dev_server_on_a_free_port(tmp_path) == (7002, "server")
    assert started == [7001, 7002]

    def hangs(db_file: Path, port: int, ui_port: int | None, log_file: Path | None) -> object:
        started.append(port)
        raise spark.devserver.DevServerStartError(tmp_path / "t.log", exited=False)

    monkeypatch.setattr(devserver, "start_dev_server", hangs)
    with pytest.raises(spark.devserver.DevServerStartError):
        runner._dev_server_on_a_free_port(tmp_path)
    assert started == [7001, 7002, 7003]


def test_free_ports_are_distinct() -> None:
    """Ports chosen together are never the same one (the demo's frontend and Web UI)."""
    from spark.devserver import free_ports

    for _ in range(50):
        ports = free_ports(2)
        assert len(set(ports)) == 2
