"""``spark otlp serve [--host H] [--port 4318]``: receive OTLP/HTTP traces into the telemetry
tables of ``SPARK_DATABASE_URL`` until Ctrl-C (see ``spark.otlp`` for the attributes read).

Point an instrumented application's exporter at it, e.g.
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:4318/v1/traces``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from spark.otlp.receiver import DEFAULT_PORT, OTLPReceiver
from spark.settings import SparkSettings


def add_otlp_command(commands: Any, json_flag: argparse.ArgumentParser) -> None:
    """Register ``spark otlp serve`` on the ``spark`` subparsers."""
    text = "receive OpenTelemetry (OTLP/HTTP) traces of an instrumented application"
    otlp = commands.add_parser("otlp", help=text, description=__doc__, parents=[json_flag])
    actions = otlp.add_subparsers(dest="otlp_command", required=True, metavar="ACTION")
    text = "serve POST /v1/traces (protobuf or JSON) until Ctrl-C"
    serve = actions.add_parser("serve", help=text, description=text, parents=[json_flag])
    serve.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=DEFAULT_PORT, help="default: 4318")


def _port(raw: str) -> int:
    """A TCP port number (0 picks a free one), refused with a message otherwise."""
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 <= port <= 65_535:
        raise argparse.ArgumentTypeError(f"a port is a number from 0 to 65535, got {raw!r}")
    return port


def run_otlp(args: argparse.Namespace) -> int:
    """``spark otlp serve``: announce the endpoint on stdout, then serve until interrupted."""
    receiver = OTLPReceiver(SparkSettings.from_env().database_url, args.host, args.port)
    announced = {"endpoint": receiver.endpoint} if args.json else receiver.endpoint
    print(json.dumps(announced) if args.json else announced, flush=True)
    try:
        receiver.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr, flush=True)
    finally:
        receiver.close()
    return 0
