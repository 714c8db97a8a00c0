"""Graphs with several entry nodes: the spec, the runtime, the Python API and the RSI tools."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from spark.errors import InvalidGraphSpecError
from spark.graphs import Graph, GraphRuntime, Node, NodeContext, NodeRegistry, parse_graph_spec
from spark.graphs.diff import diff_graphs, render_json
from spark.graphs.spec import GraphSpec
from spark.rsi.analysis import parallelizable_chains
from spark.rsi.changes import apply_changes, diff_specs
from spark.rsi.hypotheses import AddEdge, Hypothesis, Parallelize
from spark.rsi.validation import ValidationPolicy, validate_hypothesis


def _fan_in_spec(**extra: Any) -> dict[str, Any]:
    return {
        "id": "multi",
        "entry_nodes": ["left", "right"],
        "inputs": ["q"],
        "nodes": [
            {"id": "left", "type": "wait_for_peer", "inputs": ["q"], "outputs": ["l"]},
            {"id": "right", "type": "wait_for_peer", "inputs": ["q"], "outputs": ["r"]},
            {"id": "join", "type": "join", "inputs": ["l", "r"], "outputs": ["both"]},
        ],
        "edges": [{"source": "left", "target": "join"}, {"source": "right", "target": "join"}],
        **extra,
    }


def test_entry_defaults_to_the_first_entry_node() -> None:
    """``entry_nodes`` alone makes a valid spec whose ``entry`` is its first entry."""
    spec = parse_graph_spec(_fan_in_spec())
    assert spec.entry == "left" and spec.entries == ["left", "right"]
    assert spec.is_entry("right") and not spec.is_entry("join")


def test_single_entry_specs_hash_as_before() -> None:
    """A single-entry spec's canonical JSON has no ``entry_nodes`` (version ids are unchanged),
    and ``entry_nodes=[entry]`` is the same spec."""
    data = {"id": "one", "entry": "a", "nodes": [{"id": "a", "type": "t"}]}
    spec = parse_graph_spec(data)
    assert "entry_nodes" not in spec.canonical_json()
    assert parse_graph_spec({**data, "entry_nodes": ["a"]}).content_hash() == spec.content_hash()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"entry_nodes": ["left", "ghost"]}, "'ghost' does not exist"),
        ({"entry_nodes": ["left", "left", "right"]}, "duplicate entry"),
        ({"entry": "join"}, "not one of entry_nodes"),
        ({"entry_nodes": ["left", "join", "right"]}, "'join' must have no incoming edge"),
        ({"entry_nodes": ["left"], "entry": "left"}, "unreachable"),
    ],
)
def test_invalid_entry_lists_are_refused(extra: dict[str, Any], message: str) -> None:
    """Unknown, repeated, non-listed or fed entries, and nodes no entry reaches, are refused
    with the offending node named."""
    with pytest.raises(InvalidGraphSpecError, match=message):
        parse_graph_spec(_fan_in_spec(**extra))


def _peer_registry() -> NodeRegistry:
    """Entries that each wait until the other has started: only a concurrent start finishes."""
    registry = NodeRegistry()
    started = {"left": asyncio.Event(), "right": asyncio.Event()}

    async def wait_for_peer(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        started[ctx.node_id].set()
        peer = "right" if ctx.node_id == "left" else "left"
        await asyncio.wait_for(started[peer].wait(), timeout=30)
        return {ctx.node_id[0]: f"{ctx.node_id}:{inputs['q']}"}

    async def join(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        return {"both": [inputs["l"], inputs["r"]]}

    registry.register("wait_for_peer", wait_for_peer)
    registry.register("join", join)
    return registry


async def test_every_entry_runs_concurrently_on_the_request() -> None:
    """Both entries start on the request's inputs at once (each waits for the other) and the
    join sees both outputs."""
    result = await GraphRuntime(_peer_registry()).run(
        parse_graph_spec(_fan_in_spec()), {"q": "x"}, version_id="v1"
    )
    assert result.ok, result.error_message
    assert result.outputs["both"] == ["left:x", "right:x"]
    assert result.node_statuses == {"left": "ok", "right": "ok", "join": "ok"}


class MultiSource(Node):
    """Emits its own id under its first output."""

    async def process(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {self.outputs[0]: f"{self.id}:{inputs['q']}"}


class MultiJoin(Node):
    """Concatenates both sources."""

    async def process(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"joined": inputs["a"] + "+" + inputs["b"]}


async def test_graph_api_takes_several_start_nodes() -> None:
    """``Graph(start=[a, b])`` builds a two-entry spec, round-trips it and runs both."""
    a = MultiSource(id="src_a", inputs=["q"], outputs=["a"])
    b = MultiSource(id="src_b", inputs=["q"], outputs=["b"])
    sources: list[Node] = [a, b]
    sources >> MultiJoin(id="joiner", inputs=["a", "b"], outputs=["joined"])
    graph = Graph(start=sources, graph_id="two-starts")
    spec = graph.to_spec()
    assert spec.entries == ["src_a", "src_b"] and spec.inputs == ["q"]
    assert Graph.from_spec(spec).to_spec() == spec
    result = await graph.run({"q": "x"})
    assert result.outputs["joined"] == "src_a:x+src_b:x"


def _chains_spec() -> GraphSpec:
    """Two entries, the second heading an independent chain r1 -> r2 -> r3 into the join."""
    return parse_graph_spec(
        {
            "id": "chains",
            "entry_nodes": ["l0", "r0"],
            "inputs": ["q"],
            "nodes": [
                {"id": "l0", "type": "t", "inputs": ["q"], "outputs": ["l"]},
                {"id": "r0", "type": "t", "inputs": ["q"], "outputs": ["r"]},
                {"id": "r1", "type": "t", "inputs": ["q"], "outputs": ["x1"]},
                {"id": "r2", "type": "t", "inputs": ["q"], "outputs": ["x2"]},
                {"id": "end", "type": "t", "inputs": ["l", "r", "x1", "x2"], "outputs": ["o"]},
            ],
            "edges": [
                {"source": "l0", "target": "end"},
                {"source": "r0", "target": "r1"},
                {"source": "r1", "target": "r2"},
                {"source": "r2", "target": "end"},
            ],
        }
    )


def test_parallelizing_a_chain_headed_by_a_second_entry_keeps_it_first() -> None:
    """The analyzer offers the chain headed by the second entry; the change keeps that entry as
    the fan-out source (it runs first) and the result keeps both entries."""
    spec = _chains_spec()
    assert ["r0", "r1", "r2"] in parallelizable_chains(spec)
    new = apply_changes(spec, [Parallelize(node_ids=["r0", "r1", "r2"])])
    assert new.entries == ["l0", "r0"]
    assert {e.key for e in new.edges} >= {("r0", "r1"), ("r0", "r2"), ("r1", "end")}


def test_an_edge_into_an_entry_is_refused_by_validation() -> None:
    """Adding an edge into the second entry makes an invalid spec: validation rejects it."""
    spec = _chains_spec()
    proposal = Hypothesis(
        graph_id="chains",
        base_version_id="v1",
        title="t",
        diagnosis="t",
        changes=[AddEdge(source="l0", target="r0")],
    )
    result = validate_hypothesis(spec, proposal, ValidationPolicy(allow_critical=True))
    assert not result.approved
    assert any("'r0' must have no incoming edge" in v for v in result.violations)


def test_diffs_show_a_change_of_entry_nodes() -> None:
    """Both differs report a changed entry list."""
    old = _chains_spec()
    data = old.model_dump()
    data["entry_nodes"] = ["l0"]
    data["edges"].append({"source": "l0", "target": "r0", "condition": None})
    new = GraphSpec.model_validate(data)
    assert "entry nodes ['l0', 'r0'] -> ['l0']" in diff_specs(old, new)
    assert "entry_nodes" in render_json(diff_graphs(old, new))
