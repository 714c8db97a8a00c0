"""RuleBasedGenerator: each rule's proposal, protection, ranking with pattern hints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from spark.errors import InvalidInputError
from spark.graphs.spec import GraphSpec
from spark.rsi.analysis import DiagnosticReport, analyze
from spark.rsi.generator import (
    PROMPT_SECTION,
    HypothesisGenerator,
    PatternHint,
    RuleBasedGenerator,
    diagnosis_kind_of,
    improved_prompt,
    pattern_weight,
)
from spark.rsi.hypotheses import (
    AddCache,
    AddFallback,
    Hypothesis,
    Parallelize,
    SetConfig,
    SetPrompt,
)
from spark.rsi.objectives import Constraint, Objective
from spark.rsi.validation import validate_hypothesis
from spark.telemetry.aggregates import NodeStats
from tests.rsi.builders import (
    edge,
    healthy_node_stats,
    make_spec,
    node,
    node_stats,
    structural_node_stats,
    structural_spec,
    support_spec,
    version_stats,
)

CHAIN = ["classify", "fetch_account", "fetch_history"]
PURE_HISTORY = {"fetch_history": {"tags": ["deterministic"]}}


def transient_errors(node_id: str, errors: int = 30) -> NodeStats:
    """Stats of a node failing with timeouts in ``errors`` of 200 executions."""
    return node_stats(node_id, errors=errors, error_types={"TimeoutError": errors})


def slow_repeated(node_id: str) -> NodeStats:
    """Stats of a slow node that sees mostly repeated inputs."""
    return node_stats(node_id, mean_ms=400, distinct_input_ratio=0.2)


def propose_for(
    spec: GraphSpec,
    stats: Mapping[str, NodeStats],
    *,
    errors: int = 0,
    patterns: tuple[PatternHint, ...] = (),
    max_hypotheses: int = 5,
) -> list[Hypothesis]:
    """Analyze quiet stats overridden by ``stats`` on ``spec``; generate on base version v1."""
    report = analyze(spec, healthy_node_stats(**stats), version_stats(errors=errors))
    return RuleBasedGenerator().generate(
        report, spec, patterns=patterns, base_version_id="v1", max_hypotheses=max_hypotheses
    )


def propose(spec: GraphSpec, errors: int = 0, **stats: NodeStats) -> list[Hypothesis]:
    """``propose_for`` with the node stats as keyword arguments."""
    return propose_for(spec, stats, errors=errors)


def changes_of(hypotheses: list[Hypothesis]) -> list[Any]:
    """The first change of every hypothesis."""
    return [h.changes[0] for h in hypotheses]


def test_transient_errors_on_an_idempotent_node_get_retries_with_backoff() -> None:
    """Mostly transient failures of an idempotent node: retries (three: with the default
    objective, a failure weighs four times a doubled latency, and the third retry still absorbs
    more failures than the time it costs), backoff at the node's own p50 (20 ms here: a retry
    should cost about one more call, not a fixed 100 ms), error primary."""
    hypotheses = propose(support_spec(), errors=30, fetch_account=transient_errors("fetch_account"))
    assert changes_of(hypotheses) == [
        SetConfig(node_id="fetch_account", values={"retries": 3, "backoff_s": 0.02})
    ]
    hypothesis = hypotheses[0]
    assert hypothesis.primary_metric == "error_rate"
    assert hypothesis.expected_effects["error_rate"] < 0
    assert diagnosis_kind_of(hypothesis) == "transient_errors"


def test_the_owners_objective_sets_how_many_retries() -> None:
    """The same 25% transient failures: the default objective prices three retries best; an
    owner who weighs latency 40 times a failure (an autocomplete) gets fewer, and the stated
    effects follow the count."""
    spec = support_spec()
    stats = {"fetch_account": transient_errors("fetch_account", 50)}
    report = analyze(spec, healthy_node_stats(**stats), version_stats(errors=50))

    def retry(objective: Objective) -> Hypothesis:
        found = RuleBasedGenerator().generate(
            report, spec, base_version_id="v1", objective=objective
        )
        return next(h for h in found if diagnosis_kind_of(h) == "transient_errors")

    default = retry(Objective())
    hurried = retry(Objective(weights={"error_rate": 0.1, "latency": 4.0}))
    retries = {h.changes[0].values["retries"] for h in (default, hurried)}  # type: ignore[union-attr]
    assert default.changes[0].values["retries"] == 3  # type: ignore[union-attr]
    assert hurried.changes[0].values["retries"] < 3  # type: ignore[union-attr]
    assert len(retries) == 2
    assert hurried.expected_effects["latency"] < default.expected_effects["latency"]
    assert hurried.expected_effects["error_rate"] > default.expected_effects["error_rate"]


def test_a_side_effect_node_never_gets_retries() -> None:
    """Transient failures of a non-idempotent side-effect node get no retry proposal."""
    assert propose(support_spec(), errors=30, notify=transient_errors("notify")) == []


def test_a_side_effect_node_gets_a_listed_fallback_instead() -> None:
    """When the spec names fallback candidates, a failing unsafe-to-retry node gets one."""
    spec = support_spec(
        notify={"config": {"params": {"fallback_candidates": ["queue_notification"]}}}
    )
    hypotheses = propose(spec, errors=30, notify=transient_errors("notify"))
    assert changes_of(hypotheses) == [
        AddFallback(node_id="notify", fallback_type="queue_notification")
    ]


def test_persistent_errors_get_a_fallback_not_retries() -> None:
    """Non-transient failures of a retry-safe node: a fallback when listed, never retries."""
    spec = support_spec(fetch_account={"config": {"params": {"fallback_candidates": ["stub"]}}})
    failing = node_stats("fetch_account", errors=30, error_types={"KeyError": 30})
    hypotheses = propose(spec, errors=30, fetch_account=failing)
    assert changes_of(hypotheses) == [AddFallback(node_id="fetch_account", fallback_type="stub")]
    assert diagnosis_kind_of(hypotheses[0]) == "persistent_errors"


def test_a_fallback_states_what_the_runs_it_saves_then_take_and_cost() -> None:
    """A run saved by the fallback goes on past ``fetch_account``: the stated latency is the
    saved share of runs x the rest of the critical path per run that passes the node, and the
    stated cost the saved share x the cost of the node and everything after it (drafting holds
    all of it here)."""
    spec = support_spec(fetch_account={"config": {"params": {"fallback_candidates": ["stub"]}}})
    failing = node_stats("fetch_account", errors=30, error_types={"KeyError": 30})
    stats = {"fetch_account": failing, "draft": node_stats("draft", total_cost=10.0)}
    report = analyze(spec, healthy_node_stats(**stats), version_stats(errors=30))
    [fallback] = propose_for(spec, stats, errors=30)
    structure = report.structure
    path = structure.critical_path
    rest_ms = sum(structure.node_latency_ms[n] for n in path[path.index("fetch_account") + 1 :])
    passed = structure.node_run_share.get("fetch_account", 1.0) * (1 - 30 / 200)
    saved = report.run_error_rate * -fallback.expected_effects["error_rate"]
    assert rest_ms > 0 and saved > 0
    expected_latency = saved * rest_ms / passed / structure.critical_path_ms
    assert fallback.expected_effects["latency"] == pytest.approx(expected_latency, abs=1e-4)
    assert fallback.expected_effects["cost"] == pytest.approx(saved / passed, abs=1e-4)


def test_a_slow_node_with_repeated_inputs_gets_a_cache() -> None:
    """A deterministic latency bottleneck seeing 20% distinct inputs gets a cache sized to the
    repeat gap."""
    hypotheses = propose(support_spec(**PURE_HISTORY), fetch_history=slow_repeated("fetch_history"))
    assert changes_of(hypotheses) == [AddCache(node_id="fetch_history", ttl_s=34_560.0)]
    assert hypotheses[0].primary_metric == "latency"


def test_a_node_not_declared_deterministic_is_never_cached() -> None:
    """Repeated inputs on a node whose output may depend on time or state (no ``deterministic``
    tag, the default) do not make it cacheable: a cache would serve stale answers."""
    assert propose(support_spec(), fetch_history=slow_repeated("fetch_history")) == []


def test_a_slow_side_effect_node_is_never_cached() -> None:
    """Repeated inputs on a side-effect node do not make it cacheable."""
    assert propose(support_spec(), notify=slow_repeated("notify")) == []


def test_protected_nodes_are_never_targeted() -> None:
    """A failing, slow, repeated-input protected node gets no proposal at all."""
    spec = support_spec(audit={"tags": ["protected", "idempotent"]})
    audit = node_stats(
        "audit", errors=30, error_types={"TimeoutError": 30}, mean_ms=400, distinct_input_ratio=0.2
    )
    hypotheses = propose(spec, errors=30, audit=audit)
    assert all("audit" not in h.target_nodes for h in hypotheses)
    assert hypotheses == []


def test_a_chain_in_front_of_a_protected_node_is_parallelized() -> None:
    """Three independent lookups in front of a protected payment call: the payment would wait
    for all of them and run exactly as before, so the group is proposed and validation approves."""
    spec = support_spec(draft={"tags": ["protected", "side_effects"]})
    slow = {n: node_stats(n, mean_ms=100) for n in CHAIN}
    hypotheses = [h for h in propose_for(spec, slow) if h.change_kinds == ["parallelize"]]
    assert changes_of(hypotheses) == [Parallelize(node_ids=CHAIN)]
    assert validate_hypothesis(spec, hypotheses[0]).approved


def test_every_maximal_independent_group_on_the_critical_path_is_proposed() -> None:
    """Two independent groups on one path, the first headed by the entry's successor, are two
    hypotheses: each can be tested (and win) on its own."""
    spec = make_spec(
        [
            node("start", ["request"], ["text"]),
            node("a", ["text"], ["x"]),
            node("b", ["text"], ["y"]),
            node("mid", ["x", "y"], ["z"]),
            node("c", ["z"], ["u"]),
            node("d", ["z"], ["v"]),
            node("pay", ["u", "v"], ["paid"], tags=["protected", "side_effects"]),
        ],
        [
            edge("start", "a"),
            edge("a", "b"),
            edge("b", "mid"),
            edge("mid", "c"),
            edge("c", "d"),
            edge("d", "pay"),
        ],
    )
    stats = [node_stats(n.id, mean_ms=100 if n.id in "abcd" else 10) for n in spec.nodes]
    report = analyze(spec, stats, version_stats())
    hypotheses = RuleBasedGenerator().generate(report, spec, base_version_id="v1")
    assert sorted(h.target_nodes for h in hypotheses) == [["a", "b"], ["c", "d"]]
    assert all(h.change_kinds == ["parallelize"] for h in hypotheses)
    assert all(validate_hypothesis(spec, h).approved for h in hypotheses)


def test_an_entry_independent_of_its_successors_heads_its_group() -> None:
    """An entry that reads only the request heads the group of the lookups after it; it stays
    first (a run starts there), so the gain counts only the lookups run side by side."""
    spec = make_spec(
        [
            node("start", ["request"], ["seen"]),
            node("a", ["request"], ["x"]),
            node("b", ["request"], ["y"]),
            node("join", ["x", "y"], ["z"]),
        ],
        [edge("start", "a"), edge("a", "b"), edge("b", "join")],
    )
    stats = [node_stats(n, mean_ms=ms) for n, ms in (("start", 50), ("a", 100), ("b", 100))]
    report = analyze(spec, [*stats, node_stats("join", mean_ms=50)], version_stats())
    assert report.structure.parallelizable_chains == [["start", "a", "b"]]
    hypotheses = RuleBasedGenerator().generate(report, spec, base_version_id="v1")
    assert changes_of(hypotheses) == [Parallelize(node_ids=["start", "a", "b"])]
    assert hypotheses[0].expected_effects["latency"] == pytest.approx(-100 / 300, abs=1e-3)
    verdict = validate_hypothesis(spec, hypotheses[0])
    assert verdict.candidate_spec is not None
    assert sorted(verdict.candidate_spec.successors("start")) == ["a", "b"]


def test_an_independent_chain_on_the_critical_path_is_parallelized() -> None:
    """The chain of three 100 ms independent nodes becomes a fan-out/fan-in."""
    slow = {n: node_stats(n, mean_ms=100) for n in CHAIN}
    hypotheses = propose_for(support_spec(), slow)
    assert changes_of(hypotheses)[0] == Parallelize(node_ids=CHAIN)
    assert hypotheses[0].expected_effects["latency"] == pytest.approx(-200 / 370, abs=1e-3)


def test_a_heavy_tail_gets_a_timeout_at_the_cut_its_distribution_prices_best() -> None:
    """p99 >> p50 on an idempotent node: one retry and a timeout at a measured quantile (or
    between two), whose failures stay within half the error guardrail's 2% margin, and which
    the default objective prices better than no cut."""
    tail = node_stats("fetch_account", mean_ms=30, p50_ms=20, p95_ms=120, p99_ms=400)
    (hypothesis,) = propose(support_spec(), fetch_account=tail)
    (change,) = hypothesis.changes
    assert isinstance(change, SetConfig) and change.node_id == "fetch_account"
    assert change.values["retries"] == 1
    assert 0.02 < change.values["timeout_s"] <= 0.4
    assert hypothesis.expected_effects["latency"] < 0
    assert "fails" in hypothesis.rationale


def test_the_owners_objective_sets_the_timeout() -> None:
    """The same tail, measured at eight quantiles: an owner weighting latency as much as a
    failure gets an earlier cut than one who weights failures ten times more; an owner whose
    error-rate constraint leaves no room gets none."""
    quantiles = ((0.5, 20.0), (0.75, 40.0), (0.9, 80.0), (0.95, 120.0), (0.975, 180.0),
                 (0.99, 260.0), (0.995, 330.0), (0.999, 500.0))  # fmt: skip
    tail = node_stats("fetch_account", mean_ms=36, p50_ms=20, p95_ms=120, p99_ms=260)
    tail = tail.model_copy(update={"latency_quantiles": quantiles})
    spec = support_spec()
    report = analyze(spec, healthy_node_stats(fetch_account=tail), version_stats())

    def timeout(objective: Objective) -> float | None:
        found = RuleBasedGenerator().generate(
            report, spec, base_version_id="v1", objective=objective
        )
        timeouts = [h for h in found if diagnosis_kind_of(h) == "heavy_tail"]
        return timeouts[0].changes[0].values["timeout_s"] if timeouts else None  # type: ignore[union-attr]

    eager = timeout(Objective(weights={"latency": 1.0, "error_rate": 1.0}))
    wary = timeout(Objective(weights={"latency": 0.1, "error_rate": 1.0}))
    assert eager is not None and wary is not None and eager < wary
    bound = Objective(constraints=[Constraint(metric="error_rate", max=0.0)])
    assert timeout(bound) is None


def test_a_costly_node_with_a_cheaper_model_gets_a_model_swap() -> None:
    """A cost bottleneck listing cheaper models: switch model, cost primary, quality guarded."""
    spec = support_spec(
        draft={
            "config": {
                "prompt": "Draft.",
                "model": "big",
                "params": {"cheaper_models": ["big", "small"]},
            }
        }
    )
    hypotheses = propose(spec, draft=node_stats("draft", total_cost=9.0))
    assert changes_of(hypotheses) == [SetConfig(node_id="draft", values={"model": "small"})]
    assert hypotheses[0].primary_metric == "cost"
    assert hypotheses[0].expected_effects == {"cost": -0.5, "quality": 0.0}


def test_bad_outputs_of_a_prompted_node_get_a_stricter_prompt() -> None:
    """Parse failures on a prompted node: the prompt gains requirements naming the failures."""
    failing = node_stats("draft", errors=12, error_types={"JSONDecodeError": 12})
    hypotheses = propose(support_spec(), errors=12, draft=failing)
    prompts = [c for c in changes_of(hypotheses) if isinstance(c, SetPrompt)]
    assert len(prompts) == 1
    prompt = prompts[0].prompt
    assert prompt.startswith("Draft a reply." + PROMPT_SECTION)
    assert "reply" in prompt and "JSONDecodeError (12)" in prompt and "parses" in prompt


def test_improving_an_improved_prompt_replaces_the_section() -> None:
    """The generated section is replaced, not appended again, on the next cycle."""
    spec = support_spec()
    evidence = {"error_types": {"JSONDecodeError": 3}}
    once = improved_prompt(spec.node("draft"), evidence)
    improved = spec.node("draft").model_copy(
        update={"config": spec.node("draft").config.model_copy(update={"prompt": once})}
    )
    assert improved_prompt(improved, evidence) == once


def test_pattern_hints_reorder_proposals() -> None:
    """A change kind that keeps failing for its diagnosis drops below one that works."""
    stats = {
        "fetch_account": transient_errors("fetch_account"),
        "fetch_history": slow_repeated("fetch_history"),
    }
    default = propose_for(support_spec(**PURE_HISTORY), stats, errors=30)
    assert [h.change_kinds[0] for h in default] == ["set_config", "add_cache"]
    hints = (
        PatternHint(
            diagnosis_kind="errors", change_kind="set_config", success_rate=0.0, attempts=10
        ),
        PatternHint(
            diagnosis_kind="repeated_inputs", change_kind="add_cache", success_rate=0.9, attempts=10
        ),
    )
    learned = propose_for(support_spec(**PURE_HISTORY), stats, errors=30, patterns=hints)
    assert [h.change_kinds[0] for h in learned] == ["add_cache", "set_config"]


def test_pattern_weight_shrinks_small_samples_and_punishes_harm() -> None:
    """No hints weigh 1; 1/1 successes weigh less than 9/10; harmful effects halve the weight."""
    assert pattern_weight("heavy_tail", "set_config", "latency", ()) == 1.0
    lucky = PatternHint(
        diagnosis_kind="heavy_tail", change_kind="set_config", success_rate=1.0, attempts=1
    )
    proven = lucky.model_copy(update={"success_rate": 0.9, "attempts": 10})
    assert pattern_weight("heavy_tail", "set_config", "latency", [lucky]) < pattern_weight(
        "heavy_tail", "set_config", "latency", [proven]
    )
    harmful = proven.model_copy(update={"mean_effect": 0.2})
    assert pattern_weight("heavy_tail", "set_config", "latency", [harmful]) == pytest.approx(
        pattern_weight("heavy_tail", "set_config", "latency", [proven]) / 2
    )


def test_max_hypotheses_keeps_the_best_and_ids_are_unique() -> None:
    """Only the top proposals are returned, each hypothesis id once."""
    stats = {
        "fetch_account": transient_errors("fetch_account"),
        "fetch_history": slow_repeated("fetch_history"),
    }
    everything = propose_for(support_spec(), stats, errors=30)
    top = propose_for(support_spec(), stats, errors=30, max_hypotheses=1)
    assert top == everything[:1]
    assert len({h.hypothesis_id for h in everything}) == len(everything)


def test_insufficient_data_yields_no_hypothesis() -> None:
    """A report without enough traces produces nothing."""
    spec = support_spec()
    report = analyze(spec, healthy_node_stats(), version_stats(count=5))
    assert RuleBasedGenerator().generate(report, spec, base_version_id="v1") == []


def test_a_report_for_another_graph_is_refused() -> None:
    """Generating for a spec of another graph is misuse."""
    spec = support_spec()
    report = analyze(spec, healthy_node_stats(), version_stats())
    other = spec.model_copy(update={"id": "other"})
    with pytest.raises(InvalidInputError, match="'other'"):
        RuleBasedGenerator().generate(report, other, base_version_id="v1")


def test_every_generated_hypothesis_passes_validation() -> None:
    """With every problem at once, each proposal applies and is approved by the default policy:
    the structural ones too (replacements, a node taken off the path, a never-taken edge)."""
    alternatives = [
        {"type": "small_llm", "price_factor": 0.3, "latency_factor": 0.5, "quality": 0.85},
        {"model": "mini", "price_factor": 0.6},
    ]
    draft_params = {"cheaper_models": ["small"], "alternatives": alternatives, "quality": 0.9}
    spec = structural_spec(
        notify={"config": {"params": {"fallback_candidates": ["queue"]}}},
        draft={"config": {"prompt": "Draft.", "params": draft_params}},
        audit={"config": {"params": {"alternatives": alternatives}}},
        score={
            "config": {"params": {"alternatives": [{"type": "fast_score", "latency_factor": 0.2}]}}
        },
        **PURE_HISTORY,
    )
    stats = {
        "fetch_account": node_stats(
            "fetch_account",
            errors=30,
            error_types={"TimeoutError": 30},
            p50_ms=20,
            p95_ms=120,
            p99_ms=400,
            mean_ms=100,
        ),
        "fetch_history": node_stats("fetch_history", mean_ms=300, distinct_input_ratio=0.3),
        "classify": node_stats("classify", mean_ms=100),
        "notify": transient_errors("notify"),
        "draft": node_stats("draft", errors=10, error_types={"SchemaError": 10}, total_cost=5.0),
    }
    stats["slow_branch"] = node_stats("slow_branch", mean_ms=100)  # the chain stays critical
    stats["report"] = node_stats("report", mean_ms=100)  # fetch_history stays a bottleneck
    report = analyze(spec, structural_node_stats(**stats), version_stats(errors=60))
    hypotheses = RuleBasedGenerator().generate(
        report, spec, base_version_id="v1", max_hypotheses=40
    )
    assert {h.change_kinds[0] for h in hypotheses} >= {
        "set_config",
        "add_cache",
        "parallelize",
        "add_fallback",
        "set_prompt",
        "replace_node",
        "remove_edge",
    }
    assert "audit" not in {n for h in hypotheses for n in h.target_nodes}
    for hypothesis in hypotheses:
        verdict = validate_hypothesis(spec, hypothesis)
        assert verdict.approved, (hypothesis.title, verdict.violations)


def test_the_rule_based_generator_satisfies_the_protocol() -> None:
    """RuleBasedGenerator plugs in wherever a HypothesisGenerator is expected."""
    generator: HypothesisGenerator = RuleBasedGenerator()
    report: DiagnosticReport = analyze(support_spec(), healthy_node_stats(), version_stats())
    assert generator.generate(report, support_spec(), base_version_id="v1") == []


@pytest.mark.parametrize(
    ("current", "listed", "expected"),
    [
        ("big", ["big", "small"], ("small", -0.5)),
        ("small", ["big", "small"], None),  # already the cheapest listed
        ("mid", {"mid": 0.5, "small": 0.2}, ("small", -0.6)),  # 0.2 / 0.5 of the current cost
        ("small", {"mid": 0.5, "small": 0.2}, None),  # never back up to a dearer model
        ("big", {"mid": 0.5, "small": 0.2}, ("mid", -0.5)),
    ],
)
def test_a_model_swap_only_ever_goes_cheaper(
    current: str, listed: object, expected: tuple[str, float] | None
) -> None:
    """Repeated cycles walk down the cheaper models and stop at the cheapest."""
    spec = support_spec(
        draft={
            "config": {"prompt": "Draft.", "model": current, "params": {"cheaper_models": listed}}
        }
    )
    swaps = [
        h
        for h in propose(spec, draft=node_stats("draft", total_cost=9.0))
        if h.primary_metric == "cost"
    ]
    if expected is None:
        assert swaps == []
    else:
        model, effect = expected
        assert changes_of(swaps) == [SetConfig(node_id="draft", values={"model": model})]
        assert swaps[0].expected_effects["cost"] == pytest.approx(effect)


def test_a_retry_states_its_latency_cost_with_the_backoff() -> None:
    """Retry k runs when the first k attempts failed, repeats the node and first waits its
    backoff, half of it on average under the runtime's full jitter; and a run it cures, which
    stopped at the node, now goes on through the rest of the critical path. The stated latency
    cost is the sum over retries of (failing share)^k x (node latency + backoff_k / 2), plus
    the cured share of runs x the rest of the path's latency per run that passes the node, over
    the critical path: so the test can judge the trade-off the hypothesis states rather than
    flag it as unexpected harm."""
    spec = support_spec()
    stats = {"fetch_account": transient_errors("fetch_account")}
    report = analyze(spec, healthy_node_stats(**stats), version_stats(errors=30))
    hypothesis = propose_for(spec, stats, errors=30)[0]
    failure = stats["fetch_account"].error_count / stats["fetch_account"].count
    transient = report.bottlenecks_of("errors")[0].evidence["transient_share"]
    structure = report.structure
    change = hypothesis.changes[0]
    assert isinstance(change, SetConfig)
    node_ms = structure.node_latency_ms["fetch_account"]
    retrying = sum(
        (failure * transient) ** k
        * (node_ms + 1000.0 * change.values["backoff_s"] * 2 ** (k - 1) / 2.0)
        for k in range(1, change.values["retries"] + 1)
    )
    path = structure.critical_path
    rest_ms = sum(structure.node_latency_ms[n] for n in path[path.index("fetch_account") + 1 :])
    passed = structure.node_run_share.get("fetch_account", 1.0) * (1 - failure)
    cured_runs = report.run_error_rate * -hypothesis.expected_effects["error_rate"]
    expected = (retrying + cured_runs * rest_ms / passed) / structure.critical_path_ms
    assert rest_ms > 0 and cured_runs > 0
    assert structure.latency_share("fetch_account") > 0
    assert hypothesis.expected_effects["latency"] == pytest.approx(expected, rel=1e-3)


def test_a_retry_states_what_the_cured_runs_cost() -> None:
    """A cured run pays for the retried node's passing call and every node after it: the
    stated cost is the cured share of runs x those nodes' share of the cost, per run that
    passes the node (a graph whose drafting holds all the cost)."""
    spec = support_spec()
    stats = {
        "fetch_account": transient_errors("fetch_account"),
        "draft": node_stats("draft", total_cost=10.0),
    }
    report = analyze(spec, healthy_node_stats(**stats), version_stats(errors=30))
    hypothesis = propose_for(spec, stats, errors=30)[0]
    assert hypothesis.title == "Retry transient failures of 'fetch_account'"
    failure = stats["fetch_account"].error_count / stats["fetch_account"].count
    passed = report.structure.node_run_share.get("fetch_account", 1.0) * (1 - failure)
    cured_runs = report.run_error_rate * -hypothesis.expected_effects["error_rate"]
    assert report.structure.node_cost_share["draft"] == pytest.approx(1.0)
    assert hypothesis.expected_effects["cost"] == pytest.approx(cured_runs / passed, abs=1e-4)
