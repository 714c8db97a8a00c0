"""Execution policies: fingerprints, backoff, the TTL/LRU cache, retries, timeout, fallback."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spark.errors import InvalidInputError, NodeTimeoutError, SparkMisuseError
from spark.graphs import NodeConfig, NodeContext, ResultCache, input_fingerprint
from spark.graphs.policies import (
    MAX_BACKOFF_S,
    _jsonable,
    backoff_delay,
    canonical_json,
    execute_node,
    try_canonical_json,
)
from tests.graphs.helpers import ManualClock


def _ctx(**config: Any) -> NodeContext:
    return NodeContext("n", "t", NodeConfig(**config), graph_id="g", version_id="v")


class _Flaky:
    """A node failing ``failures`` times with ``error`` before answering."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or ConnectionError("flaky")
        self.calls = 0

    async def __call__(self, inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return {"answer": self.calls}


async def _fallback(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
    return {"answer": "fallback", "type": ctx.node_type}


def test_fingerprint_ignores_key_order_and_has_16_hex_digits() -> None:
    """Equal inputs fingerprint equally whatever their key order."""
    first = input_fingerprint({"a": 1, "b": [1, 2]})

    assert first == input_fingerprint({"b": [1, 2], "a": 1})
    assert first is not None and len(first) == 16
    assert first != input_fingerprint({"a": 2, "b": [1, 2]})


def test_fingerprint_is_none_for_unrepresentable_inputs() -> None:
    """Inputs that have no JSON form get no fingerprint (and are never cached)."""
    assert input_fingerprint({"handle": object()}) is None


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


@given(_JSON_VALUES)
def test_canonical_json_is_sorted_compact_ascii_json(value: Any) -> None:
    """Fingerprints stored by earlier releases stay comparable: the canonical form is exactly
    ``json.dumps`` with sorted keys, no spaces, ASCII escapes and no NaN."""
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)

    assert canonical_json(value) == expected


def test_canonical_json_encodes_models_sets_dates_and_refuses_the_rest() -> None:
    """Sets sort, dates are ISO strings, non-finite floats and objects have no JSON form."""
    value = {"when": dt.date(2026, 1, 2), "tags": {"b", "a"}, "n": 1.5}

    assert canonical_json(value) == json.dumps(
        value, sort_keys=True, separators=(",", ":"), default=_jsonable
    )
    assert try_canonical_json({"x": float("nan")}) is None
    assert try_canonical_json({"x": object()}) is None


def test_inputs_that_contain_themselves_get_no_fingerprint() -> None:
    """A structure that contains itself has no JSON form: no fingerprint, nothing raised."""
    looped: dict[str, Any] = {"a": 1}
    looped["self"] = looped

    assert try_canonical_json(looped) is None
    assert input_fingerprint(looped) is None


def test_backoff_doubles_and_is_capped() -> None:
    """Backoff is ``backoff_s * 2**retry`` up to ``MAX_BACKOFF_S``."""
    assert [backoff_delay(0.1, i) for i in range(3)] == pytest.approx([0.1, 0.2, 0.4])
    assert backoff_delay(1.0, 20) == MAX_BACKOFF_S


def test_cache_hits_within_ttl_and_misses_after(clock: ManualClock) -> None:
    """An entry is served until its TTL passes, then dropped."""
    cache = ResultCache(clock=clock)
    cache.put(("v", "n", "f"), {"x": 1}, ttl_s=10)

    clock.advance(9.9)
    assert cache.get(("v", "n", "f")) == {"x": 1}
    clock.advance(0.1)
    assert cache.get(("v", "n", "f")) is None
    assert len(cache) == 0


def test_cache_evicts_least_recently_used(clock: ManualClock) -> None:
    """The cache never holds more than ``max_entries``; the least recently used goes first."""
    cache = ResultCache(max_entries=2, clock=clock)
    cache.put(("v", "n", "1"), {"x": 1}, ttl_s=60)
    cache.put(("v", "n", "2"), {"x": 2}, ttl_s=60)
    cache.get(("v", "n", "1"))
    cache.put(("v", "n", "3"), {"x": 3}, ttl_s=60)

    assert len(cache) == 2
    assert cache.get(("v", "n", "2")) is None
    assert cache.get(("v", "n", "1")) == {"x": 1}


def test_cache_returns_copies(clock: ManualClock) -> None:
    """Mutating a cached answer does not change the cache."""
    cache = ResultCache(clock=clock)
    cache.put(("v", "n", "f"), {"items": [1]}, ttl_s=60)

    hit = cache.get(("v", "n", "f"))
    assert hit is not None
    hit["items"].append(2)

    assert cache.get(("v", "n", "f")) == {"items": [1]}


async def test_retries_recover_a_transient_failure() -> None:
    """Two failures then success with ``retries=2`` succeed on attempt 3."""
    impl = _Flaky(failures=2)
    ctx = _ctx(retries=2, backoff_s=0.001)

    outcome = await execute_node(impl, {}, ctx)

    assert outcome.output == {"answer": 3}
    assert outcome.attempts == 3 and ctx.attempt == 3


async def test_exhausted_retries_report_the_last_error() -> None:
    """When every attempt fails the outcome carries the error and the attempt count."""
    outcome = await execute_node(_Flaky(failures=5), {}, _ctx(retries=1, backoff_s=0.001))

    assert isinstance(outcome.error, ConnectionError)
    assert outcome.attempts == 2


async def test_misuse_errors_are_not_retried_nor_sent_to_fallback() -> None:
    """A misuse error fails at once: no retry, no fallback."""
    impl = _Flaky(failures=5, error=InvalidInputError("bad input"))

    outcome = await execute_node(impl, {}, _ctx(retries=3, fallback="cheap"), fallback=_fallback)

    assert isinstance(outcome.error, InvalidInputError)
    assert impl.calls == 1 and outcome.attempts == 1


async def test_timeout_raises_node_timeout_error() -> None:
    """An attempt longer than ``timeout_s`` fails with ``NodeTimeoutError``."""

    async def slow(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        await asyncio.sleep(1)
        return {}

    outcome = await execute_node(slow, {}, _ctx(timeout_s=0.01))

    assert isinstance(outcome.error, NodeTimeoutError)
    assert "'n'" in str(outcome.error)


async def test_timeout_error_raised_by_the_node_itself_is_not_relabelled() -> None:
    """A ``TimeoutError`` from inside the node (not our timer) keeps its type."""

    async def own_timeout(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        raise TimeoutError("upstream")

    outcome = await execute_node(own_timeout, {}, _ctx(timeout_s=5))

    assert type(outcome.error) is TimeoutError


async def test_fallback_runs_after_retries_with_its_type_in_context() -> None:
    """After the last failed attempt the fallback answers, counted as one more attempt."""
    outcome = await execute_node(
        _Flaky(failures=9),
        {},
        _ctx(retries=1, backoff_s=0.001, fallback="cheap"),
        fallback=_fallback,
    )

    assert outcome.output == {"answer": "fallback", "type": "cheap"}
    assert outcome.used_fallback and outcome.attempts == 3


async def test_non_dict_output_is_a_misuse() -> None:
    """A node returning something other than a dict fails with ``SparkMisuseError``."""

    async def returns_list(inputs: dict[str, Any], ctx: NodeContext) -> Any:
        return [1]

    outcome = await execute_node(returns_list, {}, _ctx(retries=3))

    assert isinstance(outcome.error, SparkMisuseError)
    assert outcome.attempts == 1


async def test_cached_answer_skips_the_call(clock: ManualClock) -> None:
    """A second execution with the same key within TTL is a cache hit with no call."""
    impl = _Flaky(failures=0)
    cache = ResultCache(clock=clock)
    ctx = _ctx(cache_ttl_s=30)

    await execute_node(impl, {}, ctx, cache=cache, cache_key=("v", "n", "f"))
    outcome = await execute_node(
        impl, {}, _ctx(cache_ttl_s=30), cache=cache, cache_key=("v", "n", "f")
    )

    assert outcome.cache_hit and outcome.attempts == 0
    assert outcome.output == {"answer": 1} and impl.calls == 1


async def test_fallback_answers_are_not_cached(clock: ManualClock) -> None:
    """A degraded fallback answer is never stored in the cache."""
    cache = ResultCache(clock=clock)
    ctx = _ctx(cache_ttl_s=30, fallback="cheap")

    await execute_node(
        _Flaky(failures=1), {}, ctx, fallback=_fallback, cache=cache, cache_key=("v", "n", "f")
    )

    assert len(cache) == 0
