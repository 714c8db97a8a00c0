"""Phase 6: store every attempt and extract patterns for the next hypotheses."""

from __future__ import annotations

from temporalio import activity

from activities._support import misuse_is_final, off_loop
from activities.deps import ActivityDeps
from spark.experience import Attempt
from spark.rsi.contracts import ExtractPatternsInput, PatternsResult, RecordAttemptInput
from spark.rsi.generator import diagnosis_kind_of


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
    return Attempt.from_hypothesis(
        inp.hypothesis.model_copy(update={"base_version_id": inp.base_version_id}),
        cycle=inp.cycle,
        diagnosis_kind=diagnosis_kind_of(inp.hypothesis),
        outcome=inp.outcome,  # type: ignore[arg-type]
        candidate_version_id=inp.candidate_version_id,
        effect=inp.effect,
        details=inp.details,
    )
