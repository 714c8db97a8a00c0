"""``spark`` command line: run the dev stack, and talk to a graph's RSI workflow.

spark dev                          dev server (UI :8233, SQLite under .spark/) + worker
spark start GRAPH [--continuous]   start rsi-GRAPH
spark status GRAPH                 the status query
spark rollback GRAPH --reason R    ask for a rollback and print what it undoes (--signal: just
                                   signal it, recorded even while no worker runs)
spark pause|resume GRAPH
spark review GRAPH approve|reject --reviewer NAME [--comment C] [--hypothesis ID]
spark bench run FILE [--json] [--cycles N] [--reviewer approve-all|reject-all]
                                   run a scenario file on the real workflow (private dev server)
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
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowUpdateFailedError

from spark.client import SparkClient
from spark.devserver import port_open, start_dev_server, stop
from spark.errors import InvalidInputError, SparkMisuseError

STATE = Path(".spark")


def _dev() -> int:
    server = None if port_open("127.0.0.1", 7233) else start_dev_server(STATE / "temporal.db")
    worker = subprocess.Popen([sys.executable, "worker.py"], env=dict(os.environ))
    print(
        "Temporal dev server on 127.0.0.1:7233, Web UI http://localhost:8233; worker on 'spark-rsi'."
    )
    print("Ctrl-C stops both.")
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


async def _workflow_command(args: argparse.Namespace) -> int:
    client = SparkClient.from_env()
    try:
        if args.command == "start":
            handle = await client.start_improvement(
                args.graph,
                continuous=args.continuous,
                max_cycles=args.max_cycles,
                settings=parse_settings(args.settings),
            )
            print(f"started {handle.id}")
        elif args.command == "status":
            print((await client.status(args.graph)).model_dump_json(indent=2))
        elif args.command == "rollback":
            return await _rollback(client, args)
        elif args.command == "pause":
            await client.pause(args.graph)
        elif args.command == "resume":
            await client.resume(args.graph)
        elif args.command == "review":
            return await _review(client, args)
        return 0
    finally:
        client.close()


async def _rollback(client: SparkClient, args: argparse.Namespace) -> int:
    if args.signal:
        await client.rollback(args.graph, args.reason, actor=args.actor)
        print(f"rollback signalled to rsi-{args.graph} (see `spark status` for its outcome)")
        return 0
    try:
        ack = await client.request_rollback(args.graph, args.reason, actor=args.actor)
    except WorkflowUpdateFailedError as exc:
        print(f"rollback refused: {exc.cause}", file=sys.stderr)
        return 2
    if ack.deployment_id is None:
        print(f"rollback accepted: stops the running {ack.phase} of rsi-{args.graph}")
    else:
        print(f"rollback accepted: undoes {ack.deployment_id}, restores {ack.restores_version_id}")
    return 0


async def _review(client: SparkClient, args: argparse.Namespace) -> int:
    try:
        ack = await client.review(
            args.graph,
            approve=args.verdict == "approve",
            reviewer=args.reviewer,
            comment=args.comment,
            hypothesis_id=args.hypothesis,
        )
    except WorkflowUpdateFailedError as exc:
        print(f"review refused: {exc.cause}", file=sys.stderr)
        return 2
    verdict = "approved" if ack.approved else "rejected"
    print(f"{verdict} {ack.hypothesis_id} (by {ack.reviewer})")
    return 0


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
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("dev", help="run a dev server and a worker")
    start = commands.add_parser("start", help="start a graph's RSI workflow")
    start.add_argument("graph")
    start.add_argument("--continuous", action="store_true")
    start.add_argument("--max-cycles", type=int, default=None)
    start.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an RSI setting (JSON value), e.g. --set strategy=canary --set ab_looks=8",
    )
    for name in ("status", "pause", "resume"):
        commands.add_parser(name).add_argument("graph")
    rollback = commands.add_parser("rollback")
    rollback.add_argument("graph")
    rollback.add_argument("--reason", required=True)
    rollback.add_argument("--actor", default=os.environ.get("USER", "operator"))
    rollback.add_argument(
        "--signal", action="store_true", help="signal without waiting for an answer"
    )
    review = commands.add_parser("review")
    review.add_argument("graph")
    review.add_argument("verdict", choices=["approve", "reject"])
    review.add_argument("--reviewer", required=True)
    review.add_argument("--comment", default="")
    review.add_argument(
        "--hypothesis", default=None, help="only if this hypothesis is the open one"
    )
    _add_bench(commands)
    return parser


def _add_bench(commands: Any) -> None:
    bench = commands.add_parser("bench", help="try the loop on a scenario file")
    actions = bench.add_subparsers(dest="bench_command", required=True)
    run = actions.add_parser("run", help="run a scenario (YAML or JSON) on the real workflow")
    run.add_argument("file")
    run.add_argument("--json", action="store_true", help="print one JSON object")
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
    """Entry point of the ``spark`` command."""
    args = _parser().parse_args(argv)
    if args.command == "dev":
        return _dev()
    try:
        if args.command == "bench":
            return _bench(args)
        return asyncio.run(_workflow_command(args))
    except SparkMisuseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
