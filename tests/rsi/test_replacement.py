"""Node replacement analyzer: the catalog, compatibility from declared fields, effects from
telemetry, and the rules' ``replace_node`` proposals ranked by the owner's objective."""

from __future__ import annotations

from typing import Any

import pytest

from spark.errors import InvalidInputError
from spark.graphs.spec import GraphSpec
from spark.rsi.analysis import DiagnosticReport, analyze
from spark.rsi.generator import RuleBasedGenerator
from spark.rsi.hypotheses import Hypothesis, ReplaceNode, SetConfig
from spark.rsi.objectives import Objective
from spark.rsi.ranking import rank_hypotheses
from spark.rsi.replacement import (
    alternatives_for,
    replacement_candidates,
    required_outputs,
    upstream_fields,
    worth_proposing,
)
from spark.rsi.validation import validate_hypothesis
from tests.rsi.builders import healthy_node_stats, node_stats, support_spec, version_stats

SMALL = {"type": "small_llm", "price_factor": 0.3, "latency_factor": 0.5, "quality": 0.85}
FAST = {"type": "fast_llm", "price_factor": 1.0, "latency_factor": 0.2, "quality": 0.9}
PRICIER = {"type": "pricier", "price_factor": 0.8, "latency_factor": 0.9, "quality": 0.85}
NEEDS_TICKET = {"type": "needs_ticket", "inputs": ["account", "ticket"], "price_factor": 0.1}
NO_REPLY = {"type": "summarizer", "outputs": ["summary"], "price_factor": 0.1}
MINI = {"model": "mini", "price_factor": 0.5}


def draft_with(*alternatives: dict[str, Any], **extra: Any) -> GraphSpec:
    """support_spec whose ``draft`` (quality 0.9) declares ``alternatives``."""
    params = {"alternatives": list(alternatives), "quality": 0.9}
    return support_spec(
        draft={"config": {"prompt": "Draft.", "params": params}},
        audit={"config": {"params": {"alternatives": [SMALL]}}},
        **extra,
    )


def report_for(spec: GraphSpec) -> DiagnosticReport:
    """draft: 300 ms of a ~370 ms critical path and all of the cost."""
    stats = healthy_node_stats(draft=node_stats("draft", mean_ms=300, total_cost=5.0))
    return analyze(spec, stats, version_stats())


def test_upstream_and_downstream_fields_come_from_declarations() -> None:
    """draft may read graph inputs and its ancestors' outputs; notify reads its reply."""
    spec = support_spec()
    assert upstream_fields(spec, "draft") == {"request", "text", "category", "account", "history"}
    assert required_outputs(spec, "draft") == {"reply"}
    assert required_outputs(spec, "notify") == {"sent"}  # a sink's outputs are the answer


def test_incompatible_alternatives_say_why() -> None:
    """Reading an unprovided field or not writing a field read downstream is incompatible."""
    spec = draft_with(SMALL, NEEDS_TICKET, NO_REPLY)
    by_type = {c.alternative.type: c for c in replacement_candidates(report_for(spec), spec)}
    assert by_type["small_llm"].compatible
    assert by_type["needs_ticket"].issues == [
        "type 'needs_ticket' reads ['ticket'], which nothing upstream provides"
    ]
    assert by_type["summarizer"].issues == [
        "type 'summarizer' does not write ['reply'], read downstream"
    ]


def test_expected_effects_are_telemetry_shares_times_declared_factors() -> None:
    """Latency share x (factor - 1), cost share x (factor - 1), relative quality change."""
    spec = draft_with(SMALL)
    report = report_for(spec)
    (candidate,) = [c for c in replacement_candidates(report, spec) if c.node_id == "draft"]
    share = report.structure.latency_share("draft")
    assert candidate.expected_effects["latency"] == pytest.approx(share * -0.5, abs=1e-4)
    assert candidate.expected_effects["cost"] == pytest.approx(-0.7)
    assert candidate.expected_effects["quality"] == pytest.approx((0.85 - 0.9) / 0.9, abs=1e-4)


def test_dominated_alternatives_are_not_worth_proposing() -> None:
    """pricier is worse than small_llm on every metric; fast_llm trades differently."""
    spec = draft_with(SMALL, FAST, PRICIER)
    kept = worth_proposing(replacement_candidates(report_for(spec), spec))
    assert {c.alternative.type for c in kept if c.node_id == "draft"} == {"small_llm", "fast_llm"}


def test_the_catalog_merges_node_graph_and_registry_entries() -> None:
    """Graph metadata and a caller's catalog add entries by node type; the current type is out."""
    spec = support_spec().model_copy(
        update={"metadata": {"alternatives": {"fn": [FAST, {"type": "fn"}]}}}
    )
    found = alternatives_for(spec, spec.node("draft"), {"fn": [MINI]})
    assert [(a.type, a.model, a.source) for a in found] == [
        ("fast_llm", None, "graph"),
        (None, "mini", "catalog"),
    ]


def test_a_malformed_entry_is_refused_by_name() -> None:
    """An entry naming neither a type nor a model is misuse."""
    spec = support_spec(draft={"config": {"params": {"alternatives": [{"price_factor": 0.5}]}}})
    with pytest.raises(InvalidInputError, match="'draft'"):
        alternatives_for(spec, spec.node("draft"))


def test_unregistered_types_are_incompatible() -> None:
    """With the registry's types known, a type it cannot resolve is refused."""
    spec = draft_with(SMALL)
    candidates = replacement_candidates(report_for(spec), spec, known_types=["fn"])
    assert "type 'small_llm' is not registered" in candidates[0].issues


def propose(spec: GraphSpec) -> list[Hypothesis]:
    """The rule-based proposals for ``spec`` under ``report_for``."""
    return RuleBasedGenerator().generate(
        report_for(spec), spec, base_version_id="v1", max_hypotheses=20
    )


def test_rules_propose_replace_node_with_effects_and_never_for_protected_nodes() -> None:
    """Each compatible, undominated alternative becomes a replace_node (or a model switch);
    audit is protected and gets nothing; every proposal validates."""
    spec = draft_with(SMALL, FAST, NEEDS_TICKET, MINI)
    hypotheses = [h for h in propose(spec) if h.changes[0].op in ("replace_node", "set_config")]
    changes = [h.changes[0] for h in hypotheses]
    assert {c.new_type for c in changes if isinstance(c, ReplaceNode)} == {"small_llm", "fast_llm"}
    assert SetConfig(node_id="draft", values={"model": "mini"}) in changes
    assert all(h.target_nodes == ["draft"] for h in hypotheses)
    assert all(set(h.expected_effects) & {"latency", "cost"} for h in hypotheses)
    for hypothesis in hypotheses:
        assert validate_hypothesis(spec, hypothesis).approved, hypothesis.title


def test_the_owners_objective_orders_the_replacements() -> None:
    """A cost-minded owner ranks small_llm first; a latency-minded one ranks fast_llm first."""
    spec = draft_with(SMALL, FAST)
    hypotheses = [h for h in propose(spec) if h.changes[0].op == "replace_node"]
    report = report_for(spec)

    def first(weights: dict[str, float]) -> str:
        objective = Objective.model_validate({"weights": weights})
        ranking = rank_hypotheses(hypotheses, objective=objective, report=report)
        return ranking[0].title

    assert "small_llm" in first({"cost": 1.0, "latency": 0.0, "quality": 0.0})
    assert "fast_llm" in first({"cost": 0.0, "latency": 1.0, "quality": 0.5})


def test_the_cheaper_model_rule_still_works_next_to_alternatives() -> None:
    """params["cheaper_models"] still yields its model switch."""
    spec = support_spec(
        draft={"config": {"prompt": "D.", "params": {"cheaper_models": ["small"], "quality": 0.9}}}
    )
    changes = [h.changes[0] for h in propose(spec)]
    assert SetConfig(node_id="draft", values={"model": "small"}) in changes


def test_a_malformed_entry_does_not_stop_the_other_proposals() -> None:
    """The rules skip a node's malformed catalog (with a warning) and still propose the rest."""
    spec = draft_with(SMALL, fetch_history={"config": {"params": {"alternatives": "oops"}}})
    with pytest.raises(InvalidInputError, match="'fetch_history'"):
        replacement_candidates(report_for(spec), spec)
    changes = [h.changes[0] for h in propose(spec)]
    assert any(isinstance(c, ReplaceNode) and c.new_type == "small_llm" for c in changes)
