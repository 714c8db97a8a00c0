"""MultiObjectiveOptimizer: the public face of the workflow's ranking (weights, constraints,
Pareto frontier), computed by the same functions."""

from __future__ import annotations

import pytest

from spark.rsi.analysis import DiagnosticReport, analyze
from spark.rsi.hypotheses import Hypothesis, Metric, SetConfig
from spark.rsi.objectives import Objective
from spark.rsi.optimizer import MultiObjectiveOptimizer
from spark.rsi.ranking import rank_hypotheses
from tests.rsi.builders import healthy_node_stats, support_spec, version_stats


def hypothesis(title: str, **effects: float) -> Hypothesis:
    """A one-change hypothesis with the given expected effects."""
    return Hypothesis(
        graph_id="support",
        base_version_id="v1",
        title=title,
        diagnosis="costly_model: test",
        changes=[SetConfig(node_id="draft", values={"model": title})],
        expected_effects=effects,
    )


CHEAP = hypothesis("cheap", cost=-0.6, quality=-0.05)
FAST = hypothesis("fast", latency=-0.5)
BOTH = hypothesis("both", latency=-0.2, cost=-0.2)
WORSE = hypothesis("worse", latency=-0.1, cost=-0.1)  # dominated by BOTH
ALL = [WORSE, CHEAP, FAST, BOTH]


def report() -> DiagnosticReport:
    """A quiet support_spec report (quality known: 0.9)."""
    return analyze(support_spec(), healthy_node_stats(), version_stats(mean_quality=0.9))


def titles(items: list[Hypothesis]) -> list[str]:
    """The titles, in order."""
    return [h.title for h in items]


def test_the_ranking_is_the_workflows_ranking() -> None:
    """rank() returns exactly what rank_hypotheses gives for the same objective."""
    weights: dict[Metric, float] = {"cost": 1.0, "latency": 0.1, "quality": 0.0}
    optimizer = MultiObjectiveOptimizer(weights=weights)
    expected = rank_hypotheses(ALL, objective=Objective(weights=weights), report=report())
    assert optimizer.rank(ALL, report()) == expected
    assert expected[0].title == "cheap"


def test_weights_decide_the_order_on_the_frontier() -> None:
    """A latency-minded owner puts fast first; a cost-minded one cheap."""
    latency = MultiObjectiveOptimizer(weights={"latency": 1.0, "cost": 0.0})
    cost = MultiObjectiveOptimizer(weights={"latency": 0.0, "cost": 1.0, "quality": 0.0})
    assert latency.rank(ALL, report())[0].title == "fast"
    assert cost.rank(ALL, report())[0].title == "cheap"


def test_the_frontier_holds_exactly_the_non_dominated_hypotheses() -> None:
    """worse is dominated by both; the rest form the frontier, in ranked order."""
    optimizer = MultiObjectiveOptimizer(weights={"cost": 1.0, "latency": 0.5, "quality": 0.0})
    frontier = optimizer.pareto_frontier(ALL, report())
    assert set(titles(frontier.solutions)) == {"cheap", "fast", "both"}
    assert titles(frontier.dominated_solutions) == ["worse"]
    assert frontier.total_evaluated == 4
    ranked = [r.title for r in optimizer.rank(ALL, report()) if r.front == 1]
    assert titles(frontier.solutions) == ranked


def test_a_constraint_sends_its_breaker_last() -> None:
    """With quality >= 0.88, cheap (quality -5% of 0.9 = 0.855) breaks it and ranks last."""
    optimizer = MultiObjectiveOptimizer(
        weights={"cost": 1.0, "quality": 0.0}, constraints=[{"metric": "quality", "min": 0.88}]
    )
    assert optimizer.constraint_violation(CHEAP, report()) is not None
    assert optimizer.constraint_violation(FAST, report()) is None
    assert optimizer.rank(ALL, report())[-1].title == "cheap"


def test_objective_change_is_the_expected_loss_change() -> None:
    """cost -0.6 at weight 1 and quality -0.05 at weight 0.5: +0.025 - 0.6."""
    optimizer = MultiObjectiveOptimizer(weights={"cost": 1.0, "quality": 0.5})
    assert optimizer.objective_change(CHEAP, report()) == pytest.approx(-0.6 + 0.025)


def test_the_graphs_declared_objective_is_used_and_mixing_forms_is_refused() -> None:
    """for_graph reads the spec's metadata; an objective plus weights is ambiguous."""
    spec = support_spec().model_copy(update={"metadata": {"objective": {"weights": {"cost": 3}}}})
    assert MultiObjectiveOptimizer.for_graph(spec).objective.weight("cost") == 3
    with pytest.raises(ValueError, match="not both"):
        MultiObjectiveOptimizer(Objective(), weights={"cost": 1.0})
