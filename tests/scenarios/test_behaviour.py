"""Simulated nodes behave as their scenario and their config say, so a right change helps."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from spark.errors import TransientNodeError
from spark.graphs.registry import NodeContext, NodeRegistry
from spark.graphs.runtime import GraphRuntime
from spark.graphs.spec import NodeConfig
from spark.scenarios.behaviour import PersistentNodeError, RateLimitError, Simulation
from spark.scenarios.inputs import InputSampler
from spark.scenarios.model import Scenario, parse_scenario
from spark.scenarios.nodes import install
from tests.scenarios.helpers import scenario_data


def _context(node_id: str = "fetch", **config: Any) -> NodeContext:
    return NodeContext(
        node_id=node_id,
        node_type="sim.fetch",
        config=NodeConfig(**config),
        graph_id="sc-tiny",
        version_id="v",
    )


def _scenario(**behaviour: Any) -> Scenario:
    data = scenario_data()
    data["behaviour"]["fetch"].update(behaviour)
    return parse_scenario(data)


async def test_the_configured_model_sets_price_and_quality() -> None:
    """Switching the node's model to a cheaper listed model lowers its cost and moves its
    output quality to that model's."""
    simulation = Simulation(_scenario())
    big, small = _context(model="big"), _context(model="small")
    big_out = await simulation.call({"query": "q"}, big)
    small_out = await simulation.call({"query": "q"}, small)
    assert (big.usage.cost, small.usage.cost) == (0.01, 0.001)
    assert (big_out["doc"]["q"], small_out["doc"]["q"]) == (0.9, 0.6)


async def test_a_prompt_rule_moves_quality() -> None:
    """A prompt containing the rule's text changes the output quality by the rule's delta."""
    simulation = Simulation(
        _scenario(
            quality={"default": 0.6, "by_prompt": [{"contains": "requirements", "delta": 0.3}]}
        )
    )
    plain = await simulation.call({"query": "q"}, _context(prompt="Fetch it."))
    better = await simulation.call({"query": "q"}, _context(prompt="Fetch. Output requirements"))
    assert (plain["doc"]["q"], better["doc"]["q"]) == (0.6, 0.9)


async def test_persistent_failures_repeat_for_the_same_input() -> None:
    """A persistent failure hits the same inputs on every attempt (a retry cannot cure it)."""
    simulation = Simulation(_scenario(persistent_error_rate=0.5))
    outcomes = {}
    for query in (f"q{i}" for i in range(40)):
        first = await _fails(simulation, query)
        outcomes[query] = (first, await _fails(simulation, query))
    assert all(a == b for a, b in outcomes.values())
    assert 0 < sum(a for a, _ in outcomes.values()) < 40


def test_latency_fixed_by_the_input_is_the_same_on_every_attempt() -> None:
    """``varies: input``: one input's service time repeats on every attempt (a retry of a slow
    input is as slow), and over many inputs it spreads as the lognormal says (median near
    ``median_ms``, p90 near ``median_ms * exp(1.2816 sigma)``). ``varies: call`` draws afresh."""
    per_input = Simulation(_scenario(latency={"median_ms": 20, "sigma": 1.0, "varies": "input"}))
    behaviour, ctx = per_input.behaviour(_context()), _context()
    times = [per_input.service_time_ms(behaviour, ctx, {"query": f"q{i}"}) for i in range(4000)]
    again = [per_input.service_time_ms(behaviour, ctx, {"query": f"q{i}"}) for i in range(4000)]
    assert times == again
    ordered = sorted(times)
    assert ordered[2000] == pytest.approx(20, rel=0.1)
    assert ordered[3600] == pytest.approx(20 * 3.602, rel=0.1)
    per_call = Simulation(_scenario(latency={"median_ms": 20, "sigma": 1.0}))
    fresh = per_call.behaviour(ctx)
    draws = {per_call.service_time_ms(fresh, ctx, {"query": "q"}) for _ in range(10)}
    assert len(draws) == 10


async def _fails(simulation: Simulation, query: str) -> bool:
    try:
        await simulation.call({"query": query}, _context())
    except PersistentNodeError:
        return True
    return False


async def test_transient_failures_are_transient_node_errors() -> None:
    """A transient failure raises a TransientNodeError (what retries are for)."""
    simulation = Simulation(_scenario(transient_error_rate=1.0))
    with pytest.raises(TransientNodeError):
        await simulation.call({"query": "q"}, _context())


async def test_a_rate_limit_starts_at_its_cycle(tmp_path: Path) -> None:
    """Calls pass before ``from_cycle`` and fail with RateLimitError once the loop reaches it;
    a worker's simulation reading the same state file sees the same cycle."""
    state = tmp_path / "state.json"
    scenario = _scenario(rate_limit={"from_cycle": 2, "error_rate": 1.0})
    driver = Simulation(scenario, state)
    driver.set_cycle(1)
    await driver.call({"query": "q"}, _context())
    driver.set_cycle(2)
    with pytest.raises(RateLimitError):
        await driver.call({"query": "q"}, _context())
    worker = Simulation(scenario, state)
    with pytest.raises(RateLimitError):
        await worker.call({"query": "q"}, _context())


async def test_the_timeout_in_the_config_cuts_a_slow_call() -> None:
    """The runtime's timeout applies to the simulated sleep: a 1 s call with timeout_s 0.05
    fails with a timeout instead of waiting."""
    data = scenario_data()
    data["behaviour"]["fetch"]["latency"] = {"distribution": "fixed", "median_ms": 1000}
    data["graph"]["nodes"][0]["config"]["timeout_s"] = 0.05
    scenario = parse_scenario(data)
    registry = NodeRegistry()
    install(scenario, registry=registry)
    result = await GraphRuntime(registry).run(scenario.spec(), {"query": "q"}, version_id="v")
    assert result.error_type == "NodeTimeoutError"


async def test_a_cached_answer_goes_stale_when_the_truth_changes() -> None:
    """An output computed in an earlier truth epoch scores the stale quality; a fresh one
    scores the node's quality."""
    simulation = Simulation(_scenario(stale={"truth_changes_every_s": 3600, "stale_quality": 0.1}))
    output = await simulation.call({"query": "q"}, _context())
    rng = random.Random(0)
    assert simulation.run_quality(output, rng) == 0.9
    old = {"doc": {**output["doc"], "epoch": output["doc"]["epoch"] - 1}}
    assert simulation.run_quality(old, rng) == 0.1


def test_run_quality_is_none_without_a_quality_declaration() -> None:
    """A run whose nodes declare no quality has no quality (no feedback is recorded)."""
    data = scenario_data()
    del data["behaviour"]["fetch"]["quality"]
    simulation = Simulation(parse_scenario(data))
    output = {"doc": {"node": "fetch", "value": "x", "q": None, "epoch": None}}
    assert simulation.run_quality(output, random.Random(0)) is None


def test_zipf_inputs_repeat_and_uniform_values_cover_the_list() -> None:
    """A Zipf draw over a pool repeats its top values; a uniform draw uses the given values."""
    data = scenario_data(
        inputs={
            "fields": {
                "query": {"pool": 50, "draw": "zipf", "s": 1.2},
                "lang": {"values": ["en", "fr"]},
            }
        }
    )
    sampler = InputSampler(parse_scenario(data).inputs, random.Random(1))
    requests = sampler.draw_many(500)
    assert len({r["query"] for r in requests}) < 50
    assert {r["lang"] for r in requests} == {"en", "fr"}
