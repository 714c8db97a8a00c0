"""Benchmark of A/B decision rules: our engine vs the original rule vs gbstats' sequential test.

Run as ``python -m bench.decisions --json``. Every case simulates ``--experiments``
experiments (2,000 by default) with a fixed seed. In each experiment a planner reads a
baseline pilot (5,000 recorded runs), chooses the window's size, and the window is looked at
10 times. The same looks go through:

* ``ours``: ``spark.rsi.stats.decide`` with a 10-look O'Brien-Fleming design (two-sided
  alpha of the RSI loop's default, 0.02, or ``--alpha``; power 0.8, non-binding futility); the
  window size comes from the planner;
* ``original_rule``: the original system: 20 runs per arm, ship when the success rate rises
  by more than 2 points or mean latency falls by more than 10%, unless the candidate is more
  than 20% slower;
* ``gbstats_sequential``: GrowthBook's ``SequentialTwoSidedTTest`` (gbstats 0.8.0, its default
  tuning) on the primary metric's means at every look, shipping on the first significant
  improvement, stopping on the first significant harm; when the case has guardrails, a
  guardrail significantly worse by the same test blocks shipping. It runs in a separate venv
  (bench/.gbstats-venv) that this script creates, through bench/_gbstats_runner.py.
* ``gbstats_sequential_tuned``: the same test with its sequential tuning parameter set to the
  window's planned size (2 x the planned runs per arm: the parameter is the total N at which
  its always-valid interval is tightest) instead of its default 5000.

Degenerate cases: a flat price per call (cost constant in both arms; A/A and a 10x cheaper
candidate), an always-perfect quality guardrail kept (A/A) or broken (quality 1.0 -> ~0.16
with a 10% latency win: must never ship), 1-5 ratings in windows of 3 and 5 per arm (often
zero variance in an arm), and 0/1 quality (windows of 5 and planned windows).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spark.rsi.contracts import RSISettings
from spark.rsi.stats import (
    MetricSpec,
    SequentialDesign,
    decide,
    plan_sample_size,
    plan_window,
)

BENCH_DIR = Path(__file__).resolve().parent
GBSTATS_VENV = BENCH_DIR / ".gbstats-venv"
GBSTATS_RUNNER = BENCH_DIR / "_gbstats_runner.py"
GBSTATS_VERSION = "0.8.0"
LOOKS = 10
PILOT_RUNS = 5000
QUALITY_COVERAGE = 0.3
DESIGNS = {"sequential": SequentialDesign(planned_looks=LOOKS), "fixed": SequentialDesign()}


def use_alpha(alpha: float) -> None:
    """Set the designs' two-sided alpha (also the initializer of each worker process)."""
    DESIGNS["sequential"] = SequentialDesign(planned_looks=LOOKS, alpha=alpha)
    DESIGNS["fixed"] = SequentialDesign(alpha=alpha)


LATENCY = MetricSpec(name="latency", kind="latency", improves="decrease", role="primary")
ERRORS = MetricSpec(name="error_rate", kind="rate", improves="decrease", role="primary")
QUALITY = MetricSpec(name="quality", kind="continuous", improves="increase", role="primary")
GUARD_LATENCY = MetricSpec(name="latency", kind="latency", improves="decrease", margin=0.05)
GUARD_ERRORS = MetricSpec(
    name="error_rate", kind="rate", improves="decrease", margin=0.02, margin_scale="absolute"
)
GUARD_COST = MetricSpec(name="cost", kind="continuous", improves="decrease", margin=0.05)
GUARD_QUALITY = MetricSpec(name="quality", kind="continuous", improves="increase", margin=0.03)
COST = MetricSpec(name="cost", kind="continuous", improves="decrease", role="primary")

CONFIGS: dict[str, tuple[list[MetricSpec], dict[str, float]]] = {
    "latency": ([LATENCY], {"latency": -0.10}),
    "errors": ([ERRORS], {"error_rate": -0.20}),
    "quality": ([QUALITY], {"quality": 0.05}),
    "full_latency": ([LATENCY, GUARD_ERRORS, GUARD_COST, GUARD_QUALITY], {"latency": -0.10}),
    "full_errors": ([ERRORS, GUARD_LATENCY, GUARD_COST, GUARD_QUALITY], {"error_rate": -0.20}),
    "cost": ([COST], {"cost": -0.50}),
    "latency_quality_guard": ([LATENCY, GUARD_QUALITY], {"latency": -0.10}),
}
RATINGS = (np.arange(1.0, 6.0), np.array([0.0, 0.0, 0.1, 0.3, 0.6]))


@dataclass(frozen=True)
class Case:
    """One simulated world: a metric configuration and the candidate's true effects."""

    name: str
    config: str
    role: str  # "null", "power", "regression", "other"
    sigma: float = 0.5
    latency_factor: float = 1.0
    error_factor: float = 1.0
    quality_factor: float = 1.0
    candidate_share: float = 0.5
    error_base: float = 0.05
    flat_cost: float = 0.0  # > 0: every run costs exactly this (a flat price per call)
    cost_factor: float = 1.0
    quality_model: str = "beta"  # "beta", "perfect" (always 1.0), "ratings" (1-5), "binary"
    quality_broken: bool = False  # the candidate's quality falls to a mean near 0.16
    quality_coverage: float = QUALITY_COVERAGE
    runs_per_arm: int = 0  # > 0: a window of this size, not planned from the pilot


CASES = [
    Case("aa_latency_sigma0.25", "latency", "null", sigma=0.25),
    Case("aa_latency_sigma0.5", "latency", "null"),
    Case("aa_latency_sigma1.0", "latency", "null", sigma=1.0),
    Case("latency_-5%_sigma0.5", "latency", "other", latency_factor=0.95),
    Case("latency_-10%_sigma0.25", "latency", "other", sigma=0.25, latency_factor=0.90),
    Case("latency_-10%_sigma0.5", "latency", "power", latency_factor=0.90),
    Case("latency_-10%_sigma1.0", "latency", "other", sigma=1.0, latency_factor=0.90),
    Case("latency_-20%_sigma0.5", "latency", "other", latency_factor=0.80),
    Case("latency_+10%_sigma0.5", "latency", "regression", latency_factor=1.10),
    Case("aa_errors_5%", "errors", "null"),
    Case("errors_-20%", "errors", "other", error_factor=0.80),
    Case("aa_quality", "quality", "null"),
    Case("quality_+5%", "quality", "other", quality_factor=1.05),
    Case("aa_full_guardrails", "full_latency", "null"),
    Case("latency_-10%_full_guardrails", "full_latency", "other", latency_factor=0.90),
    Case(
        "latency_-10%_errors_x1.6_full_guardrails",
        "full_latency",
        "other",
        latency_factor=0.90,
        error_factor=1.6,
    ),
    Case(
        "errors_-20%_latency_+10%_full_guardrails",
        "full_errors",
        "regression",
        latency_factor=1.10,
        error_factor=0.80,
    ),
    Case(
        "srm_candidate_share_0.47_full_guardrails",
        "full_latency",
        "other",
        latency_factor=0.90,
        candidate_share=0.47,
    ),
    # degenerate metrics: constant, always perfect, zero-variance, 0/1
    Case("aa_flat_cost_n30", "cost", "null", flat_cost=0.01, runs_per_arm=30),
    Case("flat_cost_x0.1_n30", "cost", "power_degenerate", flat_cost=0.01, cost_factor=0.1,
         runs_per_arm=30),
    Case("aa_latency_perfect_quality_guard", "latency_quality_guard", "null",
         quality_model="perfect"),
    Case("latency_-10%_perfect_quality_guard", "latency_quality_guard", "power_degenerate",
         latency_factor=0.90, quality_model="perfect"),
    Case("latency_-10%_quality_broken_to_0.16", "latency_quality_guard", "harm",
         latency_factor=0.90, quality_model="perfect", quality_broken=True),
    Case("aa_ratings_1to5_n3", "quality", "null", quality_model="ratings",
         quality_coverage=1.0, runs_per_arm=3),
    Case("aa_ratings_1to5_n5", "quality", "null", quality_model="ratings",
         quality_coverage=1.0, runs_per_arm=5),
    Case("aa_binary_quality_n5", "quality", "null", quality_model="binary",
         quality_coverage=1.0, runs_per_arm=5),
    Case("aa_binary_quality", "quality", "null", quality_model="binary", quality_coverage=1.0),
]  # fmt: skip


# --- the simulated world -------------------------------------------------------------------


@dataclass
class Stream:
    """Per-run metrics of one arm, in arrival order (quality only where ``has_quality``)."""

    latency: np.ndarray
    error_rate: np.ndarray
    cost: np.ndarray
    quality: np.ndarray
    has_quality: np.ndarray

    def head(self, n: int) -> dict[str, np.ndarray]:
        """The metric arrays of the first ``n`` runs."""
        return {
            "latency": self.latency[:n],
            "error_rate": self.error_rate[:n],
            "cost": self.cost[:n],
            "quality": self.quality[:n][self.has_quality[:n]],
        }


def simulate_stream(rng: np.random.Generator, case: Case, runs: int, candidate: bool) -> Stream:
    """Draw ``runs`` runs of the baseline or the candidate of ``case``."""
    latency_factor = case.latency_factor if candidate else 1.0
    error_rate = case.error_base * (case.error_factor if candidate else 1.0)
    return Stream(
        latency=rng.lognormal(math.log(1000.0), case.sigma, runs) * latency_factor,
        error_rate=(rng.random(runs) < error_rate).astype(np.float64),
        cost=simulate_cost(rng, case, runs, candidate),
        quality=simulate_quality(rng, case, runs, candidate),
        has_quality=rng.random(runs) < case.quality_coverage,
    )


def simulate_cost(rng: np.random.Generator, case: Case, runs: int, candidate: bool) -> np.ndarray:
    """Cost per run: lognormal, or a flat price per call when the case sets one."""
    factor = case.cost_factor if candidate else 1.0
    if case.flat_cost > 0:
        return np.full(runs, case.flat_cost * factor)
    return rng.lognormal(math.log(0.01), 0.3, runs) * factor


def simulate_quality(
    rng: np.random.Generator, case: Case, runs: int, candidate: bool
) -> np.ndarray:
    """Quality scores of one arm under the case's quality model."""
    if case.quality_model == "perfect" and candidate and case.quality_broken:
        return np.clip(rng.normal(0.16, 0.2, runs), 0.0, 1.0)
    if case.quality_model == "perfect":
        return np.ones(runs)
    if case.quality_model == "ratings":
        return rng.choice(RATINGS[0], runs, p=RATINGS[1])
    if case.quality_model == "binary":
        return (rng.random(runs) < 0.8).astype(np.float64)
    quality_mean = 0.7 * (case.quality_factor if candidate else 1.0)
    return rng.beta(10 * quality_mean, 10 * (1 - quality_mean), runs)


def plan(case: Case, pilot: Stream) -> tuple[int, int]:
    """Runs per arm for the 10-look design and for a single-look test of equal power.

    A case with a fixed window uses it for both. Metrics whose pilot does not vary (a flat
    price, an always-perfect quality) give no spread to size by: the window is planned on the
    others and they are judged at every look all the same."""
    if case.runs_per_arm:
        return case.runs_per_arm, case.runs_per_arm
    all_metrics, effects = CONFIGS[case.config]
    arrays = pilot.head(PILOT_RUNS)
    metrics = [m for m in all_metrics if m.kind == "rate" or np.ptp(arrays[m.name]) > 0]
    if len(metrics) > 1:
        sequential = plan_window(
            metrics, arrays, effects, design=DESIGNS["sequential"]
        ).runs_per_arm
        fixed = plan_window(metrics, arrays, effects, design=DESIGNS["fixed"]).runs_per_arm
        return sequential, fixed
    spec = metrics[0]
    effect = effects[spec.name]
    coverage = case.quality_coverage if spec.name == "quality" else 1.0
    sizes = [
        plan_sample_size(arrays[spec.name], spec.kind, effect, design=design)
        for design in (DESIGNS["sequential"], DESIGNS["fixed"])
    ]
    return math.ceil(sizes[0] / coverage), math.ceil(sizes[1] / coverage)


def look_sizes(
    rng: np.random.Generator, runs_per_arm: int, share: float, fixed: bool = False
) -> list[tuple[int, int]]:
    """Arm sizes at each look: traffic arrives in 10 equal slices, each run assigned at random
    (``fixed``: a small window of exactly ``runs_per_arm`` per arm, filled evenly)."""
    if fixed:
        return [(math.ceil(runs_per_arm * k / LOOKS),) * 2 for k in range(1, LOOKS + 1)]
    totals = [math.ceil(2 * runs_per_arm * k / LOOKS) for k in range(1, LOOKS + 1)]
    increments = np.diff([0, *totals])
    candidates = np.cumsum(rng.binomial(increments, share))
    return [(int(t - c), int(c)) for t, c in zip(totals, candidates, strict=True)]


# --- one experiment -------------------------------------------------------------------------


@dataclass
class Verdict:
    """Where one engine stopped: its outcome and the runs per arm it had used."""

    outcome: str
    samples: float
    look: int = 0


@dataclass
class Experiment:
    """The verdicts of one experiment and the looks' summaries for gbstats."""

    ours: Verdict
    original: Verdict
    fixed: Verdict
    planned: int
    fixed_planned: int
    sizes: list[tuple[int, int]]
    gbstats_rows: list[list] = field(default_factory=list)
    gbstats_log_rows: list[list] = field(default_factory=list)


def run_ours(case: Case, base: Stream, cand: Stream, sizes: list[tuple[int, int]]) -> Verdict:
    """Look at the window up to 10 times with our engine; stop at the first decision."""
    metrics, _ = CONFIGS[case.config]
    for look, (n_b, n_c) in enumerate(sizes, start=1):
        b, c = base.head(n_b), cand.head(n_c)
        if min(min(b[m.name].size, c[m.name].size) for m in metrics) < 2:
            continue  # a look with fewer than 2 records of a metric in an arm is not taken
        decision = decide(
            metrics, b, c, design=DESIGNS["sequential"], look=look, assignment=(n_b, n_c)
        )
        if decision.outcome != "continue":
            return Verdict(decision.outcome, (n_b + n_c) / 2, look)
    return Verdict("inconclusive", (n_b + n_c) / 2, LOOKS)  # no final look: too few records


def run_fixed(case: Case, base: Stream, cand: Stream, runs: int) -> Verdict:
    """A single-look test of the same engine at the fixed-horizon size of equal power."""
    metrics, _ = CONFIGS[case.config]
    b, c = base.head(runs), cand.head(runs)
    if min(min(b[m.name].size, c[m.name].size) for m in metrics) < 2:
        return Verdict("inconclusive", runs, 1)
    decision = decide(metrics, b, c, design=DESIGNS["fixed"])
    return Verdict(decision.outcome, runs, 1)


def run_original(base: Stream, cand: Stream) -> Verdict:
    """The original rule on the first 20 runs per arm."""
    b, c = base.head(20), cand.head(20)
    success_gain = (1 - c["error_rate"].mean()) - (1 - b["error_rate"].mean())
    latency_ratio = c["latency"].mean() / b["latency"].mean()
    passes = (success_gain > 0.02 or latency_ratio < 0.9) and latency_ratio <= 1.2
    return Verdict("ship" if passes else "reject", 20, 1)


def gbstats_rows(
    case: Case, base: Stream, cand: Stream, sizes: list[tuple[int, int]], tuning: float
) -> list[list]:
    """Summary statistics of every metric at every look, in the runner's row format, with
    ``tuning`` as the second sequential tuning parameter to try."""
    metrics, _ = CONFIGS[case.config]
    rows = []
    for n_b, n_c in sizes:
        b, c = base.head(n_b), cand.head(n_c)
        for spec in metrics:
            kind = "proportion" if spec.kind == "rate" else "mean"
            rows.append([kind, *_sums(b[spec.name]), *_sums(c[spec.name]), "relative", tuning])
    return rows


def gbstats_log_rows(
    case: Case, base: Stream, cand: Stream, sizes: list[tuple[int, int]], tuning: float
) -> list[list]:
    """For latency-only cases: the same looks on ln(latency), absolute difference (a variant
    that separates the log transform from the sequential method)."""
    if case.config != "latency":
        return []
    rows = []
    for n_b, n_c in sizes:
        b, c = np.log(base.latency[:n_b]), np.log(cand.latency[:n_c])
        rows.append(["mean", *_sums(b), *_sums(c), "absolute", tuning])
    return rows


def gbstats_tuning(planned: int) -> float:
    """gbstats' tuning parameter for a window of ``planned`` runs per arm: the total number of
    runs the window plans (its parameter is the N = n_a + n_b at which the always-valid
    interval is tightest)."""
    return float(2 * planned)


def _sums(values: np.ndarray) -> tuple[int, float, float]:
    return values.size, float(values.sum()), float(np.square(values).sum())


def run_experiment(case_index: int, experiment: int, seed: int) -> Experiment:
    """Simulate one experiment of one case and run the engines on it."""
    case = CASES[case_index]
    rng = np.random.default_rng([seed, case_index, experiment])
    pilot = simulate_stream(rng, case, PILOT_RUNS, candidate=False)
    planned, fixed_planned = plan(case, pilot)
    runs = max(planned, fixed_planned, 10) * 2  # the original rule reads 20 runs per arm
    base, cand = (simulate_stream(rng, case, runs, candidate=flag) for flag in (False, True))
    sizes = look_sizes(rng, planned, case.candidate_share, fixed=bool(case.runs_per_arm))
    return Experiment(
        ours=run_ours(case, base, cand, sizes),
        original=run_original(base, cand),
        fixed=run_fixed(case, base, cand, fixed_planned),
        planned=planned,
        fixed_planned=fixed_planned,
        sizes=sizes,
        gbstats_rows=gbstats_rows(case, base, cand, sizes, gbstats_tuning(planned)),
        gbstats_log_rows=gbstats_log_rows(case, base, cand, sizes, gbstats_tuning(planned)),
    )


def run_chunk(task: tuple[int, range, int]) -> list[Experiment]:
    """Worker entry point: a range of experiments of one case."""
    case_index, experiments, seed = task
    return [run_experiment(case_index, e, seed) for e in experiments]


# --- gbstats --------------------------------------------------------------------------------


def gbstats_python() -> Path:
    """The gbstats venv's interpreter, creating the venv on first use."""
    python = GBSTATS_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(GBSTATS_VENV)], check=True)
        install = [str(python), "-m", "pip", "install", "-q", f"gbstats=={GBSTATS_VERSION}"]
        subprocess.run(install, check=True, stdout=subprocess.DEVNULL)
    return python


def run_gbstats(rows: list[list], workers: int = 1) -> list[list[float]]:
    """Send summary rows through gbstats' sequential test in its own venv, split over
    ``workers`` processes; the results come back in the rows' order."""
    python = gbstats_python()
    size = max(1, math.ceil(len(rows) / max(workers, 1)))
    chunks = [rows[start : start + size] for start in range(0, len(rows), size)]
    with ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
        parts = list(pool.map(lambda chunk: _gbstats_chunk(python, chunk), chunks))
    return [result for part in parts for result in part]


def _gbstats_chunk(python: Path, rows: list[list]) -> list[list[float]]:
    completed = subprocess.run(
        [str(python), str(GBSTATS_RUNNER)],
        input=json.dumps({"tests": rows}),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout)["results"]


def gbstats_verdict(
    metrics: list[MetricSpec],
    results: list[list[float]],
    sizes: list[tuple[int, int]],
    column: int = 1,
) -> Verdict:
    """Replay gbstats' looks: ship on the first significant primary gain with no guardrail
    significantly worse, stop on the first significant harm, else run to the end. ``column``
    picks the p-value at gbstats' default tuning (1) or at the window's planned size (2)."""
    verdict = None
    for look, chunk in zip(range(1, LOOKS + 1), _chunks(results, len(metrics)), strict=True):
        outcomes = [
            _gb_direction(spec, [result[0], result[column]])
            for spec, result in zip(metrics, chunk, strict=True)
        ]
        if verdict is None:
            verdict = _gb_look(outcomes, look, sum(sizes[look - 1]) / 2)
    return verdict or Verdict("inconclusive", sum(sizes[-1]) / 2, LOOKS)


def _gb_look(outcomes: list[str], look: int, samples: float) -> Verdict | None:
    primary, guardrails = outcomes[0], outcomes[1:]
    if primary == "worse" or "worse" in guardrails:
        return Verdict("reject", samples, look)
    if primary == "better":
        return Verdict("ship", samples, look)
    return None


def _gb_direction(spec: MetricSpec, result: list[float]) -> str:
    lift, p_value = result
    if not p_value < 0.05 or lift == 0:  # NaN (no answer) counts as no decision
        return "none"
    better = lift < 0 if spec.improves == "decrease" else lift > 0
    return "better" if better else "worse"


def _chunks(rows: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


# --- reporting ------------------------------------------------------------------------------


def summarise(verdicts: list[Verdict]) -> dict[str, float]:
    """Outcome rates and the mean runs per arm used."""
    outcomes = [v.outcome for v in verdicts]
    summary = {f"{name}_rate": outcomes.count(name) / len(outcomes) for name in ("ship", "reject")}
    summary["inconclusive_rate"] = outcomes.count("inconclusive") / len(outcomes)
    summary["invalid_rate"] = outcomes.count("invalid") / len(outcomes)
    summary["mean_samples_to_decision"] = float(np.mean([v.samples for v in verdicts]))
    return summary


def headline(cases: dict[str, dict[str, float]]) -> dict[str, float | str]:
    """The four target figures from the per-case breakdown."""
    by_role: dict[str, list[str]] = {}
    for case in CASES:
        by_role.setdefault(case.role, []).append(case.name)
    power = by_role["power"][0]
    return {
        "false_positive_rate": max(cases[name]["ship_rate"] for name in by_role["null"]),
        "power_10pct": cases[power]["ship_rate"],
        "regression_ship_rate": max(cases[name]["ship_rate"] for name in by_role["regression"]),
        "mean_samples_to_decision": cases[power]["mean_samples_to_decision"],
        "power_degenerate_min": min(
            cases[name]["ship_rate"] for name in by_role["power_degenerate"]
        ),
        "harm_ship_rate": max(cases[name]["ship_rate"] for name in by_role["harm"]),
        "harm_reject_rate_min": min(cases[name]["reject_rate"] for name in by_role["harm"]),
    }


def run(
    experiments: int, seed: int, workers: int, power_experiments: int = 0
) -> dict[str, dict[str, Any]]:
    """Simulate every case and return the JSON report."""
    started = time.time()
    results = simulate(experiments, seed, workers, power_experiments)
    engines: dict[str, dict[str, dict]] = {
        "ours": {},
        "original_rule": {},
        "gbstats_sequential": {},
        "gbstats_sequential_tuned": {},
    }
    extras: dict[str, dict] = {}
    log_variant: dict[str, dict] = {}
    log_variant_tuned: dict[str, dict] = {}
    every = [e for index in range(len(CASES)) for e in results[index]]
    gb_rows = [r for e in every for r in e.gbstats_rows + e.gbstats_log_rows]
    gb_results = iter(run_gbstats(gb_rows, workers))
    for case_index, case in enumerate(CASES):
        runs, metrics = results[case_index], CONFIGS[case.config][0]
        gb: dict[int, list[Verdict]] = {1: [], 2: []}
        gb_log: dict[int, list[Verdict]] = {1: [], 2: []}
        for e in runs:
            looks = [next(gb_results) for _ in e.gbstats_rows]
            log_looks = [next(gb_results) for _ in e.gbstats_log_rows]
            for column in (1, 2):
                gb[column].append(gbstats_verdict(metrics, looks, e.sizes, column))
                if log_looks:
                    gb_log[column].append(gbstats_verdict(metrics, log_looks, e.sizes, column))
        engines["ours"][case.name] = summarise([e.ours for e in runs])
        engines["original_rule"][case.name] = summarise([e.original for e in runs])
        engines["gbstats_sequential"][case.name] = summarise(gb[1])
        engines["gbstats_sequential_tuned"][case.name] = summarise(gb[2])
        extras[case.name] = _extras(runs)
        if gb_log[1]:
            log_variant[case.name] = summarise(gb_log[1])
            log_variant_tuned[case.name] = summarise(gb_log[2])
    report: dict[str, dict[str, Any]] = {
        name: {**headline(cases), "cases": cases} for name, cases in engines.items()
    }
    report["gbstats_sequential"]["log_latency_variant"] = log_variant
    report["gbstats_sequential_tuned"]["log_latency_variant"] = log_variant_tuned
    report["ours"]["fixed_horizon_comparison"] = extras
    report["ours"]["false_positive_rate_guardrails_on"] = engines["ours"]["aa_full_guardrails"][
        "ship_rate"
    ]
    power_case = next(case for case in CASES if case.role == "power")
    for name, cases in engines.items():
        report[name]["power_10pct_ci95"] = wilson_interval(
            cases[power_case.name]["ship_rate"], len(results[CASES.index(power_case)])
        )
    report["ours"]["setup"] = _setup(experiments, seed, time.time() - started)
    report["ours"]["setup"]["power_case_experiments"] = len(results[CASES.index(power_case)])
    return report


def wilson_interval(rate: float, trials: int, z: float = 1.959964) -> list[float]:
    """95% Wilson score interval of a simulated rate."""
    centre = (rate + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials))
    half /= 1 + z * z / trials
    return [round(centre - half, 4), round(centre + half, 4)]


def _extras(runs: list[Experiment]) -> dict[str, float]:
    fixed = summarise([e.fixed for e in runs])
    return {
        "planned_runs_per_arm": float(np.mean([e.planned for e in runs])),
        "fixed_horizon_runs_per_arm": float(np.mean([e.fixed_planned for e in runs])),
        "fixed_horizon_ship_rate": fixed["ship_rate"],
        "ours_mean_looks": float(np.mean([e.ours.look for e in runs])),
    }


def _setup(experiments: int, seed: int, seconds: float) -> dict[str, object]:
    return {
        "experiments_per_case": experiments,
        "seed": seed,
        "looks": LOOKS,
        "design": DESIGNS["sequential"].model_dump(),
        "pilot_runs": PILOT_RUNS,
        "gbstats_version": GBSTATS_VERSION,
        "seconds": round(seconds, 1),
    }


def experiments_for(case: Case, experiments: int, power_experiments: int) -> int:
    """Experiments simulated for ``case``: the headline power case gets its own (larger) count,
    because its target sits exactly at the design's power and 2,000 experiments measure it to
    only +-0.018 (95%)."""
    return max(experiments, power_experiments) if case.role == "power" else experiments


def simulate(
    experiments: int, seed: int, workers: int, power_experiments: int = 0
) -> dict[int, list[Experiment]]:
    """Run all cases' experiments across ``workers`` processes, in a deterministic order."""
    chunk = 100
    tasks = [
        (case_index, range(start, min(start + chunk, count)), seed)
        for case_index, case in enumerate(CASES)
        for count in [experiments_for(case, experiments, power_experiments)]
        for start in range(0, count, chunk)
    ]
    results: dict[int, list[Experiment]] = {index: [] for index in range(len(CASES))}
    alpha = DESIGNS["sequential"].alpha
    with ProcessPoolExecutor(max_workers=workers, initializer=use_alpha, initargs=(alpha,)) as pool:
        for task, outcome in zip(tasks, pool.map(run_chunk, tasks), strict=True):
            results[task[0]].extend(outcome)
    return results


def print_table(report: dict[str, dict]) -> None:
    """Human-readable table of ship rates and mean samples per case."""
    names = ["ours", "original_rule", "gbstats_sequential", "gbstats_sequential_tuned"]
    print(f"{'case':44s}" + "".join(f"{n:>28s}" for n in names))
    for case in CASES:
        cells = [report[n]["cases"][case.name] for n in names]
        row = "".join(
            f"{c['ship_rate']:>14.3f}{c['mean_samples_to_decision']:>14.0f}" for c in cells
        )
        print(f"{case.name:44s}{row}")
    for key in (
        "false_positive_rate",
        "power_10pct",
        "regression_ship_rate",
        "mean_samples_to_decision",
        "power_degenerate_min",
        "harm_ship_rate",
        "harm_reject_rate_min",
    ):
        print(f"{key:44s}" + "".join(f"{report[n][key]:>28.3f}" for n in names))


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the JSON report")
    parser.add_argument("--experiments", type=int, default=2000)
    parser.add_argument(
        "--power-experiments",
        type=int,
        default=10000,
        help="experiments in the headline power case (at least --experiments)",
    )
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--alpha",
        type=float,
        default=RSISettings().alpha,
        help="two-sided alpha of our design (default: the RSI loop's, RSISettings.alpha)",
    )
    args = parser.parse_args()
    use_alpha(args.alpha)
    report = run(args.experiments, args.seed, args.workers, args.power_experiments)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)


if __name__ == "__main__":
    main()
