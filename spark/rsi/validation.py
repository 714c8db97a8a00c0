"""Static safety checks of a hypothesis against its base spec, and its risk level.

Nothing here runs the graph. A hypothesis is approved when it has no violation:

- every node it names exists and the hypothesis targets the spec's graph;
- a protected node keeps its guarantee (below): no operation targets its config, prompt, cache,
  fallback or type, and the applied spec is checked against the base as a whole, so the verdict
  holds for any combination of operations;
- the changes apply (``apply_changes``: strict, result re-validated as a DAG with data flow);
- retries only on retry-safe nodes (a ``side_effects`` node must be tagged ``idempotent``); a
  cache (added, or its TTL raised) only on a node tagged ``deterministic`` (output a pure function
  of its inputs) and never on a ``side_effects`` node;
- parallelized nodes share no data dependency and are not two ``side_effects`` nodes;
- ``replace_node`` changes the type and keeps the declared inputs and outputs;
- budgets: timeout, retries, prompt length, nodes added / removed;
- the risk is not ``critical`` unless the policy allows it.

**The protected-node guarantee.** A protected node ``P`` keeps its spec (config, type, tags,
data contract) and its implementation (no other node gains ``P``'s type as its ``type`` or
``config.fallback``), runs on exactly the requests it ran on before, and reads the same fields
from the same producers. Runtime semantics make this a property of the structure: a node runs when
one incoming edge is active (its source ran and its condition held on the state right after the
source merged), so whether ``P`` runs is a monotone formula over *atoms*, one conjunction per
path from the entry (unconditional edges add nothing). An atom is a condition plus the
provenance of the field it tests at its evaluation (the writers among the edge's source and its
ancestors, and their order), so two edges testing the same field written by the same node are one
atom, whichever member of a parallelized group they leave from. A monotone formula's minimal DNF
is canonical, so equal minimal DNFs activate ``P`` alike whenever the atoms' writers behave alike
(sufficient, not necessary: two complementary conditions on two paths are not recognised as
"always"). Hence, recursively over the *provenance cone* of ``P`` (``P``; the ancestors that
write a field a cone node reads, its whole state when it declares no inputs; the writers named by
the atoms of a cone node's activation):

- every cone node's activation DNF is unchanged (when it has more than ``MAX_ACTIVATION_TERMS``
  terms, the edges of its ancestral subgraph and the writers of their condition fields must be
  identical instead);
- for every field a cone node reads, the set of ancestors that write it and their order are
  unchanged (no producer lost, none gained), and no new writer may run concurrently with it.

This allows what leaves ``P`` alone: a chain in front of it parallelized (all fan-out edges carry
the head's incoming condition, evaluated once on the same state; ``P`` waits for every member and
still sees every producer), edges added or removed elsewhere, conditions off its paths, config
and type changes of other nodes (their outputs' *values* are the owner's business, judged by the
A/B test; the guarantee is about where ``P`` runs and from what). It refuses an unsatisfiable
condition or a removed edge upstream, a producer moved off its paths or a new one on them, a
fan-in condition split across parallel members. Not covered: failures (a retry or a fallback
upstream may let ``P`` run on requests that used to fail, by design) and races the base already
has (a field also written by a node that is not an ancestor).

Risk comes from the change type (``set_prompt``/``set_config`` low, or medium when the config
changes behaviour: model, prompt, temperature, params, fallback; ``add_cache``, ``add_fallback``,
``add_edge``, ``remove_edge``, ``parallelize`` medium; ``reroute_edge``, ``replace_node`` high;
the riskiest change wins), raised one level per blast-radius factor: three or more affected nodes
(including the neighbours a change rewires), eight or more, modifying the entry node, modifying a
node with side effects.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import combinations

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field

from spark.errors import InvalidChangeError
from spark.graphs.spec import EdgeCondition, EdgeSpec, GraphSpec, NodeSpec
from spark.rsi.analysis import can_run_concurrently, is_retry_safe
from spark.rsi.changes import apply_changes, describe_change, nodes_affected
from spark.rsi.hypotheses import (
    RISK_ORDER,
    AddCache,
    AddFallback,
    ChangeOp,
    Hypothesis,
    Parallelize,
    ReplaceNode,
    RiskLevel,
    SetConfig,
    SetPrompt,
    touched_nodes,
)

_RISK_LEVELS: tuple[RiskLevel, ...] = ("low", "medium", "high", "critical")
_CHANGE_RISK: dict[str, RiskLevel] = {
    "set_prompt": "low",
    "set_config": "low",
    "add_cache": "medium",
    "add_fallback": "medium",
    "add_edge": "medium",
    "remove_edge": "medium",
    "parallelize": "medium",
    "reroute_edge": "high",
    "replace_node": "high",
}
_NODE_OPS = (SetPrompt, SetConfig, AddCache, AddFallback, ReplaceNode)
_BEHAVIOUR_KEYS = frozenset({"model", "prompt", "temperature", "params", "fallback"})


class ValidationPolicy(BaseModel):
    """Limits a hypothesis must respect and the risk at which a human reviews it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_nodes_added: int = Field(default=5, ge=0)
    max_nodes_removed: int = Field(default=2, ge=0)
    max_prompt_chars: int = Field(default=10_000, ge=1)
    max_timeout_s: float = Field(default=300.0, gt=0)
    max_retries: int = Field(default=5, ge=0)
    allow_critical: bool = False
    review_at: RiskLevel = "high"


DEFAULT_POLICY = ValidationPolicy()


class ValidationResult(BaseModel):
    """The verdict; ``candidate_spec`` is the applied spec when approved, else None."""

    model_config = ConfigDict(extra="forbid")

    approved: bool
    risk: RiskLevel
    requires_review: bool
    violations: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    candidate_spec: GraphSpec | None = None


def validate_hypothesis(
    spec: GraphSpec, hypothesis: Hypothesis, policy: ValidationPolicy = DEFAULT_POLICY
) -> ValidationResult:
    """Check ``hypothesis`` against ``spec`` and ``policy``; never raises for a bad hypothesis."""
    risk = assess_risk(spec, hypothesis.changes)
    violations = [*_scope_violations(spec, hypothesis), *_reference_violations(spec, hypothesis)]
    candidate = None
    if not violations:
        violations += _protected_change_violations(spec, hypothesis.changes)
        candidate, refusal = _try_apply(spec, hypothesis.changes)
        violations += refusal
    if candidate is not None:
        if not violations:  # judged on the result, whatever the operations were
            violations += protection_violations(spec, candidate)
        violations += _candidate_violations(spec, candidate, hypothesis.changes, policy)
    violations += _risk_violations(risk, policy)
    approved = not violations
    return ValidationResult(
        approved=approved,
        risk=risk,
        requires_review=RISK_ORDER[risk] >= RISK_ORDER[policy.review_at],
        violations=violations,
        warnings=list(_warnings(spec, hypothesis.changes)),
        candidate_spec=candidate if approved else None,
    )


# ----- risk -----


def assess_risk(spec: GraphSpec, changes: Sequence[ChangeOp]) -> RiskLevel:
    """Risk of a batch: the riskiest change type, raised one level per blast-radius factor."""
    if not changes:
        return "low"
    level = max(RISK_ORDER[_change_risk(change)] for change in changes)
    level += _blast_radius(spec, changes)
    return _RISK_LEVELS[min(level, len(_RISK_LEVELS) - 1)]


def _change_risk(change: ChangeOp) -> RiskLevel:
    if isinstance(change, SetConfig) and _BEHAVIOUR_KEYS & set(change.values):
        return "medium"
    return _CHANGE_RISK[change.op]


def _blast_radius(spec: GraphSpec, changes: Sequence[ChangeOp]) -> int:
    """How many blast-radius factors apply (see ``_blast_factors``)."""
    return len(_blast_factors(spec, changes))


def _blast_factors(spec: GraphSpec, changes: Sequence[ChangeOp]) -> list[str]:
    """Factors, each in words: >= 3 affected nodes (rewired neighbours count), >= 8, the entry
    node modified, a node with side effects modified."""
    affected = set().union(*(nodes_affected(spec, change) for change in changes))
    touched = set().union(*(_modified_nodes(spec, change) for change in changes))
    modified = [spec.node(node_id) for node_id in sorted(touched) if spec.has_node(node_id)]
    side_effects = [node.id for node in modified if node.has_tag("side_effects")]
    factors = {
        f"{len(affected)} nodes affected (3 or more)": len(affected) >= 3,
        f"{len(affected)} nodes affected (8 or more)": len(affected) >= 8,
        _entry_factor(sorted(touched & set(spec.entries))): bool(touched & set(spec.entries)),
        f"modifies nodes with side effects: {', '.join(side_effects)}": bool(side_effects),
    }
    return [factor for factor, applies in factors.items() if applies]


def _entry_factor(entries: list[str]) -> str:
    """``modifies the entry node 'a'``, or ``modifies the entry nodes 'a', 'b'``."""
    names = ", ".join(repr(entry) for entry in entries)
    return f"modifies the entry node{'s' if len(entries) > 1 else ''} {names}"


def risk_reasons(spec: GraphSpec, changes: Sequence[ChangeOp]) -> list[str]:
    """Why ``assess_risk`` gives its level: each change's own risk, then each blast-radius
    factor that raised it one level."""
    reasons = [f"{describe_change(c)}: {_change_risk(c)} risk by its kind" for c in changes]
    return reasons + [f"raised one level: {f}" for f in _blast_factors(spec, changes)]


def _modified_nodes(spec: GraphSpec, change: ChangeOp) -> set[str]:
    """The nodes a change modifies; a group headed by the entry only rewires the entry's edges
    (it stays first), as any fan-out source's, so the entry does not count as modified."""
    touched = touched_nodes(change)
    if isinstance(change, Parallelize) and spec.is_entry(change.node_ids[0]):
        touched.discard(change.node_ids[0])
    return touched


def _risk_violations(risk: RiskLevel, policy: ValidationPolicy) -> list[str]:
    if risk == "critical" and not policy.allow_critical:
        return ["risk 'critical' is not allowed by the validation policy"]
    return []


# ----- checks before applying -----


def _scope_violations(spec: GraphSpec, hypothesis: Hypothesis) -> list[str]:
    if hypothesis.graph_id != spec.id:
        return [f"hypothesis targets graph {hypothesis.graph_id!r}, not {spec.id!r}"]
    return []


def _reference_violations(spec: GraphSpec, hypothesis: Hypothesis) -> list[str]:
    return [
        f"change #{index} ({describe_change(change)}) names unknown node {node_id!r}"
        for index, change in enumerate(hypothesis.changes)
        for node_id in sorted(touched_nodes(change))
        if not spec.has_node(node_id)
    ]


def _protected_change_violations(spec: GraphSpec, changes: Sequence[ChangeOp]) -> list[str]:
    """Operations on a protected node itself (its config, prompt, cache, fallback or type)."""
    return [
        f"change #{index} ({describe_change(change)}) touches protected node {change.node_id!r}"
        for index, change in enumerate(changes)
        if isinstance(change, _NODE_OPS) and spec.node(change.node_id).has_tag("protected")
    ]


def _try_apply(spec: GraphSpec, changes: Sequence[ChangeOp]) -> tuple[GraphSpec | None, list[str]]:
    try:
        return apply_changes(spec, changes), []
    except InvalidChangeError as exc:
        return None, [str(exc)]


# ----- checks on the applied spec -----


def _candidate_violations(
    base: GraphSpec, candidate: GraphSpec, changes: Sequence[ChangeOp], policy: ValidationPolicy
) -> list[str]:
    violations = _size_violations(base, candidate, policy)
    for before, after in _changed_nodes(base, candidate):
        violations += _retry_and_cache_violations(before, after)
        violations += _budget_violations(before, after, policy)
        violations += _contract_violations(before, after)
    violations += _parallelize_violations(base, changes)
    violations += _replace_violations(base, changes)
    return violations


def _changed_nodes(base: GraphSpec, candidate: GraphSpec) -> Iterator[tuple[NodeSpec, NodeSpec]]:
    for after in candidate.nodes:
        if base.has_node(after.id) and base.node(after.id) != after:
            yield base.node(after.id), after


def _size_violations(base: GraphSpec, candidate: GraphSpec, policy: ValidationPolicy) -> list[str]:
    base_ids = {node.id for node in base.nodes}
    candidate_ids = {node.id for node in candidate.nodes}
    added, removed = candidate_ids - base_ids, base_ids - candidate_ids
    violations = []
    if len(added) > policy.max_nodes_added:
        violations.append(f"adds {len(added)} nodes, policy allows {policy.max_nodes_added}")
    if len(removed) > policy.max_nodes_removed:
        violations.append(f"removes {len(removed)} nodes, policy allows {policy.max_nodes_removed}")
    return violations


def _retry_and_cache_violations(before: NodeSpec, after: NodeSpec) -> list[str]:
    violations = []
    if after.config.retries > before.config.retries and not is_retry_safe(after):
        violations.append(
            f"node {after.id!r} has side effects and is not idempotent: retries must not rise "
            f"(proposed {after.config.retries})"
        )
    cache_changed = after.config.cache_ttl_s != before.config.cache_ttl_s
    if cache_changed and after.config.cache_ttl_s is not None and after.has_tag("side_effects"):
        violations.append(f"node {after.id!r} has side effects: it must not be cached")
    elif _cache_raised(before, after) and not after.has_tag("deterministic"):
        violations.append(
            f"node {after.id!r} is not tagged 'deterministic' (its output may depend on time, "
            "randomness or outside state, not only on its inputs): it must not be cached"
        )
    return violations


def _cache_raised(before: NodeSpec, after: NodeSpec) -> bool:
    """A cache added or kept for longer: answers reused more than before."""
    old, new = before.config.cache_ttl_s, after.config.cache_ttl_s
    return new is not None and (old is None or new > old)


def _budget_violations(before: NodeSpec, after: NodeSpec, policy: ValidationPolicy) -> list[str]:
    config, violations = after.config, []
    if config.retries != before.config.retries and config.retries > policy.max_retries:
        violations.append(
            f"node {after.id!r}: retries {config.retries} exceed the budget {policy.max_retries}"
        )
    timeout_changed = config.timeout_s != before.config.timeout_s
    if timeout_changed and config.timeout_s is not None and config.timeout_s > policy.max_timeout_s:
        violations.append(
            f"node {after.id!r}: timeout {config.timeout_s:g}s exceeds the budget "
            f"{policy.max_timeout_s:g}s"
        )
    prompt = config.prompt or ""
    if prompt != (before.config.prompt or "") and len(prompt) > policy.max_prompt_chars:
        violations.append(
            f"node {after.id!r}: prompt of {len(prompt)} chars exceeds {policy.max_prompt_chars}"
        )
    return violations


def _contract_violations(before: NodeSpec, after: NodeSpec) -> list[str]:
    if (before.inputs, before.outputs) != (after.inputs, after.outputs):
        return [f"node {after.id!r} would change its declared inputs or outputs"]
    return []


def _parallelize_violations(base: GraphSpec, changes: Sequence[ChangeOp]) -> list[str]:
    violations = []
    for change in changes:
        if not isinstance(change, Parallelize):
            continue
        for first, second in combinations(change.node_ids, 2):
            if not can_run_concurrently(base.node(first), base.node(second)):
                violations.append(
                    f"parallelize {change.node_ids!r}: nodes {first!r} and {second!r} share a "
                    "data dependency or both have side effects"
                )
    return violations


def _replace_violations(base: GraphSpec, changes: Sequence[ChangeOp]) -> list[str]:
    return [
        f"replace_node {change.node_id!r}: new type {change.new_type!r} is the current type"
        for change in changes
        if isinstance(change, ReplaceNode) and base.node(change.node_id).type == change.new_type
    ]


# ----- protection: the guarantee a protected node keeps -----

Atom = tuple[str, tuple[str, ...], tuple[tuple[str, str], ...], tuple[str, ...]]
"""One edge condition as evaluated at run time: the condition's canonical JSON, and where the
field it reads comes from at that moment (the runtime evaluates it once, on the state right after
the edge's source merged): the writers among the source and its ancestors, their order, and the
rival writers that may run concurrently. Two conditions with equal atoms see the same value (the
writers' own runs are checked too)."""
Activation = frozenset[frozenset[Atom]]
"""When a node runs: a minimal DNF over atoms (one term per entry path, the path's conditions);
``{{}}`` (one empty term) means on every request."""

MAX_ACTIVATION_TERMS = 512


def protection_refusals(spec: GraphSpec, changes: Sequence[ChangeOp]) -> list[str]:
    """Why ``changes`` would break the guarantee of a protected node of ``spec``: an operation on
    the node itself, or the applied spec (empty when the changes do not apply at all: then
    ``validate_hypothesis`` says why). Generators use it to drop proposals early."""
    known = [c for c in changes if all(spec.has_node(n) for n in touched_nodes(c))]
    refusals = _protected_change_violations(spec, known)
    if refusals:
        return refusals
    candidate, _ = _try_apply(spec, changes)
    return protection_violations(spec, candidate) if candidate is not None else []


def protection_violations(base: GraphSpec, candidate: GraphSpec) -> list[str]:
    """Why ``candidate`` would break the guarantee of a protected node of ``base`` (empty: none).

    Judged on the two specs alone, so it holds for any combination of change operations."""
    violations: list[str] = []
    lineage = (_Lineage(base), _Lineage(candidate))
    for node in base.nodes:
        if node.has_tag("protected"):
            violations += _protected_node_violations(base, candidate, node, lineage)
    return list(dict.fromkeys(violations))


def _protected_node_violations(
    base: GraphSpec,
    candidate: GraphSpec,
    node: NodeSpec,
    lineage: tuple[_Lineage, _Lineage],
) -> list[str]:
    if not candidate.has_node(node.id):
        return [f"protected node {node.id!r} would be removed"]
    if candidate.node(node.id) != node:
        return [f"protected node {node.id!r} would change"]
    return [
        *_implementation_violations(base, candidate, node),
        *_ProvenanceCheck(node.id, *lineage).violations(),
    ]


def _implementation_violations(
    base: GraphSpec, candidate: GraphSpec, protected: NodeSpec
) -> Iterator[str]:
    """Another node newly running the protected node's type, as its type or its fallback."""
    for other in candidate.nodes:
        if other.id == protected.id:
            continue
        before = base.node(other.id) if base.has_node(other.id) else None
        for what, now, then in (
            ("type", other.type, before.type if before else None),
            ("fallback", other.config.fallback, before.config.fallback if before else None),
        ):
            if now == protected.type and then != protected.type:
                yield (
                    f"node {other.id!r} would run the implementation of protected node "
                    f"{protected.id!r} (as its {what} {protected.type!r})"
                )


class _Lineage:
    """Ancestors, activation and field writers of the nodes of one spec."""

    def __init__(self, spec: GraphSpec) -> None:
        self.spec = spec
        graph = spec.to_networkx()
        self.ancestors = {n: frozenset(nx.ancestors(graph, n)) for n in graph.nodes}
        self.descendants = {n: frozenset(nx.descendants(graph, n)) for n in graph.nodes}
        self.all_fields = frozenset(f for n in spec.nodes for f in n.outputs) | set(spec.inputs)
        self.activations = self._activations(graph)

    def reads(self, node_id: str) -> frozenset[str]:
        """The fields a node sees: its declared inputs, or the whole state when it declares none."""
        inputs = self.spec.node(node_id).inputs
        return frozenset(inputs) if inputs else self.all_fields

    def writers(self, node_id: str, field: str, *, inclusive: bool) -> frozenset[str]:
        """The ancestors of ``node_id`` (and itself when ``inclusive``) that write ``field``."""
        scope = self.ancestors[node_id] | ({node_id} if inclusive else set())
        return frozenset(n for n in scope if field in self.spec.node(n).outputs)

    def rivals(self, node_id: str, field: str) -> frozenset[str]:
        """Nodes that write ``field`` and may run concurrently with ``node_id`` (neither its
        ancestors nor its descendants): a race, allowed only where the base already has it."""
        related = self.ancestors[node_id] | self.descendants[node_id] | {node_id}
        return frozenset(n.id for n in self.spec.nodes if field in n.outputs) - related

    def order(self, nodes: frozenset[str]) -> frozenset[tuple[str, str]]:
        """Pairs ``(a, b)`` of ``nodes`` where ``a`` runs before ``b`` (an ancestor)."""
        return frozenset((a, b) for a in nodes for b in nodes if a in self.ancestors[b])

    def subgraph_edges(self, node_id: str) -> frozenset[str]:
        """The edges (with conditions) of the paths from the entry to ``node_id``."""
        scope = self.ancestors[node_id] | {node_id}
        return frozenset(e.model_dump_json() for e in self.spec.edges if e.target in scope)

    def atom(self, edge: EdgeSpec, condition: EdgeCondition) -> Atom:
        """The condition of ``edge`` with the provenance of the field it reads."""
        writers = self.writers(edge.source, condition.field, inclusive=True)
        return (
            condition.model_dump_json(),
            tuple(sorted(writers)),
            tuple(sorted(self.order(writers))),
            tuple(sorted(self.rivals(edge.source, condition.field))),
        )

    def _activations(self, graph: nx.DiGraph) -> dict[str, Activation | None]:
        """Each node's activation in topological order; None when it grows beyond
        ``MAX_ACTIVATION_TERMS`` terms (then only an identical ancestral subgraph is trusted)."""
        found: dict[str, Activation | None] = {}
        for node_id in nx.topological_sort(graph):
            if self.spec.is_entry(node_id):
                found[node_id] = frozenset({frozenset()})
                continue
            incoming = [e for e in self.spec.edges if e.target == node_id]
            found[node_id] = _minimal([self._through(found[e.source], e) for e in incoming])
        return found

    def _through(self, source: Activation | None, edge: EdgeSpec) -> Activation | None:
        if source is None or edge.condition is None:
            return source
        atom = self.atom(edge, edge.condition)
        return frozenset(term | {atom} for term in source)


def _minimal(parts: list[Activation | None]) -> Activation | None:
    """The union of the incoming terms, absorbed (a term implied by a smaller one goes): a
    monotone DNF is then canonical. None when a part is, or past ``MAX_ACTIVATION_TERMS``."""
    if any(part is None for part in parts):
        return None
    terms = frozenset(term for part in parts if part is not None for term in part)
    if len(terms) > MAX_ACTIVATION_TERMS:
        return None
    return frozenset(t for t in terms if not any(other < t for other in terms))


class _ProvenanceCheck:
    """Walks everything that decides whether and with what a protected node runs: its
    activation, the writers of the fields it reads, and, recursively, the same for each of
    those writers and for the writers of every field a condition on its paths reads."""

    def __init__(self, protected: str, base: _Lineage, candidate: _Lineage) -> None:
        self.protected, self.base, self.candidate = protected, base, candidate
        self.pending, self.seen = [protected], {protected}
        self.found: list[str] = []

    def violations(self) -> list[str]:
        """Every broken link of the guarantee, naming the protected node."""
        while self.pending:
            node_id = self.pending.pop()
            if not self.candidate.spec.has_node(node_id):
                self._violate(f"node {node_id!r}, which it depends on, would be removed")
                continue
            self._check_activation(node_id)
            for field in sorted(self.base.reads(node_id)):
                self._check_writers(node_id, field, inclusive=False)
            self._follow_conditions(node_id)
        return self.found

    def _check_activation(self, node_id: str) -> None:
        before = self.base.activations[node_id]
        after = self.candidate.activations[node_id]
        if before is None or after is None:
            same = self.base.subgraph_edges(node_id) == self.candidate.subgraph_edges(node_id)
        else:
            same = before == after
        if not same:
            whom = "it" if node_id == self.protected else f"node {node_id!r}, which it depends on,"
            self._violate(
                f"{whom} would run on different requests (the conditions on the paths to it "
                "from the entry would change)"
            )

    def _follow_conditions(self, node_id: str) -> None:
        """Walk on to the writers of every field a condition on the node's paths reads (their
        set and order are part of the atoms, so activation equality already compared them)."""
        activation = self.base.activations[node_id]
        if activation is None:
            scope = self.base.ancestors[node_id] | {node_id}
            for edge in self.base.spec.edges:
                if edge.condition is not None and edge.target in scope:
                    self._check_writers(edge.source, edge.condition.field, inclusive=True)
            return
        for term in activation:
            for atom in term:
                self._enqueue(frozenset(atom[1]))

    def _check_writers(self, node_id: str, field: str, *, inclusive: bool) -> None:
        before = self.base.writers(node_id, field, inclusive=inclusive)
        if not self.candidate.spec.has_node(node_id):
            return
        after = self.candidate.writers(node_id, field, inclusive=inclusive)
        if before != after or self.base.order(before) != self.candidate.order(after):
            self._violate(
                f"field {field!r} seen by {node_id!r} would come from {sorted(after)} "
                f"instead of {sorted(before)}"
            )
        rivals = self.candidate.rivals(node_id, field) - self.base.rivals(node_id, field)
        if rivals:
            self._violate(
                f"field {field!r} seen by {node_id!r} could be overwritten concurrently by "
                f"{sorted(rivals)}"
            )
        self._enqueue(before)

    def _enqueue(self, nodes: frozenset[str]) -> None:
        for node_id in sorted(nodes - self.seen):
            self.seen.add(node_id)
            self.pending.append(node_id)

    def _violate(self, reason: str) -> None:
        self.found.append(f"protected node {self.protected!r}: {reason}")


# ----- warnings -----


def _warnings(spec: GraphSpec, changes: Sequence[ChangeOp]) -> Iterator[str]:
    for change in changes:
        if not all(spec.has_node(node_id) for node_id in touched_nodes(change)):
            continue
        if (
            isinstance(change, AddFallback)
            and spec.node(change.node_id).type == change.fallback_type
        ):
            yield f"node {change.node_id!r}: fallback type is the node's own type"
        if isinstance(change, SetConfig) and "params" in change.values:
            yield f"node {change.node_id!r}: set_config replaces all params"
