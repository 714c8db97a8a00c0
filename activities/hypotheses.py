"""Phase 2: propose hypotheses (rule-based by default) and validate them for safety."""

from __future__ import annotations

from temporalio import activity

from activities._support import misuse_is_final, off_loop
from activities.deps import ActivityDeps
from spark.rsi.analysis import DiagnosticReport
from spark.rsi.contracts import (
    HypothesizeInput,
    HypothesizeResult,
    ValidatedHypothesis,
    ValidateInput,
    ValidateResult,
)
from spark.rsi.generator import PatternHint
from spark.rsi.validation import validate_hypothesis


class HypothesisActivities:
    """Generation reads learned patterns; validation is pure."""

    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name="generate_hypotheses")
    @misuse_is_final
    async def generate_hypotheses(self, inp: HypothesizeInput) -> HypothesizeResult:
        """Hypotheses for the diagnosis, best first, skipping any already tried on this version."""
        return await off_loop(self._generate, inp)

    def _generate(self, inp: HypothesizeInput) -> HypothesizeResult:
        spec = self._deps.registry.get_version(inp.version_id).spec
        report = DiagnosticReport.model_validate(inp.report)
        proposed = self._deps.generator.generate(
            report,
            spec,
            patterns=self._pattern_hints(),
            base_version_id=inp.version_id,
            max_hypotheses=inp.max_hypotheses,
        )
        untried = [
            h
            for h in proposed
            if not self._deps.experience.tried(inp.graph_id, inp.version_id, h.hypothesis_id)
        ]
        return HypothesizeResult(hypotheses=untried)

    def _pattern_hints(self) -> list[PatternHint]:
        return [
            PatternHint(
                diagnosis_kind=p.diagnosis_kind,
                change_kind=p.change_kind,
                success_rate=p.success_rate,
                attempts=p.attempts,
                mean_effect=p.mean_effect,
            )
            for p in self._deps.experience.patterns()
        ]

    @activity.defn(name="validate_hypotheses")
    @misuse_is_final
    async def validate_hypotheses(self, inp: ValidateInput) -> ValidateResult:
        """Static safety checks and a risk level for each hypothesis."""
        return await off_loop(self._validate, inp)

    def _validate(self, inp: ValidateInput) -> ValidateResult:
        spec = self._deps.registry.get_version(inp.version_id).spec
        items = []
        for hypothesis in inp.hypotheses:
            verdict = validate_hypothesis(spec, hypothesis)
            items.append(
                ValidatedHypothesis(
                    hypothesis=hypothesis.model_copy(update={"risk": verdict.risk}),
                    approved=verdict.approved,
                    risk=verdict.risk,
                    requires_review=verdict.requires_review,
                    violations=verdict.violations,
                    warnings=verdict.warnings,
                )
            )
        return ValidateResult(items=items)
