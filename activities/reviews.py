"""Reviews: open one with its dossier (what the reviewer decides on), and store its verdict.

Both are idempotent by ``review_id``: a retried ``open_review`` returns the stored review's
dossier, a retried ``close_review`` finds the verdict already stored.
"""

from __future__ import annotations

from temporalio import activity

from activities._support import heartbeating, misuse_is_final, off_loop
from activities.deps import ActivityDeps
from spark.experience import Attempt
from spark.registry import ReviewStore
from spark.rsi.contracts import CloseReviewInput, OpenReviewInput, ReviewDossier
from spark.rsi.review import build_dossier


class ReviewActivities:
    """The review store, the registry (base specs) and the experience store (evidence)."""

    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps
        self._reviews = ReviewStore(deps.database_url)

    @activity.defn(name="open_review")
    @misuse_is_final
    @heartbeating
    async def open_review(self, inp: OpenReviewInput) -> ReviewDossier:
        """Build the dossier of the hypothesis awaiting review and store the pending review."""
        return await off_loop(self._open, inp)

    def _open(self, inp: OpenReviewInput) -> ReviewDossier:
        hypothesis = inp.item.hypothesis
        spec = self._deps.registry.get_version(hypothesis.base_version_id).spec
        dossier = build_dossier(
            spec,
            inp.item,
            review_id=inp.review_id,
            cycle=inp.cycle,
            evidence=self._evidence(inp),
            allowed_reviewers=inp.allowed_reviewers,
        )
        stored = self._reviews.request(
            inp.review_id,
            inp.graph_id,
            inp.cycle,
            hypothesis.hypothesis_id,
            inp.item.risk,
            title=hypothesis.title,
            dossier=dossier.model_dump(mode="json"),
        )
        return ReviewDossier.model_validate(stored.dossier)

    def _evidence(self, inp: OpenReviewInput) -> list[str]:
        """What earlier tests of the same change on the same base version found."""
        hypothesis = inp.item.hypothesis
        earlier = self._deps.experience.attempts_on(inp.graph_id, hypothesis.base_version_id)
        return [
            _evidence_line(a)
            for a in earlier
            if a.hypothesis_id == hypothesis.hypothesis_id and a.cycle != inp.cycle
        ]

    @activity.defn(name="close_review")
    @misuse_is_final
    @heartbeating
    async def close_review(self, inp: CloseReviewInput) -> None:
        """Store the verdict: approved, rejected (with reviewer and comment) or expired."""
        await off_loop(self._close, inp)

    def _close(self, inp: CloseReviewInput) -> None:
        if inp.state == "expired":
            self._reviews.expire(inp.review_id, inp.comment or "review window elapsed")
            return
        reviewer = inp.reviewer or "reviewer"
        self._reviews.decide(inp.review_id, inp.state == "approved", reviewer, inp.comment)


def _evidence_line(attempt: Attempt) -> str:
    """``cycle 3: inconclusive, measured latency -12%`` for one earlier attempt."""
    line = f"cycle {attempt.cycle}: {attempt.outcome}"
    if attempt.effect is not None:
        line += f", measured {attempt.primary_metric} {attempt.effect:+.1%}"
    reasons = attempt.details.get("reasons")
    if isinstance(reasons, list) and reasons:
        line += f" ({reasons[0]})"
    return line
