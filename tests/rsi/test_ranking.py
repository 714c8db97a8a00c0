"""Ranking a cycle's hypotheses: Pareto fronts, the owner's objective, evidence, constraints."""

from __future__ import annotations

import pytest

from spark.graphs.spec import GraphSpec
from spark.rsi.analysis import DiagnosticReport, analyze
from spark.rsi.generator import PatternHint, RuleBasedGenerator
from spark.rsi.hypotheses import Hypothesis, Metric, SetConfig
from spark.rsi.objectives import Constraint, Objective
from spark.rsi.ranking import effect_vector, in_ranked_order, pareto_fronts, rank_hypotheses
from tests.rsi.builders import healthy_node_stats, node_stats, support_spec, version_stats


def report(errors: int = 0) -> DiagnosticReport:
    """A quiet support graph's report (p95 250 ms) failing ``errors`` of 200 runs."""
    return analyze(support_spec(), healthy_node_stats(), version_stats(errors=errors))


def hypothesis(node_id: str, primary: Metric = "latency", **effects: float) -> Hypothesis:
    """A config change on ``node_id`` answering a diagnosis of ``primary``, with ``effects``."""
    return Hypothesis(
        graph_id="support",
        base_version_id="v1",
        title=f"tune {node_id}",
        diagnosis=f"{primary} problem",
        changes=[SetConfig(node_id=node_id, values={"timeout_s": 1.0})],
        primary_metric=primary,
        expected_effects=effects,
    )


def titles(hypotheses: list[Hypothesis], **kwargs: object) -> list[str]:
    """The titles in ranked order (default objective and a quiet report unless given)."""
    kwargs.setdefault("objective", Objective())
    kwargs.setdefault("report", report())
    ranking = rank_hypotheses(hypotheses, **kwargs)  # type: ignore[arg-type]
    return [r.title for r in ranking]


def test_pareto_fronts_peel_non_dominated_layers() -> None:
    """A vector no other beats on every axis is on front 1; the rest fall to later fronts."""
    losses = [(-0.3, 0.0), (-0.1, 0.0), (0.0, -0.2), (0.0, 0.0)]
    assert pareto_fronts(losses) == [1, 2, 1, 3]


def test_quality_counts_upward_and_missing_effects_count_zero() -> None:
    """The effect vector negates quality (higher is better) and fills missing metrics with 0."""
    assert effect_vector({"latency": -0.2, "quality": 0.1}) == (0.0, -0.2, 0.0, -0.1)


def test_a_dominated_hypothesis_ranks_after_the_one_dominating_it() -> None:
    """Even with far more evidence behind it, a hypothesis that is no better on any metric and
    worse on one ranks after the one dominating it, and its reason names the dominator."""
    strong = hypothesis("fetch_account", latency=-0.3, cost=-0.2)
    weak = hypothesis("fetch_history", latency=-0.29)
    proven = PatternHint(
        diagnosis_kind="latency", change_kind="set_config", success_rate=1.0, attempts=40
    )
    ranking = rank_hypotheses(
        [weak, strong], objective=Objective(), report=report(), patterns=[proven]
    )
    assert [r.title for r in ranking] == ["tune fetch_account", "tune fetch_history"]
    assert [r.front for r in ranking] == [1, 2]
    assert "dominated by 'tune fetch_account'" in ranking[1].why


def test_a_front_is_ordered_by_the_expected_objective_change() -> None:
    """Two non-dominated hypotheses: the one improving the owner's loss more comes first."""
    faster = hypothesis("fetch_account", latency=-0.4)
    cheaper = hypothesis("fetch_history", cost=-0.2)
    ranking = rank_hypotheses([cheaper, faster], objective=Objective(), report=report())
    assert [r.title for r in ranking] == ["tune fetch_account", "tune fetch_history"]
    assert [r.front for r in ranking] == [1, 1]
    assert ranking[0].objective_change == -0.1  # 0.25 x -0.4
    assert ranking[0].why.startswith("on the frontier; objective -0.1 per request")


def test_evidence_weighs_the_expected_change() -> None:
    """With equal expected changes, the change kind that shipped before comes first, and the
    reason says how many attempts stand behind it."""
    retry = hypothesis("fetch_account", latency=-0.2)
    cheaper = hypothesis("fetch_history", cost=-0.2).model_copy(
        update={"changes": [SetConfig(node_id="fetch_history", values={"cache_ttl_s": 60})]}
    )
    failed = PatternHint(
        diagnosis_kind="latency", change_kind="set_config", success_rate=0.0, attempts=4
    )
    ranking = rank_hypotheses(
        [retry, cheaper],
        objective=Objective(),
        report=report(),
        patterns=[failed],
    )
    assert {r.evidence_weight for r in ranking} == {round(2 / 6, 4)}
    assert "(4 attempts)" in ranking[0].why
    proven = PatternHint(
        diagnosis_kind="cost", change_kind="set_config", success_rate=1.0, attempts=3
    )
    cost_first = rank_hypotheses(
        [retry, cheaper.model_copy(update={"primary_metric": "cost", "diagnosis": "cost"})],
        objective=Objective(),
        report=report(),
        patterns=[proven],
    )
    assert [r.title for r in cost_first] == ["tune fetch_history", "tune fetch_account"]
    assert cost_first[0].evidence_weight == 1.6


def costly_and_failing() -> tuple[GraphSpec, DiagnosticReport]:
    """A graph failing 30% of runs on a transient fault (a retry cures most) whose drafting
    model holds all the cost (a model ten times cheaper is listed)."""
    cheaper = {"big": 1.0, "small": 0.1}
    spec = support_spec(
        draft={
            "config": {"prompt": "Draft.", "model": "big", "params": {"cheaper_models": cheaper}}
        }
    )
    stats = healthy_node_stats(
        fetch_account=node_stats("fetch_account", errors=60, error_types={"TimeoutError": 60}),
        draft=node_stats("draft", mean_ms=30, total_cost=10.0),
    )
    return spec, analyze(spec, stats, version_stats(errors=60))


def test_the_owners_weights_change_the_order() -> None:
    """With the default objective the switch to the ten times cheaper model comes first: the
    retry cures most failures, but every cured run then pays for drafting (cost +42%) and takes
    the whole path (latency +38%), so it gains 0.09 a request against the swap's 0.225. An owner
    who weighs a failure four times as much gets the retry first."""
    spec, diagnosis = costly_and_failing()
    proposed = RuleBasedGenerator().generate(diagnosis, spec, base_version_id="v1")
    retry, swap = (
        "Retry transient failures of 'fetch_account'",
        "Switch 'draft' to the cheaper model 'small'",
    )
    assert titles(proposed, report=diagnosis) == [swap, retry]
    failure_heavy = Objective(weights={"error_rate": 4.0})
    assert titles(proposed, report=diagnosis, objective=failure_heavy) == [retry, swap]


def test_a_hypothesis_breaking_a_hard_constraint_ranks_last_with_the_reason() -> None:
    """A retry expected to add 50% latency would take p95 from 250 ms past a 300 ms SLO: it
    ranks last, on the frontier or not, and says which constraint it would break."""
    slow_cure = hypothesis("fetch_account", "error_rate", error_rate=-0.9, latency=0.5)
    small_gain = hypothesis("fetch_history", latency=-0.05)
    slo = Objective(constraints=[Constraint(metric="p95_latency_ms", max=300)])
    ranking = rank_hypotheses([slow_cure, small_gain], objective=slo, report=report(errors=60))
    assert [r.title for r in ranking] == ["tune fetch_history", "tune fetch_account"]
    assert ranking[1].breaks_constraint == "p95_latency_ms <= 300 (375 expected, 250 now)"
    assert ranking[1].why.startswith("ranked last: expected to break p95_latency_ms <= 300")
    assert ranking[1].front == 1


def test_without_the_constraint_the_cure_comes_first() -> None:
    """The same two hypotheses without an SLO: curing 90% of a 30% failure rate wins."""
    slow_cure = hypothesis("fetch_account", "error_rate", error_rate=-0.9, latency=0.5)
    small_gain = hypothesis("fetch_history", latency=-0.05)
    ranking = rank_hypotheses([small_gain, slow_cure], objective=Objective(), report=report(60))
    assert [r.title for r in ranking] == ["tune fetch_account", "tune fetch_history"]
    assert ranking[0].breaks_constraint is None


def test_in_ranked_order_follows_the_ranking() -> None:
    """The hypotheses come back in the ranking's order, one each."""
    first, second = hypothesis("fetch_account", latency=-0.1), hypothesis("draft", latency=-0.3)
    ranking = rank_hypotheses([first, second, first], objective=Objective(), report=report())
    assert in_ranked_order([first, second], ranking) == [second, first]


def test_a_gain_its_window_cannot_decide_yields_to_one_it_can() -> None:
    """Decidability scales the expected gain: the larger gain whose window decides with a tenth
    of the design's power ranks after a smaller one whose window decides; the reason says so,
    and a hypothesis without a figure counts as decidable."""
    big = hypothesis("fetch_account", latency=-0.3, cost=0.05)
    small = hypothesis("fetch_history", latency=-0.1, cost=-0.05)
    unplanned = hypothesis("draft", latency=-0.05, cost=-0.01)
    assert titles([big, small]) == ["tune fetch_account", "tune fetch_history"]
    odds = {big.hypothesis_id: 0.1, small.hypothesis_id: 1.0}
    ranking = rank_hypotheses(
        [big, small, unplanned], objective=Objective(), report=report(), decidability=odds
    )
    assert [r.title for r in ranking] == ["tune fetch_history", "tune fetch_account", "tune draft"]
    assert ranking[1].decidability == 0.1 and ranking[1].score == pytest.approx(
        0.1 * -ranking[1].objective_change
    )
    assert "decides with about 10% of the design's power" in ranking[1].why
    assert ranking[0].decidability == 1.0 and "power" not in ranking[0].why
    assert ranking[2].decidability is None


def test_decidability_never_lifts_an_expected_loss() -> None:
    """An expected loss keeps its score whatever its window's odds: a harmful change with poor
    odds does not climb above a less harmful one with good odds (neither dominates the other)."""
    worse = hypothesis("fetch_account", latency=0.3, cost=-0.05)
    bad = hypothesis("fetch_history", latency=0.1)
    odds = {worse.hypothesis_id: 0.01, bad.hypothesis_id: 1.0}
    ranking = rank_hypotheses(
        [worse, bad], objective=Objective(), report=report(), decidability=odds
    )
    assert [r.title for r in ranking] == ["tune fetch_history", "tune fetch_account"]
    assert [r.front for r in ranking] == [1, 1]
    assert ranking[1].score < 0
    assert ranking[1].score == pytest.approx(-ranking[1].objective_change)


def test_among_undecidable_gains_the_larger_comes_first() -> None:
    """Two gains whose windows cannot decide at all keep the order of their gains."""
    small = hypothesis("fetch_history", latency=-0.1, cost=0.05)
    big = hypothesis("fetch_account", latency=-0.3, cost=0.1)
    odds = {small.hypothesis_id: 0.0, big.hypothesis_id: 0.0}
    ranking = rank_hypotheses(
        [small, big], objective=Objective(), report=report(), decidability=odds
    )
    assert [r.title for r in ranking] == ["tune fetch_account", "tune fetch_history"]
    assert [r.score for r in ranking] == [0.0, 0.0]


def test_a_latency_gain_is_priced_against_the_successful_runs_mean() -> None:
    """Where failed runs are slow (the runs' mean latency twice the successful runs'), a
    relative latency gain is worth twice as much of the owner's loss, which divides latency
    by the successful runs' mean: it now outranks an error cure it ranked behind."""
    cure = hypothesis("fetch_account", "error_rate", error_rate=-0.5)  # 1.0 x -0.5 x 10% = -0.05
    faster = hypothesis("fetch_history", latency=-0.15)  # 0.25 x -0.15 = -0.0375
    assert titles([faster, cure], report=report(errors=20)) == [
        "tune fetch_account",
        "tune fetch_history",
    ]
    slow_failures = analyze(
        support_spec(),
        healthy_node_stats(),
        version_stats(errors=20).model_copy(update={"mean_ms": 400.0, "mean_ok_ms": 200.0}),
    )
    ranking = rank_hypotheses([cure, faster], objective=Objective(), report=slow_failures)
    assert [r.title for r in ranking] == ["tune fetch_history", "tune fetch_account"]
    assert ranking[0].objective_change == pytest.approx(-0.075)
