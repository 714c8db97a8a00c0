"""Phase 3: apply a hypothesis to its base version, making an immutable candidate version."""

from __future__ import annotations

from temporalio import activity

from activities._support import heartbeating, misuse_is_final, off_loop
from activities.deps import ActivityDeps
from spark.rsi.changes import apply_changes, diff_specs
from spark.rsi.contracts import CandidateResult, CreateCandidateInput


class CandidateActivities:
    """Writes one version; content-addressed, so a retry returns the same version."""

    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name="create_candidate")
    @misuse_is_final
    @heartbeating
    async def create_candidate(self, inp: CreateCandidateInput) -> CandidateResult:
        """Apply every change strictly (any inapplicable change fails the activity)."""
        return await off_loop(self._create, inp)

    def _create(self, inp: CreateCandidateInput) -> CandidateResult:
        base = self._deps.registry.get_version(inp.base_version_id)
        candidate_spec = apply_changes(base.spec, inp.hypothesis.changes)
        version = self._deps.registry.create_version(
            inp.base_version_id,
            candidate_spec,
            hypothesis_id=inp.hypothesis.hypothesis_id,
            author=inp.author,
            note=inp.hypothesis.title,
        )
        return CandidateResult(
            candidate_version_id=version.version_id, changes=diff_specs(base.spec, candidate_spec)
        )
