"""Learned patterns: per graph and across graphs with each graph's weight, intervals on the
success rate and the realised / expected effect, verdicts read from the intervals."""

from __future__ import annotations

import pytest

from spark.experience import Attempt, AttemptRecord, ExperienceStore, Outcome
from spark.experience.patterns import Observation, extract, success_interval, t_interval
from spark.experience.records import NodeCharacteristics
from spark.rsi.hypotheses import AddCache, Hypothesis


def _obs(graph_id: str, outcome: str, node_type: str = "llm", **kw: float) -> Observation:
    return Observation(
        graph_id=graph_id,
        diagnosis_kind="repeated_inputs",
        change_kinds=("add_cache",),
        outcome=outcome,
        node_types=(node_type,),
        depths=(2,),
        fan_outs=(1,),
        **kw,  # type: ignore[arg-type]
    )


def test_patterns_per_graph_and_across_graphs_with_weights() -> None:
    """Each graph gets its own pattern; the pattern across graphs pools them and shows each
    graph's share of the decided attempts."""
    observations = [_obs("g1", "rejected_test") for _ in range(3)] + [_obs("g2", "shipped")]
    patterns = {p.pattern_id: p for p in extract(observations)}

    g1 = patterns["g1|repeated_inputs|add_cache|*"]
    pooled = patterns["*|repeated_inputs|add_cache|*"]
    assert (g1.successes, g1.failures, g1.graph_weights) == (0, 3, {"g1": 1.0})
    assert (pooled.successes, pooled.failures) == (1, 3)
    assert pooled.graph_weights == {"g1": 0.75, "g2": 0.25}
    assert "this graph's weight 0.25" in pooled.describe("g2")
    assert "g1|repeated_inputs|add_cache|llm" in patterns  # by node type too


def test_thin_evidence_is_never_an_anti_pattern() -> None:
    """Three failures without a success leave the interval reaching even odds (undecided); a
    fourth excludes it (anti-pattern); one success among them takes it back to undecided."""
    three = extract([_obs("g1", "rejected_test") for _ in range(3)])[0]
    four = extract([_obs("g1", "rolled_back") for _ in range(4)])[0]
    mixed = extract([_obs("g1", "rolled_back") for _ in range(4)] + [_obs("g1", "shipped")])[0]

    assert three.verdict == "undecided" and three.rate_high > 0.5
    assert four.verdict == "anti" and four.rate_high < 0.5
    assert mixed.verdict == "undecided"


def test_success_pattern_needs_the_interval_above_even_odds() -> None:
    """Four successes make a success pattern; undecided tests and refusals count for neither."""
    shipped = [_obs("g1", "shipped", effect=-0.2, expected_effect=-0.3) for _ in range(4)]
    noise = [_obs("g1", "inconclusive"), _obs("g1", "rejected_validation")]
    pattern = extract(shipped + noise)[0]

    assert pattern.verdict == "success" and pattern.rate_low > 0.5
    assert (pattern.attempts, pattern.undecided) == (4, 1)
    assert pattern.effect_ratio == pytest.approx(2 / 3)


def test_a_harmful_realised_effect_is_an_anti_pattern() -> None:
    """Shipped changes whose measured latency went up on every attempt are an anti-pattern even
    though they shipped: the realised improvement's interval lies below zero."""
    harmful = [_obs("g1", "shipped", effect=e, expected_effect=-0.3) for e in (0.1, 0.12, 0.09)]
    pattern = extract(harmful)[0]

    assert pattern.gain_high is not None and pattern.gain_high < 0
    assert pattern.verdict == "anti"
    assert pattern.effect_ratio_high is not None and pattern.effect_ratio_high < 0


def test_intervals() -> None:
    """The success interval is the Beta(1+s, 1+f) posterior's; the t interval needs two values."""
    low, high = success_interval(0, 0)
    assert low == pytest.approx(0.05) and high == pytest.approx(0.95)
    assert t_interval([0.5]) is None
    assert t_interval([0.2, 0.2]) == (0.2, 0.2)
    t_low, t_high = t_interval([0.1, 0.3])  # type: ignore[misc]
    assert t_low < 0.2 < t_high


def _attempt(graph_id: str, cycle: int, outcome: Outcome) -> tuple[Attempt, AttemptRecord]:
    hypothesis = Hypothesis(
        graph_id=graph_id,
        base_version_id="v1",
        title="cache classify",
        diagnosis="repeated_inputs: repeats",
        changes=[AddCache(node_id="classify", ttl_s=60)],
        expected_effects={"latency": -0.3},
    )
    attempt = Attempt.from_hypothesis(
        hypothesis, cycle=cycle, diagnosis_kind="repeated_inputs", outcome=outcome, effect=0.05
    )
    record = AttemptRecord(
        attempt_id=attempt.attempt_id,
        graph_id=graph_id,
        cycle=cycle,
        base_version_id="v1",
        hypothesis=hypothesis,
        diagnosis_kind="repeated_inputs",
        outcome=outcome,
        expected_effect=-0.3,
        targets=[NodeCharacteristics(node_id="classify", node_type="llm", depth=1, fan_out=1)],
    )
    return attempt, record


def test_the_store_extracts_and_serves_patterns_by_graph(database_url: str) -> None:
    """Extraction reads attempts with their records (node types from the record), stores the
    patterns, and ``learned_patterns(graph)`` serves that graph's and the pooled ones only."""
    store = ExperienceStore(database_url)
    for cycle in range(1, 5):
        store.record_attempt(*_attempt("g1", cycle, "rejected_test"))
    store.record_attempt(*_attempt("g2", 1, "shipped"))

    extracted = store.extract_learned_patterns()
    served = {p.pattern_id: p for p in store.learned_patterns("g1")}

    assert len(extracted) == 6  # (g1, g2, *) x (any type, llm)
    assert set(served) == {
        "*|repeated_inputs|add_cache|*",
        "*|repeated_inputs|add_cache|llm",
        "g1|repeated_inputs|add_cache|*",
        "g1|repeated_inputs|add_cache|llm",
    }
    assert served["g1|repeated_inputs|add_cache|llm"].verdict == "anti"
    assert served["*|repeated_inputs|add_cache|*"].graph_weights == {"g1": 0.8, "g2": 0.2}
    assert served["*|repeated_inputs|add_cache|llm"].effect_ratio == pytest.approx(-1 / 6)


def test_a_pattern_counts_the_predictions_it_checked() -> None:
    """Two attempts measured an effect against a prediction, one did not: the realised /
    expected ratio is their mean, over two."""
    observations = [
        _obs("g1", "shipped", effect=-0.1, expected_effect=-0.4),
        _obs("g1", "rejected_test", effect=0.02, expected_effect=-0.4),
        _obs("g1", "shipped"),
    ]
    pattern = {p.pattern_id: p for p in extract(observations)}["g1|repeated_inputs|add_cache|*"]
    assert pattern.effect_ratio_count == 2
    assert pattern.effect_ratio == pytest.approx((0.25 - 0.05) / 2)
