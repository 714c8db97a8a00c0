"""Node retry policies wait a jittered delay: full jitter under the exponential, capped ceiling."""

from __future__ import annotations

import random
from typing import Any

from structlog.testing import capture_logs

from spark.graphs import NodeConfig, NodeContext
from spark.graphs.policies import (
    MAX_BACKOFF_S,
    backoff_delay,
    execute_node,
    expected_delay,
    jittered_delay,
)


class _FailsThenAnswers:
    """A node failing ``failures`` times with a transient error before answering."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self, inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("flaky")
        return {"answer": self.calls}


def _ctx(**config: Any) -> NodeContext:
    return NodeContext("n", "t", NodeConfig(**config), graph_id="g", version_id="v")


def test_jittered_delays_vary_and_stay_within_the_exponential_ceiling() -> None:
    """Each draw lies in ``[0, backoff_s * 2**retry]`` (capped), and draws differ."""
    rng = random.Random(11)
    for retry_index in range(8):
        ceiling = backoff_delay(0.5, retry_index)
        draws = [jittered_delay(0.5, retry_index, rng) for _ in range(200)]

        assert all(0.0 <= d <= ceiling <= MAX_BACKOFF_S for d in draws)
        assert len(set(draws)) == len(draws)
        assert max(draws) > 0.5 * ceiling and min(draws) < 0.5 * ceiling


def test_the_same_seed_draws_the_same_delays() -> None:
    """An injected generator makes the waits reproducible."""
    first = [jittered_delay(1.0, i, random.Random(3)) for i in range(5)]
    second = [jittered_delay(1.0, i, random.Random(3)) for i in range(5)]

    assert first == second


def test_a_zero_backoff_never_waits() -> None:
    """``backoff_s=0`` (retry at once) stays exactly zero with jitter."""
    assert {jittered_delay(0.0, i, random.Random(i)) for i in range(10)} == {0.0}


async def _retry_waits(rng: random.Random | None) -> list[float]:
    """The waits a node failing four times (retries 4, backoff 2 ms) logs before it answers."""
    with capture_logs() as logs:
        outcome = await execute_node(
            _FailsThenAnswers(failures=4), {}, _ctx(retries=4, backoff_s=0.002), rng=rng
        )
    assert outcome.output == {"answer": 5}
    return [event["delay_s"] for event in logs if event["event"] == "node_retry"]


async def test_retries_wait_jittered_delays_drawn_from_the_injected_generator() -> None:
    """The waits a node's retries take are the injected generator's draws, within their ceilings."""
    waits = await _retry_waits(random.Random(5))
    replay = random.Random(5)

    assert waits == [jittered_delay(0.002, i, replay) for i in range(4)]
    assert all(0.0 <= w <= backoff_delay(0.002, i) for i, w in enumerate(waits))
    assert len(set(waits)) == 4


async def test_nodes_failing_together_do_not_retry_in_lockstep() -> None:
    """With the default generator, two executions failing alike wait different delays."""
    first, second = await _retry_waits(None), await _retry_waits(None)

    assert len(first) == len(second) == 4
    assert first != second


def test_expected_delay_is_the_mean_of_the_jittered_waits() -> None:
    """What the generator states as a retry's latency cost (expected_delay) is the mean wait
    the runtime really draws, within sampling error."""
    rng = random.Random(7)
    for retry_index in (0, 2):
        draws = [jittered_delay(0.4, retry_index, rng) for _ in range(20_000)]
        mean = sum(draws) / len(draws)
        # the mean of U(0, b) has standard error b / sqrt(12 n): 0.2% of b here
        bound = backoff_delay(0.4, retry_index)
        assert abs(mean - expected_delay(0.4, retry_index)) < 0.01 * bound
