"""Phase 4: the A/B test, as an offline replay of recorded production inputs (paired)."""

from __future__ import annotations

from temporalio import activity

from activities._support import heartbeating, log, misuse_is_final, off_loop
from activities.deps import ActivityDeps
from activities.online_ab import metric_summary
from spark.graphs.runtime import GraphRuntime
from spark.rsi.contracts import ABTestInput, ABTestResult
from spark.rsi.judgement import MIN_JUDGED
from spark.rsi.objectives import Objective, objective_of
from spark.rsi.replay import ReplayArm, decide_replay_by_objective, replay_pairs
from spark.rsi.stats import Decision
from spark.telemetry.aggregates import RecordedRun


class ABTestActivities:
    """Runs production's node implementations (loaded from the modules the graph was registered
    with) on recorded inputs; writes no production telemetry."""

    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name="replay_ab_test")
    @misuse_is_final
    @heartbeating
    async def replay_ab_test(self, inp: ABTestInput) -> ABTestResult:
        """Replay up to ``sample_size`` recorded runs through both versions and decide."""
        baseline, candidate, runs = await off_loop(self._load, inp)
        samples = await replay_pairs(
            baseline, candidate, runs, on_progress=lambda done: activity.heartbeat(done)
        )
        log.info(
            "replay finished",
            graph_id=inp.graph_id,
            replayed=samples.replayed,
            refused=samples.refused,
        )
        if samples.replayed < 10:
            return ABTestResult(
                outcome="invalid",
                reasons=[f"only {samples.replayed} runs replayable ({samples.refused} refused)"],
                replayed=samples.replayed,
                refused=samples.refused,
            )
        objective, quality_recorded = await off_loop(self._objective, inp, baseline)
        decision = await off_loop(
            decide_replay_by_objective,
            samples,
            objective,
            alpha=inp.alpha,
            quality_recorded=quality_recorded,
        )
        return _result(decision, samples.replayed, samples.refused)

    def _objective(self, inp: ABTestInput, baseline: ReplayArm) -> tuple[Objective, bool]:
        """The owner's objective, and whether the baseline's production runs record quality."""
        objective = objective_of(baseline.spec.metadata, inp.objective)
        moments = self._deps.telemetry.arm_moments(inp.graph_id, inp.baseline_version_id)
        return objective, moments.quality.count >= MIN_JUDGED

    def _load(self, inp: ABTestInput) -> tuple[ReplayArm, ReplayArm, list[RecordedRun]]:
        graph = self._deps.registry.get_graph(inp.graph_id)
        self._deps.nodes.load_modules(list(graph.node_modules))
        arms = []
        for version_id in (inp.baseline_version_id, inp.candidate_version_id):
            spec = self._deps.registry.get_version(version_id).spec
            arms.append(
                ReplayArm(spec=spec, version_id=version_id, runtime=GraphRuntime(self._deps.nodes))
            )
        runs = self._deps.telemetry.recorded_runs(
            inp.graph_id, inp.baseline_version_id, limit=inp.sample_size
        )
        return arms[0], arms[1], runs


def _result(decision: Decision, replayed: int, refused: int) -> ABTestResult:
    outcome = "inconclusive" if decision.outcome == "continue" else decision.outcome
    return ABTestResult(
        outcome=outcome,
        reasons=list(decision.reasons),
        metrics=[metric_summary(m) for m in decision.metrics],
        replayed=replayed,
        refused=refused,
    )
