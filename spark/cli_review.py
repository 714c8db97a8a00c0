"""``spark review``: see what awaits a decision, list past reviews, approve or reject.

spark review show GRAPH                 the open review's dossier: changes, diff, risk and why,
                                        rationale, expected effects, evidence so far
spark review list [--graph G] [--state pending|approved|rejected|expired]
                                        stored reviews of every graph (or one), newest first
spark review approve|reject GRAPH --reviewer NAME [--comment C] [--hypothesis ID]
                                        decide the open review (also ``spark review GRAPH approve``)

A graph may name who may decide (``reviewers`` in its ``rsi`` metadata, or ``--set reviewers=``
at start); anyone else is refused, and the refusal is listed in ``spark status``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, get_args

from spark.client import SparkClient
from spark.errors import InvalidInputError
from spark.registry import ReviewRecord, ReviewStore
from spark.registry.reviews import ReviewStatus
from spark.rsi.review import describe_dossier
from spark.settings import SparkSettings

ACTIONS = ("show", "list", "approve", "reject")
VERDICTS = ("approve", "reject")


def review_argv(argv: list[str]) -> list[str]:
    """``review GRAPH approve|reject ...`` (the older order) as ``review approve|reject GRAPH``."""
    if not argv or argv[0] != "review":
        return argv
    rest = argv[1:]
    flags = 0
    while flags < len(rest) and rest[flags].startswith("-"):
        flags += 1
    graph, verdict = [*rest[flags : flags + 2], "", ""][:2]
    if verdict not in VERDICTS or graph in ACTIONS:
        return argv
    return ["review", *rest[:flags], verdict, graph, *rest[flags + 2 :]]


def add_review_command(commands: Any, json_flag: argparse.ArgumentParser) -> None:
    """Register ``spark review`` and its actions on the ``spark`` subparsers."""
    text = "show, list, approve or reject reviews of risky changes"
    review = commands.add_parser(
        "review",
        help=text,
        description=__doc__,
        parents=[json_flag],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = review.add_subparsers(dest="review_action", required=True, metavar="ACTION")
    # --json is taken before or after the action; the action's own flag must not reset it.
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON object"
    )
    show = actions.add_parser("show", help="the open review's dossier", parents=[json_flag])
    show.add_argument("graph")
    listing = actions.add_parser("list", help="stored reviews, newest first", parents=[json_flag])
    listing.add_argument("--graph", default=None, help="only this graph's reviews")
    listing.add_argument("--state", choices=get_args(ReviewStatus), default=None)
    listing.add_argument("--limit", type=int, default=50)
    for verdict in VERDICTS:
        _add_verdict(actions, verdict, json_flag)


def _add_verdict(actions: Any, verdict: str, json_flag: argparse.ArgumentParser) -> None:
    decide = actions.add_parser(verdict, help=f"{verdict} the open review", parents=[json_flag])
    decide.add_argument("graph")
    decide.add_argument("--reviewer", required=True, help="who decides")
    decide.add_argument("--comment", default="", help="recorded with the decision")
    decide.add_argument(
        "--hypothesis", default=None, help="only if this hypothesis is the open one"
    )


async def run_review(client: SparkClient, args: argparse.Namespace) -> int:
    """Dispatch ``spark review ACTION``."""
    if args.review_action == "show":
        return await _show(client, args)
    if args.review_action == "list":
        return _list(args)
    return await _decide(client, args)


async def _show(client: SparkClient, args: argparse.Namespace) -> int:
    """The dossier of the review the graph's loop waits on (or its latest one, decided)."""
    status = await client.status(args.graph)
    dossier = status.review
    if dossier is None:
        raise InvalidInputError(
            f"no review is open on graph {args.graph!r} (phase {status.phase!r}); "
            "`spark review list` shows past reviews"
        )
    if args.json:
        print(dossier.model_dump_json(), flush=True)
    else:
        print(describe_dossier(dossier), end="", flush=True)
    return 0


def _list(args: argparse.Namespace) -> int:
    """Stored reviews, newest first: one line each, or a JSON object with ``--json``."""
    if args.limit < 1:
        raise InvalidInputError(f"--limit must be at least 1, got {args.limit}")
    store = ReviewStore(SparkSettings.from_env().database_url)
    reviews = store.list(graph_id=args.graph, status=args.state, limit=args.limit)
    if args.json:
        print(json.dumps({"reviews": [r.model_dump(mode="json") for r in reviews]}), flush=True)
        return 0
    for review in reviews:
        print(_review_line(review), flush=True)
    if not reviews:
        print("no reviews stored" + (f" for graph {args.graph!r}" if args.graph else ""))
    return 0


def _review_line(review: ReviewRecord) -> str:
    """``g  cycle 3  pending   high  h-…  title  (by alice: comment)``."""
    who = f" (by {review.reviewer}" + (f": {review.comment})" if review.comment else ")")
    decided = who if review.reviewer else ""
    return (
        f"{review.graph_id}  cycle {review.cycle}  {review.status:<8}  {review.risk:<8}  "
        f"{review.hypothesis_id}  {review.title}{decided}  [{review.review_id}]"
    )


async def _decide(client: SparkClient, args: argparse.Namespace) -> int:
    """Approve or reject the open review through the ``review`` update."""
    ack = await client.review(
        args.graph,
        approve=args.review_action == "approve",
        reviewer=args.reviewer,
        comment=args.comment,
        hypothesis_id=args.hypothesis,
    )
    verdict = "approved" if ack.approved else "rejected"
    data = {"workflow_id": f"rsi-{args.graph}", **ack.model_dump(mode="json")}
    text = f"{verdict} {ack.hypothesis_id} (by {ack.reviewer})"
    print(json.dumps(data) if args.json else text, flush=True)
    return 0
