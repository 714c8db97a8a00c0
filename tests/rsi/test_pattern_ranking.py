"""Learned patterns in ranking and in the LLM prompt: an anti-pattern suppresses a hypothesis,
a success pattern raises one, this graph's pattern governs before the pooled one, and the
reasons and the prompt say so."""

from __future__ import annotations

import json

from spark.rsi.analysis import DiagnosticReport, analyze
from spark.rsi.hypotheses import Hypothesis, SetConfig
from spark.rsi.llm_generator import build_prompt, system_prompt
from spark.rsi.objectives import Objective
from spark.rsi.patterns import LearnedPattern, Verdict, generator_hints
from spark.rsi.ranking import rank_hypotheses
from tests.rsi.builders import healthy_node_stats, support_spec, version_stats

NODE_TYPES = {"fetch_account": "http", "fetch_history": "llm"}


def _report() -> DiagnosticReport:
    return analyze(support_spec(), healthy_node_stats(), version_stats())


def _hypothesis(node_id: str, latency: float) -> Hypothesis:
    return Hypothesis(
        graph_id="support",
        base_version_id="v1",
        title=f"tune {node_id}",
        diagnosis="latency problem",
        changes=[SetConfig(node_id=node_id, values={"timeout_s": 1.0})],
        expected_effects={"latency": latency},
    )


def _pattern(
    verdict: Verdict, node_type: str, scope: str = "*", successes: int = 0, failures: int = 0
) -> LearnedPattern:
    attempts = successes + failures
    return LearnedPattern(
        scope=scope,
        diagnosis_kind="latency",
        change_kind="set_config",
        node_type=node_type,
        verdict=verdict,
        attempts=attempts,
        successes=successes,
        failures=failures,
        success_rate=successes / attempts,
        rate_low=0.0 if verdict == "anti" else 0.55,
        rate_high=0.37 if verdict == "anti" else 0.99,
        graph_weights={"other": 0.6, "support": 0.4} if scope == "*" else {scope: 1.0},
    )


def _rank(hypotheses: list[Hypothesis], learned: list[LearnedPattern]) -> list[tuple[str, str]]:
    ranking = rank_hypotheses(
        hypotheses,
        objective=Objective(),
        report=_report(),
        learned=learned,
        node_types=NODE_TYPES,
    )
    return [(r.title, r.why) for r in ranking]


def test_an_anti_pattern_suppresses_even_a_dominating_hypothesis() -> None:
    """The hypothesis on an LLM node expects more and ranks first without patterns; an
    anti-pattern for its change on LLM nodes ranks it after the other, saying why (with the
    interval and this graph's weight), and it is not dropped."""
    better, other = _hypothesis("fetch_history", -0.5), _hypothesis("fetch_account", -0.2)
    assert [t for t, _ in _rank([better, other], [])] == [
        "tune fetch_history",
        "tune fetch_account",
    ]

    ranked = _rank([better, other], [_pattern("anti", "llm", failures=6)])

    assert [t for t, _ in ranked] == ["tune fetch_account", "tune fetch_history"]
    why = ranked[1][1]
    assert "suppressed by anti-pattern" in why
    assert "0/6" in why and "0.00-0.37" in why and "this graph's weight 0.40" in why
    assert "suppressed" not in ranked[0][1]


def test_a_success_pattern_raises_a_hypothesis() -> None:
    """Two equal hypotheses keep the generator's order without patterns; a success pattern
    for the second one's node type raises it above the first, with the reason shown."""
    first, second = _hypothesis("fetch_account", -0.3), _hypothesis("fetch_history", -0.3)
    assert _rank([first, second], [])[0][0] == "tune fetch_account"

    ranked = _rank([first, second], [_pattern("success", "llm", successes=5)])

    assert ranked[0][0] == "tune fetch_history"
    assert "raised by success pattern" in ranked[0][1] and "5/5" in ranked[0][1]


def test_this_graphs_pattern_governs_before_the_pooled_one() -> None:
    """A success on this graph outweighs an anti-pattern across graphs for the same change."""
    pooled_anti = _pattern("anti", "llm", failures=8)
    own_success = _pattern("success", "*", scope="support", successes=4)

    ranked = _rank([_hypothesis("fetch_history", -0.3)], [pooled_anti, own_success])

    assert "raised by success pattern" in ranked[0][1] and "on this graph" in ranked[0][1]


def test_generator_hints_prefer_this_graph() -> None:
    """The rule generator gets one hint per diagnosis and change kind: this graph's if any."""
    hints = generator_hints(
        [_pattern("anti", "*", failures=5), _pattern("success", "*", scope="support", successes=4)],
        "support",
    )
    assert [(h.success_rate, h.attempts) for h in hints] == [(1.0, 4)]


def test_the_llm_prompt_shows_success_patterns_and_anti_patterns() -> None:
    """The prompt lists the success patterns and the anti-patterns each in a line with the
    interval and graph weight, and the instructions say to avoid anti-patterns."""
    patterns = [_pattern("anti", "llm", failures=6), _pattern("success", "http", successes=5)]

    context = json.loads(build_prompt(_report(), support_spec(), patterns))

    assert len(context["learned_patterns"]) == 2
    assert context["anti_patterns"] == [patterns[0].describe("support")]
    assert context["success_patterns"] == [patterns[1].describe("support")]
    assert "on 'llm' nodes succeeded 0/6" in context["anti_patterns"][0]
    assert 'Avoid the "anti_patterns"' in system_prompt(3, "Reply with JSON.")
