"""Phase 2: propose hypotheses (rule-based by default) and validate them for safety."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

from pydantic import ValidationError
from temporalio import activity

from activities._support import heartbeating, misuse_is_final, off_loop
from activities.deps import ActivityDeps
from activities.window_planning import decidability_for, planning_data
from spark.errors import InvalidInputError
from spark.experience import ProposalDecision
from spark.experience.policy import (
    MAX_UNDECIDED_ATTEMPTS,
    REJECTED_ON_EVIDENCE,
    ProposalVerdict,
    change_signature,
    diagnosis_fingerprint,
    judge_proposal,
)
from spark.graphs.spec import GraphSpec
from spark.rsi.analysis import DiagnosticReport
from spark.rsi.contracts import (
    HypothesisModel,
    HypothesizeInput,
    HypothesizeResult,
    RankedHypothesis,
    ValidatedHypothesis,
    ValidateInput,
    ValidateResult,
)
from spark.rsi.generator import HypothesisGenerator
from spark.rsi.hypotheses import Hypothesis
from spark.rsi.llm_generator import LLMGenerator, generator_for_model
from spark.rsi.objectives import Objective, objective_of
from spark.rsi.online_plan import evidence_factor
from spark.rsi.patterns import LearnedPattern, generator_hints
from spark.rsi.ranking import in_ranked_order, rank_hypotheses
from spark.rsi.validation import validate_hypothesis
from spark.settings import SparkSettings

CANDIDATE_POOL_FACTOR = 2
"""Generation asks for this many times ``max_hypotheses``: the generator orders its proposals by
its own primary-metric impact and some may be skipped as already decided, so its first few must
not decide which ones the owner's objective gets to rank."""
MAX_CANDIDATE_POOL = 20
MAX_LOOP_GENERATORS = 8
"""Generators built for loops' own ``hypothesis_model`` kept per worker (oldest closed first)."""


class HypothesisActivities:
    """Generation reads learned patterns and past attempts; validation is pure."""

    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps
        self._loop_generators: dict[tuple[str, str], LLMGenerator] = {}

    @activity.defn(name="generate_hypotheses")
    @misuse_is_final
    @heartbeating
    async def generate_hypotheses(self, inp: HypothesizeInput) -> HypothesizeResult:
        """Hypotheses for the diagnosis ranked by the owner's objective, best first: none already
        decided on this version, undecided ones retried up to a limit, none rejected on evidence
        for the same diagnosis on an earlier version; every decision is recorded with its reason."""
        return await off_loop(self._generate, inp)

    def _generate(self, inp: HypothesizeInput) -> HypothesizeResult:
        spec = self._deps.registry.get_version(inp.version_id).spec
        report = DiagnosticReport.model_validate(inp.report)
        learned = self._learned(inp.graph_id) if inp.use_patterns else []
        hints = generator_hints(learned, inp.graph_id)
        objective = _objective(spec, inp.objective)
        generator = self._generator(inp.hypothesis_model)
        owner = {"objective": objective} if _takes_objective(generator) else {}
        proposed = generator.generate(
            report,
            spec,
            patterns=hints,
            base_version_id=inp.version_id,
            max_hypotheses=_pool_size(inp),
            **owner,
        )
        generated = len(proposed)
        proposed = [h for h in proposed if _allowed(h, inp.change_kinds)]
        verdicts = self._judge(inp, proposed, report)
        kept = [h for h in proposed if verdicts[h.hypothesis_id].decision != "skip"]
        node_types = {node.id: node.type for node in spec.nodes}
        ranking = rank_hypotheses(
            kept, objective=objective, report=report, learned=learned, node_types=node_types
        )
        decidable = self._decidability(inp, objective, kept, ranking, verdicts)
        if decidable:
            ranking = rank_hypotheses(
                kept,
                objective=objective,
                report=report,
                learned=learned,
                node_types=node_types,
                decidability=decidable,
            )
        ranking = [
            _noting_retry(r, verdicts[r.hypothesis_id]) for r in ranking[: inp.max_hypotheses]
        ]
        return HypothesizeResult(
            hypotheses=in_ranked_order(kept, ranking),
            ranking=ranking,
            prior_attempts={
                r.hypothesis_id: verdicts[r.hypothesis_id].prior_attempts for r in ranking
            },
            generated=generated,
            excluded_by_kind=generated - len(proposed),
            already_decided=len(proposed) - len(kept),
        )

    def _decidability(
        self,
        inp: HypothesizeInput,
        objective: Objective,
        kept: Sequence[Hypothesis],
        ranking: Sequence[RankedHypothesis],
        verdicts: dict[str, ProposalVerdict],
    ) -> dict[str, float]:
        """Each hypothesis' chance that the longest window allowed ships it if it does what it
        predicts, relative to the design's power (``spark.rsi.decidability``: same baseline,
        traffic, learned prediction share and retry evidence as its window would be planned
        with); empty when the loop runs no online window or its settings were not passed. A
        hypothesis whose window cannot be planned is left out: opening it will say why."""
        settings = inp.settings
        if settings is None or settings.ab_mode == "replay" or not kept:
            return {}
        data = planning_data(self._deps.telemetry, inp.graph_id, inp.version_id, settings)
        shares = {r.hypothesis_id: r.prediction_share for r in ranking}
        found: dict[str, float] = {}
        for hypothesis in kept:
            key = hypothesis.hypothesis_id
            expected: dict[str, float] = {k: v for k, v in hypothesis.expected_effects.items()}
            try:
                found[key] = decidability_for(
                    data,
                    settings,
                    objective,
                    expected_effects=expected,
                    evidence_factor=evidence_factor(verdicts[key].prior_attempts),
                    prediction_share=shares.get(key),
                )
            except InvalidInputError:
                continue
        return found

    def _judge(
        self, inp: HypothesizeInput, proposed: list[Hypothesis], report: DiagnosticReport
    ) -> dict[str, ProposalVerdict]:
        """Each proposal's verdict from the graph's history, recorded in the experience store."""
        experience = self._deps.experience
        history = experience.attempts_on(inp.graph_id, inp.version_id)
        history += [
            a
            for a in experience.attempts_with_outcome(inp.graph_id, REJECTED_ON_EVIDENCE)
            if a.base_version_id != inp.version_id
        ]
        verdicts, decisions = {}, []
        for hypothesis in proposed:
            fingerprint = diagnosis_fingerprint(hypothesis, report)
            verdict = judge_proposal(hypothesis, fingerprint, history)
            verdicts[hypothesis.hypothesis_id] = verdict
            decisions.append(_decision(hypothesis, fingerprint, verdict))
        experience.record_proposals(decisions)
        return verdicts

    def _generator(self, wanted: HypothesisModel | None) -> HypothesisGenerator:
        """The worker's generator, or the one for the model the loop's settings name (built
        with the worker's key for its provider; ``ConfigurationError`` naming the variable
        when the worker has none, so the cycle fails instead of using another model)."""
        if wanted is None:
            return self._deps.generator
        key = (wanted.provider, wanted.model)
        generator = self._loop_generators.get(key)
        if generator is None:
            settings = self._deps.settings or SparkSettings.from_env()
            generator = generator_for_model(settings, wanted.provider, wanted.model)
            self._keep(key, generator)
        return generator

    def _keep(self, key: tuple[str, str], generator: LLMGenerator) -> None:
        if len(self._loop_generators) >= MAX_LOOP_GENERATORS:
            oldest = next(iter(self._loop_generators))
            self._loop_generators.pop(oldest).close()
        self._loop_generators[key] = generator

    def _learned(self, graph_id: str) -> list[LearnedPattern]:
        """The graph's learned patterns and those across graphs (success and anti-patterns)."""
        return self._deps.experience.learned_patterns(graph_id)

    @activity.defn(name="validate_hypotheses")
    @misuse_is_final
    @heartbeating
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


def _takes_objective(generator: HypothesisGenerator) -> bool:
    """Whether the generator's ``generate`` takes the owner's ``objective`` (a generator written
    before it existed does not, and gets called without it)."""
    try:
        parameters = inspect.signature(generator.generate).parameters
    except (TypeError, ValueError):
        return False
    return "objective" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def _pool_size(inp: HypothesizeInput) -> int:
    """How many proposals to ask the generator for: with a change-kind filter, the whole pool,
    so that proposals of other kinds ranked first do not crowd the allowed ones out."""
    if inp.change_kinds is not None:
        return MAX_CANDIDATE_POOL
    return min(MAX_CANDIDATE_POOL, CANDIDATE_POOL_FACTOR * inp.max_hypotheses)


def _allowed(hypothesis: Hypothesis, change_kinds: Sequence[str] | None) -> bool:
    """Whether every operation of ``hypothesis`` is of an allowed kind (None: any kind)."""
    return change_kinds is None or set(hypothesis.change_kinds) <= set(change_kinds)


def _objective(spec: GraphSpec, override: Objective | None) -> Objective:
    """The owner's objective; a malformed declaration in the spec is misuse."""
    try:
        return objective_of(spec.metadata, override)
    except ValidationError as exc:
        raise InvalidInputError(f"graph {spec.id!r} declares an invalid objective: {exc}") from exc


def _noting_retry(ranked: RankedHypothesis, verdict: ProposalVerdict) -> RankedHypothesis:
    """The ranking entry, its reason noting a retry after undecided tests."""
    if verdict.prior_attempts == 0:
        return ranked
    note = f"; attempt {verdict.prior_attempts + 1} of {MAX_UNDECIDED_ATTEMPTS} on this version"
    return ranked.model_copy(update={"why": ranked.why + note})


def _decision(
    hypothesis: Hypothesis, fingerprint: str, verdict: ProposalVerdict
) -> ProposalDecision:
    return ProposalDecision(
        graph_id=hypothesis.graph_id,
        base_version_id=hypothesis.base_version_id,
        hypothesis_id=hypothesis.hypothesis_id,
        title=hypothesis.title,
        change_signature=change_signature(hypothesis.changes),
        diagnosis_fingerprint=fingerprint,
        decision=verdict.decision,
        reason=verdict.reason,
        prior_attempts=verdict.prior_attempts,
    )
