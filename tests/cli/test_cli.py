"""The ``spark`` command without a server: help on every subcommand, ``--json`` everywhere,
results alone on stdout, registration from a module or a spec file, and one plain message (no
traceback) for every failure Temporal or the database can raise."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from examples.support_triage.graph import build_spec
from spark.cli import _parser, main
from spark.cli_errors import EXIT_FAILED, EXIT_MISUSE, explain
from spark.cli_register import load_target
from spark.errors import InvalidGraphSpecError, InvalidInputError
from spark.registry import RegistryStore

SUBCOMMANDS = ["dev", "register", "start", "status", "pause", "resume", "rollback", "review"]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_subcommand_has_help_text_and_takes_json() -> None:
    """Each subcommand (and ``bench run``) describes itself and accepts ``--json``."""
    commands = _subparsers(_parser())
    assert set(SUBCOMMANDS) <= set(commands)
    bench_run = _subparsers(commands["bench"])["run"]
    for name, sub in [*commands.items(), ("bench run", bench_run)]:
        assert sub.description, f"{name} has no help text"
        if name != "bench":
            assert any("--json" in a.option_strings for a in sub._actions), name


def test_register_prints_only_its_result_on_stdout(
    sqlite_database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``spark register MODULE:FUNCTION --json`` prints exactly one JSON object on stdout (the
    recorder's log lines go to stderr), with the module's NODE_MODULES as node modules."""
    monkeypatch.setenv("SPARK_DATABASE_URL", sqlite_database_url)
    assert main(["register", "examples.support_triage.graph:build_spec", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["graph_id"] == "support-triage"
    assert out["node_modules"] == ["examples.support_triage.nodes"]
    graph = RegistryStore(sqlite_database_url).get_graph("support-triage")
    assert graph.graph_id == "support-triage"


def test_register_reads_yaml_and_json_spec_files(tmp_path: Path) -> None:
    """A spec file registers with the ``--node-module`` given; without one it is refused."""
    data: dict[str, Any] = build_spec("from-file").model_dump(mode="json")
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "g.json").write_text(json.dumps(data))
    for name in ("g.yaml", "g.json"):
        spec, modules = load_target(str(tmp_path / name), ["examples.support_triage.nodes"])
        assert (spec.id, modules) == ("from-file", ["examples.support_triage.nodes"])
    with pytest.raises(InvalidInputError, match="--node-module"):
        load_target(str(tmp_path / "g.yaml"), [])
    (tmp_path / "bad.yaml").write_text("id: x\nnodes: []\n")
    with pytest.raises(InvalidGraphSpecError):
        load_target(str(tmp_path / "bad.yaml"), ["m"])


def test_register_refuses_targets_that_are_not_specs() -> None:
    """Bad targets name what is wrong: no colon, missing module, missing or wrong attribute."""
    cases = {
        "examples.support_triage.graph": "MODULE:NAME",
        "no_such_module_xyz:spec": "cannot import",
        "examples.support_triage.graph:nope": "no attribute 'nope'",
        "examples.support_triage.graph:GRAPH_ID": "not a GraphSpec",
    }
    for target, message in cases.items():
        with pytest.raises(InvalidInputError, match=message):
            load_target(target, [])


def test_register_of_a_bad_target_is_one_line_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The CLI turns a refused target into ``error: ...`` on stderr and exit code 2."""
    assert main(["register", "examples.support_triage.graph:nope"]) == EXIT_MISUSE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and "Traceback" not in captured.err


def test_temporal_errors_read_as_sentences_about_the_graph() -> None:
    """Unknown loop, ended loop, running loop and unreachable server each get their own
    sentence and exit code."""
    unknown = RPCError("workflow not found for ID: rsi-g", RPCStatusCode.NOT_FOUND, b"")
    ended = RPCError("workflow execution already completed", RPCStatusCode.NOT_FOUND, b"")
    down = RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")
    running = WorkflowAlreadyStartedError("rsi-g", "RSIWorkflow")
    assert explain(unknown, "status", "g") == (
        "no RSI loop has run for graph 'g' (no workflow rsi-g); start one with `spark start g`",
        EXIT_MISUSE,
    )
    message, code = explain(ended, "review", "g")
    assert "has already ended, so there is nothing to review" in message
    assert code == EXIT_MISUSE
    assert explain(down, "pause", "g")[1] == EXIT_FAILED
    assert "already has a running RSI loop" in explain(running, "start", "g")[0]


def test_max_cycles_zero_is_refused_without_traceback(
    sqlite_database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``spark start G --max-cycles 0`` says max_cycles must be at least 1 (nothing starts)."""
    monkeypatch.setenv("SPARK_DATABASE_URL", sqlite_database_url)
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
    assert main(["register", "examples.support_triage.graph:build_spec"]) == 0
    capsys.readouterr()
    assert main(["start", "support-triage", "--max-cycles", "0"]) == EXIT_MISUSE
    err = capsys.readouterr().err
    assert "max_cycles" in err and "Traceback" not in err


@pytest.mark.parametrize("port", ["-5", "70000", "http"])
def test_otlp_serve_refuses_a_port_that_is_not_one(
    port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad --port is a usage error naming what a port is, before anything is bound."""
    with pytest.raises(SystemExit) as exited:
        main(["otlp", "serve", "--port", port])
    assert exited.value.code == 2
    assert "a port is a number from 0 to 65535" in capsys.readouterr().err
