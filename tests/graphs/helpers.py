"""Test helpers for graph tests: a recording sink, a manual clock, a compact spec builder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spark.graphs import GraphSpec, parse_graph_spec
from spark.telemetry.models import PendingRun, RunTelemetry


class ListSink:
    """A telemetry sink that keeps every submitted run."""

    def __init__(self) -> None:
        self.runs: list[RunTelemetry] = []

    def submit(self, run: RunTelemetry | PendingRun) -> None:
        """Keep ``run`` (complete: this sink does not defer fingerprints)."""
        assert isinstance(run, RunTelemetry)
        self.runs.append(run)


class ManualClock:
    """An epoch clock that moves only when told to."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


def make_spec(
    nodes: list[dict[str, Any]],
    edges: Sequence[tuple[str, str] | dict[str, Any]] = (),
    *,
    entry: str | None = None,
    inputs: list[str] | None = None,
    graph_id: str = "test-graph",
) -> GraphSpec:
    """A validated spec; edges are (source, target) pairs or full edge dicts."""
    edge_data = [
        {"source": edge[0], "target": edge[1]} if isinstance(edge, tuple) else edge
        for edge in edges
    ]
    return parse_graph_spec(
        {
            "id": graph_id,
            "entry": entry or nodes[0]["id"],
            "nodes": nodes,
            "edges": edge_data,
            "inputs": inputs or [],
        }
    )
