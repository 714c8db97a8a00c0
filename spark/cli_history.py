"""``spark history GRAPH [--type T] [--change-kind K] [--node-type N] [--diagnosis D] [--limit N]``.

Every attempt the loop made on GRAPH, newest first, from the experience store: the hypothesis and
its rationale, its changes and their diff, the expected effects, validation and risk, each A/B
statistic with its interval, the decision and its reasons, the deployment steps, the monitoring
checks, the review; then the success patterns and anti-patterns learned for the graph and across
graphs (with the graph's weight). ``--json`` prints one object with the full records.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from spark.experience import AttemptHistory, ExperienceStore
from spark.experience.records import AttemptRecord
from spark.registry import RegistryStore
from spark.rsi.patterns import LearnedPattern
from spark.settings import SparkSettings


def add_history_command(commands: Any, json_flag: argparse.ArgumentParser) -> None:
    """Register ``spark history`` on the ``spark`` subparsers."""
    text = "what the loop tried on a graph, what happened, and what it learned"
    history = commands.add_parser("history", help=text, description=__doc__, parents=[json_flag])
    history.add_argument("graph", help="the graph id")
    history.add_argument("--type", dest="hypothesis_type", default=None, help="hypothesis type")
    history.add_argument("--change-kind", default=None, help="e.g. set_config, add_cache")
    history.add_argument("--node-type", default=None, help="type of a touched node")
    history.add_argument("--diagnosis", default=None, help="diagnosis kind or category")
    history.add_argument("--limit", type=int, default=20, help="attempts shown (default 20)")


def run_history(args: argparse.Namespace) -> int:
    """``spark history``: query the experience store and print the attempts and patterns."""
    database_url = SparkSettings.from_env().database_url
    store = ExperienceStore(database_url)
    attempts = store.history(
        args.graph,
        hypothesis_type=args.hypothesis_type,
        change_kind=args.change_kind,
        node_type=args.node_type,
        diagnosis=args.diagnosis,
        limit=args.limit,
    )
    if not attempts and not store.history(args.graph, limit=1):
        # nothing ever recorded: a typo'd graph id must not read as an empty history
        RegistryStore(database_url).get_graph(args.graph)  # UnknownGraphError names it
    patterns = store.learned_patterns(args.graph)
    if args.json:
        print(json.dumps(history_json(args.graph, attempts, patterns), indent=2), flush=True)
    else:
        print(history_text(args.graph, attempts, patterns), end="", flush=True)
    return 0


def history_json(
    graph_id: str, attempts: list[AttemptHistory], patterns: list[LearnedPattern]
) -> dict[str, Any]:
    """The history as one JSON object: attempts with their full records, and the patterns."""
    return {
        "graph_id": graph_id,
        "attempts": [a.model_dump(mode="json") for a in attempts],
        "patterns": [p.model_dump(mode="json") | {"pattern_id": p.pattern_id} for p in patterns],
    }


def history_text(
    graph_id: str, attempts: list[AttemptHistory], patterns: list[LearnedPattern]
) -> str:
    """The history for a terminal: one block per attempt, then the decided patterns."""
    if not attempts:
        lines = [f"no attempt recorded for graph {graph_id!r} (with these filters)"]
    else:
        lines = [f"{len(attempts)} attempt(s) on graph {graph_id!r}, newest first", ""]
        for entry in attempts:
            lines += [*_attempt_lines(entry), ""]
    lines += _pattern_lines(graph_id, patterns)
    return "\n".join(lines) + "\n"


def _attempt_lines(entry: AttemptHistory) -> list[str]:
    a = entry.attempt
    effect = "" if a.effect is None else f", effect {a.effect:+.3g}"
    head = f"cycle {a.cycle} {a.outcome}: {a.title} [{a.diagnosis_kind}; risk {a.risk}{effect}]"
    lines = [head, f"  versions: {a.base_version_id} -> {a.candidate_version_id or '-'}"]
    if entry.record is None:
        return [*lines, "  (recorded before full records: no more detail)"]
    return lines + _record_lines(entry.record)


def _record_lines(r: AttemptRecord) -> list[str]:
    h = r.hypothesis
    lines = [f"  rationale: {h.rationale or '-'}"]
    lines += [f"  change: {json.dumps(c.model_dump(mode='json'))}" for c in h.changes]
    expected = ", ".join(f"{m} {e:+.3g}" for m, e in h.expected_effects.items()) or "-"
    lines += [f"  expected: {expected}; types: {', '.join(r.hypothesis_types) or '-'}"]
    lines += [
        f"  touches: {t.node_id} ({t.node_type}, depth {t.depth}, fan-out {t.fan_out})"
        for t in r.targets
    ]
    if r.validation is not None:
        v = r.validation
        lines.append(
            f"  validation: {'approved' if v.approved else 'refused'}, risk {v.risk}"
            + (f"; {'; '.join(v.violations)}" if v.violations else "")
        )
    if r.diff is not None:
        lines.append(f"  diff: {r.diff.summary}")
    lines += _test_lines(r) + _deployment_lines(r)
    lines += [f"  reason: {reason}" for reason in r.decision_reasons]
    if r.review is not None:
        rv = r.review
        verdict = "timed out" if rv.timed_out else ("approved" if rv.approved else "rejected")
        lines.append(f"  review: {verdict} by {rv.reviewer or '-'}: {rv.comment or '-'}")
    return lines


def _test_lines(r: AttemptRecord) -> list[str]:
    if r.test is None:
        return []
    lines = [f"  test: {r.test.outcome} ({r.test.replayed} replayed, {r.test.live_runs} live)"]
    return lines + [
        f"    {m.name} ({m.role}): {m.estimate:+.4g} [{m.ci_low:+.4g}, {m.ci_high:+.4g}] "
        f"p={m.p_value:.3g} n={m.n_baseline}/{m.n_candidate} {m.method}"
        for m in r.test.metrics
    ]


def _deployment_lines(r: AttemptRecord) -> list[str]:
    lines = []
    if r.deployment is not None:
        d = r.deployment
        lines.append(f"  deployment: {d.deployment_id} {d.strategy} {d.status}")
        lines += [
            f"    {s.action} share {s.candidate_share:g} by {s.actor}: {s.reason}" for s in d.steps
        ]
    if r.monitoring is not None:
        checks = ", ".join(c.status for c in r.monitoring.checks) or "none"
        lines.append(f"  monitoring: {r.monitoring.outcome} (checks: {checks})")
    return lines


def _pattern_lines(graph_id: str, patterns: list[LearnedPattern]) -> list[str]:
    decided = [p for p in patterns if p.verdict != "undecided"]
    if not decided:
        return [f"no success pattern or anti-pattern learned yet ({len(patterns)} undecided)"]
    lines = ["learned patterns (this graph and across graphs):"]
    for verdict, label in (("success", "success"), ("anti", "anti-pattern")):
        lines += [f"  {label}: {p.describe(graph_id)}" for p in decided if p.verdict == verdict]
    return lines
