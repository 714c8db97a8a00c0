"""Nodes of the reviewer-workbench dev-server test: a drafting step whose latency depends on the
model in its config (``slow-model`` 40 ms, anything else 8 ms) and declares ``fast-model`` as
its alternative, so the rules propose a model swap on the entry node (high risk) that really is
faster when replayed."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from spark.graphs.registry import NodeContext, node

SLOW_MS, FAST_MS = 40.0, 8.0


@node("workbench.draft")
async def draft(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
    """Draft an answer; slow on ``slow-model``."""
    mean_ms = SLOW_MS if ctx.config.model == "slow-model" else FAST_MS
    await asyncio.sleep(mean_ms * random.uniform(0.8, 1.2) / 1000.0)
    return {"draft": f"about {inputs['question']}"}


@node("workbench.polish")
async def polish(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
    """Polish the draft (fast, no model)."""
    return {"answer": inputs["draft"].capitalize()}
