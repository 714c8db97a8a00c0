"""Typed calls from workflows to activities, by registered name.

Workflows never import activity implementations (they hold database and HTTP code); they call
activities by the names registered in ``activities/`` with the result type to decode into.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypeVar

from spark.temporal import NON_RETRYABLE_ERROR_TYPES
from temporalio import workflow
from temporalio.common import RetryPolicy

T = TypeVar("T")

# Heartbeat timeout of every activity (they all beat every 2 s, activities._support): a worker
# killed mid-activity is noticed in seconds and the activity retried elsewhere, instead of after
# its whole start-to-close timeout.
HEARTBEAT = timedelta(seconds=15)

DEFAULT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
    non_retryable_error_types=list(NON_RETRYABLE_ERROR_TYPES),
)


async def call(
    name: str,
    arg: object,
    result_type: type[T],
    *,
    summary: str,
    start_to_close: timedelta = timedelta(minutes=2),
    heartbeat: timedelta = HEARTBEAT,
) -> T:
    """Run activity ``name`` with the project's retry policy and heartbeat timeout, and decode
    its result."""
    result = await workflow.execute_activity(
        name,
        arg,
        result_type=result_type,
        start_to_close_timeout=start_to_close,
        heartbeat_timeout=heartbeat,
        retry_policy=DEFAULT_RETRY,
        summary=summary,
    )
    return result
