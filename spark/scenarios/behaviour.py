"""Simulated node behaviour driven by a scenario, and the quality of a finished run.

A simulated call sleeps its service time (scaled by the configured model's ``latency_factor``),
may fail (persistently for some inputs, transiently at random, or with a rate limit once the
loop reaches a given cycle), reports its cost (the configured model's price when the scenario
lists the model, else the node's own ``cost``) and writes each declared output field as::

    {"node": "fetch", "value": "fetch:1a2b3c4d", "q": 0.9, "epoch": 12}

``q`` is the mean quality of the output for the node's model and prompt, ``epoch`` the version of
the truth when it was computed (nodes whose output goes stale only). The run's quality is the
product over the nodes that declare a quality of ``q`` (or ``stale_quality`` when the truth
changed since ``epoch``, as with a cached answer), each drawn with the node's ``spread``.

The loop's cycle (for rate limits) is shared with worker processes through a small state file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import random
import time
from pathlib import Path
from statistics import NormalDist
from typing import Any

from spark.errors import SparkRuntimeError, TransientNodeError
from spark.graphs.registry import NodeContext
from spark.scenarios.model import Behaviour, Quality, Scenario

STATE_REFRESH_S = 0.5


class RateLimitError(TransientNodeError):
    """The simulated provider throttled the call (retrying after a backoff may pass)."""


class PersistentNodeError(SparkRuntimeError):
    """The simulated node cannot handle this input: every attempt fails the same way."""


_NORMAL = NormalDist()


class Simulation:
    """The behaviour of every node of one scenario, and the loop's current cycle."""

    def __init__(self, scenario: Scenario, state_file: Path | None = None) -> None:
        self.scenario = scenario
        self.state_file = state_file
        self._outputs = {node.id: list(node.outputs) for node in scenario.graph.nodes}
        self._cycle, self._read_at = 0, -math.inf

    # ----- the loop's cycle -----

    def set_cycle(self, cycle: int) -> None:
        """Record the loop's current cycle (and share it with workers through the state file)."""
        self._cycle, self._read_at = cycle, time.monotonic()
        if self.state_file is not None:
            self.state_file.write_text(json.dumps({"cycle": cycle}), encoding="utf-8")

    def cycle(self) -> int:
        """The loop's current cycle (0 before it starts), re-read from the state file at most
        every ``STATE_REFRESH_S`` seconds."""
        now = time.monotonic()
        if self.state_file is not None and now - self._read_at > STATE_REFRESH_S:
            self._read_at = now
            with contextlib.suppress(OSError, ValueError, KeyError):
                self._cycle = int(json.loads(self.state_file.read_text("utf-8"))["cycle"])
        return self._cycle

    # ----- one call -----

    def behaviour(self, ctx: NodeContext) -> Behaviour:
        """The behaviour of the node type running (a fallback or replacement type listed in
        ``types``), else of the node."""
        if ctx.node_type in self.scenario.types:
            return self.scenario.types[ctx.node_type]
        return self.scenario.behaviour.get(ctx.node_id, Behaviour())

    async def call(self, inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        """Run one simulated call of ``ctx``'s node on ``inputs``."""
        behaviour = self.behaviour(ctx)
        await asyncio.sleep(self.service_time_ms(behaviour, ctx, inputs) / 1000.0)
        self.raise_failure(behaviour, inputs, ctx)
        tokens, cost = self.usage(behaviour, ctx)
        ctx.report_usage(tokens=tokens, cost=cost)
        return self.outputs(behaviour, inputs, ctx)

    def service_time_ms(
        self, behaviour: Behaviour, ctx: NodeContext, inputs: dict[str, Any]
    ) -> float:
        """The call's service time in milliseconds: drawn per call, or fixed by the inputs."""
        latency = behaviour.latency
        factor = self._model(ctx).latency_factor if self._model(ctx) else 1.0
        if latency.distribution == "fixed" or latency.sigma == 0:
            return latency.median_ms * factor
        if latency.varies == "input":
            level = min(max(_unit_hash(f"{ctx.node_id}/latency", inputs), 1e-9), 1 - 1e-9)
            return latency.median_ms * factor * math.exp(latency.sigma * _NORMAL.inv_cdf(level))
        return latency.median_ms * factor * random.lognormvariate(0.0, latency.sigma)

    def raise_failure(self, behaviour: Behaviour, inputs: dict[str, Any], ctx: NodeContext) -> None:
        """Fail the call as the behaviour says: persistent failures are a fixed share of inputs
        (every attempt fails), transient ones and rate limits are drawn per call."""
        if _unit_hash(ctx.node_id, inputs) < behaviour.persistent_error_rate:
            raise PersistentNodeError(f"{ctx.node_id} cannot handle this input")
        if random.random() < behaviour.transient_error_rate:
            raise TransientNodeError(f"{ctx.node_id}: upstream returned 503")
        limit = behaviour.rate_limit
        if limit is None or self.cycle() < limit.from_cycle:
            return
        if random.random() < limit.error_rate:
            raise RateLimitError(f"{ctx.node_id}: 429 too many requests")

    def usage(self, behaviour: Behaviour, ctx: NodeContext) -> tuple[int, float]:
        """Tokens and cost of one successful call: the configured model's price when the
        scenario lists that model, else the node's own ``cost``."""
        tokens, model = behaviour.cost.tokens, self._model(ctx)
        if model is not None:
            return tokens, model.cost_per_call + model.cost_per_1k_tokens * tokens / 1000
        cost = behaviour.cost
        return tokens, cost.per_call + cost.per_1k_tokens * tokens / 1000

    def outputs(
        self, behaviour: Behaviour, inputs: dict[str, Any], ctx: NodeContext
    ) -> dict[str, Any]:
        """Each declared output field, carrying the output's mean quality and truth epoch."""
        value = {
            "node": ctx.node_id,
            "value": f"{ctx.node_id}:{_digest(inputs)[:8]}",
            "q": mean_quality(behaviour.quality, ctx) if behaviour.quality else None,
            "epoch": self._epoch(behaviour, time.time()),
        }
        return {name: value for name in self._outputs.get(ctx.node_id, [])}

    def _model(self, ctx: NodeContext) -> Any:
        model = ctx.config.model
        return self.scenario.models.get(model) if model is not None else None

    @staticmethod
    def _epoch(behaviour: Behaviour, at: float) -> int | None:
        if behaviour.stale is None:
            return None
        return int(at // behaviour.stale.truth_changes_every_s)

    # ----- quality of a finished run -----

    def run_quality(self, outputs: dict[str, Any], rng: random.Random) -> float | None:
        """The run's quality from the output values it returned; ``None`` when no node of
        the run declares a quality."""
        now, scores = time.time(), []
        for value in _node_values(outputs).values():
            behaviour = self.scenario.behaviour.get(str(value.get("node")), Behaviour())
            if value.get("q") is None:
                continue
            quality = float(value["q"])
            stale = behaviour.stale
            if stale is not None and value.get("epoch") != self._epoch(behaviour, now):
                quality = stale.stale_quality
            scores.append(_draw(quality, behaviour.quality, rng))
        return math.prod(scores) if scores else None


def mean_quality(quality: Quality, ctx: NodeContext) -> float:
    """The mean quality of the node's output for its configured model and prompt."""
    model = ctx.config.model
    base = quality.by_model.get(model, quality.default) if model else quality.default
    prompt = ctx.config.prompt or ""
    for rule in quality.by_prompt:
        if rule.contains in prompt:
            return round(min(1.0, max(0.0, base + rule.delta)), 6)
    return base


def _draw(mean: float, quality: Quality | None, rng: random.Random) -> float:
    """A Beta draw with mean ``mean`` and roughly ``spread`` standard deviation (the mean itself
    when there is no spread, or at 0 and 1)."""
    spread = quality.spread if quality is not None else 0.0
    if spread <= 0 or mean <= 0 or mean >= 1:
        return mean
    concentration = max(mean * (1 - mean) / spread**2 - 1, 1.0)
    return rng.betavariate(mean * concentration, (1 - mean) * concentration)


def _node_values(outputs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One simulated output value per node (a node writing several fields counts once)."""
    values: dict[str, dict[str, Any]] = {}
    for value in outputs.values():
        if isinstance(value, dict) and "node" in value and "q" in value:
            values.setdefault(str(value["node"]), value)
    return values


def _digest(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def _unit_hash(node_id: str, inputs: dict[str, Any]) -> float:
    """A number in [0, 1) fixed by the node and its inputs (which inputs fail persistently)."""
    return int(_digest({"node": node_id, "inputs": inputs})[:12], 16) / 16**12
