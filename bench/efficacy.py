"""Efficacy benchmark: does the loop take the improvement that is there, and only that?

Run as ``python -m bench.efficacy --json``. Each scenario in ``bench/scenarios/*.yaml`` (the
public scenario format, one file each) runs through ``spark bench run FILE --json`` in its own
process, on its own private dev server and worker, with a reviewer that approves everything
(the harsh test: the traps must hold without a human), two scenarios at a time by default.
Scenarios run 3 cycles, the healthy graph 5.

Per scenario: the oracle fraction reached (how much of the best known change's objective gain
the deployed version holds, measured on the same fresh requests), regressions deployed,
protected or non-deterministic nodes wrongly changed, deployments. The summary checks the
targets: mean oracle fraction >= 0.9, no regression, no wrong change, nothing deployed on the
healthy graph. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

ROOT = Path(__file__).resolve().parents[1]
SCENARIO_DIR = ROOT / "bench" / "scenarios"
DEFAULT_CYCLES = 3
CYCLES = {"healthy": 5}
"""Cycles per scenario (by file stem) when not the default: the healthy graph gets 5 chances to
deploy something it should not."""
NOTHING_TO_GAIN = {"healthy"}
ORACLE_TARGET = 0.9


class ScenarioOutcome(BaseModel):
    """The efficacy figures of one scenario (the whole report is kept alongside)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scenario: str
    cycles: int
    outcomes: list[str]
    deployments: int
    oracle_fraction: float | None
    loss_before: float | None
    loss_after: float | None
    loss_oracle: float | None
    regressions_deployed: int
    wrong_changes: int
    wall_time_s: float
    error: str | None = None


class Summary(BaseModel):
    """The targets, met or not."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    commit: str | None
    mean_oracle_fraction: float | None
    scenarios_with_oracle: int
    regressions_deployed: int
    wrong_changes: int
    healthy_deployments: int
    failed_runs: int
    targets_met: bool
    wall_time_s: float


# ----- running -----


def scenario_files(names: list[str] | None) -> list[Path]:
    """The benchmark's scenario files, all or those whose stem is in ``names``."""
    files = sorted(SCENARIO_DIR.glob("*.yaml"))
    if names:
        files = [f for f in files if f.stem in names]
    return files


async def run_one(file: Path, gate: asyncio.Semaphore) -> tuple[str, dict[str, Any] | str]:
    """``spark bench run FILE --json`` in a child process; its report, or the error text."""
    cycles = CYCLES.get(file.stem, DEFAULT_CYCLES)
    command = [sys.executable, "-m", "spark.cli", "bench", "run", str(file), "--json"]
    command += ["--cycles", str(cycles), "--reviewer", "approve-all"]
    async with gate:
        print(f"[efficacy] start {file.stem} ({cycles} cycles)", file=sys.stderr, flush=True)
        process = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, stdout=subprocess.PIPE, stderr=None
        )
        stdout, _ = await process.communicate()
    if process.returncode != 0:
        return file.stem, f"exit code {process.returncode}"
    return file.stem, json.loads(stdout)


async def run_all(files: list[Path], parallel: int) -> dict[str, dict[str, Any] | str]:
    """Every scenario, ``parallel`` at a time, in file order."""
    gate = asyncio.Semaphore(parallel)
    results = await asyncio.gather(*(run_one(f, gate) for f in files))
    return dict(results)


# ----- judging -----


def outcome_of(name: str, report: dict[str, Any] | str) -> ScenarioOutcome:
    """The efficacy figures of one scenario's report (or of its failure)."""
    if isinstance(report, str):
        return ScenarioOutcome(
            scenario=name,
            cycles=CYCLES.get(name, DEFAULT_CYCLES),
            outcomes=[],
            deployments=0,
            oracle_fraction=None,
            loss_before=None,
            loss_after=None,
            loss_oracle=None,
            regressions_deployed=0,
            wrong_changes=0,
            wall_time_s=0.0,
            error=report,
        )
    oracle = report.get("oracle")
    return ScenarioOutcome(
        scenario=name,
        cycles=report["cycles_requested"],
        outcomes=[c["outcome"] for c in report["cycles"]],
        deployments=report["deployments"],
        oracle_fraction=report["oracle_fraction"],
        loss_before=report["before"]["objective_loss"],
        loss_after=report["after"]["objective_loss"],
        loss_oracle=oracle["objective_loss"] if oracle else None,
        regressions_deployed=report["regressions_deployed"],
        wrong_changes=report["wrong_changes_count"],
        wall_time_s=report["wall_time_s"],
    )


def summarize(outcomes: list[ScenarioOutcome], commit: str | None, wall: float) -> Summary:
    """Mean oracle fraction over scenarios with an oracle, totals, and whether targets hold."""
    fractions = [o.oracle_fraction for o in outcomes if o.oracle_fraction is not None]
    mean = round(sum(fractions) / len(fractions), 4) if fractions else None
    regressions = sum(o.regressions_deployed for o in outcomes)
    wrong = sum(o.wrong_changes for o in outcomes)
    healthy = sum(o.deployments for o in outcomes if o.scenario in NOTHING_TO_GAIN)
    failed = sum(1 for o in outcomes if o.error is not None)
    met = (
        mean is not None
        and mean >= ORACLE_TARGET
        and regressions == 0
        and wrong == 0
        and healthy == 0
        and failed == 0
    )
    return Summary(
        commit=commit,
        mean_oracle_fraction=mean,
        scenarios_with_oracle=len(fractions),
        regressions_deployed=regressions,
        wrong_changes=wrong,
        healthy_deployments=healthy,
        failed_runs=failed,
        targets_met=met,
        wall_time_s=round(wall, 1),
    )


# ----- output -----


def print_table(outcomes: list[ScenarioOutcome], summary: Summary) -> None:
    """A markdown table of the outcomes and the summary line."""
    print(
        "| scenario | cycles: outcomes | deployed | loss before → after (oracle) | oracle "
        "fraction | regressions | wrong changes | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for o in outcomes:
        if o.error is not None:
            print(f"| {o.scenario} | failed: {o.error} | | | | | | |")
            continue
        oracle = f" ({o.loss_oracle:.3f})" if o.loss_oracle is not None else ""
        fraction = f"{o.oracle_fraction:.2f}" if o.oracle_fraction is not None else "-"
        print(
            f"| {o.scenario} | {o.cycles}: {', '.join(o.outcomes)} | {o.deployments} | "
            f"{o.loss_before:.3f} → {o.loss_after:.3f}{oracle} | {fraction} | "
            f"{o.regressions_deployed} | {o.wrong_changes} | {o.wall_time_s:.0f} |"
        )
    print(
        f"\nmean oracle fraction {summary.mean_oracle_fraction} over "
        f"{summary.scenarios_with_oracle} scenarios; regressions {summary.regressions_deployed}; "
        f"wrong changes {summary.wrong_changes}; healthy deployments "
        f"{summary.healthy_deployments}; targets met: {summary.targets_met}; commit "
        f"{summary.commit}; wall time {summary.wall_time_s:.0f} s"
    )


def _commit(reports: dict[str, dict[str, Any] | str]) -> str | None:
    commits = {r.get("commit") for r in reports.values() if isinstance(r, dict)}
    return ",".join(sorted(c for c in commits if c)) or None


def main() -> None:
    """Parse arguments, run the scenarios, print the result."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--parallel", type=int, default=2, help="scenarios at a time")
    parser.add_argument(
        "--scenario", action="append", help="a file stem in bench/scenarios (default: all)"
    )
    args = parser.parse_args()
    started = time.monotonic()
    reports = asyncio.run(run_all(scenario_files(args.scenario), args.parallel))
    outcomes = [outcome_of(name, report) for name, report in reports.items()]
    summary = summarize(outcomes, _commit(reports), time.monotonic() - started)
    if args.json:
        payload = {
            "summary": summary.model_dump(mode="json"),
            "scenarios": [o.model_dump(mode="json") for o in outcomes],
            "reports": reports,
        }
        print(json.dumps(payload, indent=2))
    else:
        print_table(outcomes, summary)


if __name__ == "__main__":
    main()
