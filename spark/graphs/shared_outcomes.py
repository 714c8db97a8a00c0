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
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spark.graphs.policies import PolicyOutcome
from spark.graphs.spec import GraphSpec


def unchanged_nodes(first: GraphSpec, second: GraphSpec) -> frozenset[str]:
    """Ids of the nodes whose specs are identical in both graphs."""
    theirs = {node.id: node for node in second.nodes}
    return frozenset(node.id for node in first.nodes if theirs.get(node.id) == node)


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
    outcomes: dict[tuple[str, str], SharedOutcome] = field(default_factory=dict)
    reused: int = 0

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
