"""The fault matrix's table for BENCHMARKS.md, from the JSON lines ``make faults`` writes.

``python -m tests.faults.report .spark/faults.jsonl`` prints one row per fault: trials,
cycles completed, duplicate records, runs lost (served but not stored), whether the fault
landed where aimed, the stall (the fault's end to the workflow's next completed task) and the
window's longest exposure against its bound.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

HEADER = (
    "| fault | trials | completed | outcome | landed | duplicates | runs lost (dropped) "
    "| stall s | window routed s (cap / bound) |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def _row(fault: str, trials: list[dict[str, Any]]) -> str:
    """One table row for the trials of ``fault``."""
    completed = sum(1 for t in trials if t["completed"])
    landed = sum(1 for t in trials if t["hit"])
    outcomes = ", ".join(sorted({t["outcome"] for t in trials}))
    duplicates = sum(t["duplicates"] for t in trials)
    lost = sum(t["runs_lost"] for t in trials)
    dropped = sum(t["dropped"] for t in trials)
    stalls = [t["recovery_s"] for t in trials if t.get("recovery_s") is not None]
    stall = f"{max(stalls):.1f}" if stalls else "-"
    exposure = "-"
    windows = [t for t in trials if t.get("exposure_s") is not None]
    if windows:
        worst = max(windows, key=lambda t: t["exposure_s"])
        exposure = (
            f"{worst['exposure_s']:.1f} ({worst['cap_s']:.1f} / {worst['exposure_bound_s']:.1f})"
        )
    return (
        f"| {fault} | {len(trials)} | {completed} | {outcomes} | {landed} | {duplicates} "
        f"| {lost} ({dropped}) | {stall} | {exposure} |"
    )


def table(lines: list[str]) -> str:
    """The markdown table of every trial recorded in ``lines``, in the order first seen."""
    by_fault: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        if line.strip():
            trial = json.loads(line)
            by_fault[trial["fault"]].append(trial)
    rows = [_row(fault, trials) for fault, trials in by_fault.items()]
    return "\n".join([HEADER, *rows])


def main(argv: list[str]) -> None:
    """Print the table for the file named in ``argv`` (default ``.spark/faults.jsonl``)."""
    path = Path(argv[0] if argv else ".spark/faults.jsonl")
    print(table(path.read_text().splitlines()))


if __name__ == "__main__":
    main(sys.argv[1:])
