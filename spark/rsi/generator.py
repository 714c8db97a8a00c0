"""Hypothesis generators: turn a diagnostic report into typed, ranked change proposals.

``RuleBasedGenerator`` (the default; needs no model key) maps each diagnosis to the change that
answers it:

======================  ==================================================================
diagnosis kind          proposal
======================  ==================================================================
transient_errors        retry-safe node: ``set_config`` retries (up to 3, as many as the owner's
                        objective prices best: failures absorbed against time added) with backoff;
                        otherwise ``add_fallback`` to a type from
                        ``params["fallback_candidates"]`` (never a retry)
persistent_errors       ``add_fallback`` to a type from ``params["fallback_candidates"]``
repeated_inputs         slow or costly node declared ``deterministic``, without side effects,
                        whose inputs repeat (distinct_input_ratio <= 0.7): ``add_cache`` with a
                        TTL sized to the mean gap between repeats in the window
heavy_tail              retry-safe node with p99/p50 >= 4 on the critical path:
                        ``set_config`` timeout_s plus one retry, at the cut of the measured
                        latency distribution the owner's objective prices best within a
                        failure budget (``spark.rsi.tail``)
sequential_chain        every maximal independent group on the critical path, each its own
                        proposal (the entry's successors included): ``parallelize``, its gain
                        the structure report's (makespan with the group fanned out)
costly_model            cost bottleneck with ``params["cheaper_models"]``: ``set_config``
                        model (primary cost; quality is the guardrail)
poor_quality            prompted node with bad-output failures or low quality: ``set_prompt``
                        with an "Output requirements" section built from the failures
costly_model,           a declared alternative (``spark.rsi.replacement``: another type of
slow_node,              the same capability or another model, compatible by declared inputs
poor_quality            and outputs) that improves cost, latency or quality and that no other
                        alternative of the node dominates: ``replace_node`` (``set_config``
                        model for a model-only alternative); the diagnosis follows its primary
                        metric
unused_output           a node nothing downstream reads, taken off the path (``spark.rsi.
                        edges``): ``add_edge`` predecessors to successors, ``remove_edge``
never_taken_edge        a conditional edge into a node that never ran in the window, when the
                        node keeps another edge in: ``remove_edge``
======================  ==================================================================

Structural proposals (replacements, edge changes) carry their expected effect per metric, so the
owner's objective can weigh them (``spark.rsi.ranking``); edge changes that save no latency
(redundant edges: implied by other paths, they change nothing measurable) are reported by
``spark.rsi.edges`` but not proposed, since an A/B test could not show them better. A proposal
whose risk would be ``critical`` is not made (the default policy refuses it).

Every proposal carries an expected impact: the relative improvement of its primary metric that
the report's figures support. Ranking multiplies it by a weight learned from ``PatternHint`` s
(a shrunk success rate of that change kind on that diagnosis kind). No proposal may break a
protected node's guarantee (``spark.rsi.validation``): its neighbours may be reorganized, a chain
in front of it parallelized, but it is never changed, skipped, starved or impersonated. Caches are
proposed only for nodes declared ``deterministic``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

from pydantic import BaseModel, ConfigDict, Field

from spark.errors import InvalidInputError
from spark.graphs.policies import expected_delay
from spark.graphs.spec import GraphSpec, NodeSpec
from spark.rsi.analysis import Bottleneck, BottleneckKind, DiagnosticReport, is_retry_safe
from spark.rsi.edges import EdgeFinding, find_edge_optimizations
from spark.rsi.hypotheses import (
    AddCache,
    AddFallback,
    ChangeKind,
    ChangeOp,
    Hypothesis,
    Metric,
    Parallelize,
    ReplaceNode,
    SetConfig,
    SetPrompt,
)
from spark.rsi.judgement import GUARDRAILS
from spark.rsi.objectives import Objective, expected_objective_change, objective_of
from spark.rsi.replacement import ReplacementCandidate, replacement_candidates, worth_proposing
from spark.rsi.tail import Cut, CutTerms, TailProfile, best_cut
from spark.rsi.validation import assess_risk, protection_refusals

DiagnosisKind = Literal[
    "transient_errors",
    "persistent_errors",
    "repeated_inputs",
    "heavy_tail",
    "sequential_chain",
    "costly_model",
    "poor_quality",
    "slow_node",
    "unused_output",
    "never_taken_edge",
]
DIAGNOSIS_CATEGORY: dict[DiagnosisKind, BottleneckKind] = {
    "transient_errors": "errors",
    "persistent_errors": "errors",
    "repeated_inputs": "latency",
    "heavy_tail": "latency",
    "sequential_chain": "latency",
    "costly_model": "cost",
    "poor_quality": "quality",
    "slow_node": "latency",
    "unused_output": "latency",
    "never_taken_edge": "latency",
}
_METRIC_CATEGORY: dict[Metric, BottleneckKind] = {
    "error_rate": "errors",
    "latency": "latency",
    "cost": "cost",
    "quality": "quality",
}

TRANSIENT_SHARE_MIN = 0.5
MAX_PROPOSED_RETRIES = 3
REPEATED_INPUT_MAX_RATIO = 0.7
CACHE_HIT_EFFICIENCY = 0.9
MIN_PARALLEL_GAIN = 0.10
FALLBACK_CURE_PRIOR = 0.5
PROMPT_FIX_PRIOR = 0.5
DEFAULT_CHEAPER_COST_FACTOR = 0.5
MAX_PROMPT_CHARS = 10_000
PROMPT_SECTION = "\n\n### Output requirements (added by Spark RSI)\n"


class PatternHint(BaseModel):
    """What the learning store knows about one change kind answering one diagnosis kind.

    ``diagnosis_kind`` is a ``DiagnosisKind`` or a coarse bottleneck kind (``errors``,
    ``latency``, ``cost``, ``quality``) that then covers every diagnosis of that kind.
    ``mean_effect`` is the mean measured relative change of the primary metric (e.g. -0.25).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    diagnosis_kind: str = Field(min_length=1)
    change_kind: ChangeKind
    success_rate: float = Field(ge=0.0, le=1.0)
    attempts: int = Field(ge=0)
    mean_effect: float | None = None


class HypothesisGenerator(Protocol):
    """Anything that proposes hypotheses for a diagnosed graph (rules, an LLM...)."""

    def generate(
        self,
        report: DiagnosticReport,
        spec: GraphSpec,
        *,
        patterns: Sequence[PatternHint] = (),
        base_version_id: str,
        max_hypotheses: int = 5,
        objective: Objective | None = None,
    ) -> list[Hypothesis]:
        """At most ``max_hypotheses`` hypotheses on ``base_version_id``, best first, for the
        owner's ``objective`` (the spec's declared one when None)."""
        ...


def diagnosis_kind_of(hypothesis: Hypothesis) -> str:
    """The diagnosis kind a hypothesis answers: the ``DiagnosisKind`` prefix of its diagnosis,
    or the coarse kind of its primary metric for hypotheses from other generators."""
    prefix = hypothesis.diagnosis.split(":", 1)[0].strip()
    if prefix in get_args(DiagnosisKind):
        return prefix
    return _METRIC_CATEGORY[hypothesis.primary_metric]


@dataclass(frozen=True)
class _Proposal:
    """One rule's answer to one diagnosis, before ranking."""

    kind: DiagnosisKind
    title: str
    detail: str
    changes: tuple[ChangeOp, ...]
    rationale: str
    primary_metric: Metric
    impact: float
    expected_effects: dict[Metric, float] = field(default_factory=dict)

    def hypothesis(self, spec: GraphSpec, base_version_id: str) -> Hypothesis:
        """The proposal as a hypothesis on ``base_version_id``."""
        return Hypothesis(
            graph_id=spec.id,
            base_version_id=base_version_id,
            title=self.title,
            diagnosis=f"{self.kind}: {self.detail}",
            changes=list(self.changes),
            rationale=self.rationale,
            primary_metric=self.primary_metric,
            expected_effects=self.expected_effects,
            risk=assess_risk(spec, self.changes),
            source="rules",
        )


class RuleBasedGenerator:
    """The default generator: deterministic rules over the report, ranked with learned hints."""

    def generate(
        self,
        report: DiagnosticReport,
        spec: GraphSpec,
        *,
        patterns: Sequence[PatternHint] = (),
        base_version_id: str,
        max_hypotheses: int = 5,
        objective: Objective | None = None,
    ) -> list[Hypothesis]:
        """At most ``max_hypotheses`` hypotheses, best expected impact first; none when the
        report lacks data. Never breaks a protected node's guarantee; drops proposals with no
        expected gain."""
        if report.graph_id != spec.id:
            raise InvalidInputError(f"report is for graph {report.graph_id!r}, not {spec.id!r}")
        if not report.sufficient_data or max_hypotheses <= 0:
            return []
        proposals = [
            p
            for p in _Rules(report, spec, objective).proposals()
            if p.impact > 0 and not _protected(spec, p)
        ]
        ranked = _rank(proposals, patterns)
        hypotheses = _unique(p.hypothesis(spec, base_version_id) for p in ranked)
        return hypotheses[:max_hypotheses]


def _protected(spec: GraphSpec, proposal: _Proposal) -> bool:
    """Whether the proposal would break a protected node's guarantee (``validation``): change
    it, skip it, starve it or run its implementation elsewhere. Reorganizing its neighbours
    within the guarantee (a chain in front of it parallelized) is fine."""
    return bool(protection_refusals(spec, proposal.changes))


def _unique(hypotheses: Iterator[Hypothesis]) -> list[Hypothesis]:
    by_id: dict[str, Hypothesis] = {}
    for hypothesis in hypotheses:
        by_id.setdefault(hypothesis.hypothesis_id, hypothesis)
    return list(by_id.values())


# ----- ranking -----


def _rank(proposals: Sequence[_Proposal], patterns: Sequence[PatternHint]) -> list[_Proposal]:
    weights = {
        id(p): pattern_weight(p.kind, p.changes[0].op, p.primary_metric, patterns)
        for p in proposals
    }
    return sorted(proposals, key=lambda p: (-p.impact * weights[id(p)], p.kind, p.title))


def pattern_weight(
    kind: str, change_kind: str, primary_metric: Metric, patterns: Sequence[PatternHint]
) -> float:
    """A multiplier in [0, 2]: twice the success rate shrunk toward 1/2 (one prior success and
    one prior failure), halved when the measured effect was on average a change for the worse.
    1.0 without matching hints. ``kind`` is a ``DiagnosisKind`` or a coarse bottleneck kind."""
    return pattern_evidence(kind, [change_kind], primary_metric, patterns)[0]


def pattern_evidence(
    kind: str,
    change_kinds: Sequence[str],
    primary_metric: Metric,
    patterns: Sequence[PatternHint],
) -> tuple[float, int]:
    """The pattern weight (see ``pattern_weight``) pooled over the hints matching any of
    ``change_kinds`` for ``kind``, and how many recorded attempts stand behind it."""
    hints = [
        h
        for h in patterns
        if h.change_kind in change_kinds and h.diagnosis_kind in (kind, diagnosis_category(kind))
    ]
    attempts = sum(h.attempts for h in hints)
    successes = sum(h.success_rate * h.attempts for h in hints)
    weight = 2 * (successes + 1) / (attempts + 2)
    return (weight / 2 if _harmful(hints, primary_metric) else weight), attempts


def diagnosis_category(kind: str) -> str:
    """The coarse bottleneck kind of a diagnosis kind (a coarse kind maps to itself)."""
    return str(DIAGNOSIS_CATEGORY.get(kind, kind))  # type: ignore[call-overload]


def _harmful(hints: Sequence[PatternHint], primary_metric: Metric) -> bool:
    measured = [(h.mean_effect, h.attempts) for h in hints if h.mean_effect is not None]
    total = sum(attempts for _, attempts in measured)
    if not measured or total == 0:
        return False
    mean_effect = sum(effect * attempts for effect, attempts in measured) / total
    return mean_effect < 0 if primary_metric == "quality" else mean_effect > 0


# ----- rules -----


class _Rules:
    """The rule set applied to one report and spec."""

    def __init__(
        self, report: DiagnosticReport, spec: GraphSpec, objective: Objective | None = None
    ) -> None:
        self.report, self.spec = report, spec
        self.objective = objective if objective is not None else objective_of(spec.metadata)

    def proposals(self) -> list[_Proposal]:
        """Every proposal any rule makes."""
        rules = (
            self.retries,
            self.fallbacks,
            self.caches,
            self.timeouts,
            self.parallelizations,
            self.cheaper_models,
            self.prompts,
            self.replacements,
            self.edge_simplifications,
        )
        return [proposal for rule in rules for proposal in rule()]

    def _bottlenecks(self, kind: BottleneckKind) -> Iterator[tuple[Bottleneck, NodeSpec]]:
        for bottleneck in self.report.bottlenecks_of(kind):
            if self.spec.has_node(bottleneck.node_id):
                yield bottleneck, self.spec.node(bottleneck.node_id)

    def _latency_share(self, node_id: str) -> float:
        return self.report.structure.latency_share(node_id)

    def _retry_latency_cost(
        self, node_id: str, per_attempt: float, current: int, retries: int, backoff_s: float
    ) -> float:
        """Relative latency added by raising the node's retries from ``current`` to ``retries``:
        retry ``k`` runs when the first ``k`` attempts failed (``per_attempt ** k``), repeats the
        node and first waits its backoff, on average half of it under the runtime's full jitter
        (0 when the node is off the critical path or the report has no latency)."""
        structure = self.report.structure
        if self._latency_share(node_id) <= 0:
            return 0.0
        node_ms = structure.node_latency_ms.get(node_id, 0.0)
        extra_ms = sum(
            per_attempt**k * (node_ms + 1000.0 * expected_delay(backoff_s, k - 1))
            for k in range(current + 1, retries + 1)
        )
        return extra_ms / structure.critical_path_ms

    def _cured_runs_effects(
        self, node_id: str, failure_rate: float, cured_runs: float
    ) -> tuple[float, float]:
        """(relative latency, relative cost) the runs a cure lets finish add: a run that failed
        at ``node_id`` stopped there, a cured one pays the node's passing call and everything
        after it. Each node's latency and cost count per run that gets past ``node_id`` (the
        report's figures are per run, failed runs included), so branches after it count as often
        as they were taken; latency only along the critical path, cost on every later node."""
        structure = self.report.structure
        passed = structure.node_run_share.get(node_id, 1.0) * (1.0 - failure_rate)
        if cured_runs <= 0 or passed <= 0:
            return 0.0, 0.0
        per_passing_run = cured_runs / passed
        path = structure.critical_path
        latency = 0.0
        if node_id in path and structure.critical_path_ms > 0:
            rest_ms = sum(
                structure.node_latency_ms.get(n, 0.0) for n in path[path.index(node_id) + 1 :]
            )
            latency = per_passing_run * rest_ms / structure.critical_path_ms
        paying = _reachable_from(self.spec, node_id)
        cost = per_passing_run * sum(structure.node_cost_share.get(n, 0.0) for n in paying)
        return latency, cost

    def _cost_share(self, node_id: str) -> float:
        shares = [b.share for b in self.report.bottlenecks_of("cost") if b.node_id == node_id]
        return max(shares, default=0.0)

    # errors

    def retries(self) -> Iterator[_Proposal]:
        """Retries with backoff for mostly transient failures of a retry-safe node."""
        for bottleneck, node in self._bottlenecks("errors"):
            if _retryable(bottleneck, node):
                yield self._retry(bottleneck, node)

    def _retry(self, bottleneck: Bottleneck, node: NodeSpec) -> _Proposal:
        evidence, current = bottleneck.evidence, node.config.retries
        backoff = _clamp(evidence.get("p50_ms", 100.0) / 1000, 0.005, 2.0)
        transient = evidence.get("transient_share", 0.0)
        per_attempt = bottleneck.metric_value ** (1 / (current + 1))
        priced = [
            self._priced_retries(bottleneck, node, r, backoff, transient, per_attempt)
            for r in range(current + 1, MAX_PROPOSED_RETRIES + 1)
        ]
        _, retries, cure, error_effect, latency_cost, cost = min(priced)
        return _Proposal(
            kind="transient_errors",
            title=f"Retry transient failures of {node.id!r}",
            detail=f"node {node.id!r} fails {bottleneck.metric_value:.1%} of executions, "
            f"{transient:.0%} transient ({_types(evidence)})",
            changes=(
                SetConfig(
                    node_id=node.id, values={"retries": retries, "backoff_s": round(backoff, 3)}
                ),
            ),
            rationale=f"The failures are mostly transient and {node.id!r} is safe to re-run; "
            f"{retries} retries with {backoff:.2f}s backoff should absorb about {cure:.0%} of them.",
            primary_metric="error_rate",
            impact=error_effect,
            expected_effects={
                "error_rate": _less(error_effect),
                "latency": round(latency_cost, 4),
                **({"cost": round(cost, 4)} if cost > 0 else {}),
            },
        )

    def _priced_retries(
        self,
        bottleneck: Bottleneck,
        node: NodeSpec,
        retries: int,
        backoff_s: float,
        transient: float,
        per_attempt: float,
    ) -> tuple[float, int, float, float, float, float]:
        """(objective change, retries, cure, error effect, latency cost, cost) of ``retries``:
        the failures the extra attempts absorb against the time they take and what the cured
        runs then cost, priced with the owner's objective (fewer retries first on a tie)."""
        current = node.config.retries
        cure = _retry_cure(bottleneck.metric_value, current, retries)
        error_effect = bottleneck.share * transient * cure
        cured_latency, cured_cost = self._cured_runs_effects(
            node.id, bottleneck.metric_value, self.report.run_error_rate * error_effect
        )
        latency_cost = cured_latency + self._retry_latency_cost(
            node.id, per_attempt * transient, current, retries, backoff_s
        )
        effects = {"error_rate": -error_effect, "latency": latency_cost, "cost": cured_cost}
        change = expected_objective_change(
            self.objective, effects, self.report.run_error_rate, self.report.latency_scale
        )
        return change, retries, cure, error_effect, latency_cost, cured_cost

    def fallbacks(self) -> Iterator[_Proposal]:
        """A fallback type (from ``params["fallback_candidates"]``) where retrying cannot help."""
        for bottleneck, node in self._bottlenecks("errors"):
            fallback = _fallback_candidate(node)
            if fallback is not None and not _retryable(bottleneck, node):
                yield self._fallback(bottleneck, node, fallback)

    def _fallback(self, bottleneck: Bottleneck, node: NodeSpec, fallback: str) -> _Proposal:
        transient = bottleneck.evidence.get("transient_share", 0.0) >= TRANSIENT_SHARE_MIN
        why = "is not safe to retry" if transient else "fails persistently"
        effect = bottleneck.share * FALLBACK_CURE_PRIOR
        latency, cost = self._cured_runs_effects(
            node.id, bottleneck.metric_value, self.report.run_error_rate * effect
        )
        return _Proposal(
            kind="transient_errors" if transient else "persistent_errors",
            title=f"Fall back to {fallback!r} when {node.id!r} fails",
            detail=f"node {node.id!r} fails {bottleneck.metric_value:.1%} of executions and {why} "
            f"({_types(bottleneck.evidence)})",
            changes=(AddFallback(node_id=node.id, fallback_type=fallback),),
            rationale=f"{node.id!r} {why}; its spec names {fallback!r} as a fallback candidate.",
            primary_metric="error_rate",
            impact=effect,
            expected_effects={
                "error_rate": _less(effect),
                # the runs it saves go on through the rest of the graph; the fallback's own
                # price is taken as the failing node's, its own time is not counted (neither
                # is measured before it runs)
                **({"latency": round(latency, 4)} if latency > 0 else {}),
                **({"cost": round(cost, 4)} if cost > 0 else {}),
            },
        )

    # latency and cost

    def caches(self) -> Iterator[_Proposal]:
        """A cache for slow or costly deterministic nodes without side effects whose inputs
        repeat."""
        seen: set[str] = set()
        for kind in ("latency", "cost"):
            for bottleneck, node in self._bottlenecks(kind):
                if node.id not in seen and _cacheable(bottleneck, node):
                    seen.add(node.id)
                    yield self._cache(bottleneck, node)

    def _cache(self, bottleneck: Bottleneck, node: NodeSpec) -> _Proposal:
        ratio = float(bottleneck.evidence["distinct_input_ratio"])
        hits = (1 - ratio) * CACHE_HIT_EFFICIENCY
        latency, cost = self._latency_share(node.id) * hits, self._cost_share(node.id) * hits
        ttl = _cache_ttl(self.report.window_seconds, ratio)
        return _Proposal(
            kind="repeated_inputs",
            title=f"Cache {node.id!r} for {ttl:g}s",
            detail=f"node {node.id!r} sees only {ratio:.0%} distinct inputs and accounts for "
            f"{bottleneck.share:.0%} of the run's {bottleneck.kind}",
            changes=(AddCache(node_id=node.id, ttl_s=ttl),),
            rationale=f"{1 - ratio:.0%} of the calls to {node.id!r} repeat an earlier input; it is "
            f"declared deterministic and has no side effects, so a {ttl:g}s cache answers them "
            "without the call.",
            primary_metric="latency" if latency >= cost else "cost",
            impact=max(latency, cost),
            expected_effects={"latency": _less(latency), "cost": _less(cost)},
        )

    def timeouts(self) -> Iterator[_Proposal]:
        """A timeout with a retry for retry-safe nodes with a heavy latency tail, at the cut the
        owner's objective prices best (``spark.rsi.tail``), when one is worth its failures."""
        for bottleneck, node in self._bottlenecks("latency"):
            evidence = bottleneck.evidence
            if not evidence.get("heavy_tail") or not is_retry_safe(node):
                continue
            cut = self._best_cut(bottleneck, node)
            if cut is None:
                continue
            timeout_s = round(_clamp(cut.timeout_ms / 1000, 0.001, 3600.0), 3)
            if node.config.timeout_s is None or node.config.timeout_s > timeout_s:
                yield self._timeout(bottleneck, node, timeout_s, cut)

    def _best_cut(self, bottleneck: Bottleneck, node: NodeSpec) -> Cut | None:
        evidence = bottleneck.evidence
        points = evidence.get("latency_quantiles") or [
            (0.5, evidence["p50_ms"]),
            (0.95, evidence["p95_ms"]),
            (0.99, evidence["p99_ms"]),
        ]
        profile = TailProfile.of(evidence["mean_ms"], points)
        if profile is None:
            return None
        trace_count = max(self.report.trace_count, 1)
        terms = CutTerms(
            retries=max(node.config.retries, 1),
            backoff_s=node.config.backoff_s,
            critical_path_ms=self.report.structure.critical_path_ms,
            reach=min(1.0, evidence.get("count", trace_count) / trace_count),
            latency_weight=self.objective.weight("latency") * self.report.latency_scale,
            error_weight=self.objective.weight("error_rate"),
        )
        return best_cut(profile, terms, self._failure_budget())

    def _failure_budget(self) -> float:
        """The failures a latency change may add: half the room the owner's error-rate
        constraint leaves above today's rate, else half the error-rate guardrail's margin (so
        the test can show the candidate within it)."""
        constraints = self.objective.constraints_on("error_rate")
        if constraints:
            room = min(c.limit for c in constraints) - self.report.run_error_rate
            return max(0.0, room / 2)
        return GUARDRAILS["error_rate"].margin / 2

    def _timeout(
        self, bottleneck: Bottleneck, node: NodeSpec, timeout_s: float, cut: Cut
    ) -> _Proposal:
        evidence = bottleneck.evidence
        retries = max(node.config.retries, 1)
        baseline_errors = self.report.run_error_rate
        return _Proposal(
            kind="heavy_tail",
            title=f"Time out slow calls of {node.id!r} at {timeout_s:g}s and retry",
            detail=f"node {node.id!r} has p99 {evidence['p99_ms']:.0f} ms vs p50 "
            f"{evidence['p50_ms']:.0f} ms and explains {evidence['tail_share']:.0%} of the run's tail",
            changes=(
                SetConfig(node_id=node.id, values={"timeout_s": timeout_s, "retries": retries}),
            ),
            rationale=f"{cut.exceed_probability:.1%} of calls run past {timeout_s:g}s; cutting "
            f"and retrying them (the node is safe to re-run) saves about "
            f"{cut.node_saving_ms:.1f} ms a call on the measured distribution, and fails "
            f"{cut.added_failure_rate:.2%} of runs whose every attempt is that slow.",
            primary_metric="latency",
            impact=-cut.run_latency_change,
            expected_effects={
                "latency": _less(-cut.run_latency_change),
                "error_rate": round(cut.added_failure_rate / baseline_errors, 4)
                if baseline_errors > 0
                else 0.0,
            },
        )

    def parallelizations(self) -> Iterator[_Proposal]:
        """Fan-out/fan-in for every maximal independent group on the critical path worth the
        change, each its own proposal (a group headed by the entry saves only on the rest: the
        entry stays first)."""
        structure = self.report.structure
        if structure.critical_path_ms <= 0:
            return
        for chain in structure.parallelizable_chains:
            if set(chain) <= set(structure.critical_path):
                gain, wait_ms = self._parallel_gain(chain)
                if gain >= MIN_PARALLEL_GAIN:
                    yield _parallelize(chain, gain, wait_ms)

    def _parallel_gain(self, chain: list[str]) -> tuple[float, float]:
        """Share of the critical path saved, and the fan-in's expected wait for the slowest
        member it is net of: the structure report's group when it has one; otherwise the
        members that run side by side cost their slowest mean instead of their sum."""
        structure = self.report.structure
        for group in structure.parallel_groups:
            if group.nodes == chain:
                return group.gain, group.fan_in_wait_ms
        parallel = chain[1:] if self.spec.is_entry(chain[0]) else chain
        weights = [structure.node_latency_ms.get(n, 0.0) for n in parallel]
        return (sum(weights) - max(weights)) / structure.critical_path_ms, 0.0

    def cheaper_models(self) -> Iterator[_Proposal]:
        """A cheaper model (from ``params["cheaper_models"]``) for cost bottlenecks."""
        for bottleneck, node in self._bottlenecks("cost"):
            choice = _cheaper_model(node)
            if choice is not None:
                yield _model_swap(bottleneck, node, *choice)

    # structure

    def replacements(self) -> Iterator[_Proposal]:
        """The declared alternatives worth proposing (compatible, improving, undominated),
        unless the change would be critical-risk (a side-effecting entry, say)."""
        for candidate in worth_proposing(
            replacement_candidates(self.report, self.spec, strict=False)
        ):
            proposal = _replacement(self.spec.node(candidate.node_id), candidate)
            if assess_risk(self.spec, proposal.changes) != "critical":
                yield proposal

    def edge_simplifications(self) -> Iterator[_Proposal]:
        """Edge changes from ``spark.rsi.edges`` that save latency."""
        for finding in find_edge_optimizations(self.spec, self.report.structure):
            if finding.changes and finding.kind in _EDGE_DIAGNOSIS:
                yield _edge_proposal(finding)

    # quality

    def prompts(self) -> Iterator[_Proposal]:
        """A prompt with explicit output requirements for prompted nodes with quality issues."""
        for bottleneck, node in self._bottlenecks("quality"):
            prompt = improved_prompt(node, bottleneck.evidence)
            if (
                node.config.prompt
                and prompt != node.config.prompt
                and len(prompt) <= MAX_PROMPT_CHARS
            ):
                yield self._prompt(bottleneck, node, prompt)

    def _prompt(self, bottleneck: Bottleneck, node: NodeSpec, prompt: str) -> _Proposal:
        failures = bottleneck.evidence.get("quality_failures", 0)
        metric: Metric = "error_rate" if failures else "quality"
        gap = _quality_gap(bottleneck.evidence)
        effect = bottleneck.share * PROMPT_FIX_PRIOR if failures else gap * PROMPT_FIX_PRIOR
        sign = -1 if metric == "error_rate" else 1
        return _Proposal(
            kind="poor_quality",
            title=f"Tighten the output requirements in the prompt of {node.id!r}",
            detail=f"node {node.id!r}: {failures} bad-output failures"
            + _quality_note(self.report.mean_quality),
            changes=(SetPrompt(node_id=node.id, prompt=prompt),),
            rationale="The failures show outputs that miss the required format or quality; the "
            "prompt now states the requirements and the observed failure types.",
            primary_metric=metric,
            impact=effect,
            expected_effects={metric: sign * round(effect, 4)},
        )


# ----- rule helpers -----


def _retryable(bottleneck: Bottleneck, node: NodeSpec) -> bool:
    transient = bottleneck.evidence.get("transient_share", 0.0) >= TRANSIENT_SHARE_MIN
    return transient and is_retry_safe(node) and node.config.retries < MAX_PROPOSED_RETRIES


def _retry_cure(observed_rate: float, current: int, proposed: int) -> float:
    """Share of transient failures extra attempts absorb, assuming independent attempts."""
    per_attempt = observed_rate ** (1 / (current + 1))
    return 1 - per_attempt ** (proposed - current)


def _cacheable(bottleneck: Bottleneck, node: NodeSpec) -> bool:
    """Uncached, declared ``deterministic`` (a cached answer is the answer a call would give),
    free of side effects, and its inputs repeat."""
    ratio = bottleneck.evidence.get("distinct_input_ratio", 1.0)
    pure = node.has_tag("deterministic") and not node.has_tag("side_effects")
    return node.config.cache_ttl_s is None and pure and ratio <= REPEATED_INPUT_MAX_RATIO


def _cache_ttl(window_s: float | None, distinct_ratio: float) -> float:
    """Twice the mean gap between repeats of one input (window x distinct ratio), 1 min to 1 day;
    one hour when the window is unknown."""
    if not window_s:
        return 3600.0
    return float(round(_clamp(2 * window_s * distinct_ratio, 60.0, 86_400.0)))


def _fallback_candidate(node: NodeSpec) -> str | None:
    if node.config.fallback is not None:
        return None
    candidates = node.config.params.get("fallback_candidates") or []
    if isinstance(candidates, str):
        candidates = [candidates]
    usable = [c for c in candidates if isinstance(c, str) and c and c != node.type]
    return usable[0] if usable else None


def _cheaper_model(node: NodeSpec) -> tuple[str, float] | None:
    """A model cheaper than the current one, with its cost relative to the current one.

    ``params["cheaper_models"]`` is either a list ordered from the most to the least expensive
    (a model listed after the current one is cheaper; each step assumed to halve the cost), or a
    mapping of model to cost factor relative to the original model. Never proposes a model that
    is not cheaper than the current one, so repeated cycles walk down the list and stop.
    """
    listed: Any = node.config.params.get("cheaper_models") or []
    current = node.config.model
    if isinstance(listed, dict):
        factors = {
            m: float(f)
            for m, f in listed.items()
            if isinstance(m, str) and isinstance(f, int | float)
        }
        ceiling = factors.get(current, 1.0) if current is not None else 1.0
        for model, factor in factors.items():
            if model != current and 0 <= factor < ceiling:
                return model, _clamp(factor / ceiling, 0.0, 1.0)
        return None
    names = [m for m in listed if isinstance(m, str)]
    if current in names:
        names = names[names.index(current) + 1 :]
    return (names[0], DEFAULT_CHEAPER_COST_FACTOR) if names else None


def _model_swap(bottleneck: Bottleneck, node: NodeSpec, model: str, factor: float) -> _Proposal:
    effect = bottleneck.share * (1 - factor)
    return _Proposal(
        kind="costly_model",
        title=f"Switch {node.id!r} to the cheaper model {model!r}",
        detail=f"node {node.id!r} accounts for {bottleneck.share:.0%} of the cost "
        f"(model {node.config.model!r})",
        changes=(SetConfig(node_id=node.id, values={"model": model}),),
        rationale=f"{model!r} is listed as a cheaper model for {node.id!r}; the A/B test must show "
        "lower cost with quality as the guardrail (no degradation).",
        primary_metric="cost",
        impact=effect,
        expected_effects={"cost": _less(effect), "quality": 0.0},
    )


_REPLACEMENT_DIAGNOSIS: dict[Metric, DiagnosisKind] = {
    "cost": "costly_model",
    "latency": "slow_node",
    "quality": "poor_quality",
    "error_rate": "persistent_errors",
}
_EDGE_DIAGNOSIS: dict[str, DiagnosisKind] = {
    "unused_output": "unused_output",
    "never_taken": "never_taken_edge",
}


def _replacement(node: NodeSpec, candidate: ReplacementCandidate) -> _Proposal:
    """``replace_node`` (with the alternative's model when it names one) or, for a model-only
    alternative, ``set_config`` model; primary metric: the largest expected improvement."""
    alternative, effects = candidate.alternative, candidate.expected_effects
    metric = max(effects, key=lambda m: _improvement(m, effects[m]))
    change: ChangeOp
    if alternative.type is not None:
        config = None  # kept as is, unless the alternative names the model it should use
        if alternative.model is not None:
            config = node.config.model_copy(update={"model": alternative.model})
        change = ReplaceNode(node_id=node.id, new_type=alternative.type, config=config)
    else:
        change = SetConfig(node_id=node.id, values={"model": alternative.model})
    return _Proposal(
        kind=_REPLACEMENT_DIAGNOSIS[metric],
        title=f"Replace {node.id!r} with {alternative.label}",
        detail=f"node {node.id!r} ({node.type!r}) takes {candidate.latency_share:.0%} of the "
        f"critical path and {candidate.cost_share:.0%} of the cost",
        changes=(change,),
        rationale=f"{alternative.label} is declared ({alternative.source}) as an alternative for "
        f"{node.id!r}: price x{alternative.price_factor:g}, latency "
        f"x{alternative.latency_factor:g}"
        + (f", quality {alternative.quality:g}" if alternative.quality is not None else "")
        + "; it reads only fields available upstream and writes every field read downstream.",
        primary_metric=metric,
        impact=_improvement(metric, effects[metric]),
        expected_effects=dict(effects),
    )


def _improvement(metric: Metric, effect: float) -> float:
    return effect if metric == "quality" else -effect


def _edge_proposal(finding: EdgeFinding) -> _Proposal:
    titles = {
        "unused_output": f"Take {finding.node_ids[0]!r} off the path (nothing reads its output)",
        "never_taken": "Remove the never-taken edge "
        f"{finding.edges[0][0]!r}->{finding.edges[0][1]!r}",
    }
    return _Proposal(
        kind=_EDGE_DIAGNOSIS[finding.kind],
        title=titles[finding.kind],
        detail=finding.reason,
        changes=tuple(finding.changes),
        rationale=f"{finding.reason}; the run's makespan shrinks by about "
        f"{finding.saved_ms:.0f} ms ({finding.gain:.0%} of the critical path).",
        primary_metric="latency",
        impact=finding.gain,
        expected_effects={"latency": _less(finding.gain)},
    )


def _parallelize(chain: list[str], gain: float, wait_ms: float) -> _Proposal:
    return _Proposal(
        kind="sequential_chain",
        title=f"Run {', '.join(repr(n) for n in chain)} in parallel",
        detail=f"nodes {chain!r} run one after another on the critical path with no data "
        "dependency between them",
        changes=(Parallelize(node_ids=list(chain)),),
        rationale=f"Running the chain concurrently saves about {gain:.0%} of the critical path"
        + (
            f", net of about {wait_ms:.3g} ms the fan-in waits for the slowest member beyond the "
            "slowest mean (from their measured latency spread)."
            if wait_ms > 0
            else "."
        ),
        primary_metric="latency",
        impact=gain,
        expected_effects={"latency": _less(gain)},
    )


def improved_prompt(node: NodeSpec, evidence: dict[str, Any]) -> str:
    """``node``'s prompt with an "Output requirements" section built from failure evidence;
    a section added earlier is replaced, so repeated cycles do not grow the prompt."""
    base = (node.config.prompt or "").split(PROMPT_SECTION)[0]
    return base + PROMPT_SECTION + "\n".join(_requirements(node, evidence))


def _requirements(node: NodeSpec, evidence: dict[str, Any]) -> list[str]:
    error_types: dict[str, int] = evidence.get("error_types") or {}
    lines = []
    if node.outputs:
        lines.append(f"- Produce exactly these fields: {', '.join(node.outputs)}; nothing else.")
    if any(_is_format_error(t) for t in error_types):
        lines.append(
            "- Return output that parses in the required format: no commentary, no "
            "markdown fences, no trailing text."
        )
    if _quality_gap(evidence) > 0:
        lines.append(
            "- Base the answer only on the given inputs; say what is missing instead of guessing."
        )
    lines.append("- Check the answer against these requirements before replying.")
    if error_types:
        observed = ", ".join(
            f"{t} ({n})" for t, n in sorted(error_types.items(), key=lambda i: (-i[1], i[0]))
        )
        lines.append(f"- Recent failures to avoid: {observed}.")
    return lines


def _quality_note(mean_quality: float | None) -> str:
    return "" if mean_quality is None else f", mean run quality {mean_quality:.2f}"


def _quality_gap(evidence: dict[str, Any]) -> float:
    """How far the mean run quality falls below the floor (0 when unknown or above)."""
    quality, floor = evidence.get("mean_quality"), evidence.get("quality_floor")
    return 0.0 if quality is None or floor is None else max(0.0, floor - quality)


def _is_format_error(error_type: str) -> bool:
    name = error_type.lower()
    return any(m in name for m in ("parse", "json", "schema", "format", "decode", "validation"))


def _types(evidence: dict[str, Any]) -> str:
    error_types: dict[str, int] = evidence.get("error_types") or {}
    top = sorted(error_types.items(), key=lambda item: (-item[1], item[0]))[:3]
    return ", ".join(f"{name} x{count}" for name, count in top) or "untyped errors"


def _reachable_from(spec: GraphSpec, node_id: str) -> set[str]:
    """``node_id`` and every node downstream of it."""
    seen, todo = {node_id}, [node_id]
    while todo:
        for successor in spec.successors(todo.pop()):
            if successor not in seen:
                seen.add(successor)
                todo.append(successor)
    return seen


def _less(fraction: float) -> float:
    """An expected relative decrease, rounded (never ``-0.0``)."""
    return -round(fraction, 4) + 0.0


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))
