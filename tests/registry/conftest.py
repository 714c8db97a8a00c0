"""Graph specs shared by the registry tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from spark.graphs.spec import GraphSpec, parse_graph_spec

SpecFactory = Callable[..., GraphSpec]


def make_spec(prompt: str = "Classify the ticket.", graph_id: str = "support-triage") -> GraphSpec:
    """A two-node graph whose content (and so version id) varies with ``prompt``."""
    return parse_graph_spec(
        {
            "id": graph_id,
            "entry": "classify",
            "inputs": ["ticket"],
            "nodes": [
                {
                    "id": "classify",
                    "type": "llm",
                    "config": {"prompt": prompt},
                    "inputs": ["ticket"],
                    "outputs": ["label"],
                },
                {"id": "respond", "type": "reply", "inputs": ["label"], "outputs": ["reply"]},
            ],
            "edges": [{"source": "classify", "target": "respond"}],
        }
    )


@pytest.fixture
def spec_factory() -> SpecFactory:
    """Build specs of the test graph; a different prompt gives a different version."""
    return make_spec
