"""The provider SDKs: imported only when a model is built, and one async client per provider,
key, base URL and event loop, shared by every model instance (a node builds its model on each
execution; connections are kept across executions).

The SDK's own retries are off (``max_retries=0``): the node's policy (``retries``,
``backoff_s``, ``fallback`` in its config) decides whether a failed call is tried again.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import weakref
from collections.abc import Callable
from types import ModuleType
from typing import Any

from spark.errors import (
    MissingDependencyError,
    ModelRateLimitError,
    ModelRequestError,
    ModelUnavailableError,
)

ClientKey = tuple[str, str, str | None]
_RETRYABLE_STATUSES = frozenset({408, 409})
_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[ClientKey, Any]] = (
    weakref.WeakKeyDictionary()
)


def import_sdk(package: str) -> ModuleType:
    """The ``openai`` / ``anthropic`` package, or ``MissingDependencyError`` naming the extra."""
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise MissingDependencyError(
            f"spark.models.{package} needs the {package!r} package: "
            f"pip install 'spark-rsi[{package}]'"
        ) from exc


def shared_client(key: ClientKey, build: Callable[[], Any]) -> Any:
    """The running loop's client under ``key``, built on first use."""
    pool = _POOLS.setdefault(asyncio.get_running_loop(), {})
    client = pool.get(key)
    if client is None:
        client = pool[key] = build()
    return client


async def close_clients() -> None:
    """Close every client the running event loop holds (call at shutdown, or between tests)."""
    pool = _POOLS.pop(asyncio.get_running_loop(), {})
    for client in pool.values():
        closed = client.close()
        if inspect.isawaitable(closed):
            await closed


def translate_error(sdk: ModuleType, error: Exception, *, provider: str, model: str) -> Exception:
    """The Spark error for an SDK error: 429 rate limit, retryable (5xx, 408, 409, timeout,
    connection) or a refused request (other 4xx: key, model, parameters); others unchanged."""
    status = getattr(error, "status_code", None)
    where = f"{provider} model {model!r}"
    if isinstance(error, sdk.APIStatusError) and isinstance(status, int):
        message = f"{where} answered {status}: {_error_message(error)}"
        if status == 429:
            return ModelRateLimitError(message, provider=provider, model=model, status_code=status)
        if status >= 500 or status in _RETRYABLE_STATUSES:
            return ModelUnavailableError(
                message, provider=provider, model=model, status_code=status
            )
        return ModelRequestError(message, provider=provider, model=model, status_code=status)
    if isinstance(error, sdk.APIError):
        message = f"{where} could not be reached: {type(error).__name__}: {error}"
        return ModelUnavailableError(message, provider=provider, model=model)
    return error


def _error_message(error: Exception) -> str:
    """The provider's error message (``{"error": {"message": ...}}``), else the SDK's text."""
    body = getattr(error, "body", None)
    inner = body.get("error", body) if isinstance(body, dict) else None
    message = inner.get("message") if isinstance(inner, dict) else None
    return str(message) if message else str(error)
