"""``spark`` command line: run the dev stack, and talk to a graph's RSI workflow.

spark dev                          dev server (UI :8233, SQLite under .spark/) + worker;
                                   registers the example graphs
spark register MODULE:NAME|FILE [--node-module M]
                                   register a graph (a GraphSpec, a function returning one,
                                   or a JSON/YAML spec file) with its node modules
spark start GRAPH [--continuous]   start rsi-GRAPH
spark status GRAPH                 the status query (JSON)
spark rollback GRAPH --reason R    ask for a rollback and print what it undoes (--signal: just
                                   signal it, recorded even while no worker runs)
spark pause|resume GRAPH
spark review show GRAPH            what the open review decides on: changes, diff, risk and why
spark review list [--graph G] [--state S]
                                   stored reviews of every graph, newest first
spark review GRAPH approve|reject --reviewer NAME [--comment C] [--hypothesis ID]
spark diff GRAPH V1 V2 [--format text|unified|json|mermaid|html] [--output FILE]
                                   what changed between two versions (ids, #N, spec files)
spark history GRAPH [--type T] [--change-kind K] [--node-type N] [--diagnosis D]
                                   every attempt with its full record, and learned patterns
spark otlp serve [--host H] [--port 4318]
                                   receive OpenTelemetry traces (OTLP/HTTP) of an app
spark rollups seal [--all] | rebuild GRAPH
                                   compute closed buckets' rollups; recompute a graph's
spark bench run FILE [--json] [--cycles N] [--reviewer approve-all|reject-all]
                                   run a scenario file on the real workflow (private dev server)

Every command takes --json (one JSON object on stdout). Results go to stdout, logs and errors
to stderr; exit code 0 done, 1 could not be done, 2 the request is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from spark.cli_diff import add_diff_command, run_diff
from spark.cli_errors import HANDLED, explain
from spark.cli_history import add_history_command, run_history
from spark.cli_otlp import add_otlp_command, run_otlp
from spark.cli_register import load_target
from spark.cli_review import add_review_command, review_argv, run_review
from spark.cli_rollups import add_rollups_command, run_rollups
from spark.client import SparkClient
from spark.devserver import port_open, start_dev_server, stop
from spark.errors import InvalidInputError
from spark.logging import configure_logging

STATE = Path(".spark")


def _dev(args: argparse.Namespace) -> int:
    """``spark dev``: a dev server (unless one already listens on :7233) and a worker, until
    Ctrl-C; the example graphs are registered first so ``spark start support-triage`` works."""
    registered = _register_examples()
    server = None if port_open("127.0.0.1", 7233) else start_dev_server(STATE / "temporal.db")
    worker = subprocess.Popen([sys.executable, "-m", "spark.worker"], env=dict(os.environ))
    _emit(
        args,
        "Temporal dev server on 127.0.0.1:7233, Web UI http://localhost:8233; worker on "
        f"'spark-rsi'; registered {', '.join(registered)}. Ctrl-C stops both.\n"
        "In another terminal, `source .venv/bin/activate` puts `spark` and `temporal` on PATH.",
        {"temporal": "127.0.0.1:7233", "web_ui": "http://localhost:8233", "graphs": registered},
    )
    try:
        while worker.poll() is None:
            time.sleep(0.5)
        return worker.returncode or 0
    except KeyboardInterrupt:
        return 0
    finally:
        stop(worker)
        if server is not None:
            stop(server)


EXAMPLE_GRAPHS = (
    "examples.support_triage.graph:build_spec",
    "examples.research_brief.graph:build_spec",
)
"""What ``spark dev`` (``make dev``) registers, so the README's commands work verbatim."""


def _register_examples() -> list[str]:
    """Register the example graphs (idempotent); their ids."""
    client = SparkClient.from_env()
    try:
        ids = []
        for target in EXAMPLE_GRAPHS:
            spec, modules = load_target(target, [])
            client.register_graph(spec, modules)
            ids.append(spec.id)
        return ids
    finally:
        client.close()


def _register(args: argparse.Namespace) -> int:
    """``spark register TARGET``: register a user's graph and print the version it got."""
    spec, modules = load_target(args.target, args.node_modules)
    client = SparkClient.from_env()
    try:
        version = client.register_graph(spec, modules, owner=args.owner)
    finally:
        client.close()
    _emit(
        args,
        f"registered graph {spec.id!r} as {version.version_id} (node modules: "
        f"{', '.join(modules)}); start its loop with `spark start {spec.id}`",
        {"graph_id": spec.id, "version_id": version.version_id, "node_modules": modules},
    )
    return 0


async def _workflow_command(args: argparse.Namespace) -> int:
    """The commands that talk to a graph's RSI workflow."""
    client = SparkClient.from_env()
    try:
        command = _COMMANDS[args.command]
        return await command(client, args)
    finally:
        client.close()


async def _start(client: SparkClient, args: argparse.Namespace) -> int:
    handle = await client.start_improvement(
        args.graph,
        continuous=args.continuous,
        max_cycles=args.max_cycles,
        settings=parse_settings(args.settings),
    )
    _emit(
        args,
        f"started {handle.id} (run {handle.result_run_id}); follow it with "
        f"`spark status {args.graph}`",
        {"workflow_id": handle.id, "run_id": handle.result_run_id, "graph_id": args.graph},
    )
    return 0


async def _status(client: SparkClient, args: argparse.Namespace) -> int:
    """The status query, as JSON (it is data either way)."""
    status = await client.status(args.graph)
    print(status.model_dump_json(indent=None if args.json else 2))
    return 0


async def _pause(client: SparkClient, args: argparse.Namespace) -> int:
    await client.pause(args.graph)
    _emit(
        args,
        f"pause signalled to rsi-{args.graph}: it stops at its next phase boundary "
        f"(`spark resume {args.graph}` continues)",
        {"workflow_id": f"rsi-{args.graph}", "signal": "pause"},
    )
    return 0


async def _resume(client: SparkClient, args: argparse.Namespace) -> int:
    await client.resume(args.graph)
    _emit(
        args,
        f"resume signalled to rsi-{args.graph}: it continues from where it paused",
        {"workflow_id": f"rsi-{args.graph}", "signal": "resume"},
    )
    return 0


async def _rollback(client: SparkClient, args: argparse.Namespace) -> int:
    workflow_id = f"rsi-{args.graph}"
    if args.signal:
        await client.rollback(args.graph, args.reason, actor=args.actor)
        _emit(
            args,
            f"rollback signalled to {workflow_id} (see `spark status {args.graph}` for its outcome)",
            {"workflow_id": workflow_id, "signal": "rollback", "reason": args.reason},
        )
        return 0
    ack = await client.request_rollback(args.graph, args.reason, actor=args.actor)
    if ack.deployment_id is None:
        text = f"rollback accepted: stops the running {ack.phase} of {workflow_id}"
    else:
        text = f"rollback accepted: undoes {ack.deployment_id}, restores {ack.restores_version_id}"
    _emit(args, text, {"workflow_id": workflow_id, **ack.model_dump(mode="json")})
    return 0


_COMMANDS: dict[str, Callable[[SparkClient, argparse.Namespace], Awaitable[int]]] = {
    "start": _start,
    "status": _status,
    "pause": _pause,
    "resume": _resume,
    "rollback": _rollback,
    "review": run_review,
}


def _emit(args: argparse.Namespace, text: str, data: dict[str, Any]) -> None:
    """A command's result on stdout: one JSON object with ``--json``, else one sentence."""
    print(json.dumps(data) if getattr(args, "json", False) else text, flush=True)


def parse_settings(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as a settings dict; values are JSON when they parse, else strings."""
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"--set takes KEY=VALUE, got {pair!r}")
        try:
            settings[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            settings[key.strip()] = raw
    return settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spark", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument(
        "--json", action="store_true", help="print the result as one JSON object on stdout"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=text, description=text, parents=[json_flag])

    command("dev", "run a dev server (Web UI :8233) and a worker; registers the example graphs")
    register = command("register", "register a graph: MODULE:NAME or a JSON/YAML spec file")
    register.add_argument(
        "target",
        metavar="MODULE:NAME|FILE",
        help="a module attribute holding a GraphSpec (or a function returning one), "
        "or a .json/.yaml spec file",
    )
    register.add_argument(
        "--node-module",
        dest="node_modules",
        action="append",
        default=[],
        metavar="MODULE",
        help="a module holding node implementations (repeatable; default: the target "
        "module's NODE_MODULES, else the target module)",
    )
    register.add_argument("--owner", default=None, help="who owns the graph")
    start = command("start", "start a graph's RSI workflow (rsi-GRAPH)")
    start.add_argument("graph", help="the graph id")
    start.add_argument(
        "--continuous", action="store_true", help="keep improving, one cycle per run"
    )
    start.add_argument(
        "--max-cycles", type=int, default=None, help="stop after this many cycles (>= 1)"
    )
    start.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an RSI setting (JSON value), e.g. --set strategy=canary --set ab_looks=8",
    )
    command("status", "print the loop's status query (JSON)").add_argument("graph")
    command("pause", "ask the loop to stop at its next phase boundary").add_argument("graph")
    command("resume", "let a paused loop continue").add_argument("graph")
    rollback = command("rollback", "roll back what the loop deployed and print what it undoes")
    rollback.add_argument("graph")
    rollback.add_argument("--reason", required=True, help="why (recorded with the rollback)")
    rollback.add_argument("--actor", default=os.environ.get("USER", "operator"), help="who")
    rollback.add_argument(
        "--signal", action="store_true", help="signal without waiting for an answer"
    )
    add_review_command(commands, json_flag)
    _add_bench(commands, json_flag)
    add_diff_command(commands, json_flag)
    add_history_command(commands, json_flag)
    add_otlp_command(commands, json_flag)
    add_rollups_command(commands, json_flag)
    return parser


def _add_bench(commands: Any, json_flag: argparse.ArgumentParser) -> None:
    text = "try the loop on a scenario file"
    bench = commands.add_parser("bench", help=text, description=text)
    actions = bench.add_subparsers(dest="bench_command", required=True, metavar="ACTION")
    text = "run a scenario (YAML or JSON) on the real workflow (private dev server)"
    run = actions.add_parser("run", help=text, description=text, parents=[json_flag])
    run.add_argument("file")
    run.add_argument("--cycles", type=int, default=3)
    run.add_argument("--reviewer", choices=["approve-all", "reject-all"], default="approve-all")
    run.add_argument("--seed", type=int, default=None, help="seed of the request draws")


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _bench(args: argparse.Namespace) -> int:
    """``spark bench run``: load and validate the scenario, run it, print the report."""
    from spark.logging import configure_logging
    from spark.scenarios.model import load_scenario
    from spark.scenarios.report import print_summary
    from spark.scenarios.runner import run_scenario

    scenario = load_scenario(args.file)
    configure_logging("ERROR")  # the simulated failures' warnings would drown the progress
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # stop the private server and worker too
    report = asyncio.run(
        run_scenario(
            scenario,
            cycles=args.cycles,
            reviewer=args.reviewer,
            source_file=args.file,
            seed=args.seed,
        )
    )
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        print_summary(report)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``spark`` command: the result on stdout, logs and errors on stderr,
    exit code 0 (done), 1 (could not be done) or 2 (the request is wrong).

    Run as the program (``argv`` None), the process ends through ``os._exit`` once everything
    it opened is closed and its output flushed: the Temporal SDK's Rust runtime keeps threads
    that can call into Python during interpreter finalization and abort it with ``Fatal
    Python error: PyGILState_Release`` (temporalio/sdk-python#300); skipping finalization,
    after our own cleanup, leaves them nothing to race."""
    code = _run(argv)
    if argv is None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _run(argv: list[str] | None) -> int:
    """Parse, run the command, and turn every expected failure into one line on stderr."""
    args = _parser().parse_args(review_argv(sys.argv[1:] if argv is None else argv))
    configure_logging("WARNING")  # logs go to stderr; stdout carries only results
    try:
        if args.command == "dev":
            return _dev(args)
        if args.command == "bench":
            return _bench(args)
        if args.command == "register":
            return _register(args)
        if args.command == "diff":
            return run_diff(args)
        if args.command == "history":
            return run_history(args)
        if args.command == "otlp":
            return run_otlp(args)
        if args.command == "rollups":
            return run_rollups(args)
        return asyncio.run(_workflow_command(args))
    except HANDLED as exc:
        message, code = explain(exc, args.command, getattr(args, "graph", None))
        print(f"error: {message}", file=sys.stderr, flush=True)
        return code


if __name__ == "__main__":
    raise SystemExit(main())
