"""Fixtures for graph tests: a private node registry, a recording sink, a manual clock."""

from __future__ import annotations

import pytest

from spark.graphs import GraphRuntime, NodeRegistry
from tests.graphs.helpers import ListSink, ManualClock


@pytest.fixture
def registry() -> NodeRegistry:
    """A registry private to the test."""
    return NodeRegistry()


@pytest.fixture
def sink() -> ListSink:
    """A sink recording submitted runs."""
    return ListSink()


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock."""
    return ManualClock()


@pytest.fixture
def runtime(registry: NodeRegistry, sink: ListSink) -> GraphRuntime:
    """A runtime over the private registry, reporting to the recording sink."""
    return GraphRuntime(registry, sink)
