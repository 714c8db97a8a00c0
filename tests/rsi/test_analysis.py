"""analyze: bottlenecks grounded in the aggregates, failure patterns, structure report."""

from __future__ import annotations

import pytest

from spark.errors import InvalidInputError
from spark.rsi.analysis import (
    DiagnosticReport,
    analyze,
    can_run_concurrently,
    classify_error,
    describe_structure,
    parallelizable_chains,
)
from tests.rsi.builders import (
    edge,
    healthy_node_stats,
    make_spec,
    node,
    node_stats,
    support_spec,
    version_stats,
)

CHAIN = ["classify", "fetch_account", "fetch_history"]


def test_the_worst_error_node_comes_first_with_its_evidence() -> None:
    """The node failing most is the top bottleneck, banded by its rate, with error evidence."""
    stats = healthy_node_stats(
        fetch_account=node_stats(
            "fetch_account", errors=30, error_types={"TimeoutError": 20, "RateLimitError": 10}
        ),
        draft=node_stats("draft", errors=6, error_types={"KeyError": 6}),
    )
    report = analyze(support_spec(), stats, version_stats(errors=36))
    top = report.bottlenecks[0]
    assert (top.node_id, top.kind, top.severity) == ("fetch_account", "errors", "high")
    assert top.metric_value == pytest.approx(0.15)
    assert top.share == pytest.approx(30 / 36)
    assert top.evidence["transient_share"] == 1.0
    draft = next(b for b in report.bottlenecks_of("errors") if b.node_id == "draft")
    assert draft.severity == "medium"


def test_a_lone_error_is_not_a_bottleneck() -> None:
    """One failure in 200 runs is within noise: no error bottleneck."""
    stats = healthy_node_stats(draft=node_stats("draft", errors=1))
    assert analyze(support_spec(), stats, version_stats(errors=1)).bottlenecks_of("errors") == []


def test_errors_absorbed_before_reaching_runs_are_downgraded() -> None:
    """When runs almost never fail although the node does (a fallback absorbs it), the
    severity drops one band."""
    stats = healthy_node_stats(draft=node_stats("draft", errors=30))
    absorbed = analyze(support_spec(), stats, version_stats(errors=0))
    surfaced = analyze(support_spec(), stats, version_stats(errors=30))
    assert absorbed.bottlenecks_of("errors")[0].severity == "medium"
    assert surfaced.bottlenecks_of("errors")[0].severity == "high"


def test_a_node_failing_a_fifth_of_its_runs_is_critical() -> None:
    """An error rate of 20% or more is critical when the failures reach the runs."""
    stats = healthy_node_stats(draft=node_stats("draft", errors=50))
    report = analyze(support_spec(), stats, version_stats(errors=50))
    assert report.bottlenecks_of("errors")[0].severity == "critical"


def test_the_slow_repeated_input_node_is_a_latency_bottleneck() -> None:
    """A node holding most of the critical path is flagged, with its input repetition."""
    stats = healthy_node_stats(
        fetch_history=node_stats("fetch_history", mean_ms=400, distinct_input_ratio=0.2)
    )
    report = analyze(support_spec(), stats, version_stats())
    latency = report.bottlenecks_of("latency")
    assert [b.node_id for b in latency] == ["fetch_history"]
    assert latency[0].share == pytest.approx(400 / 474)
    assert latency[0].severity == "critical"
    assert latency[0].evidence["distinct_input_ratio"] == 0.2


def test_a_rarely_run_node_weighs_by_how_often_it_runs() -> None:
    """Latency weights are mean x share of runs, so a slow node on 5% of runs is no bottleneck."""
    stats = healthy_node_stats(fetch_history=node_stats("fetch_history", count=10, mean_ms=400))
    report = analyze(support_spec(), stats, version_stats())
    assert report.structure.node_latency_ms["fetch_history"] == pytest.approx(20.0)
    assert "fetch_history" not in [b.node_id for b in report.bottlenecks_of("latency")]


def test_a_heavy_tail_on_the_critical_path_is_flagged() -> None:
    """p99 >> p50 explaining much of the run's tail makes a latency bottleneck."""
    slow_tail = node_stats("fetch_account", mean_ms=30, p50_ms=20, p95_ms=120, p99_ms=400)
    report = analyze(support_spec(), healthy_node_stats(fetch_account=slow_tail), version_stats())
    bottleneck = report.bottlenecks_of("latency")[0]
    assert bottleneck.node_id == "fetch_account"
    assert bottleneck.evidence["heavy_tail"] is True
    assert bottleneck.evidence["tail_ratio"] == pytest.approx(20.0)


def test_cost_concentration_is_a_cost_bottleneck() -> None:
    """A node holding most of the cost is flagged with its share."""
    stats = healthy_node_stats(
        draft=node_stats("draft", total_cost=9.0), classify=node_stats("classify", total_cost=1.0)
    )
    cost = analyze(support_spec(), stats, version_stats()).bottlenecks_of("cost")
    assert [(b.node_id, b.share, b.severity) for b in cost] == [("draft", 0.9, "critical")]


def test_bad_output_failures_of_a_prompted_node_are_a_quality_bottleneck() -> None:
    """Parse/validation failures on a node with a prompt count as quality issues."""
    stats = healthy_node_stats(
        draft=node_stats("draft", errors=12, error_types={"JSONDecodeError": 12})
    )
    quality = analyze(support_spec(), stats, version_stats(errors=12)).bottlenecks_of("quality")
    assert [(b.node_id, b.evidence["quality_failures"]) for b in quality] == [("draft", 12)]


def test_low_run_quality_is_attributed_only_to_a_single_prompted_node() -> None:
    """Low mean quality names the prompted node only when exactly one node has a prompt."""
    two_prompts = analyze(support_spec(), healthy_node_stats(), version_stats(mean_quality=0.4))
    assert two_prompts.bottlenecks_of("quality") == []
    one_prompt = support_spec(classify={"config": {}})
    report = analyze(one_prompt, healthy_node_stats(), version_stats(mean_quality=0.4))
    assert [(b.node_id, b.severity) for b in report.bottlenecks_of("quality")] == [
        ("draft", "high")
    ]


def test_failure_patterns_group_error_types_by_node() -> None:
    """Failure patterns list each (node, error type) with its count, share and category."""
    stats = healthy_node_stats(
        fetch_account=node_stats(
            "fetch_account", errors=30, error_types={"TimeoutError": 20, "KeyError": 10}
        )
    )
    patterns = analyze(support_spec(), stats, version_stats(errors=30)).failure_patterns
    assert [(p.error_type, p.count, p.category) for p in patterns] == [
        ("TimeoutError", 20, "transient"),
        ("KeyError", 10, "other"),
    ]
    assert patterns[0].share == pytest.approx(2 / 3)


def test_structure_reports_shape_critical_path_and_parallelizable_chain() -> None:
    """Depth, width, the heaviest path, side-effect nodes and the independent chain."""
    stats = healthy_node_stats(draft=node_stats("draft", mean_ms=100))
    structure = analyze(support_spec(), stats, version_stats()).structure
    assert (structure.depth, structure.width) == (6, 2)
    assert structure.critical_path == ["ingest", *CHAIN, "draft", "audit"]
    assert structure.critical_path_ms == pytest.approx(146.0)
    assert structure.parallelizable_chains == [CHAIN]
    assert structure.side_effect_nodes == ["notify", "audit"]
    assert structure.protected_nodes == ["audit"]


def test_chains_split_at_data_dependencies_and_side_effect_pairs() -> None:
    """A chain breaks where a member reads an earlier member's output or where two side-effect
    nodes would meet; the entry never heads a chain."""
    spec = make_spec(
        [
            node("a", ["request"], ["x"]),
            node("b", ["x"], ["y"]),
            node("c", ["x"], ["z"]),
            node("d", ["y"], ["w"]),
            node("e", ["x"], ["v"], tags=["side_effects"]),
            node("f", ["x"], ["u"], tags=["side_effects"]),
        ],
        [edge("a", "b"), edge("b", "c"), edge("c", "d"), edge("d", "e"), edge("e", "f")],
    )
    assert parallelizable_chains(spec) == [["b", "c"], ["c", "d", "e"]]


def test_conditional_links_and_branches_do_not_form_chains() -> None:
    """Only unconditional links between single-successor/single-predecessor nodes chain."""
    spec = make_spec(
        [node("a", ["request"], ["x"]), node("b", ["x"], ["y"]), node("c", ["x"], ["z"])],
        [edge("a", "b"), edge("b", "c", field="y", op="truthy")],
    )
    assert parallelizable_chains(spec) == []


def test_concurrency_rule_covers_reads_writes_and_side_effects() -> None:
    """Two nodes conflict on read-after-write, write-write, write-after-read or shared effects."""
    spec = make_spec(
        [
            node("a", ["request"], ["x"]),
            node("b", ["x"], ["y"]),
            node("c", ["y"], ["z"]),
            node("d", ["x"], ["y"]),
            node("e", ["x"], ["v"], tags=["side_effects"]),
            node("f", ["x"], ["u"], tags=["side_effects"]),
        ],
        [edge("a", n) for n in "bdef"] + [edge("b", "c")],
    )
    pair = {n.id: n for n in spec.nodes}
    assert not can_run_concurrently(pair["b"], pair["c"])
    assert not can_run_concurrently(pair["b"], pair["d"])
    assert not can_run_concurrently(pair["e"], pair["f"])
    assert can_run_concurrently(pair["b"], pair["e"])


@pytest.mark.parametrize(
    ("error_type", "category"),
    [
        ("TimeoutError", "transient"),
        ("NodeTimeoutError", "transient"),
        ("RateLimitError", "transient"),
        ("ConnectionResetError", "transient"),
        ("http_503", "transient"),
        ("JSONDecodeError", "quality"),
        ("OutputParserException", "quality"),
        ("KeyError", "other"),
    ],
)
def test_error_types_are_classified_by_name(error_type: str, category: str) -> None:
    """Error type names map to transient / quality / other."""
    assert classify_error(error_type) == category


def test_insufficient_data_reports_no_bottleneck() -> None:
    """Below min_traces the report says so and lists no bottleneck or failure pattern."""
    stats = healthy_node_stats(draft=node_stats("draft", count=10, errors=5))
    report = analyze(support_spec(), stats, version_stats(count=10, errors=5), min_traces=30)
    assert not report.sufficient_data
    assert report.bottlenecks == [] and report.failure_patterns == []
    assert "insufficient data" in report.summary


def test_stats_of_another_graph_are_refused() -> None:
    """Mixing graphs is misuse: InvalidInputError naming both graphs."""
    with pytest.raises(InvalidInputError, match="'other'"):
        analyze(support_spec(), healthy_node_stats(), version_stats(graph_id="other"))
    with pytest.raises(InvalidInputError, match="'draft'"):
        analyze(
            support_spec(),
            [node_stats("draft", graph_id="other")],
            version_stats(),
        )


def test_the_report_round_trips_through_json() -> None:
    """The report survives model_dump(mode='json') / model_validate (the activity boundary)."""
    stats = healthy_node_stats(
        fetch_account=node_stats("fetch_account", errors=30, error_types={"TimeoutError": 30})
    )
    report = analyze(support_spec(), stats, version_stats(errors=30))
    assert DiagnosticReport.model_validate(report.model_dump(mode="json")) == report
    assert report.window == "2023-11-14T22:13:20Z .. 2023-11-15T22:13:20Z (200 traces)"


def test_structure_without_telemetry_uses_the_longest_path() -> None:
    """With no latency data the critical path is the longest path from the entry."""
    structure = describe_structure(support_spec(), {})
    assert structure.critical_path == ["ingest", *CHAIN, "draft", "audit"]
    assert structure.critical_path_ms == 0.0


def test_the_latency_scale_compares_all_runs_with_the_successful_ones() -> None:
    """Slow failures (timeouts) make the runs' mean latency exceed the successful runs' mean,
    which the objective's latency term divides by: the report's scale says by how much, and
    is 1 when the successful runs' mean is unknown."""
    stats = healthy_node_stats()
    slow_failures = version_stats(errors=20).model_copy(
        update={"mean_ms": 380.0, "mean_ok_ms": 200.0}
    )
    report = analyze(support_spec(), stats, slow_failures)
    assert (report.run_mean_ms, report.run_mean_ok_ms) == (380.0, 200.0)
    assert report.latency_scale == pytest.approx(1.9)
    unknown = analyze(support_spec(), stats, version_stats())
    assert unknown.run_mean_ok_ms is None and unknown.latency_scale == 1.0
