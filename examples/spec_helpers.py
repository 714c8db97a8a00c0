"""Shared helper of the example graphs: one node of a graph spec as plain data."""

from __future__ import annotations

from typing import Any


def node_entry(
    node_id: str,
    node_type: str,
    inputs: list[str],
    outputs: list[str],
    *,
    params: dict[str, Any] | None = None,
    tags: list[str] | None = None,
    prompt: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """The spec entry of one node (the shape ``parse_graph_spec`` validates)."""
    return {
        "id": node_id,
        "type": node_type,
        "inputs": inputs,
        "outputs": outputs,
        "tags": tags or [],
        "config": {"params": params or {}, "prompt": prompt, "model": model},
    }
