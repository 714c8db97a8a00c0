"""apply_changes: the precise effect of every change op, strictness, immutability; diff_specs."""

from __future__ import annotations

import pytest

from spark.errors import InvalidChangeError
from spark.graphs.spec import EdgeCondition, GraphSpec, NodeConfig
from spark.rsi.changes import apply_changes, diff_specs
from spark.rsi.hypotheses import (
    AddCache,
    AddEdge,
    AddFallback,
    ChangeOp,
    Parallelize,
    RemoveEdge,
    ReplaceNode,
    RerouteEdge,
    SetConfig,
    SetPrompt,
)
from tests.rsi.builders import edge, make_spec, node, support_spec

CHAIN = ["classify", "fetch_account", "fetch_history"]


def edge_keys(spec: GraphSpec) -> set[tuple[str, str]]:
    """The (source, target) pairs of a spec's edges."""
    return {e.key for e in spec.edges}


def test_set_prompt_sets_only_that_prompt() -> None:
    """set_prompt replaces the node's prompt and nothing else in the spec."""
    spec = support_spec()
    new = apply_changes(spec, [SetPrompt(node_id="draft", prompt="Be brief.")])
    assert new.node("draft").config.prompt == "Be brief."
    assert new.model_dump(exclude={"nodes"}) == spec.model_dump(exclude={"nodes"})
    assert [n for n in new.nodes if n.id != "draft"] == [n for n in spec.nodes if n.id != "draft"]


def test_set_config_sets_the_given_keys() -> None:
    """set_config sets exactly the given NodeConfig fields and keeps the others."""
    spec = support_spec()
    new = apply_changes(
        spec, [SetConfig(node_id="classify", values={"retries": 2, "backoff_s": 0.5})]
    )
    config = new.node("classify").config
    assert (config.retries, config.backoff_s) == (2, 0.5)
    assert config.prompt == "Classify the text."


def test_set_config_refuses_an_unknown_key_naming_it() -> None:
    """An unknown config key is refused, naming the key, the node and the op."""
    with pytest.raises(InvalidChangeError) as caught:
        apply_changes(support_spec(), [SetConfig(node_id="classify", values={"retry": 2})])
    message = str(caught.value)
    assert "'retry'" in message and "'classify'" in message and "set_config" in message


def test_set_config_validates_values_through_node_config() -> None:
    """A value NodeConfig rejects (negative retries) is refused, naming node and field."""
    with pytest.raises(InvalidChangeError, match=r"'classify'.*retries"):
        apply_changes(support_spec(), [SetConfig(node_id="classify", values={"retries": -1})])


def test_a_change_that_alters_nothing_is_refused() -> None:
    """Setting a value the node already has is an error, not a silent success."""
    with pytest.raises(InvalidChangeError, match="alters nothing"):
        apply_changes(support_spec(), [SetConfig(node_id="classify", values={"retries": 0})])


def test_an_empty_change_list_is_refused() -> None:
    """No changes means nothing to apply: refused."""
    with pytest.raises(InvalidChangeError, match="no changes"):
        apply_changes(support_spec(), [])


def test_an_unknown_node_is_refused_with_the_change_index() -> None:
    """A change on a missing node names the change's position, op and the node."""
    changes: list[ChangeOp] = [
        AddCache(node_id="classify", ttl_s=60),
        SetPrompt(node_id="ghost", prompt="x"),
    ]
    with pytest.raises(InvalidChangeError, match=r"change #1 \(set_prompt.*'ghost' does not exist"):
        apply_changes(support_spec(), changes)


def test_replace_node_keeps_id_edges_contract_and_tags() -> None:
    """replace_node changes the type (and config when given) and keeps everything else."""
    spec = support_spec()
    new = apply_changes(
        spec,
        [ReplaceNode(node_id="classify", new_type="llm_v2", config=NodeConfig(prompt="New."))],
    )
    before, after = spec.node("classify"), new.node("classify")
    assert (after.type, after.config.prompt) == ("llm_v2", "New.")
    assert (after.inputs, after.outputs, after.tags) == (before.inputs, before.outputs, before.tags)
    assert new.edges == spec.edges


def test_replace_node_without_config_keeps_the_config() -> None:
    """Without a config, replace_node keeps the node's current config."""
    new = apply_changes(support_spec(), [ReplaceNode(node_id="classify", new_type="llm_v2")])
    assert new.node("classify").config.prompt == "Classify the text."


def test_add_edge_adds_a_conditional_edge() -> None:
    """add_edge appends the edge with its condition."""
    condition = EdgeCondition(field="category", op="eq", value="vip")
    new = apply_changes(
        support_spec(), [AddEdge(source="classify", target="draft", condition=condition)]
    )
    added = [e for e in new.edges if e.key == ("classify", "draft")]
    assert len(added) == 1 and added[0].condition == condition


def test_add_edge_refuses_an_existing_edge() -> None:
    """Adding an edge that exists is refused, naming the edge."""
    with pytest.raises(InvalidChangeError, match="'draft'->'notify' already exists"):
        apply_changes(support_spec(), [AddEdge(source="draft", target="notify")])


def test_add_edge_that_creates_a_cycle_is_refused() -> None:
    """The result is re-validated: a cycle is refused with the validation message."""
    with pytest.raises(InvalidChangeError, match=r"add_edge 'draft'->'classify'.*acyclic"):
        apply_changes(support_spec(), [AddEdge(source="draft", target="classify")])


def test_remove_edge_removes_it() -> None:
    """remove_edge deletes exactly that edge (here leaving the graph valid)."""
    spec = support_spec()
    with_extra = apply_changes(spec, [AddEdge(source="ingest", target="draft")])
    new = apply_changes(with_extra, [RemoveEdge(source="ingest", target="draft")])
    assert edge_keys(new) == edge_keys(spec)


def test_remove_edge_refuses_a_missing_edge() -> None:
    """Removing an edge that does not exist is refused, naming it."""
    with pytest.raises(InvalidChangeError, match="'ingest'->'draft' does not exist"):
        apply_changes(support_spec(), [RemoveEdge(source="ingest", target="draft")])


def test_remove_edge_that_strands_a_node_is_refused() -> None:
    """Removing the only edge into a node leaves it unreachable: refused."""
    with pytest.raises(InvalidChangeError, match="unreachable"):
        apply_changes(support_spec(), [RemoveEdge(source="draft", target="notify")])


def test_reroute_edge_keeps_the_condition_and_position() -> None:
    """reroute_edge changes the target of the same edge, keeping its condition."""
    spec = make_spec(
        [node("a", ["request"], ["x"]), node("b", ["x"]), node("c", ["x"]), node("d", ["x"])],
        [edge("a", "b", field="x", op="truthy"), edge("a", "c"), edge("c", "b"), edge("c", "d")],
    )
    new = apply_changes(spec, [RerouteEdge(source="a", target="b", new_target="d")])
    assert new.edges[0].key == ("a", "d") and new.edges[0].condition == spec.edges[0].condition
    assert ("a", "b") not in edge_keys(new)


def test_reroute_edge_refuses_a_missing_edge() -> None:
    """Rerouting an edge that does not exist is refused."""
    with pytest.raises(InvalidChangeError, match="'ingest'->'draft' does not exist"):
        apply_changes(
            support_spec(), [RerouteEdge(source="ingest", target="draft", new_target="x")]
        )


def test_parallelize_fans_out_and_in_around_the_chain() -> None:
    """The head's predecessor feeds every member; every member feeds the tail's successor."""
    new = apply_changes(support_spec(), [Parallelize(node_ids=CHAIN)])
    expected = {("ingest", n) for n in CHAIN} | {(n, "draft") for n in CHAIN}
    expected |= {("draft", "notify"), ("draft", "audit")}
    assert edge_keys(new) == expected


def test_parallelize_copies_conditions_of_the_head_incoming_edges() -> None:
    """A condition on an edge into the chain head is copied onto every fan-out edge."""
    spec = make_spec(
        [node("a", ["request"], ["x"]), node("b", ["x"], ["y"]), node("c", ["x"], ["z"])],
        [edge("a", "b", field="x", op="truthy"), edge("b", "c")],
    )
    new = apply_changes(spec, [Parallelize(node_ids=["b", "c"])])
    assert {e.key: e.condition for e in new.edges} == {
        ("a", "b"): spec.edges[0].condition,
        ("a", "c"): spec.edges[0].condition,
    }


@pytest.mark.parametrize(
    ("node_ids", "reason"),
    [
        (["ingest", "classify"], "at least two nodes must follow it"),
        (["classify", "fetch_history"], "not linked"),
        (["fetch_history", "draft", "notify"], "successors other than"),
        (["classify", "classify"], "repeats"),
    ],
)
def test_parallelize_refuses_what_is_not_a_simple_chain(node_ids: list[str], reason: str) -> None:
    """The entry with one follower (nothing to run in parallel), unlinked nodes, branching
    nodes and repeats are refused."""
    with pytest.raises(InvalidChangeError, match=reason):
        apply_changes(support_spec(), [Parallelize(node_ids=node_ids)])


def test_a_chain_headed_by_the_entry_fans_out_from_the_entry() -> None:
    """A group whose head is the entry is accepted: the entry stays first (the spec keeps one
    entry with no incoming edge) and the rest of the group runs in parallel after it."""
    spec = make_spec(
        [
            node("start", ["request"], ["seen"]),
            node("a", ["request"], ["x"]),
            node("b", ["request"], ["y"]),
            node("join", ["x", "y"], ["z"]),
        ],
        [edge("start", "a"), edge("a", "b"), edge("b", "join")],
    )
    new = apply_changes(spec, [Parallelize(node_ids=["start", "a", "b"])])
    assert new.entry == "start"
    assert edge_keys(new) == {("start", "a"), ("start", "b"), ("a", "join"), ("b", "join")}


def test_parallelize_refuses_a_chain_with_a_data_dependency() -> None:
    """When a member reads what an earlier member writes, data flow breaks: refused."""
    spec = make_spec(
        [node("a", ["request"], ["x"]), node("b", ["x"], ["y"]), node("c", ["y"], ["z"])],
        [edge("a", "b"), edge("b", "c")],
    )
    with pytest.raises(InvalidChangeError, match=r"'c' reads input field\(s\) \['y'\]"):
        apply_changes(spec, [Parallelize(node_ids=["b", "c"])])


def test_add_cache_and_add_fallback_set_their_fields() -> None:
    """add_cache sets cache_ttl_s; add_fallback sets fallback."""
    new = apply_changes(
        support_spec(),
        [
            AddCache(node_id="fetch_history", ttl_s=600),
            AddFallback(node_id="draft", fallback_type="tmpl"),
        ],
    )
    assert new.node("fetch_history").config.cache_ttl_s == 600
    assert new.node("draft").config.fallback == "tmpl"


def test_the_input_spec_is_never_mutated() -> None:
    """Applying (successfully or not) leaves the input spec byte-identical."""
    spec = support_spec()
    before = spec.canonical_json()
    apply_changes(
        spec, [Parallelize(node_ids=CHAIN), SetConfig(node_id="draft", values={"params": {"k": 1}})]
    )
    with pytest.raises(InvalidChangeError):
        apply_changes(
            spec, [AddCache(node_id="notify", ttl_s=5), AddEdge(source="draft", target="ingest")]
        )
    assert spec.canonical_json() == before


def test_diff_specs_describes_config_prompt_and_edge_changes() -> None:
    """diff_specs lists one readable line per changed field and edge."""
    spec = support_spec()
    new = apply_changes(
        spec,
        [
            SetConfig(node_id="classify", values={"retries": 2}),
            SetPrompt(node_id="draft", prompt="Short."),
            AddEdge(source="ingest", target="draft"),
        ],
    )
    assert diff_specs(spec, new) == [
        "node 'classify': config.retries 0 -> 2",
        "node 'draft': prompt changed (14 -> 6 chars)",
        "edge 'ingest'->'draft' added",
    ]
    assert diff_specs(spec, spec) == []


def test_diff_specs_describes_a_parallelization() -> None:
    """A parallelization shows as removed chain links and added fan-out/fan-in edges."""
    spec = support_spec()
    lines = diff_specs(spec, apply_changes(spec, [Parallelize(node_ids=CHAIN)]))
    assert "edge 'classify'->'fetch_account' removed" in lines
    assert "edge 'ingest'->'fetch_history' added" in lines
    assert "edge 'classify'->'draft' added" in lines
