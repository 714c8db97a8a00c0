"""Edge optimizer: redundant edges, nodes whose output nobody reads, edges never taken in the
window, nodes that never ran; each as typed changes with the latency share they save."""

from __future__ import annotations

import pytest

from spark.graphs.spec import GraphSpec
from spark.rsi.analysis import DiagnosticReport, analyze
from spark.rsi.edges import EdgeFinding, find_edge_optimizations
from spark.rsi.generator import RuleBasedGenerator
from spark.rsi.hypotheses import AddEdge, RemoveEdge
from spark.rsi.validation import validate_hypothesis
from tests.rsi.builders import (
    edge,
    make_spec,
    node,
    node_stats,
    structural_node_stats,
    structural_spec,
    version_stats,
)


def findings(spec: GraphSpec, report: DiagnosticReport) -> dict[str, list[EdgeFinding]]:
    """The findings by kind."""
    by_kind: dict[str, list[EdgeFinding]] = {}
    for finding in find_edge_optimizations(spec, report.structure):
        by_kind.setdefault(finding.kind, []).append(finding)
    return by_kind


def structural_report() -> DiagnosticReport:
    """structural_spec over 200 runs where escalate never ran."""
    return analyze(structural_spec(), structural_node_stats(), version_stats())


def test_an_edge_implied_by_an_unconditional_path_is_redundant_and_saves_nothing() -> None:
    """draft -> report is implied by draft -> score -> report: removing it saves 0 ms."""
    (finding,) = findings(structural_spec(), structural_report())["redundant_edge"]
    assert finding.changes == [RemoveEdge(source="draft", target="report")]
    assert finding.saved_ms == 0.0
    assert "draft -> score -> report" in finding.reason


def test_a_conditional_path_does_not_make_an_edge_redundant() -> None:
    """a -> c stays when the only other path a -> b -> c is conditional."""
    spec = make_spec(
        [node("a", ["request"], ["x"]), node("b", ["x"], ["y"]), node("c", ["x"], ["z"])],
        [edge("a", "b", field="x", op="truthy"), edge("b", "c"), edge("a", "c")],
    )
    report = analyze(spec, [], version_stats())
    assert "redundant_edge" not in findings(spec, report)


def test_a_node_nobody_reads_is_taken_off_the_path() -> None:
    """report stops waiting for score (300 ms): score still runs, as a sink."""
    report = structural_report()
    (finding,) = findings(structural_spec(), report)["unused_output"]
    assert finding.changes == [RemoveEdge(source="score", target="report")]
    assert finding.saved_ms == pytest.approx(300.0)
    assert finding.gain == pytest.approx(300.0 / report.structure.critical_path_ms, abs=1e-4)


def test_a_bypass_links_each_predecessor_to_each_successor() -> None:
    """Without a direct edge, a -> c is added before b -> c goes."""
    spec = make_spec(
        [node("a", ["request"], ["x"]), node("b", ["x"], ["unused"]), node("c", ["x"], ["z"])],
        [edge("a", "b"), edge("b", "c")],
    )
    stats = [node_stats(n, mean_ms=ms) for n, ms in {"a": 10, "b": 100, "c": 200}.items()]
    (finding,) = findings(spec, analyze(spec, stats, version_stats()))["unused_output"]
    assert finding.changes == [AddEdge(source="a", target="c"), RemoveEdge(source="b", target="c")]
    assert finding.saved_ms == pytest.approx(100.0)


@pytest.mark.parametrize(
    "tags, reader",
    [
        (["side_effects"], ["x"]),  # the node has side effects
        (["protected"], ["x"]),  # the node is protected
        ([], ["unused"]),  # something downstream reads its output
        ([], []),  # a descendant sees the whole state
    ],
)
def test_nodes_whose_output_may_matter_are_not_bypassed(tags: list[str], reader: list[str]) -> None:
    """Side effects, protection, a reader downstream or an undeclared reader keep b in place."""
    spec = make_spec(
        [
            node("a", ["request"], ["x"]),
            node("b", ["x"], ["unused"], tags=tags),
            node("c", reader, ["z"]),
        ],
        [edge("a", "b"), edge("b", "c")],
    )
    assert "unused_output" not in findings(spec, analyze(spec, [], version_stats()))


def test_an_edge_into_a_node_that_never_ran_is_removed_when_the_node_keeps_another() -> None:
    """escalate never ran: its edge from slow_branch goes and draft stops waiting for slow_branch
    (1250 ms -> 756 ms: the chain behind draft takes 26 ms instead of 520)."""
    report = structural_report()
    by_edge = {f.edges[0]: f for f in findings(structural_spec(), report)["never_taken"]}
    assert set(by_edge) == {("ingest", "escalate"), ("slow_branch", "escalate")}
    assert by_edge[("slow_branch", "escalate")].saved_ms == pytest.approx(494.0)
    assert by_edge[("ingest", "escalate")].saved_ms == 0.0


def test_nodes_that_never_ran_are_reported_without_changes() -> None:
    """escalate never ran in the window; no typed change removes a node."""
    (finding,) = findings(structural_spec(), structural_report())["unreachable"]
    assert finding.node_ids == ["escalate"] and finding.changes == []


def test_without_runs_nothing_counts_as_never_run() -> None:
    """An empty window says nothing about which branches are taken."""
    spec = structural_spec()
    report = analyze(spec, [], version_stats(count=0))
    kinds = findings(spec, report)
    assert "never_taken" not in kinds and "unreachable" not in kinds


def test_rules_propose_the_edge_changes_that_save_latency_and_all_validate() -> None:
    """The bypass of score and the never-taken edge slow_branch -> escalate are proposed with
    their latency effect; the zero-gain ones are not; every proposal is approved."""
    spec, report = structural_spec(), structural_report()
    hypotheses = RuleBasedGenerator().generate(
        report, spec, base_version_id="v1", max_hypotheses=20
    )
    edge_ones = {tuple(h.changes): h for h in hypotheses if h.changes[0].op == "remove_edge"}
    bypass = (RemoveEdge(source="score", target="report"),)
    never = (RemoveEdge(source="slow_branch", target="escalate"),)
    assert set(edge_ones) == {bypass, never}
    gain = 494.0 / report.structure.critical_path_ms
    assert edge_ones[never].expected_effects["latency"] == pytest.approx(-gain, abs=1e-4)
    for hypothesis in hypotheses:
        assert validate_hypothesis(spec, hypothesis).approved, hypothesis.title
