"""Node tags in a graph spec: the declared properties RSI relies on."""

from __future__ import annotations

import pytest

from spark.errors import InvalidGraphSpecError
from spark.graphs.spec import parse_graph_spec


def _spec(tags: list[str]) -> dict[str, object]:
    return {
        "id": "tags",
        "entry": "lookup",
        "inputs": ["q"],
        "nodes": [{"id": "lookup", "type": "fn", "inputs": ["q"], "outputs": ["a"], "tags": tags}],
    }


def test_a_node_declares_its_output_deterministic() -> None:
    """``deterministic`` is a node tag: a node declares that its output is a pure function of
    its inputs (what a cache may rely on)."""
    spec = parse_graph_spec(_spec(["deterministic", "idempotent"]))
    assert spec.node("lookup").has_tag("deterministic")


def test_a_node_is_not_deterministic_unless_it_says_so() -> None:
    """Without the tag a node counts as not deterministic (LLM and tool nodes by default)."""
    assert not parse_graph_spec(_spec([])).node("lookup").has_tag("deterministic")


def test_an_unknown_tag_is_refused_naming_the_node() -> None:
    """A misspelt property is a spec error, not a silently ignored declaration."""
    with pytest.raises(InvalidGraphSpecError, match="node 'lookup'"):
        parse_graph_spec(_spec(["determinstic"]))
