"""Offline replay: recorded production inputs through baseline and candidate, paired.

Replay never repeats a real side effect: nodes tagged ``side_effects`` are not executed; their
recorded outputs are reused, and a run without them is refused (counted, never silently dropped).
The decision goes through the statistical engine (``spark.rsi.stats``) with paired tests, on
the owner's objective (``spark.rsi.judgement``): the loss per request of each pair (failed
requests included), the error-rate guardrail, the metrics the owner left unpriced, and the hard
constraints. Replay cannot measure quality (it needs real users' feedback): when the owner
weighs quality and the graph records it, replay alone never ships (the online window decides).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from spark.errors import ReplayRefusedError
from spark.graphs.runtime import GraphRuntime, RunResult
from spark.graphs.shared_outcomes import SharedOutcomes, retry_policy_changes, unchanged_nodes
from spark.graphs.spec import GraphSpec
from spark.rsi.hypotheses import Metric
from spark.rsi.judgement import (
    OBJECTIVE,
    ConstraintCheck,
    References,
    check_constraints,
    guardrails,
    objective_spec,
    per_run_loss,
    references_of,
)
from spark.rsi.objectives import Objective
from spark.rsi.online import AB_METRICS, judged_spec, moments_of
from spark.rsi.stats import Decision, MetricSpec, SequentialDesign, decide
from spark.telemetry.aggregates import RecordedRun, TraceMetrics

REPLAY_METRICS: dict[Metric, MetricSpec] = {
    name: AB_METRICS[name] for name in ("latency", "error_rate", "cost")
}
"""What replay measures (quality needs real users' feedback: it is judged online only)."""


@dataclass
class ReplaySamples:
    """Paired per-run metrics of both arms (same index = same recorded input)."""

    baseline: dict[str, list[float]] = field(default_factory=lambda: _empty_metrics())
    candidate: dict[str, list[float]] = field(default_factory=lambda: _empty_metrics())
    refused: int = 0

    @property
    def replayed(self) -> int:
        """Number of recorded runs replayed through both arms."""
        return len(self.baseline["error_rate"])


def _empty_metrics() -> dict[str, list[float]]:
    return {name: [] for name in REPLAY_METRICS}


@dataclass
class ReplayArm:
    """One side of the comparison: a spec, its version id and the runtime that runs it."""

    spec: GraphSpec
    version_id: str
    runtime: GraphRuntime


async def replay_pairs(
    baseline: ReplayArm,
    candidate: ReplayArm,
    runs: Sequence[RecordedRun],
    *,
    concurrency: int = 4,
    on_progress: Callable[[int], None] | None = None,
) -> ReplaySamples:
    """Replay every recorded run through both arms; alternate which arm goes first. The nodes
    the candidate left unchanged run once per pair, their outcome used by both arms (common
    random numbers, see ``spark.graphs.shared_outcomes``); a node whose retry policy alone
    changed shares its first attempt."""
    samples = ReplaySamples()
    gate = asyncio.Semaphore(concurrency)
    finished = 0
    unchanged = unchanged_nodes(baseline.spec, candidate.spec)
    retried = retry_policy_changes(baseline.spec, candidate.spec)

    async def one(index: int, run: RecordedRun) -> tuple[RunResult, RunResult] | None:
        nonlocal finished
        async with gate:
            try:
                return await _pair(
                    baseline,
                    candidate,
                    run,
                    SharedOutcomes(unchanged, retried),
                    candidate_first=index % 2 == 1,
                )
            except ReplayRefusedError:
                return None
            finally:
                finished += 1
                if on_progress is not None:
                    on_progress(finished)  # heartbeats while the replay runs

    results = await asyncio.gather(*(one(i, run) for i, run in enumerate(runs)))
    for pair in results:
        _add_pair(samples, pair)
    return samples


async def _pair(
    baseline: ReplayArm,
    candidate: ReplayArm,
    run: RecordedRun,
    shared: SharedOutcomes,
    *,
    candidate_first: bool,
) -> tuple[RunResult, RunResult]:
    arms = [candidate, baseline] if candidate_first else [baseline, candidate]
    results = [await _replay_one(arm, run, shared) for arm in arms]
    return (results[1], results[0]) if candidate_first else (results[0], results[1])


async def _replay_one(arm: ReplayArm, run: RecordedRun, shared: SharedOutcomes) -> RunResult:
    return await arm.runtime.run(
        arm.spec,
        run.inputs,
        version_id=arm.version_id,
        routing_arm="replay",
        replay_outputs=run.side_effect_outputs,
        shared=shared,
    )


def _add_pair(samples: ReplaySamples, pair: tuple[RunResult, RunResult] | None) -> None:
    if pair is None:
        samples.refused += 1
        return
    for arm_metrics, result in zip((samples.baseline, samples.candidate), pair, strict=True):
        # Per request, as the caller sees it: a failed run's latency is the time to the failure.
        arm_metrics["error_rate"].append(0.0 if result.status == "ok" else 1.0)
        arm_metrics["latency"].append(result.duration_ms)
        arm_metrics["cost"].append(result.cost)


def decide_replay(
    samples: ReplaySamples,
    primary: Metric,
    *,
    alpha: float,
    expected_effects: Mapping[str, float] | None = None,
) -> Decision:
    """Paired decision: the primary metric must improve, the others must not get worse than
    their margins (widened by the hypothesis' own stated costs, see ``judged_spec``).

    Metrics identical in every run of both arms carry no information and are left out as
    guardrails (a graph that reports no cost has nothing to guard).
    """
    metrics = [
        judged_spec(name, primary, expected_effects)
        for name in REPLAY_METRICS
        if name == primary or _informative(samples, name)
    ]
    names = [m.name for m in metrics]
    return decide(
        metrics,
        {name: samples.baseline[name] for name in names},
        {name: samples.candidate[name] for name in names},
        # One look, no futility: "not shown" stays inconclusive; only harm is a rejection.
        design=SequentialDesign(alpha=alpha, planned_looks=1, futility=False),
        paired=True,
    )


def _informative(samples: ReplaySamples, name: str) -> bool:
    values = set(samples.baseline[name]) | set(samples.candidate[name])
    return len(values) > 1


REPLAY_DESIGN_FUTILITY = False
"""One look without futility: a replay that shows no gain is inconclusive, never a rejection."""


def decide_replay_by_objective(
    samples: ReplaySamples,
    objective: Objective,
    *,
    alpha: float,
    quality_recorded: bool = False,
) -> Decision:
    """Paired decision on the owner's objective (see the module docstring): one look, no
    futility ("not shown" stays inconclusive; only harm is a rejection)."""
    base_arm, cand_arm = (_trace_metrics(arm) for arm in (samples.baseline, samples.candidate))
    base_moments = moments_of(base_arm)
    refs = references_of(base_moments)
    arrays = [
        {**arm, OBJECTIVE: _losses(objective, refs, metrics)}
        for arm, metrics in ((samples.baseline, base_arm), (samples.candidate, cand_arm))
    ]
    metrics = [objective_spec()] + [
        g for g in guardrails(objective, base_moments) if g.name in REPLAY_METRICS
    ]
    design = SequentialDesign(alpha=alpha, planned_looks=1, futility=REPLAY_DESIGN_FUTILITY)
    decision = decide(
        metrics,
        {m.name: arrays[0][m.name] for m in metrics},
        {m.name: arrays[1][m.name] for m in metrics},
        design=design,
        paired=True,
    )
    checks = check_constraints(
        objective, base_moments, moments_of(cand_arm), decision.metrics[0].nominal_alpha
    )
    return _with_constraints(decision, checks, objective, quality_recorded)


def _trace_metrics(arm: dict[str, list[float]]) -> TraceMetrics:
    return TraceMetrics(
        graph_id="replay",
        latency_ms=arm["latency"],
        error=arm["error_rate"],
        cost=arm["cost"],
        quality=[None] * len(arm["error_rate"]),
    )


def _losses(objective: Objective, refs: References, metrics: TraceMetrics) -> list[float]:
    return [
        per_run_loss(objective, refs, e, lat, c)
        for e, lat, c in zip(metrics.error, metrics.latency_ms, metrics.cost, strict=True)
    ]


def _with_constraints(
    decision: Decision,
    checks: list[ConstraintCheck],
    objective: Objective,
    quality_recorded: bool,
) -> Decision:
    """Fold the constraints (and quality, which replay cannot see) into the engine's verdict."""
    broken = [c.reason for c in checks if c.status == "broken"]
    unproven = [c.reason for c in checks if c.status == "unproven"]
    held = [c.reason for c in checks if c.status == "holds"]
    outcome, reasons = decision.outcome, list(decision.reasons)
    if broken and outcome != "invalid":
        outcome, reasons = "reject", broken + reasons
    elif outcome == "ship" and unproven:
        outcome, reasons = "inconclusive", unproven + reasons
    if outcome == "ship" and quality_recorded and objective.weight("quality") > 0:
        outcome = "inconclusive"
        reasons = ["quality is judged on live traffic only: replay cannot ship it", *reasons]
    return decision.model_copy(update={"outcome": outcome, "reasons": reasons + held})
