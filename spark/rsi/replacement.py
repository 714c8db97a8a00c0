"""Node replacement analyzer: which declared alternatives can stand in for a node, and what they
are expected to change.

A catalog of alternatives comes from three places, merged in this order:

- the node itself: ``config.params["alternatives"]``, a list of entries;
- the graph: ``metadata["alternatives"]``, a mapping of node type to a list of entries (every
  node of that type may use them);
- a caller-supplied catalog with the same shape (what a registry knows about its types).

An entry is either another implementation ``type`` of the same capability, with its declared
``inputs`` and ``outputs`` (omitted: the node's own) and optionally the ``model`` it should use,
or only another ``model`` for the same node. Both
carry ``price_factor`` and ``latency_factor`` (relative to the node's current cost and latency,
1.0 = the same) and, when measured, ``quality`` (0..1, compared with the node's current
``params["quality"]`` when that is declared too).

**Compatibility** is judged from declared fields only: the replacement must read no field the
node's upstream does not provide (graph inputs and outputs of the node's ancestors) and must
write every field the node wrote that anything downstream reads (a descendant's input or an edge
condition evaluated at or after the node; a sink's outputs are the run's answer, so all of them).

**Expected effects** (relative change per metric, the hypothesis' convention) come from
telemetry: the node's share of the critical-path latency and of the total cost (the diagnostic
report) times ``factor - 1``; quality as the relative change of the declared measured quality.
A metric without evidence is not claimed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import networkx as nx
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spark.errors import InvalidInputError
from spark.graphs.spec import GraphSpec, NodeSpec
from spark.rsi.analysis import DiagnosticReport
from spark.rsi.hypotheses import Metric

log = structlog.get_logger(__name__)

AlternativeSource = Literal["node", "graph", "catalog"]


class Alternative(BaseModel):
    """One declared alternative for a node: another implementation type or another model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str | None = Field(default=None, min_length=1)
    model: str | None = Field(default=None, min_length=1)
    inputs: list[str] | None = None
    outputs: list[str] | None = None
    price_factor: float = Field(default=1.0, ge=0.0)
    latency_factor: float = Field(default=1.0, ge=0.0)
    quality: float | None = Field(default=None, ge=0.0, le=1.0)
    source: AlternativeSource = "node"

    @property
    def label(self) -> str:
        """``type X``, ``type X (model Y)`` or ``model Y``, for titles and reasons."""
        model = f"model {self.model!r}"
        if self.type is None:
            return model
        return f"type {self.type!r}" + (f" ({model})" if self.model else "")


class ReplacementCandidate(BaseModel):
    """An alternative judged against one node of one graph, with its expected effects."""

    model_config = ConfigDict(extra="forbid")

    node_id: str
    alternative: Alternative
    compatible: bool
    issues: list[str] = Field(default_factory=list)
    expected_effects: dict[Metric, float] = Field(default_factory=dict)
    latency_share: float = 0.0
    cost_share: float = 0.0

    @property
    def improves(self) -> bool:
        """Whether some metric is expected to get better."""
        return any(_better(m, e) for m, e in self.expected_effects.items())


def alternatives_for(
    spec: GraphSpec,
    node: NodeSpec,
    catalog: Mapping[str, Sequence[Any]] | None = None,
    *,
    strict: bool = True,
) -> list[Alternative]:
    """Every alternative declared for ``node`` (node, graph, then ``catalog``), excluding its
    current type and model; the first entry of a type and model wins (a node's own entry over the
    graph's and the catalog's). A malformed entry raises ``InvalidInputError`` naming it, or with
    ``strict=False`` is skipped with a warning (a typo in one node's params must not stop the
    other proposals of a cycle)."""
    graph_catalog = spec.metadata.get("alternatives") or {}
    raw: list[tuple[Any, AlternativeSource]] = [
        (node.config.params.get("alternatives"), "node"),
        (_for_type(graph_catalog, node.type), "graph"),
        (_for_type(catalog or {}, node.type), "catalog"),
    ]
    listed: list[Alternative] = []
    for entries, source in raw:
        try:
            listed += _entries(entries, source, node.id)
        except InvalidInputError as exc:
            if strict:
                raise
            log.warning("alternatives_skipped", node_id=node.id, source=source, reason=str(exc))
    first: dict[tuple[str | None, str | None], Alternative] = {}
    for alternative in listed:
        if _differs(node, alternative):
            first.setdefault((alternative.type, alternative.model), alternative)
    return list(first.values())


def _for_type(catalog: Any, node_type: str) -> Any:
    return catalog.get(node_type) if isinstance(catalog, Mapping) else None


def _entries(raw: Any, source: AlternativeSource, node_id: str) -> list[Alternative]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidInputError(f"alternatives of node {node_id!r} ({source}) must be a list")
    return [_entry(item, source, node_id) for item in raw]


def _entry(item: Any, source: AlternativeSource, node_id: str) -> Alternative:
    try:
        alternative = Alternative.model_validate({**item, "source": source})
    except (TypeError, ValidationError) as exc:
        raise InvalidInputError(f"alternative {item!r} of node {node_id!r}: {exc}") from None
    if alternative.type is None and alternative.model is None:
        raise InvalidInputError(
            f"alternative {item!r} of node {node_id!r} must name a 'type' or a 'model'"
        )
    return alternative


def _differs(node: NodeSpec, alternative: Alternative) -> bool:
    if alternative.type is not None:
        return alternative.type != node.type
    return alternative.model != node.config.model


# ----- compatibility -----


def upstream_fields(spec: GraphSpec, node_id: str) -> set[str]:
    """Fields available when ``node_id`` runs: graph inputs and its ancestors' outputs."""
    ancestors = nx.ancestors(spec.to_networkx(), node_id)
    return set(spec.inputs).union(*(spec.node(a).outputs for a in ancestors))


def required_outputs(spec: GraphSpec, node_id: str) -> set[str]:
    """Fields ``node_id`` writes that something downstream reads: a descendant's input, an edge
    condition evaluated at or after it; all of them for a sink (its outputs are the run's answer) or
    when a descendant declares no inputs (the runtime hands it the whole state)."""
    node = spec.node(node_id)
    later = nx.descendants(spec.to_networkx(), node_id)
    if not spec.successors(node_id) or any(not spec.node(d).inputs for d in later):
        return set(node.outputs)  # the run's answer, or read by a node seeing the whole state
    read = set().union(*(spec.node(d).inputs for d in later))
    read |= {e.condition.field for e in spec.edges if e.condition and e.source in later | {node_id}}
    return set(node.outputs) & read


def compatibility_issues(spec: GraphSpec, node: NodeSpec, alternative: Alternative) -> list[str]:
    """Why ``alternative`` cannot stand in for ``node`` (empty: compatible)."""
    reads = set(node.inputs if alternative.inputs is None else alternative.inputs)
    writes = set(node.outputs if alternative.outputs is None else alternative.outputs)
    unprovided = sorted(reads - upstream_fields(spec, node.id))
    unwritten = sorted(required_outputs(spec, node.id) - writes)
    issues = []
    if unprovided:
        issues.append(f"{alternative.label} reads {unprovided}, which nothing upstream provides")
    if unwritten:
        issues.append(f"{alternative.label} does not write {unwritten}, read downstream")
    return issues


# ----- expected effects -----


def expected_effects(
    report: DiagnosticReport, node: NodeSpec, alternative: Alternative
) -> dict[Metric, float]:
    """Relative change per metric: the node's latency and cost shares times ``factor - 1``, and
    the relative change of measured quality when both qualities are declared."""
    structure = report.structure
    latency_share = structure.latency_share(node.id)
    cost_share = structure.node_cost_share.get(node.id, 0.0)
    effects: dict[Metric, float] = {}
    if latency_share > 0:
        effects["latency"] = _round(latency_share * (alternative.latency_factor - 1))
    if cost_share > 0:
        effects["cost"] = _round(cost_share * (alternative.price_factor - 1))
    current = _declared_quality(node)
    if alternative.quality is not None and current:
        effects["quality"] = _round((alternative.quality - current) / current)
    return effects


def _declared_quality(node: NodeSpec) -> float | None:
    value = node.config.params.get("quality")
    return float(value) if isinstance(value, int | float) and 0 < value <= 1 else None


def _round(value: float) -> float:
    return round(value, 4) + 0.0


def _better(metric: Metric, effect: float) -> bool:
    return effect > 0 if metric == "quality" else effect < 0


# ----- the analyzer -----


def replacement_candidates(
    report: DiagnosticReport,
    spec: GraphSpec,
    catalog: Mapping[str, Sequence[Any]] | None = None,
    *,
    known_types: Iterable[str] | None = None,
    strict: bool = True,
) -> list[ReplacementCandidate]:
    """Every declared alternative of every node, judged (compatibility, expected effects).

    With ``known_types`` (a registry's types), a replacement type it does not know is
    incompatible too: the runtime could not resolve it. ``strict`` as in ``alternatives_for``."""
    known = None if known_types is None else set(known_types)
    return [
        _candidate(report, spec, node, alternative, known)
        for node in spec.nodes
        for alternative in alternatives_for(spec, node, catalog, strict=strict)
    ]


def _candidate(
    report: DiagnosticReport,
    spec: GraphSpec,
    node: NodeSpec,
    alternative: Alternative,
    known: set[str] | None,
) -> ReplacementCandidate:
    issues = compatibility_issues(spec, node, alternative)
    if known is not None and alternative.type is not None and alternative.type not in known:
        issues.append(f"type {alternative.type!r} is not registered")
    return ReplacementCandidate(
        node_id=node.id,
        alternative=alternative,
        compatible=not issues,
        issues=issues,
        expected_effects=expected_effects(report, node, alternative),
        latency_share=report.structure.latency_share(node.id),
        cost_share=report.structure.node_cost_share.get(node.id, 0.0),
    )


def worth_proposing(candidates: Sequence[ReplacementCandidate]) -> list[ReplacementCandidate]:
    """The compatible candidates that improve some metric and that no other compatible
    candidate for the same node dominates (as good on every metric, better on one)."""
    usable = [c for c in candidates if c.compatible and c.improves]
    return [
        c
        for c in usable
        if not any(o.node_id == c.node_id and _dominates(o, c) for o in usable if o is not c)
    ]


def _dominates(first: ReplacementCandidate, second: ReplacementCandidate) -> bool:
    metrics: tuple[Metric, ...] = ("error_rate", "latency", "cost", "quality")
    a = [_loss(m, first.expected_effects.get(m, 0.0)) for m in metrics]
    b = [_loss(m, second.expected_effects.get(m, 0.0)) for m in metrics]
    return all(x <= y for x, y in zip(a, b, strict=True)) and a != b


def _loss(metric: Metric, effect: float) -> float:
    return -effect if metric == "quality" else effect
