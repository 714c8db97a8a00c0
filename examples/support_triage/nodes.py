"""Simulated node implementations whose behaviour depends on their config, so a right change
really helps: ``classify`` fails transiently (a retry cures it), ``lookup_kb`` is slow and sees
the same few queries again and again (a cache cures it). Latencies are simulated with sleeps.

Knobs live in ``config.params`` so scenarios can be tuned without code:
``failure_rate``, ``latency_ms``, ``jitter``.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from typing import Any

from spark.errors import TransientNodeError
from spark.graphs.registry import NodeContext, node

CATEGORIES = ("billing", "login", "shipping", "refund", "bug", "other")
_KEYWORDS = {
    "invoice": "billing",
    "charge": "billing",
    "password": "login",
    "sign in": "login",
    "parcel": "shipping",
    "delivery": "shipping",
    "refund": "refund",
    "money back": "refund",
    "crash": "bug",
    "error": "bug",
}


async def _work(ctx: NodeContext, default_ms: float) -> None:
    """Sleep for the node's simulated service time (lognormal jitter around ``latency_ms``)."""
    params = ctx.config.params
    mean_ms = float(params.get("latency_ms", default_ms))
    jitter = float(params.get("jitter", 0.25))
    await asyncio.sleep(mean_ms * random.lognormvariate(0.0, jitter) / 1000.0)


@node("support.parse_ticket")
async def parse_ticket(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
    """Normalise the ticket text."""
    await _work(ctx, 2.0)
    return {"text": " ".join(str(inputs["ticket"]).lower().split())}


@node("support.classify")
async def classify(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
    """An LLM classifier behind a flaky endpoint: each call fails with ``failure_rate``."""
    await _work(ctx, 12.0)
    if random.random() < float(ctx.config.params.get("failure_rate", 0.0)):
        raise TransientNodeError("classifier endpoint returned 503")
    ctx.report_usage(tokens=120, cost=0.00012)
    text = inputs["text"]
    category = next((c for k, c in _KEYWORDS.items() if k in text), "other")
    return {"category": category, "priority": "high" if "urgent" in text else "normal"}


@node("support.lookup_kb")
async def lookup_kb(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
    """A slow knowledge-base search, keyed only by category (so inputs repeat)."""
    await _work(ctx, 60.0)
    digest = hashlib.sha256(inputs["category"].encode()).hexdigest()[:8]
    return {"articles": [f"kb-{inputs['category']}-{digest}"]}


@node("support.draft_reply")
async def draft_reply(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
    """An LLM drafting the reply from the ticket and the articles."""
    await _work(ctx, 10.0)
    ctx.report_usage(tokens=400, cost=0.0004)
    return {
        "reply": f"[{inputs['priority']}] about {inputs['category']}: see {inputs['articles'][0]}"
    }


@node("support.send_reply")
async def send_reply(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
    """Sends the reply to the customer: a real side effect, never repeated by replay."""
    await _work(ctx, 2.0)
    receipt = hashlib.sha256(inputs["reply"].encode()).hexdigest()[:12]
    return {"delivery_id": f"msg-{receipt}"}
