"""``spark rollups seal [--all]`` and ``spark rollups rebuild GRAPH``: telemetry rollup upkeep.

``seal`` computes the rollups of every unit (graph, version, hourly bucket) written since its
last seal whose bucket closed at least ``SEAL_GRACE_S`` ago (``--all``: every pending unit, the
open buckets too). Writes seal on their own every minute; this is for a database that nothing
writes to any more, or before reading a benchmark. ``rebuild`` recomputes all of one graph's
rollups from its raw telemetry and marks them complete, so that reads with ``source="auto"``
(the RSI activities' default) use them: needed once per graph whose telemetry was stored before
migration 0008.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from spark.registry import RegistryStore
from spark.settings import SparkSettings
from spark.telemetry import TelemetryStore


def add_rollups_command(commands: Any, json_flag: argparse.ArgumentParser) -> None:
    """Register ``spark rollups`` on the ``spark`` subparsers."""
    text = "telemetry rollup upkeep: seal closed buckets, rebuild a graph's rollups"
    rollups = commands.add_parser("rollups", help=text, description=__doc__, parents=[json_flag])
    actions = rollups.add_subparsers(dest="rollups_command", required=True, metavar="ACTION")
    text = "compute the rollups of every closed bucket written since its last seal"
    seal = actions.add_parser("seal", help=text, description=text, parents=[json_flag])
    seal.add_argument(
        "--all", action="store_true", help="seal the open buckets too (they re-open on write)"
    )
    text = "recompute one graph's rollups from its raw telemetry and mark them complete"
    rebuild = actions.add_parser("rebuild", help=text, description=text, parents=[json_flag])
    rebuild.add_argument("graph", help="the graph id")


def run_rollups(args: argparse.Namespace) -> int:
    """``spark rollups seal|rebuild``: do it, print what was done."""
    database_url = SparkSettings.from_env().database_url
    store = TelemetryStore(database_url)
    if args.rollups_command == "seal":
        counts = store.seal_rollups(now=math.inf if args.all else None)
        data: dict[str, Any] = counts._asdict()
        text = f"sealed {counts.units} unit(s): {counts.rows} rollup row(s) in {counts.seconds} s"
    else:
        if store.count_traces(args.graph) == 0:  # a typo must not read as an empty rebuild
            RegistryStore(database_url).get_graph(args.graph)  # UnknownGraphError names it
        rows = store.rebuild_rollups(args.graph)
        data = {"graph_id": args.graph, "rows": rows}
        text = f"rebuilt the rollups of graph {args.graph!r}: {rows} rollup row(s)"
    print(json.dumps(data) if args.json else text, flush=True)
    return 0
