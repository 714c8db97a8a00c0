"""Per-node execution policies, all driven by ``NodeConfig`` so a config change alters behaviour.

Order of application for one node execution::

    cache lookup (cache_ttl_s) ─hit─► cached output, no call
      │ miss
      ▼
    attempt 1..retries+1, each under timeout_s; before retry r a wait drawn uniformly from
      [0, min(backoff_s * 2**r, MAX_BACKOFF_S)] (full jitter)
      │ all failed (or a non-retryable error)
      ▼
    fallback type (same inputs, same timeout), once ─► output or the original error

Misuse errors (``SparkMisuseError``, ``ReplayRefusedError``) are neither retried nor sent to the
fallback: they will fail again. Fallback outputs are not cached (they are degraded answers).

Full jitter ("Exponential Backoff and Jitter", AWS Architecture Blog) spreads the retries of many
requests that failed together (a provider's outage, a rate limit) instead of sending them back in
synchronised waves; the ceiling still grows exponentially. The random source is injectable
(``execute_node(..., rng=random.Random(seed))``) so tests can pin the waits.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime as dt
import enum
import hashlib
import json
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import BaseModel

from spark.errors import NodeTimeoutError, ReplayRefusedError, SparkMisuseError
from spark.graphs.registry import NodeContext, NodeImpl

log = structlog.get_logger(__name__)

MAX_BACKOFF_S = 30.0
DEFAULT_CACHE_ENTRIES = 1024

# Retry jitter only: not a security use, and never drawn inside workflow code.
_JITTER = random.Random()

Clock = Callable[[], float]
CacheKey = tuple[str, str, str]  # (version_id, node_id, input fingerprint)


def canonical_json(value: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces); raises ``TypeError``/``ValueError`` if unable
    (``RecursionError`` for a structure that contains itself)."""
    if _C_CANONICAL is None:
        return _CANONICAL.encode(value)
    return "".join(_C_CANONICAL(value, 0))


def try_canonical_json(value: Any) -> str | None:
    """``canonical_json(value)``, or ``None`` when the value is not JSON-representable."""
    try:
        return canonical_json(value)
    except (TypeError, ValueError, RecursionError):
        return None


def input_fingerprint(value: Any) -> str | None:
    """First 16 hex digits of the SHA-256 of the canonical JSON; ``None`` if not representable."""
    text = try_canonical_json(value)
    if text is None:
        return None
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=canonical_json)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"{type(value).__qualname__!r} is not JSON-representable")


# One encoder for every call: ``json.dumps`` with these options builds a new one each time.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), default=_jsonable, allow_nan=False
)
# The same options as the C encoder ``_CANONICAL.encode`` would build for each call, built once
# (a fingerprint is taken per node run: this is 1.4 -> 0.4 us for a small dict). No circular-
# reference markers: a shared markers dict would be touched by several threads at once, and a
# structure that contains itself ends in ``RecursionError`` instead of ``ValueError``.
_MAKE_C_ENCODER: Callable[..., Callable[[Any, int], Any]] | None = getattr(
    json.encoder, "c_make_encoder", None
)  # the C accelerator CPython builds ``JSONEncoder.iterencode`` on; absent on some builds
_C_CANONICAL = (
    _MAKE_C_ENCODER(
        None,  # no circular-reference markers (see above)
        _jsonable,
        json.encoder.encode_basestring_ascii,
        None,  # no indent
        ":",
        ",",
        True,  # sort_keys
        False,  # skipkeys
        False,  # allow_nan
    )
    if _MAKE_C_ENCODER is not None
    else None
)


def backoff_delay(backoff_s: float, retry_index: int) -> float:
    """The longest wait before retry ``retry_index`` (0 = first retry): exponential, capped."""
    return float(min(backoff_s * 2**retry_index, MAX_BACKOFF_S))


def expected_delay(backoff_s: float, retry_index: int) -> float:
    """The mean wait before retry ``retry_index`` under full jitter: half the longest."""
    return backoff_delay(backoff_s, retry_index) / 2.0


def jittered_delay(backoff_s: float, retry_index: int, rng: random.Random) -> float:
    """Seconds to wait before retry ``retry_index``: uniform in ``[0, backoff_delay(...)]``."""
    return rng.uniform(0.0, backoff_delay(backoff_s, retry_index))


def is_retryable(error: BaseException) -> bool:
    """Whether another attempt (or the fallback) might succeed where this error happened."""
    return not isinstance(error, SparkMisuseError | ReplayRefusedError)


class ResultCache:
    """A bounded in-memory LRU of node outputs with a per-entry TTL; one per runtime."""

    def __init__(self, max_entries: int = DEFAULT_CACHE_ENTRIES, clock: Clock = time.time) -> None:
        if max_entries < 1:
            raise SparkMisuseError(f"cache max_entries must be >= 1, got {max_entries!r}")
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[CacheKey, tuple[float, dict[str, Any]]] = OrderedDict()

    def get(self, key: CacheKey) -> dict[str, Any] | None:
        """A copy of the live entry under ``key``, or ``None`` (expired entries are dropped)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if self._clock() >= expires_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return copy.deepcopy(value)

    def put(self, key: CacheKey, value: dict[str, Any], ttl_s: float) -> None:
        """Store a copy of ``value`` for ``ttl_s`` seconds, evicting the least recently used."""
        try:
            snapshot = copy.deepcopy(value)
        except (TypeError, copy.Error):
            log.info("node_output_not_cacheable", version_id=key[0], node_id=key[1])
            return
        self._entries[key] = (self._clock() + ttl_s, snapshot)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()


@dataclass(slots=True)
class PolicyOutcome:
    """How one node execution ended: an output or an error, and what it took. Not frozen (a
    frozen ``__init__`` costs three times as much, once per node); nothing changes it.

    ``attempts`` counts implementation calls, the fallback included; 0 on a cache hit.
    """

    output: dict[str, Any] | None = None
    error: Exception | None = None
    attempts: int = 1
    cache_hit: bool = False
    used_fallback: bool = False


async def execute_node(
    impl: NodeImpl,
    inputs: dict[str, Any],
    ctx: NodeContext,
    *,
    fallback: NodeImpl | None = None,
    cache: ResultCache | None = None,
    cache_key: CacheKey | None = None,
    rng: random.Random | None = None,
) -> PolicyOutcome:
    """Run one node under its config's cache, timeout, retry and fallback policies; ``rng``
    draws the retry jitter (a process-wide generator when ``None``)."""
    slot = _cache_slot(cache, cache_key, ctx.config.cache_ttl_s)
    if slot is None and fallback is None and not ctx.config.retries:
        ctx.attempt = 1  # one call: the same outcome as below, with fewer coroutines
        if ctx.config.timeout_s is None:
            return await call_once(impl, dict(inputs), ctx)
        try:
            output = await call_with_timeout(impl, inputs, ctx)
        except Exception as error:
            return PolicyOutcome(None, error, 1)
        return PolicyOutcome(output, None, 1)
    hit = slot.cache.get(slot.key) if slot is not None else None
    if hit is not None:
        return PolicyOutcome(output=hit, attempts=0, cache_hit=True)
    try:
        output = await call_with_retries(impl, inputs, ctx, rng)
    except Exception as error:
        return await _fall_back(fallback, inputs, ctx, error)
    if slot is not None:
        slot.cache.put(slot.key, output, slot.ttl_s)
    return PolicyOutcome(output=output, attempts=ctx.attempt)


async def call_once(impl: NodeImpl, inputs: dict[str, Any], ctx: NodeContext) -> PolicyOutcome:
    """The outcome of a node with no cache, timeout, retry or fallback: one call on ``inputs``
    (a dict the caller gives away: the implementation may change it), its output checked; an
    error it raises is the outcome's."""
    try:
        output = _checked_output(ctx, await impl(inputs, ctx))
    except Exception as error:
        return PolicyOutcome(None, error, 1)
    return PolicyOutcome(output, None, 1)


@dataclass(slots=True, frozen=True)
class _CacheSlot:
    cache: ResultCache
    key: CacheKey
    ttl_s: float


def _cache_slot(
    cache: ResultCache | None, key: CacheKey | None, ttl_s: float | None
) -> _CacheSlot | None:
    if cache is None or key is None or ttl_s is None:
        return None
    return _CacheSlot(cache, key, ttl_s)


async def call_with_retries(
    impl: NodeImpl, inputs: dict[str, Any], ctx: NodeContext, rng: random.Random | None = None
) -> dict[str, Any]:
    """Call ``impl`` up to ``retries + 1`` times with jittered waits between them;
    ``ctx.attempt`` is the current attempt (1-based)."""
    attempt = 1
    while True:
        ctx.attempt = attempt
        try:
            return await call_with_timeout(impl, inputs, ctx)
        except Exception as error:
            if attempt > ctx.config.retries or not is_retryable(error):
                raise
            await _pause_before_retry(ctx, error, rng or _JITTER)
        attempt += 1


async def call_with_timeout(
    impl: NodeImpl, inputs: dict[str, Any], ctx: NodeContext
) -> dict[str, Any]:
    """Call ``impl`` once under ``timeout_s``; expiry raises ``NodeTimeoutError``. Without a
    timeout the call is awaited directly (no timeout scope to enter and leave)."""
    timeout_s = ctx.config.timeout_s
    if timeout_s is None:
        return _checked_output(ctx, await impl(dict(inputs), ctx))
    scope = asyncio.timeout(timeout_s)
    try:
        async with scope:
            result = await impl(dict(inputs), ctx)
    except TimeoutError as error:
        if scope.expired():
            raise NodeTimeoutError(
                f"node {ctx.node_id!r} ({ctx.node_type!r}) exceeded its {timeout_s}s timeout"
            ) from error
        raise
    return _checked_output(ctx, result)


def _checked_output(ctx: NodeContext, result: object) -> dict[str, Any]:
    if not isinstance(result, dict):
        raise SparkMisuseError(
            f"node {ctx.node_id!r} ({ctx.node_type!r}) returned {type(result).__name__!r}, "
            "expected a dict of output fields"
        )
    return result


async def _pause_before_retry(ctx: NodeContext, error: Exception, rng: random.Random) -> None:
    delay_s = jittered_delay(ctx.config.backoff_s, ctx.attempt - 1, rng)
    log.info(
        "node_retry",
        graph_id=ctx.graph_id,
        version_id=ctx.version_id,
        trace_id=ctx.trace_id,
        node_id=ctx.node_id,
        attempt=ctx.attempt,
        error_type=type(error).__name__,
        delay_s=delay_s,
    )
    await asyncio.sleep(delay_s)


async def _fall_back(
    fallback: NodeImpl | None, inputs: dict[str, Any], ctx: NodeContext, error: Exception
) -> PolicyOutcome:
    if fallback is None or not is_retryable(error):
        return PolicyOutcome(error=error, attempts=ctx.attempt)
    attempts = ctx.attempt + 1
    fallback_ctx = dataclasses.replace(ctx, node_type=ctx.config.fallback or "", attempt=1)
    try:
        output = await call_with_timeout(fallback, inputs, fallback_ctx)
    except Exception as fallback_error:
        _log_fallback(ctx, "node_fallback_failed", error, fallback_error)
        return PolicyOutcome(error=error, attempts=attempts)
    _log_fallback(ctx, "node_fallback_used", error, None)
    return PolicyOutcome(output=output, attempts=attempts, used_fallback=True)


def _log_fallback(
    ctx: NodeContext, event: str, error: Exception, fallback_error: Exception | None
) -> None:
    log.warning(
        event,
        graph_id=ctx.graph_id,
        version_id=ctx.version_id,
        trace_id=ctx.trace_id,
        node_id=ctx.node_id,
        fallback_type=ctx.config.fallback,
        error_type=type(error).__name__,
        fallback_error_type=type(fallback_error).__name__ if fallback_error else None,
    )
