"""Static safety checks of a hypothesis against its base spec, and its risk level.

Nothing here runs the graph. A hypothesis is approved when it has no violation:

- every node it names exists and the hypothesis targets the spec's graph;
- no protected node is touched, by any operation: its config, its type, or any edge into or out
  of it (checked on the operations and again on the resulting spec, so rewiring around a
  parallelized chain is caught too);
- the changes apply (``apply_changes``: strict, result re-validated as a DAG with data flow);
- retries only on retry-safe nodes (a ``side_effects`` node must be tagged ``idempotent``), and
  never a cache on a ``side_effects`` node;
- parallelized nodes share no data dependency and are not two ``side_effects`` nodes;
- ``replace_node`` changes the type and keeps the declared inputs and outputs;
- budgets: timeout, retries, prompt length, nodes added / removed;
- the risk is not ``critical`` unless the policy allows it.

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

from pydantic import BaseModel, ConfigDict, Field

from spark.errors import InvalidChangeError
from spark.graphs.spec import GraphSpec, NodeSpec
from spark.rsi.analysis import can_run_concurrently, is_retry_safe
from spark.rsi.changes import apply_changes, describe_change, nodes_affected
from spark.rsi.hypotheses import (
    RISK_ORDER,
    AddFallback,
    ChangeOp,
    Hypothesis,
    Parallelize,
    ReplaceNode,
    RiskLevel,
    SetConfig,
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
        if not violations:  # defence in depth: the result must leave protected nodes alone
            violations += _protected_diff_violations(spec, candidate)
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
    """Factors: >= 3 affected nodes (rewired neighbours count), >= 8, the entry node modified,
    a node with side effects modified."""
    affected = set().union(*(nodes_affected(spec, change) for change in changes))
    touched = set().union(*(touched_nodes(change) for change in changes))
    modified = [spec.node(node_id) for node_id in sorted(touched) if spec.has_node(node_id)]
    factors = [
        len(affected) >= 3,
        len(affected) >= 8,
        spec.entry in touched,
        any(node.has_tag("side_effects") for node in modified),
    ]
    return sum(factors)


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
    return [
        f"change #{index} ({describe_change(change)}) touches protected node {node_id!r}"
        for index, change in enumerate(changes)
        for node_id in sorted(nodes_affected(spec, change))
        if spec.has_node(node_id) and spec.node(node_id).has_tag("protected")
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


def _protected_diff_violations(base: GraphSpec, candidate: GraphSpec) -> Iterator[str]:
    for node in base.nodes:
        if not node.has_tag("protected"):
            continue
        if not candidate.has_node(node.id) or candidate.node(node.id) != node:
            yield f"protected node {node.id!r} would change"
        elif _incident_edges(base, node.id) != _incident_edges(candidate, node.id):
            yield f"edges into or out of protected node {node.id!r} would change"


def _incident_edges(spec: GraphSpec, node_id: str) -> list[str]:
    edges = [e for e in spec.edges if node_id in e.key]
    return sorted(e.model_dump_json() for e in edges)


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
    return violations


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
