"""Transaction helpers shared by the registry and experience stores.

Every store write runs in one short transaction that first takes the write lock (``SELECT ... FOR
UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so a read-check-write sequence is never
interleaved with another writer. A unique-key race between two first inserts surfaces as an
``IntegrityError``; the whole operation then runs again and finds the row the winner stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TypeVar

import structlog
import tenacity
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

T = TypeVar("T")

_CONFLICT_RETRIES = 3

log = structlog.get_logger(__name__)


def utcnow() -> datetime:
    """The current time, UTC-aware (sqlmodel rejects naive datetimes)."""
    return datetime.now(UTC)


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session whose transaction holds the write lock from its start and commits on success.

    On SQLite a plain ``BEGIN`` would let two writers read the same state and both act on it;
    ``BEGIN IMMEDIATE`` serialises them. PostgreSQL callers lock rows with ``with_for_update``.
    """
    with Session(engine, expire_on_commit=False) as session:
        if engine.dialect.name == "sqlite":
            session.connection().exec_driver_sql("BEGIN IMMEDIATE")
        yield session
        session.commit()


def read_session(engine: Engine) -> Session:
    """A session for reads; objects stay usable after it closes."""
    return Session(engine, expire_on_commit=False)


def retry_on_conflict(operation: Callable[[], T]) -> T:
    """Run ``operation``; when a concurrent writer wins a unique-key race, run it again.

    The operations passed here are idempotent by business key, so the rerun finds the row the
    other writer stored and returns it.
    """
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(IntegrityError),
        stop=tenacity.stop_after_attempt(_CONFLICT_RETRIES),
        before_sleep=_log_conflict,
        reraise=True,
    )
    return retrying(operation)


def _log_conflict(state: tenacity.RetryCallState) -> None:
    log.info("store_write_conflict_retry", attempt=state.attempt_number)
