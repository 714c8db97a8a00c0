"""Common random numbers for paired replay: one draw of each unchanged node, used by both arms.

A paired replay runs one recorded input through the baseline and then through the candidate.
A node the candidate did not change, given the same inputs in both arms, has the same outcome
distribution in both; running it twice adds two independent draws of its randomness (a flaky
endpoint failing in one arm and not the other, a slow call in one arm only) to every pair's
difference, which is pure noise: a candidate that caches a lookup could never be shown not to
raise the error rate of a classifier failing a quarter of its calls at random. So the first arm
to execute such a node records its outcome (output or error, attempts, usage and duration) and
the second arm reuses it, waiting the same time. Each arm's own results keep their distribution
(the reused draw is a draw of the same node on the same inputs), and the pair's difference loses
the unchanged nodes' noise: the variance reduction of common random numbers.

A node is shared only when its spec is identical in both arms (type, config, prompt, model,
tags) and its inputs have the same canonical-JSON fingerprint; nodes whose inputs cannot be
fingerprinted, and replayed side-effect nodes, run as before.

A node whose specs differ only in their retry policy (``retries``, ``backoff_s``) shares its
first attempt: that call is the same call in both arms, so the arm that retries more starts
from the other arm's first draw and only its extra attempts are new draws. The difference of
a pair then comes from the runs the retries cure, not from whether two independent first
calls happened to fail.
"""

from __future__ import annotations

import asyncio
import copy
import time
from dataclasses import dataclass, field
from typing import Any

from spark.graphs.policies import PolicyOutcome
from spark.graphs.registry import NodeContext, NodeImpl
from spark.graphs.spec import GraphSpec, NodeSpec

RETRY_POLICY = frozenset({"retries", "backoff_s"})
"""The config fields that decide only what happens after a failed first attempt."""


def unchanged_nodes(first: GraphSpec, second: GraphSpec) -> frozenset[str]:
    """Ids of the nodes whose specs are identical in both graphs."""
    theirs = {node.id: node for node in second.nodes}
    return frozenset(node.id for node in first.nodes if theirs.get(node.id) == node)


def retry_policy_changes(first: GraphSpec, second: GraphSpec) -> frozenset[str]:
    """Ids of the nodes whose specs differ in their retry policy and nothing else."""
    theirs = {node.id: node for node in second.nodes}
    return frozenset(
        node.id
        for node in first.nodes
        if node.id in theirs and theirs[node.id] != node and _same_first_call(node, theirs[node.id])
    )


def _same_first_call(first: NodeSpec, second: NodeSpec) -> bool:
    policy = {"config": set(RETRY_POLICY)}
    return first.model_dump(exclude=policy) == second.model_dump(exclude=policy)


@dataclass(slots=True, frozen=True)
class SharedOutcome:
    """One node execution as the first arm saw it."""

    outcome: PolicyOutcome
    duration_s: float
    tokens: int
    cost: float


@dataclass(slots=True)
class SharedOutcomes:
    """The outcomes one paired replay's arms share (one instance per recorded input)."""

    nodes: frozenset[str]
    first_attempts: frozenset[str] = frozenset()
    outcomes: dict[tuple[str, str], SharedOutcome] = field(default_factory=dict)
    attempts: dict[tuple[str, str], SharedOutcome] = field(default_factory=dict)
    reused: int = 0

    def shares_first_attempt(self, node_id: str) -> bool:
        """Whether ``node_id`` differs between the arms only in its retry policy."""
        return node_id in self.first_attempts

    def first_attempt_shared(self, node_id: str, fingerprint: str, impl: NodeImpl) -> NodeImpl:
        """``impl`` whose first attempt on these inputs is drawn once for both arms (its
        output or error, usage and duration); later attempts call ``impl`` itself."""
        key = (node_id, fingerprint)

        async def call(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
            if ctx.attempt != 1:
                return await impl(inputs, ctx)
            draw = self.attempts.get(key)
            if draw is not None:
                self.reused += 1
                await asyncio.sleep(draw.duration_s)
                ctx.report_usage(tokens=draw.tokens, cost=draw.cost)
                if draw.outcome.error is not None:
                    raise draw.outcome.error
                return copy.deepcopy(draw.outcome.output or {})
            tokens, cost, began = ctx.usage.tokens, ctx.usage.cost, time.monotonic()
            try:
                output = await impl(inputs, ctx)
            except Exception as error:
                self._keep_attempt(key, PolicyOutcome(None, error, 1), began, ctx, tokens, cost)
                raise
            kept = PolicyOutcome(copy.deepcopy(output), None, 1)
            self._keep_attempt(key, kept, began, ctx, tokens, cost)
            return output

        return call

    def _keep_attempt(
        self,
        key: tuple[str, str],
        outcome: PolicyOutcome,
        began: float,
        ctx: NodeContext,
        tokens: int,
        cost: float,
    ) -> None:
        took = max(time.monotonic() - began, 0.0)
        usage = (ctx.usage.tokens - tokens, ctx.usage.cost - cost)
        self.attempts.setdefault(key, SharedOutcome(outcome, took, *usage))

    def shares(self, node_id: str) -> bool:
        """Whether ``node_id`` is unchanged between the arms."""
        return node_id in self.nodes

    def take(self, node_id: str, fingerprint: str) -> SharedOutcome | None:
        """The other arm's outcome of ``node_id`` on these inputs, if it executed it."""
        shared = self.outcomes.get((node_id, fingerprint))
        if shared is not None:
            self.reused += 1
        return shared

    def keep(self, node_id: str, fingerprint: str, shared: SharedOutcome) -> None:
        """Record this arm's outcome for the other arm (the first arm's draw wins)."""
        self.outcomes.setdefault((node_id, fingerprint), shared)
