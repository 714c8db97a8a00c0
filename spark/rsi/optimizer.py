"""``MultiObjectiveOptimizer``: the owner's weights, hard constraints and the Pareto frontier as
a public API, over the very functions the workflow ranks with (``spark.rsi.ranking``).

>>> optimizer = MultiObjectiveOptimizer(weights={"cost": 1.0, "latency": 0.1},
...                                     constraints=[{"metric": "quality", "min": 0.8}])
>>> optimizer.rank(hypotheses, report)            # doctest: +SKIP
>>> optimizer.pareto_frontier(hypotheses, report)  # doctest: +SKIP

Every hypothesis is judged by its expected effects (relative change per metric). ``rank`` is
``rank_hypotheses`` with this objective: constraint breakers last, then by Pareto front, then by
the expected objective change times the learned evidence. ``pareto_frontier`` splits the
hypotheses into the non-dominated ones (in ranked order) and the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from spark.graphs.spec import GraphSpec
from spark.rsi.analysis import DiagnosticReport
from spark.rsi.contracts import RankedHypothesis
from spark.rsi.generator import PatternHint
from spark.rsi.hypotheses import Hypothesis, Metric
from spark.rsi.objectives import Constraint, Objective, expected_objective_change, objective_of
from spark.rsi.ranking import (
    broken_constraint,
    effect_vector,
    in_ranked_order,
    pareto_fronts,
    rank_hypotheses,
)


class ParetoFrontier(BaseModel):
    """The hypotheses no other dominates (best first, by the objective) and the dominated."""

    model_config = ConfigDict(extra="forbid")

    solutions: list[Hypothesis] = Field(default_factory=list)
    dominated_solutions: list[Hypothesis] = Field(default_factory=list)
    total_evaluated: int = 0


class MultiObjectiveOptimizer:
    """Weights over error rate, latency, cost and quality, hard constraints, and the frontier."""

    def __init__(
        self,
        objective: Objective | None = None,
        *,
        weights: Mapping[Metric, float] | None = None,
        constraints: Sequence[Constraint | Mapping[str, Any]] | None = None,
    ) -> None:
        """``objective`` as is, or one built from ``weights`` (missing metrics keep their
        defaults) and ``constraints`` (``Constraint`` s or their dict form); not both."""
        if objective is not None and (weights is not None or constraints is not None):
            raise ValueError("pass an objective, or weights and constraints, not both")
        self.objective = objective or Objective.model_validate(
            {"weights": dict(weights or {}), "constraints": list(constraints or [])}
        )

    @classmethod
    def for_graph(
        cls, spec: GraphSpec, override: Objective | None = None
    ) -> MultiObjectiveOptimizer:
        """The optimizer for the objective a graph declares (``objective_of``)."""
        return cls(objective_of(spec.metadata, override))

    def objective_change(self, hypothesis: Hypothesis, report: DiagnosticReport) -> float:
        """The expected change of the owner's loss per request (negative = better)."""
        return expected_objective_change(
            self.objective, _effects(hypothesis), report.run_error_rate, report.latency_scale
        )

    def constraint_violation(self, hypothesis: Hypothesis, report: DiagnosticReport) -> str | None:
        """The hard constraint the hypothesis' expected effects would break, if any."""
        return broken_constraint(self.objective, _effects(hypothesis), report)

    def rank(
        self,
        hypotheses: Sequence[Hypothesis],
        report: DiagnosticReport,
        patterns: Sequence[PatternHint] = (),
    ) -> list[RankedHypothesis]:
        """The workflow's ranking (``rank_hypotheses``) under this objective, best first."""
        return rank_hypotheses(
            hypotheses, objective=self.objective, report=report, patterns=patterns
        )

    def pareto_frontier(
        self,
        hypotheses: Sequence[Hypothesis],
        report: DiagnosticReport,
        patterns: Sequence[PatternHint] = (),
    ) -> ParetoFrontier:
        """Front 1 of the expected effects (in ranked order) and the dominated rest."""
        ranked = in_ranked_order(hypotheses, self.rank(hypotheses, report, patterns))
        fronts = pareto_fronts([effect_vector(_effects(h)) for h in ranked])
        return ParetoFrontier(
            solutions=[h for h, front in zip(ranked, fronts, strict=True) if front == 1],
            dominated_solutions=[h for h, front in zip(ranked, fronts, strict=True) if front > 1],
            total_evaluated=len(ranked),
        )


def _effects(hypothesis: Hypothesis) -> dict[str, float]:
    """The expected effects keyed by plain metric names (what ``spark.rsi.ranking`` takes)."""
    return {metric: effect for metric, effect in hypothesis.expected_effects.items()}
