"""Phase 6: store every attempt and extract patterns for the next hypotheses."""

from __future__ import annotations

from temporalio import activity

from activities._support import misuse_is_final, off_loop
from activities.deps import ActivityDeps
from spark.experience import Attempt
from spark.rsi.contracts import ExtractPatternsInput, PatternsResult, RecordAttemptInput


class LearningActivities:
    """Upserts attempts by (graph, cycle, hypothesis); recomputes patterns from all attempts."""

    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name="record_attempt")
    @misuse_is_final
    async def record_attempt(self, inp: RecordAttemptInput) -> None:
        """Store the attempt (a retry or a later outcome updates the same row)."""
        await off_loop(self._deps.experience.record_attempt, _attempt(inp))

    @activity.defn(name="extract_patterns")
    @misuse_is_final
    async def extract_patterns(self, inp: ExtractPatternsInput) -> PatternsResult:
        """Recompute success patterns per diagnosis kind and change kind."""
        patterns = await off_loop(self._deps.experience.extract_patterns)
        return PatternsResult(pattern_count=len(patterns))


def _attempt(inp: RecordAttemptInput) -> Attempt:
    hypothesis = inp.hypothesis
    return Attempt(
        attempt_id=f"{inp.graph_id}:c{inp.cycle}:{hypothesis.hypothesis_id}",
        graph_id=inp.graph_id,
        cycle=inp.cycle,
        base_version_id=inp.base_version_id,
        candidate_version_id=inp.candidate_version_id,
        hypothesis_id=hypothesis.hypothesis_id,
        title=hypothesis.title,
        diagnosis_kind=_diagnosis_kind(hypothesis.primary_metric),
        change_kinds=hypothesis.change_kinds,
        target_nodes=hypothesis.target_nodes,
        primary_metric=hypothesis.primary_metric,
        risk=hypothesis.risk,
        outcome=inp.outcome,
        effect=inp.effect,
        details=inp.details,
    )


def _diagnosis_kind(primary_metric: str) -> str:
    return {"error_rate": "errors", "latency": "latency", "cost": "cost", "quality": "quality"}[
        primary_metric
    ]
