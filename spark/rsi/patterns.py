"""Learned patterns, as generation and ranking use them.

A ``LearnedPattern`` is what the experience store measured about one change kind answering one
diagnosis kind, on one graph (``scope`` its id) or across graphs (``scope`` ``"*"``), on nodes of
one type (``node_type``, ``"*"`` for any): the decided attempts (shipped vs. rejected on evidence
or rolled back), a credible interval on the success rate, the realised effect against the
expected one, and the depths and fan-outs it was seen at. Its ``verdict``:

- ``anti``: the success rate's interval lies below 1/2 (confidently fails more often than it
  works), or the realised effect's interval lies on the harmful side;
- ``success``: the interval lies above 1/2 and the effect is not harmful;
- ``undecided``: anything thinner.

A hypothesis is judged by the most specific decided pattern matching it (this graph before all
graphs, its target's node type before any type): an anti-pattern **suppresses** it (ranked after
every unsuppressed hypothesis, never dropped, so new evidence can still lift the verdict), a
success pattern **raises** it (a larger evidence weight); both say so in the ranking's reasons.

The same pattern checks the rules' predictions against what the tests measured: its realised /
expected effect ratio, shrunk toward the prior ``PRIOR_PREDICTION_SHARE`` by
``PRIOR_PREDICTION_WEIGHT`` pseudo-attempts, is the ``prediction_share`` an online window is
powered for (the share of the predicted gain to expect). A rule that keeps overpromising gets
longer windows, one whose predictions come true shorter ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from spark.rsi.generator import PatternHint, diagnosis_category, diagnosis_kind_of
from spark.rsi.hypotheses import Hypothesis, touched_nodes

ALL_GRAPHS = "*"
ANY_NODE_TYPE = "*"
Verdict = Literal["success", "anti", "undecided"]


class LearnedPattern(PatternHint):
    """One pattern with its evidence (see the module docstring). ``attempts`` counts decided
    attempts; ``success_rate`` is their observed share of successes."""

    scope: str = ALL_GRAPHS
    node_type: str = ANY_NODE_TYPE
    verdict: Verdict = "undecided"
    successes: int = Field(default=0, ge=0)
    failures: int = Field(default=0, ge=0)
    undecided: int = Field(default=0, ge=0, description="inconclusive or invalid tests")
    confidence: float = Field(default=0.9, gt=0, lt=1)
    rate_low: float = Field(default=0.0, ge=0, le=1)
    rate_high: float = Field(default=1.0, ge=0, le=1)
    effect_ratio: float | None = Field(
        default=None, description="mean realised / expected change of the primary metric"
    )
    effect_ratio_low: float | None = None
    effect_ratio_high: float | None = None
    effect_ratio_count: int = Field(default=0, ge=0, description="attempts behind effect_ratio")
    gain_low: float | None = Field(
        default=None, description="interval on the realised improvement (positive = better)"
    )
    gain_high: float | None = None
    graph_weights: dict[str, float] = Field(
        default_factory=dict, description="each graph's share of the decided attempts"
    )
    depths: list[int] = Field(default_factory=list, description="depths of the touched nodes")
    fan_outs: list[int] = Field(default_factory=list)

    @property
    def pattern_id(self) -> str:
        """``"<scope>|<diagnosis kind>|<change kind>|<node type>"``."""
        return f"{self.scope}|{self.diagnosis_kind}|{self.change_kind}|{self.node_type}"

    def describe(self, graph_id: str | None = None) -> str:
        """One line: what, where, how often it worked with its interval, the effect ratio."""
        where = "" if self.node_type == ANY_NODE_TYPE else f" on {self.node_type!r} nodes"
        line = (
            f"{self.change_kind} for {self.diagnosis_kind}{where} succeeded "
            f"{self.successes}/{self.attempts} ({self.confidence:.0%} interval "
            f"{self.rate_low:.2f}-{self.rate_high:.2f}) {self._scope_text(graph_id)}"
        )
        if self.effect_ratio is not None:
            line += f", realised/expected effect {self.effect_ratio:.2g}"
            if self.effect_ratio_low is not None and self.effect_ratio_high is not None:
                line += f" ({self.effect_ratio_low:.2g} to {self.effect_ratio_high:.2g})"
        return line

    def _scope_text(self, graph_id: str | None) -> str:
        if self.scope != ALL_GRAPHS:
            return "on this graph" if self.scope == graph_id else f"on graph {self.scope!r}"
        text = f"across {len(self.graph_weights)} graph(s)"
        if graph_id is not None:
            text += f" (this graph's weight {self.graph_weights.get(graph_id, 0.0):.2f})"
        return text


@dataclass(frozen=True)
class PatternJudgement:
    """What the learned patterns say about one hypothesis."""

    weight: float
    attempts: int
    verdict: Verdict
    note: str
    prediction_share: float | None = None

    @property
    def suppressed(self) -> bool:
        """Whether an anti-pattern pushes the hypothesis down."""
        return self.verdict == "anti"


def judge_by_patterns(
    hypothesis: Hypothesis,
    patterns: Sequence[LearnedPattern],
    node_types: Mapping[str, str],
) -> PatternJudgement | None:
    """The governing pattern's judgement of ``hypothesis`` (see the module docstring); None
    when no pattern matches. ``node_types`` maps the base graph's node ids to their types."""
    governing = [
        g
        for kind in dict.fromkeys(hypothesis.change_kinds)
        if (g := _governing(_matching(hypothesis, kind, patterns, node_types))) is not None
    ]
    if not governing:
        return None
    chosen = _strongest(governing)
    weight = 2 * (chosen.successes + 1) / (chosen.attempts + 2)
    return PatternJudgement(
        weight=weight,
        attempts=chosen.attempts,
        verdict=chosen.verdict,
        note=_note(chosen, hypothesis.graph_id),
        prediction_share=prediction_share(chosen),
    )


PRIOR_PREDICTION_SHARE = 0.5
"""The share of a predicted gain to expect before any prediction was checked (the planning
default, ``spark.rsi.online.PLANNED_SHARE_OF_PREDICTION``)."""
PRIOR_PREDICTION_WEIGHT = 2.0
"""Pseudo-attempts behind the prior: two checked predictions weigh as much as it."""
PREDICTION_SHARE_BOUNDS = (0.1, 1.0)
"""A window is powered for at least a tenth of the predicted gain (a rule whose predictions
came out the wrong way still gets a finite window, the cap decides) and never for more than
the prediction."""


def prediction_share(pattern: LearnedPattern) -> float | None:
    """The pattern's realised / expected effect ratio shrunk toward the prior, within bounds;
    None when no attempt of it measured an effect against a prediction (or the ratio is not
    finite: an effect relative to a baseline of zero)."""
    ratio = pattern.effect_ratio
    if ratio is None or not math.isfinite(ratio) or pattern.effect_ratio_count <= 0:
        return None
    n = pattern.effect_ratio_count
    shrunk = (PRIOR_PREDICTION_WEIGHT * PRIOR_PREDICTION_SHARE + n * ratio) / (
        PRIOR_PREDICTION_WEIGHT + n
    )
    low, high = PREDICTION_SHARE_BOUNDS
    return min(max(shrunk, low), high)


def generator_hints(patterns: Sequence[LearnedPattern], graph_id: str) -> list[PatternHint]:
    """One hint per diagnosis kind x change kind for the rule generator's own ordering: this
    graph's pattern when it has one, else the pattern across graphs (any node type)."""
    chosen: dict[tuple[str, str], LearnedPattern] = {}
    for pattern in patterns:
        if pattern.node_type != ANY_NODE_TYPE or pattern.scope not in (graph_id, ALL_GRAPHS):
            continue
        key = (pattern.diagnosis_kind, pattern.change_kind)
        if key not in chosen or pattern.scope == graph_id:
            chosen[key] = pattern
    return list(chosen.values())


def _matching(
    hypothesis: Hypothesis,
    change_kind: str,
    patterns: Sequence[LearnedPattern],
    node_types: Mapping[str, str],
) -> list[LearnedPattern]:
    kind = diagnosis_kind_of(hypothesis)
    kinds = (kind, diagnosis_category(kind))
    types = {node_types[n] for c in hypothesis.changes for n in touched_nodes(c) if n in node_types}
    return [
        p
        for p in patterns
        if p.change_kind == change_kind
        and p.diagnosis_kind in kinds
        and p.scope in (hypothesis.graph_id, ALL_GRAPHS)
        and (p.node_type == ANY_NODE_TYPE or p.node_type in types)
        and p.attempts > 0
    ]


def _governing(matching: list[LearnedPattern]) -> LearnedPattern | None:
    """The most specific decided pattern, else the most specific one."""
    ordered = sorted(matching, key=_specificity)
    decided = [p for p in ordered if p.verdict != "undecided"]
    return next(iter(decided or ordered), None)


def _specificity(pattern: LearnedPattern) -> tuple[int, int, int]:
    """Sort key: this graph before all graphs, a node type before any, more evidence first."""
    return (pattern.scope == ALL_GRAPHS, pattern.node_type == ANY_NODE_TYPE, -pattern.attempts)


def _strongest(governing: list[LearnedPattern]) -> LearnedPattern:
    """An anti-pattern on any change kind wins; then a success pattern; then the most evidence."""
    rank = {"anti": 0, "success": 1, "undecided": 2}
    return min(governing, key=lambda p: (rank[p.verdict], -p.attempts))


def _note(pattern: LearnedPattern, graph_id: str) -> str:
    if pattern.verdict == "anti":
        return f"suppressed by anti-pattern: {pattern.describe(graph_id)}"
    if pattern.verdict == "success":
        return f"raised by success pattern: {pattern.describe(graph_id)}"
    return f"pattern undecided: {pattern.describe(graph_id)}"
