"""Phase 6: store every attempt and extract patterns for the next hypotheses."""

from __future__ import annotations

from temporalio import activity

from activities._support import heartbeating, misuse_is_final, off_loop
from activities.attempt_records import build_record
from activities.deps import ActivityDeps
from spark.experience import Attempt, ProposalDecision
from spark.experience.policy import change_shape, change_signature, diagnosis_fingerprint
from spark.experience.store import FINGERPRINT_KEY, SHAPE_KEY, SIGNATURE_KEY
from spark.rsi.contracts import ExtractPatternsInput, PatternsResult, RecordAttemptInput
from spark.rsi.generator import diagnosis_kind_of
from spark.rsi.hypotheses import Hypothesis


class LearningActivities:
    """Upserts attempts by (graph, cycle, hypothesis); recomputes patterns from all attempts."""

    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name="record_attempt")
    @misuse_is_final
    @heartbeating
    async def record_attempt(self, inp: RecordAttemptInput) -> None:
        """Store the attempt (a retry or a later outcome updates the same row), with the change
        signature and the diagnosis fingerprint it was tried under, and its full record: the
        workflow's evidence, the candidate's diff, the deployment steps, the nodes' traits."""
        await off_loop(self._record, inp)

    def _record(self, inp: RecordAttemptInput) -> None:
        experience = self._deps.experience
        proposal = experience.proposal(
            inp.graph_id, inp.base_version_id, _hypothesis(inp).hypothesis_id
        )
        attempt = _attempt(inp, proposal)
        experience.record_attempt(attempt, build_record(self._deps, inp, attempt))

    @activity.defn(name="extract_patterns")
    @misuse_is_final
    @heartbeating
    async def extract_patterns(self, inp: ExtractPatternsInput) -> PatternsResult:
        """Recompute the pooled patterns per diagnosis kind and change kind, and the learned
        success patterns and anti-patterns per graph and across graphs; the count is of the
        learned ones."""
        await off_loop(self._deps.experience.extract_patterns)
        learned = await off_loop(self._deps.experience.extract_learned_patterns)
        return PatternsResult(pattern_count=len(learned))


def _hypothesis(inp: RecordAttemptInput) -> Hypothesis:
    return inp.hypothesis.model_copy(update={"base_version_id": inp.base_version_id})


def _attempt(inp: RecordAttemptInput, proposal: ProposalDecision | None) -> Attempt:
    """The attempt record; its diagnosis fingerprint is the one generation saw (severity
    ``unknown`` when the hypothesis did not come through generation)."""
    hypothesis = _hypothesis(inp)
    fingerprint = (
        proposal.diagnosis_fingerprint if proposal else diagnosis_fingerprint(hypothesis, None)
    )
    return Attempt.from_hypothesis(
        hypothesis,
        cycle=inp.cycle,
        diagnosis_kind=diagnosis_kind_of(inp.hypothesis),
        outcome=inp.outcome,  # type: ignore[arg-type]
        candidate_version_id=inp.candidate_version_id,
        effect=inp.effect,
        details={
            **inp.details,
            SIGNATURE_KEY: change_signature(hypothesis.changes),
            SHAPE_KEY: change_shape(hypothesis.changes),
            FINGERPRINT_KEY: fingerprint,
        },
    )
