"""Property: no change that validation approves can skip a protected node, starve it of an input,
or run its implementation from another node.

Random DAGs (seeded) with conditional edges, a protected node and flaky nodes rescued by a
fallback; every change operation with random parameters, alone and in pairs. Each approved
candidate and its base run through the real runtime on the same random requests, with a registry
whose implementations are deterministic functions of (node id, inputs), so that only the
structure can change behaviour; the protected implementation logs who called it.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import structlog

from spark.errors import TransientNodeError
from spark.graphs.registry import NodeContext, NodeRegistry
from spark.graphs.runtime import GraphRuntime
from spark.graphs.spec import EdgeCondition, GraphSpec, parse_graph_spec
from spark.rsi.analysis import parallelizable_chains
from spark.rsi.hypotheses import (
    AddCache,
    AddEdge,
    AddFallback,
    ChangeOp,
    Hypothesis,
    Parallelize,
    RemoveEdge,
    ReplaceNode,
    RerouteEdge,
    SetConfig,
    SetPrompt,
)
from spark.rsi.validation import ValidationPolicy, validate_hypothesis

PROTECTED_TYPE = "payment"
TYPES = ("fn", "alt", "rescue", "flaky", PROTECTED_TYPE)
GRAPHS = 150
REQUESTS = 5
POLICY = ValidationPolicy(allow_critical=True)  # protection must hold whatever the risk policy
Call = tuple[str, str]  # (node id, canonical JSON of its inputs)


@dataclass
class Calls:
    """What the protected implementation saw, per trace id."""

    by_trace: dict[str, list[Call]] = field(default_factory=dict)

    def of(self, trace_id: str) -> list[Call]:
        """The calls made in one run (empty when it never ran)."""
        return self.by_trace.get(trace_id, [])


def _value(node_id: str, inputs: dict[str, Any]) -> int:
    """A small deterministic value (0..2) so conditions hold on some requests and not others."""
    digest = hashlib.sha256(json.dumps([node_id, inputs], sort_keys=True).encode()).digest()
    return digest[0] % 3


def make_registry(calls: Calls) -> NodeRegistry:
    """Every type computes ``v_<node id>`` from (node id, inputs); ``flaky`` always fails
    (transiently, so a fallback runs); ``payment`` also records who called it with what."""
    registry = NodeRegistry()

    async def pure(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        return {f"v_{ctx.node_id}": _value(ctx.node_id, inputs)}

    async def flaky(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        raise TransientNodeError(f"{ctx.node_id} is down")

    async def payment(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        call = (ctx.node_id, json.dumps(inputs, sort_keys=True))
        calls.by_trace.setdefault(ctx.trace_id, []).append(call)
        return await pure(inputs, ctx)

    for name in ("fn", "alt", "rescue"):
        registry.register(name, pure)
    registry.register("flaky", flaky)
    registry.register(PROTECTED_TYPE, payment)
    return registry


# ----- random graphs -----


def random_condition(rng: random.Random, fields: list[str]) -> dict[str, Any]:
    """A condition on one of ``fields``: sometimes true, or (1 in 5) never true."""
    name = rng.choice(fields)
    if rng.random() < 0.2:
        return {"field": name, "op": "eq", "value": 7}
    return rng.choice(
        [
            {"field": name, "op": "eq", "value": rng.randrange(3)},
            {"field": name, "op": "ne", "value": rng.randrange(3)},
            {"field": name, "op": "in", "value": rng.sample(range(3), 2)},
        ]
    )


def random_spec(rng: random.Random) -> tuple[GraphSpec, str]:
    """A DAG over ``n0..nk`` (``n0`` the entry, in a quarter of them ``n1`` too; chains are
    frequent), each node writing
    ``v_<id>`` and reading fields of its ancestors (or only the request: a lookup); conditions read fields written by the edge's source or its ancestors (so
    the base has no race); one protected node; flaky nodes carry a rescuing fallback."""
    size = rng.randint(4, 8)
    ids = [f"n{i}" for i in range(size)]
    entries = ["n0", "n1"] if rng.random() < 0.25 else ["n0"]  # a fan-out at the start
    preds: dict[str, set[str]] = {entry: set() for entry in entries}
    ancestors: dict[str, set[str]] = {entry: set() for entry in entries}
    edges: list[dict[str, Any]] = []
    for index in range(len(entries), size):
        node_id = ids[index]
        fan_in = 2 if index > 1 and rng.random() < 0.3 else 1
        sources = [ids[index - 1]] if fan_in == 1 and rng.random() < 0.6 else []
        sources = sources or rng.sample(ids[:index], fan_in)
        preds[node_id] = set(sources)
        ancestors[node_id] = set(sources).union(*(ancestors[s] for s in sources))
        for source in sources:
            seen = [f"v_{n}" for n in sorted(ancestors[source] | {source})] + ["r"]
            condition = random_condition(rng, seen) if rng.random() < 0.3 else None
            edges.append({"source": source, "target": node_id, "condition": condition})
    protected = rng.choice(ids[1:])
    nodes = [_random_node(rng, n, sorted(ancestors[n]), n == protected) for n in ids]
    spec = parse_graph_spec(
        {
            "id": "prop",
            "entry_nodes": entries,
            "inputs": ["r"],
            "nodes": nodes,
            "edges": edges,
        }
    )
    return spec, protected


def _random_node(
    rng: random.Random, node_id: str, ancestors: list[str], protected: bool
) -> dict[str, Any]:
    available = [f"v_{a}" for a in ancestors] + ["r"]
    lookup = rng.random() < 0.4  # reads only the request: an independent lookup
    inputs = (
        ["r"] if lookup else sorted(rng.sample(available, rng.randint(1, min(3, len(available)))))
    )
    node: dict[str, Any] = {
        "id": node_id,
        "type": "fn",
        "inputs": inputs,
        "outputs": [f"v_{node_id}"],
        "config": {"backoff_s": 0.0},
        "tags": ["deterministic"] if rng.random() < 0.5 else [],
    }
    if protected:
        node.update(type=PROTECTED_TYPE, tags=["protected", "side_effects"])
    elif rng.random() < 0.25:
        node.update(type="flaky", config={"backoff_s": 0.0, "fallback": "rescue"})
    return node


# ----- random changes -----


def random_change(rng: random.Random, spec: GraphSpec) -> ChangeOp:
    """One change of a random kind with random (not always valid) parameters."""
    ids = [n.id for n in spec.nodes]
    node_id = rng.choice(ids)
    kind = rng.choice(
        [
            "set_config",
            "set_prompt",
            "replace_node",
            "add_edge",
            "remove_edge",
            "reroute_edge",
            "parallelize",
            "add_cache",
            "add_fallback",
        ]
    )
    match kind:
        case "set_config":
            return SetConfig(node_id=node_id, values=_random_config(rng))
        case "set_prompt":
            return SetPrompt(node_id=node_id, prompt=f"prompt {rng.randrange(9)}")
        case "replace_node":
            return ReplaceNode(node_id=node_id, new_type=rng.choice(TYPES))
        case "add_edge":
            return _random_add_edge(rng, spec, ids)
        case "remove_edge":
            edge = rng.choice(spec.edges)
            return RemoveEdge(source=edge.source, target=edge.target)
        case "reroute_edge":
            edge = rng.choice(spec.edges)
            return RerouteEdge(source=edge.source, target=edge.target, new_target=rng.choice(ids))
        case "parallelize":
            return Parallelize(node_ids=_random_chain(rng, spec))
        case "add_cache":
            return AddCache(node_id=node_id, ttl_s=60.0)
        case _:
            return AddFallback(node_id=node_id, fallback_type=rng.choice(TYPES))


def _random_config(rng: random.Random) -> dict[str, Any]:
    choices: dict[str, Any] = {
        "retries": rng.randint(1, 2),
        "timeout_s": 5.0,
        "model": "m2",
        "cache_ttl_s": 60.0,
        "fallback": rng.choice([*TYPES, None]),
    }
    keys = rng.sample(sorted(choices), rng.randint(1, 2))
    return {key: choices[key] for key in keys}


def _random_add_edge(rng: random.Random, spec: GraphSpec, ids: list[str]) -> AddEdge:
    source, target = sorted(rng.sample(ids, 2), key=ids.index)
    fields = [f"v_{source}", "r"]
    condition = random_condition(rng, fields) if rng.random() < 0.5 else None
    parsed = EdgeCondition.model_validate(condition) if condition else None
    return AddEdge(source=source, target=target, condition=parsed)


def _random_chain(rng: random.Random, spec: GraphSpec) -> list[str]:
    """Mostly a group the analysis finds; otherwise a random linked pair or triple."""
    groups = parallelizable_chains(spec)
    if groups and rng.random() < 0.7:
        return rng.choice(groups)
    chain = [rng.choice([n.id for n in spec.nodes])]
    for _ in range(rng.randint(1, 2)):
        successors = spec.successors(chain[-1])
        if not successors:
            break
        chain.append(rng.choice(successors))
    return chain if len(chain) >= 2 else [chain[0], chain[0]]


def hypothesis(*changes: ChangeOp) -> Hypothesis:
    """A hypothesis on the random graph made of ``changes``."""
    return Hypothesis(
        graph_id="prop", base_version_id="v1", title="t", diagnosis="t", changes=list(changes)
    )


# ----- running -----


async def protected_calls(
    spec: GraphSpec, requests: list[int], tag: str
) -> tuple[Calls, list[bool]]:
    """Run every request through a fresh runtime; the protected calls and which runs were ok."""
    calls = Calls()
    runtime = GraphRuntime(make_registry(calls))
    ok = []
    for index, request in enumerate(requests):
        result = await runtime.run(spec, {"r": request}, version_id=tag, trace_id=f"{tag}-{index}")
        ok.append(result.ok)
    return calls, ok


@dataclass
class Tally:
    """How much the property was exercised."""

    approved: Counter[str] = field(default_factory=Counter)
    compared_runs: int = 0
    protected_runs: int = 0
    protected_skips: int = 0
    parallelized_upstream: int = 0


async def check_graph(seed: int, tally: Tally) -> None:
    """One random graph: every approved change keeps the protected node's runs and inputs."""
    rng = random.Random(seed)
    spec, protected = random_spec(rng)
    requests = [rng.randrange(3) for _ in range(REQUESTS)]
    base_calls, base_ok = await protected_calls(spec, requests, "base")
    assert all(base_ok)
    batches = [[random_change(rng, spec)] for _ in range(6)]
    batches += [[random_change(rng, spec), random_change(rng, spec)] for _ in range(6)]
    batches += [[Parallelize(node_ids=group)] for group in parallelizable_chains(spec)]
    for changes in batches:
        verdict = validate_hypothesis(spec, hypothesis(*changes), POLICY)
        if not verdict.approved:
            continue
        assert verdict.candidate_spec is not None
        tally.approved.update(change.op for change in changes)
        tally.parallelized_upstream += _parallelizes_upstream(spec, changes, protected)
        calls, ok = await protected_calls(verdict.candidate_spec, requests, "candidate")
        for index in range(REQUESTS):
            where = f"seed {seed}, changes {changes!r}, request {index}"
            ran = calls.of(f"candidate-{index}")
            assert {node for node, _ in ran} <= {protected}, f"implementation elsewhere: {where}"
            if ok[index]:  # a run failed by the change itself is the A/B test's business
                assert ran == base_calls.of(f"base-{index}"), f"protected runs differ: {where}"
                tally.compared_runs += 1
                tally.protected_runs += bool(ran)
                tally.protected_skips += not ran


def _parallelizes_upstream(spec: GraphSpec, changes: list[ChangeOp], protected: str) -> bool:
    """Whether a parallelized group sits in front of the protected node (its ancestors)."""
    upstream = nx.ancestors(spec.to_networkx(), protected)
    return any(
        isinstance(change, Parallelize) and set(change.node_ids) <= upstream for change in changes
    )


async def test_no_approved_change_skips_starves_or_impersonates_a_protected_node() -> None:
    """Over a few hundred random graphs, every change any operation (alone or two together)
    makes that validation approves leaves the protected node running on exactly the same
    requests with exactly the same inputs, and its implementation running nowhere else. The
    tally proves the property was exercised: every kind of operation got approved, groups in
    front of the protected node were parallelized, and the protected node both ran and was
    skipped (by a condition) on compared requests."""
    tally = Tally()
    with structlog.testing.capture_logs():  # thousands of fallback warnings, not worth printing
        for seed in range(GRAPHS):
            await check_graph(seed, tally)
    assert set(tally.approved) == {
        "set_config",
        "set_prompt",
        "replace_node",
        "add_edge",
        "remove_edge",
        "reroute_edge",
        "parallelize",
        "add_cache",
        "add_fallback",
    }
    assert tally.protected_runs > 1000 and tally.protected_skips > 100, tally
    assert tally.parallelized_upstream >= 5, tally
