"""Paired replay with common random numbers: a node the candidate left unchanged runs once per
pair, and both arms use that one draw (its output or error, usage and duration)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from spark.graphs import GraphRuntime, NodeContext, NodeRegistry
from spark.graphs.shared_outcomes import retry_policy_changes, unchanged_nodes
from spark.graphs.spec import GraphSpec
from spark.rsi.replay import ReplayArm, replay_pairs
from spark.telemetry.aggregates import RecordedRun
from tests.graphs.helpers import make_spec

RUNS = 60


def flaky_graph(
    *, flaky: dict[str, Any] | None = None, finish: dict[str, Any] | None = None
) -> GraphSpec:
    """``flaky`` (fails half its calls, reports cost) then ``finish``, each with its config."""
    return make_spec(
        [
            {"id": "flaky", "type": "flaky", "config": flaky or {}},
            {"id": "finish", "type": "finish", "config": finish or {}},
        ],
        [("flaky", "finish")],
        inputs=["ticket"],
    )


class Calls:
    """The node implementations of ``flaky_graph``, counting their calls."""

    def __init__(self, registry: NodeRegistry, seed: int = 7, *, sleep_s: float = 0.0) -> None:
        self.rng = random.Random(seed)
        self.sleep_s = sleep_s
        self.slept: dict[Any, float] = {}
        self.counts: list[int] = []
        self.flaky = 0
        self.finish = 0
        registry.register("flaky", self._flaky)
        registry.register("finish", self._finish)

    async def _flaky(self, inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        self.flaky += 1
        if self.sleep_s:
            took = self.sleep_s * self.rng.uniform(1.0, 2.0)
            self.slept.setdefault(inputs["ticket"], took)
            await asyncio.sleep(took)
        if self.rng.random() < 0.5:
            raise ConnectionError("endpoint returned 503")
        ctx.report_usage(tokens=10, cost=0.5)
        return {"items": [inputs["ticket"]]}

    async def _finish(self, inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        self.finish += 1
        inputs["items"].append("seen")  # mutates what it was given
        self.counts.append(len(inputs["items"]))
        return {"count": len(inputs["items"])}


def recorded(inputs: list[Any]) -> list[RecordedRun]:
    return [
        RecordedRun(trace_id=f"t{i}", version_id="v1", started_at=0.0, inputs={"ticket": value})
        for i, value in enumerate(inputs)
    ]


async def replay(
    registry: NodeRegistry, baseline: GraphSpec, candidate: GraphSpec, runs: list[RecordedRun]
) -> Any:
    runtime = GraphRuntime(registry)
    return await replay_pairs(
        ReplayArm(baseline, "v1", runtime), ReplayArm(candidate, "v2", runtime), runs
    )


def test_unchanged_nodes_are_those_with_identical_specs() -> None:
    base = flaky_graph()
    assert unchanged_nodes(base, flaky_graph()) == {"flaky", "finish"}
    assert unchanged_nodes(base, flaky_graph(finish={"params": {"style": "short"}})) == {"flaky"}
    assert unchanged_nodes(base, flaky_graph(flaky={"retries": 3})) == {"finish"}


async def test_an_unchanged_flaky_node_fails_in_both_arms_or_in_neither() -> None:
    """The candidate changes only ``finish``: ``flaky`` runs once per pair, so every pair has
    the same error, cost and tokens in both arms (no discordant pairs from its randomness)."""
    registry = NodeRegistry()
    calls = Calls(registry)
    candidate = flaky_graph(finish={"params": {"style": "short"}})
    samples = await replay(registry, flaky_graph(), candidate, recorded(list(range(RUNS))))
    base, cand = samples.baseline, samples.candidate
    assert calls.flaky == RUNS
    assert 0 < sum(base["error_rate"]) < RUNS
    assert cand["error_rate"] == base["error_rate"]
    assert cand["cost"] == base["cost"]
    assert calls.finish == 2 * (RUNS - int(sum(base["error_rate"])))


async def test_a_node_whose_retry_policy_changed_shares_its_first_attempt() -> None:
    """The candidate retries ``flaky``: its first attempt is the baseline's draw, so a pair
    the baseline passed passes in the candidate too, and only the candidate's retries are new
    calls; the retries cure most of the baseline's failures."""
    registry = NodeRegistry()
    calls = Calls(registry)
    candidate = flaky_graph(flaky={"retries": 3, "backoff_s": 0.0})
    samples = await replay(registry, flaky_graph(), candidate, recorded(list(range(RUNS))))
    base, cand = samples.baseline["error_rate"], samples.candidate["error_rate"]
    failed = int(sum(base))
    assert 0 < failed < RUNS
    assert all(c <= b for b, c in zip(base, cand, strict=True))  # never a new failure
    assert sum(cand) < failed / 2
    assert RUNS + failed <= calls.flaky <= RUNS + 3 * failed  # first calls once, then retries
    assert unchanged_nodes(flaky_graph(), candidate) == {"finish"}


async def test_a_node_changed_beyond_its_retry_policy_draws_its_own_outcomes() -> None:
    """A changed parameter may change the first call itself: each arm calls ``flaky``."""
    registry = NodeRegistry()
    calls = Calls(registry)
    candidate = flaky_graph(flaky={"retries": 3, "params": {"endpoint": "b"}})
    samples = await replay(registry, flaky_graph(), candidate, recorded(list(range(RUNS))))
    base_failed = int(sum(samples.baseline["error_rate"]))
    assert calls.flaky >= 2 * RUNS + base_failed // 2 - 1
    assert retry_policy_changes(flaky_graph(), candidate) == frozenset()
    assert retry_policy_changes(flaky_graph(), flaky_graph(flaky={"retries": 1})) == {"flaky"}


async def test_a_reused_outcome_is_a_copy_and_takes_as_long_as_the_draw() -> None:
    """``finish`` mutates the list ``flaky`` returned; the other arm still gets the list as
    ``flaky`` made it (both arms count 2). The arm that reuses the draw waits as long as the
    shared call took: both arms of every pair take at least the one sleep drawn for it."""
    registry = NodeRegistry()
    calls = Calls(registry, seed=1, sleep_s=0.01)
    samples = await replay(
        registry,
        flaky_graph(),
        flaky_graph(finish={"params": {"style": "short"}}),
        recorded(list(range(RUNS))),
    )
    passed = [i for i, e in enumerate(samples.baseline["error_rate"]) if e == 0]
    assert passed and calls.flaky == RUNS and len(calls.slept) == RUNS
    assert calls.counts == [2] * (2 * len(passed))
    for i in range(RUNS):
        for arm in (samples.baseline, samples.candidate):
            assert arm["latency"][i] >= 0.99 * 1000 * calls.slept[i]


async def test_inputs_that_cannot_be_fingerprinted_are_not_shared() -> None:
    """An input with no canonical JSON cannot be matched between the arms: each arm runs the
    node itself, as without sharing."""
    registry = NodeRegistry()
    calls = Calls(registry)
    runs = [
        RecordedRun.model_construct(
            trace_id=f"t{i}",
            version_id="v1",
            started_at=0.0,
            inputs={"ticket": object()},
            side_effect_outputs={},
        )
        for i in range(10)
    ]
    await replay(registry, flaky_graph(), flaky_graph(finish={"params": {"x": 1}}), runs)
    assert calls.flaky == 20
