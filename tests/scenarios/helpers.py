"""A small valid scenario as a dict, for tests to vary."""

from __future__ import annotations

import copy
from typing import Any

BASE: dict[str, Any] = {
    "name": "tiny",
    "graph": {
        "id": "sc-tiny",
        "entry": "fetch",
        "inputs": ["query"],
        "nodes": [
            {
                "id": "fetch",
                "type": "sim.fetch",
                "config": {"model": "big", "prompt": "Fetch it."},
                "inputs": ["query"],
                "outputs": ["doc"],
            },
            {"id": "answer", "type": "sim.answer", "inputs": ["doc"], "outputs": ["reply"]},
        ],
        "edges": [{"source": "fetch", "target": "answer"}],
    },
    "models": {"big": {"cost_per_call": 0.01}, "small": {"cost_per_call": 0.001}},
    "behaviour": {
        "fetch": {
            "latency": {"distribution": "fixed", "median_ms": 1},
            "quality": {"default": 0.9, "by_model": {"small": 0.6}},
        },
        "answer": {"latency": {"distribution": "fixed", "median_ms": 1}},
    },
    "inputs": {"fields": {"query": {"pool": 20, "draw": "zipf"}}},
}


def scenario_data(**overrides: Any) -> dict[str, Any]:
    """A deep copy of ``BASE`` with top-level ``overrides``."""
    data = copy.deepcopy(BASE)
    data.update(overrides)
    return data
