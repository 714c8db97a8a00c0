"""Pattern extraction: success patterns and anti-patterns from the recorded attempts.

Attempts group by scope (each graph on its own, and all graphs together) x diagnosis kind x
change kind x node type of the touched nodes (and ``*`` for any type). Only decided attempts
count toward the success rate: ``shipped`` is a success, ``rejected_test`` and ``rolled_back``
are failures (measured no good, or harm); an undecided test (``inconclusive``, ``invalid_test``)
is retried by the proposal policy and is no verdict here either; a refusal by validation or a
reviewer says nothing about the change's effect.

The success rate's interval is the equal-tailed credible interval of its Beta posterior under a
uniform prior (``scipy.stats.beta``) at ``PATTERN_CONFIDENCE``; the realised improvement and the
realised / expected effect ratio get Student t intervals (two or more measurements). The verdict
(``spark.rsi.patterns``) is read from these intervals, never from a count threshold: a pattern is
an anti-pattern only once the evidence excludes "works at least half the time", which a few
failures cannot do (at 90 %, four failures without a success are the fewest that can).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import fmean, stdev

from scipy import stats

from spark.rsi.patterns import ALL_GRAPHS, ANY_NODE_TYPE, LearnedPattern, Verdict

PATTERN_CONFIDENCE = 0.9
"""Credibility of the intervals verdicts are read from."""
SUCCESS_OUTCOMES = frozenset({"shipped"})
FAILURE_OUTCOMES = frozenset({"rejected_test", "rolled_back"})
UNDECIDED_OUTCOMES = frozenset({"inconclusive", "invalid_test"})
EVEN_ODDS = 0.5


@dataclass(frozen=True)
class Observation:
    """One attempt as pattern extraction sees it."""

    graph_id: str
    diagnosis_kind: str
    change_kinds: tuple[str, ...]
    outcome: str
    primary_metric: str = "latency"
    effect: float | None = None
    expected_effect: float | None = None
    node_types: tuple[str, ...] = ()
    depths: tuple[int, ...] = ()
    fan_outs: tuple[int, ...] = ()

    @property
    def gain(self) -> float | None:
        """The realised improvement: the effect with its sign turned so that positive is better."""
        if self.effect is None:
            return None
        return self.effect if self.primary_metric == "quality" else -self.effect

    @property
    def ratio(self) -> float | None:
        """Realised over expected effect (1 = as expected, negative = the opposite way)."""
        if self.effect is None or not self.expected_effect:
            return None
        return self.effect / self.expected_effect


@dataclass
class _Group:
    successes: int = 0
    failures: int = 0
    undecided: int = 0
    graphs: Counter[str] = field(default_factory=Counter)
    gains: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    depths: set[int] = field(default_factory=set)
    fan_outs: set[int] = field(default_factory=set)

    def add(self, obs: Observation) -> None:
        if obs.outcome in UNDECIDED_OUTCOMES:
            self.undecided += 1
            return
        self.successes += obs.outcome in SUCCESS_OUTCOMES
        self.failures += obs.outcome in FAILURE_OUTCOMES
        self.graphs[obs.graph_id] += 1
        self.gains += [] if obs.gain is None else [obs.gain]
        self.ratios += [] if obs.ratio is None else [obs.ratio]
        self.depths.update(obs.depths)
        self.fan_outs.update(obs.fan_outs)


_Key = tuple[str, str, str, str]  # scope, diagnosis kind, change kind, node type


def extract(observations: Iterable[Observation]) -> list[LearnedPattern]:
    """Every pattern with at least one decided attempt, ordered by pattern id."""
    groups: dict[_Key, _Group] = defaultdict(_Group)
    for obs in observations:
        if obs.outcome not in SUCCESS_OUTCOMES | FAILURE_OUTCOMES | UNDECIDED_OUTCOMES:
            continue
        for key in _keys(obs):
            groups[key].add(obs)
    patterns = [_pattern(key, g) for key, g in groups.items() if g.successes + g.failures > 0]
    return sorted(patterns, key=lambda p: p.pattern_id)


def _keys(obs: Observation) -> list[_Key]:
    types = (ANY_NODE_TYPE, *dict.fromkeys(obs.node_types))
    return [
        (scope, obs.diagnosis_kind, change, node_type)
        for scope in (obs.graph_id, ALL_GRAPHS)
        for change in dict.fromkeys(obs.change_kinds)
        for node_type in types
    ]


def _pattern(key: _Key, group: _Group) -> LearnedPattern:
    scope, diagnosis_kind, change_kind, node_type = key
    decided = group.successes + group.failures
    low, high = success_interval(group.successes, group.failures)
    gain = t_interval(group.gains)
    ratio = t_interval(group.ratios)
    return LearnedPattern(
        scope=scope,
        diagnosis_kind=diagnosis_kind,
        change_kind=change_kind,
        node_type=node_type,
        attempts=decided,
        successes=group.successes,
        failures=group.failures,
        undecided=group.undecided,
        success_rate=group.successes / decided,
        mean_effect=None,
        confidence=PATTERN_CONFIDENCE,
        rate_low=low,
        rate_high=high,
        effect_ratio=fmean(group.ratios) if group.ratios else None,
        effect_ratio_low=ratio[0] if ratio else None,
        effect_ratio_high=ratio[1] if ratio else None,
        effect_ratio_count=len(group.ratios),
        gain_low=gain[0] if gain else None,
        gain_high=gain[1] if gain else None,
        graph_weights={g: round(n / decided, 4) for g, n in sorted(group.graphs.items())},
        depths=sorted(group.depths),
        fan_outs=sorted(group.fan_outs),
        verdict=verdict(low, high, gain),
    )


def success_interval(
    successes: int, failures: int, confidence: float = PATTERN_CONFIDENCE
) -> tuple[float, float]:
    """The equal-tailed credible interval of the success rate (Beta(1 + s, 1 + f) posterior)."""
    tail = (1 - confidence) / 2
    posterior = stats.beta(successes + 1, failures + 1)
    return float(posterior.ppf(tail)), float(posterior.ppf(1 - tail))


def t_interval(
    values: Sequence[float], confidence: float = PATTERN_CONFIDENCE
) -> tuple[float, float] | None:
    """Student t interval on the mean of ``values``; None with fewer than two."""
    if len(values) < 2:
        return None
    mean, spread = fmean(values), stdev(values) / math.sqrt(len(values))
    if spread == 0:
        return mean, mean
    low, high = stats.t.interval(confidence, len(values) - 1, loc=mean, scale=spread)
    return float(low), float(high)


def verdict(low: float, high: float, gain: tuple[float, float] | None) -> Verdict:
    """``anti`` when the rate's interval lies below even odds or the realised improvement's
    lies below zero; ``success`` when the rate's lies above even odds and the improvement's
    does not lie below zero; ``undecided`` otherwise."""
    harmful = gain is not None and gain[1] < 0
    if high < EVEN_ODDS or harmful:
        return "anti"
    if low > EVEN_ODDS:
        return "success"
    return "undecided"
