"""validate_hypothesis: safety violations, budgets, risk levels and review requirements."""

from __future__ import annotations

import pytest

from spark.graphs.spec import EdgeCondition, NodeConfig
from spark.rsi.hypotheses import (
    AddCache,
    AddEdge,
    AddFallback,
    ChangeOp,
    Hypothesis,
    Parallelize,
    RemoveEdge,
    ReplaceNode,
    SetConfig,
    SetPrompt,
)
from spark.rsi.validation import (
    ValidationPolicy,
    ValidationResult,
    assess_risk,
    validate_hypothesis,
)
from tests.rsi.builders import edge, make_spec, node, support_spec

CHAIN = ["classify", "fetch_account", "fetch_history"]


def hypothesis(*changes: ChangeOp, graph_id: str = "support") -> Hypothesis:
    """A hypothesis on base version v1 made of ``changes``."""
    return Hypothesis(
        graph_id=graph_id,
        base_version_id="v1",
        title="test",
        diagnosis="test",
        changes=list(changes),
    )


def check(*changes: ChangeOp, policy: ValidationPolicy | None = None) -> ValidationResult:
    """Validate ``changes`` against ``support_spec`` with ``policy`` (default policy if None)."""
    spec = support_spec()
    if policy is None:
        return validate_hypothesis(spec, hypothesis(*changes))
    return validate_hypothesis(spec, hypothesis(*changes), policy)


def test_a_safe_config_change_is_approved_with_the_candidate() -> None:
    """Retries on an idempotent middle node: approved, low risk, no review, candidate built."""
    result = check(SetConfig(node_id="fetch_account", values={"retries": 2}))
    assert (result.approved, result.risk, result.requires_review) == (True, "low", False)
    assert result.violations == []
    assert result.candidate_spec is not None
    assert result.candidate_spec.node("fetch_account").config.retries == 2


def test_a_config_change_on_a_protected_node_is_rejected() -> None:
    """Any op naming a protected node id is rejected, even a harmless config change."""
    result = check(SetConfig(node_id="audit", values={"timeout_s": 5}))
    assert not result.approved
    assert result.violations == [
        "change #0 (set_config ['timeout_s'] on node 'audit') touches protected node 'audit'"
    ]
    assert result.candidate_spec is None


def test_a_never_true_condition_before_a_protected_node_is_refused() -> None:
    """Re-adding the edge into a protected node with a condition that never holds would skip it
    on every request (runs recorded as ok): refused, naming the protected node."""
    never = EdgeCondition(field="reply", op="eq", value="never")
    result = check(
        RemoveEdge(source="draft", target="audit"),
        AddEdge(source="draft", target="audit", condition=never),
    )
    assert not result.approved
    assert result.violations == [
        "protected node 'audit': it would run on different requests (the conditions on the "
        "paths to it from the entry would change)"
    ]


def test_a_condition_further_upstream_of_a_protected_node_is_refused() -> None:
    """A condition on an edge the protected node depends on, far from it, skips it just as
    well: refused although no change names the protected node."""
    never = EdgeCondition(field="category", op="eq", value="never")
    result = check(
        RemoveEdge(source="fetch_history", target="draft"),
        AddEdge(source="fetch_history", target="draft", condition=never),
    )
    assert any("protected node 'audit': node 'draft'" in v for v in result.violations)
    assert not result.approved


def test_removing_one_of_two_routes_to_a_protected_node_is_refused() -> None:
    """With an unconditional and a conditional route into it, removing the unconditional one
    leaves the protected node running only when the condition holds: refused."""
    spec = make_spec(
        [
            node("start", ["request"], ["kind"]),
            node("check", ["kind"], ["ok"]),
            node("pay", ["kind"], ["paid"], tags=["protected", "side_effects"]),
        ],
        [
            edge("start", "check"),
            edge("start", "pay"),
            edge("check", "pay", field="ok", op="truthy"),
        ],
    )
    result = validate_hypothesis(spec, hypothesis(RemoveEdge(source="start", target="pay")))
    assert not result.approved
    assert "protected node 'pay': it would run on different requests" in result.violations[0]


def test_another_node_may_not_run_a_protected_implementation() -> None:
    """A fallback or a replacement that makes another node run the protected node's type would
    run its side effect elsewhere: refused, naming both nodes."""
    spec = support_spec(audit={"type": "audit_log"})
    fallback = validate_hypothesis(
        spec, hypothesis(AddFallback(node_id="fetch_history", fallback_type="audit_log"))
    )
    replaced = validate_hypothesis(
        spec,
        hypothesis(ReplaceNode(node_id="notify", new_type="audit_log")),
        ValidationPolicy(allow_critical=True),
    )
    assert fallback.violations == [
        "node 'fetch_history' would run the implementation of protected node 'audit' "
        "(as its fallback 'audit_log')"
    ]
    assert replaced.violations == [
        "node 'notify' would run the implementation of protected node 'audit' "
        "(as its type 'audit_log')"
    ]


def test_a_producer_taken_off_the_path_of_a_protected_node_is_refused() -> None:
    """Rerouting so that the protected node no longer waits for the node that writes what it
    reads would hand it the raw request field instead: refused, naming the field."""
    spec = make_spec(
        [
            node("start", ["text"], ["seen"]),
            node("clean", ["text"], ["text"]),
            node("pay", ["text"], ["paid"], tags=["protected", "side_effects"]),
        ],
        [edge("start", "clean"), edge("clean", "pay")],
        inputs=["text"],
    )
    bypass: list[ChangeOp] = [
        AddEdge(source="start", target="pay"),
        RemoveEdge(source="clean", target="pay"),
    ]
    result = validate_hypothesis(spec, hypothesis(*bypass))
    assert not result.approved
    assert any(
        "field 'text' seen by 'pay' would come from [] instead of ['clean']" in v
        for v in result.violations
    )


def test_a_writer_moved_alongside_a_protected_node_is_refused() -> None:
    """A node that rewrites a field the protected node reads, running after it, may not be moved
    to run concurrently with it: it could overwrite the field before the protected node reads."""
    spec = make_spec(
        [
            node("start", ["request"], ["amount"]),
            node("pay", ["amount"], ["paid"], tags=["protected", "side_effects"]),
            node("adjust", ["amount"], ["amount"]),
        ],
        [edge("start", "pay"), edge("pay", "adjust")],
    )
    moved: list[ChangeOp] = [
        AddEdge(source="start", target="adjust"),
        RemoveEdge(source="pay", target="adjust"),
    ]
    result = validate_hypothesis(spec, hypothesis(*moved), ValidationPolicy(allow_critical=True))
    assert result.violations == [
        "protected node 'pay': field 'amount' seen by 'pay' could be overwritten concurrently "
        "by ['adjust']"
    ]


def test_an_edge_that_only_makes_a_protected_node_wait_is_approved() -> None:
    """An edge into a protected node from a node that writes nothing it reads changes neither
    when it runs nor what it reads: its neighbours may be reorganized."""
    result = check(AddEdge(source="fetch_history", target="audit"))
    assert result.approved, result.violations


def test_a_chain_in_front_of_a_protected_payment_can_be_parallelized() -> None:
    """Three independent lookups in front of a protected payment call run in parallel; the
    payment waits for all of them and runs exactly as before, so the change is approved."""
    spec = support_spec(draft={"tags": ["protected", "side_effects"]})
    result = validate_hypothesis(spec, hypothesis(Parallelize(node_ids=CHAIN)))
    assert result.approved, result.violations
    assert result.candidate_spec is not None
    assert sorted(result.candidate_spec.predecessors("draft")) == sorted(CHAIN)


def test_a_conditional_head_is_kept_when_a_chain_before_a_protected_node_is_parallelized() -> None:
    """Behind a conditional edge, every fan-out edge carries the same condition evaluated on the
    same state: the protected node still runs exactly when the condition holds. Approved."""
    spec = make_spec(
        [
            node("start", ["request"], ["kind"]),
            node("a", ["request"], ["x"]),
            node("b", ["request"], ["y"]),
            node("pay", ["x", "y"], ["paid"], tags=["protected", "side_effects"]),
        ],
        [edge("start", "a", field="kind", op="eq", value="buy"), edge("a", "b"), edge("b", "pay")],
    )
    result = validate_hypothesis(spec, hypothesis(Parallelize(node_ids=["a", "b"])))
    assert result.approved, result.violations


def test_a_fan_in_condition_split_across_parallel_members_is_refused() -> None:
    """When the edge into the protected node tests a field the chain's tail writes, parallel
    members would test it before it is written: the protected node could be skipped. Refused."""
    spec = make_spec(
        [
            node("start", ["request"], ["kind"]),
            node("a", ["request"], ["x"]),
            node("b", ["request"], ["y"]),
            node("pay", ["x"], ["paid"], tags=["protected", "side_effects"]),
        ],
        [edge("start", "a"), edge("a", "b"), edge("b", "pay", field="y", op="truthy")],
    )
    result = validate_hypothesis(spec, hypothesis(Parallelize(node_ids=["a", "b"])))
    assert not result.approved
    assert any("protected node 'pay'" in v for v in result.violations)


def test_retries_on_a_side_effect_node_are_rejected() -> None:
    """A side-effect node that is not idempotent must never get retries."""
    result = check(SetConfig(node_id="notify", values={"retries": 1}))
    assert not result.approved
    assert result.violations == [
        "node 'notify' has side effects and is not idempotent: retries must not rise (proposed 1)"
    ]


def test_retries_on_an_idempotent_side_effect_node_are_approved() -> None:
    """Tagged idempotent, a side-effect node may be retried (medium risk: side effects)."""
    spec = support_spec(notify={"tags": ["side_effects", "idempotent"]})
    result = validate_hypothesis(
        spec, hypothesis(SetConfig(node_id="notify", values={"retries": 2}))
    )
    assert (result.approved, result.risk) == (True, "medium")


def test_a_cache_on_a_side_effect_node_is_rejected() -> None:
    """Caching would skip the side effect on a hit: rejected."""
    result = check(AddCache(node_id="notify", ttl_s=60))
    assert result.violations == ["node 'notify' has side effects: it must not be cached"]


NOT_DETERMINISTIC = (
    "node 'fetch_history' is not tagged 'deterministic' (its output may depend on time, "
    "randomness or outside state, not only on its inputs): it must not be cached"
)


@pytest.mark.parametrize(
    "change",
    [
        AddCache(node_id="fetch_history", ttl_s=60),
        SetConfig(node_id="fetch_history", values={"cache_ttl_s": 60}),
    ],
)
def test_a_cache_on_a_node_not_declared_deterministic_is_refused(change: ChangeOp) -> None:
    """A node that does not declare its output a pure function of its inputs (the default) may
    answer differently tomorrow: a cache would serve stale answers. Refused, saying why."""
    assert check(change).violations == [NOT_DETERMINISTIC]


def test_a_cache_on_a_deterministic_node_is_approved() -> None:
    """Declared deterministic and free of side effects, a node may be cached."""
    spec = support_spec(fetch_history={"tags": ["deterministic"]})
    result = validate_hypothesis(spec, hypothesis(AddCache(node_id="fetch_history", ttl_s=60)))
    assert result.approved, result.violations


def test_a_longer_cache_on_a_non_deterministic_node_is_refused_a_shorter_one_approved() -> None:
    """An existing cache on a non-deterministic node may shrink (fewer stale answers), not grow."""
    spec = support_spec(fetch_history={"config": {"cache_ttl_s": 60}})
    longer = SetConfig(node_id="fetch_history", values={"cache_ttl_s": 600})
    shorter = SetConfig(node_id="fetch_history", values={"cache_ttl_s": 10})
    assert validate_hypothesis(spec, hypothesis(longer)).violations == [NOT_DETERMINISTIC]
    assert validate_hypothesis(spec, hypothesis(shorter)).approved


def test_a_cycle_creating_edge_is_rejected_with_the_reason() -> None:
    """The changes are applied; a resulting cycle is reported as the violation."""
    result = check(AddEdge(source="draft", target="classify"))
    assert not result.approved
    assert len(result.violations) == 1
    assert "add_edge 'draft'->'classify'" in result.violations[0]
    assert "acyclic" in result.violations[0]


def test_unknown_nodes_are_rejected_by_name() -> None:
    """A change naming a missing node is rejected before anything is applied."""
    result = check(SetPrompt(node_id="ghost", prompt="x"))
    assert result.violations == [
        "change #0 (set_prompt on node 'ghost') names unknown node 'ghost'"
    ]


def test_a_hypothesis_for_another_graph_is_rejected() -> None:
    """The hypothesis must target the spec's graph."""
    spec = support_spec()
    result = validate_hypothesis(
        spec, hypothesis(SetPrompt(node_id="draft", prompt="x"), graph_id="other")
    )
    assert result.violations == ["hypothesis targets graph 'other', not 'support'"]


def test_parallelizing_two_side_effect_nodes_is_rejected() -> None:
    """Two side-effect nodes never run concurrently, even without a data dependency."""
    spec = make_spec(
        [
            node("a", ["request"], ["x"]),
            node("b", ["x"], ["y"], tags=["side_effects"]),
            node("c", ["x"], ["z"], tags=["side_effects"]),
        ],
        [edge("a", "b"), edge("b", "c")],
    )
    result = validate_hypothesis(spec, hypothesis(Parallelize(node_ids=["b", "c"])))
    assert any("share a data dependency or both have side effects" in v for v in result.violations)


def test_parallelizing_a_write_conflict_is_rejected() -> None:
    """Two nodes writing the same field cannot run concurrently."""
    spec = make_spec(
        [node("a", ["request"], ["x"]), node("b", ["x"], ["y"]), node("c", ["x"], ["y"])],
        [edge("a", "b"), edge("b", "c")],
    )
    result = validate_hypothesis(spec, hypothesis(Parallelize(node_ids=["b", "c"])))
    assert not result.approved


def test_an_independent_parallelization_is_approved_for_review() -> None:
    """The independent chain is approved at high risk, so it waits for a reviewer."""
    result = check(Parallelize(node_ids=CHAIN))
    assert (result.approved, result.risk, result.requires_review) == (True, "high", True)


def test_replace_node_must_change_the_type() -> None:
    """replace_node with the current type (only a config change) is a violation."""
    result = check(ReplaceNode(node_id="draft", new_type="fn", config=None))
    assert not result.approved
    new_config = check(
        ReplaceNode(node_id="fetch_history", new_type="fn", config=NodeConfig(retries=1))
    )
    assert new_config.violations == [
        "replace_node 'fetch_history': new type 'fn' is the current type"
    ]


def test_replace_node_is_high_risk_and_needs_review() -> None:
    """Swapping an implementation is high risk; approved but reviewed."""
    result = check(ReplaceNode(node_id="fetch_history", new_type="http_v2"))
    assert (result.approved, result.risk, result.requires_review) == (True, "high", True)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (SetConfig(node_id="fetch_account", values={"retries": 7}), "retries 7 exceed"),
        (SetConfig(node_id="fetch_account", values={"timeout_s": 900}), "timeout 900s exceeds"),
        (SetPrompt(node_id="draft", prompt="x" * 60), "prompt of 60 chars exceeds 50"),
    ],
)
def test_budgets_are_enforced(change: ChangeOp, fragment: str) -> None:
    """Retries, timeout and prompt length beyond the policy are violations."""
    result = check(change, policy=ValidationPolicy(max_prompt_chars=50))
    assert not result.approved
    assert any(fragment in v for v in result.violations)


@pytest.mark.parametrize(
    ("changes", "risk"),
    [
        ([SetConfig(node_id="fetch_account", values={"retries": 1})], "low"),
        ([SetConfig(node_id="draft", values={"model": "small"})], "medium"),
        ([SetPrompt(node_id="ingest", prompt="x")], "medium"),
        ([AddCache(node_id="fetch_history", ttl_s=60)], "medium"),
        ([AddFallback(node_id="notify", fallback_type="queue")], "high"),
        ([Parallelize(node_ids=CHAIN)], "high"),
        ([ReplaceNode(node_id="notify", new_type="mailer_v2")], "critical"),
        (
            [
                SetPrompt(node_id="classify", prompt="x"),
                SetPrompt(node_id="draft", prompt="y"),
                SetConfig(node_id="fetch_account", values={"retries": 1}),
            ],
            "medium",
        ),
    ],
)
def test_risk_grows_with_change_type_and_blast_radius(changes: list[ChangeOp], risk: str) -> None:
    """Risk: change type, then +1 for 3+ affected nodes, entry node, side-effect node."""
    assert assess_risk(support_spec(), changes) == risk


def test_critical_risk_is_rejected_unless_allowed() -> None:
    """A critical hypothesis is rejected by default and approved (for review) when allowed."""
    change = ReplaceNode(node_id="notify", new_type="mailer_v2")
    assert check(change).violations == ["risk 'critical' is not allowed by the validation policy"]
    allowed = check(change, policy=ValidationPolicy(allow_critical=True))
    assert (allowed.approved, allowed.requires_review) == (True, True)


def test_review_threshold_follows_the_policy() -> None:
    """With review_at='low' even a low-risk change waits for a reviewer."""
    change = SetConfig(node_id="fetch_account", values={"retries": 1})
    assert check(change, policy=ValidationPolicy(review_at="low")).requires_review


def test_warnings_do_not_block_approval() -> None:
    """Replacing all params is a warning, not a violation."""
    result = check(SetConfig(node_id="fetch_account", values={"params": {"k": 1}}))
    assert result.approved
    assert result.warnings == ["node 'fetch_account': set_config replaces all params"]
