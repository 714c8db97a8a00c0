"""Routing: which version serves a graph, which candidate gets what share, and the audit log.

Every change goes through ``RoutingStore.apply`` with an idempotency key. The key is stored with
the change in the same transaction, so a retried or replayed Temporal activity never applies a
step twice. Production clients read routing through ``RoutingCache`` (never a database read per
request) and pick an arm with ``assign_arm``, sticky per routing key.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Literal, Protocol

import structlog
from pydantic import BaseModel, ConfigDict
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from spark.db import get_engine
from spark.errors import SparkMisuseError, UnknownGraphError, UnknownVersionError
from spark.registry._sql import read_session, retry_on_conflict, utcnow, write_session
from spark.registry.tables import RoutingEventRow, RoutingRow, VersionRow

Arm = Literal["active", "candidate"]
RoutingAction = Literal["set_candidate", "promote", "rollback", "clear_candidate", "set_active"]

log = structlog.get_logger(__name__)


class RoutingState(BaseModel):
    """The routing table entry of one graph."""

    model_config = ConfigDict(from_attributes=True)

    graph_id: str
    active_version_id: str
    candidate_version_id: str | None
    candidate_share: float
    revision: int
    updated_at: datetime


class RoutingEvent(BaseModel):
    """One applied routing change: who, what, why, when, and the state it produced."""

    model_config = ConfigDict(from_attributes=True)

    graph_id: str
    idempotency_key: str
    action: RoutingAction
    active_version_id: str
    candidate_version_id: str | None
    candidate_share: float
    revision: int
    actor: str
    reason: str
    at: datetime


class _Change(BaseModel):
    """The arguments of one ``apply`` call."""

    action: RoutingAction
    active_version_id: str | None
    candidate_version_id: str | None
    candidate_share: float | None


class RoutingStore:
    """The routing table and its event log, in the shared Spark database."""

    def __init__(self, database_url: str) -> None:
        self._engine = get_engine(database_url)

    def get(self, graph_id: str) -> RoutingState:
        """The routing state of ``graph_id``; ``UnknownGraphError`` when the graph has none."""
        with read_session(self._engine) as session:
            return RoutingState.model_validate(_routing_row(session, graph_id))

    def apply(
        self,
        graph_id: str,
        *,
        idempotency_key: str,
        action: RoutingAction,
        active_version_id: str | None = None,
        candidate_version_id: str | None = None,
        candidate_share: float | None = None,
        actor: str,
        reason: str,
    ) -> RoutingState:
        """Apply one routing change exactly once per ``idempotency_key``.

        When an event with that key exists the current state is returned and nothing changes.
        Keys are unique across all graphs, so build them from business ids, e.g.
        ``"<graph>:c<cycle>:<version>:step-2"``.
        Otherwise the state update and its event are written in one transaction, holding the
        routing row's lock, so concurrent calls are serialised. Actions:

        - ``set_candidate``: route ``candidate_share`` of traffic to ``candidate_version_id``
          (either may be omitted to keep the current value, e.g. a gradual step 10% -> 25%);
        - ``promote``: the candidate (or ``candidate_version_id``) becomes active, no candidate;
        - ``rollback``: drop the candidate; with ``active_version_id`` make that version active;
          with neither a candidate nor ``active_version_id``, return to the previous active one;
        - ``clear_candidate``: drop the candidate;
        - ``set_active``: make ``active_version_id`` active (dropping it as candidate if it was).
        """
        change = _Change(
            action=action,
            active_version_id=active_version_id,
            candidate_version_id=candidate_version_id,
            candidate_share=candidate_share,
        )
        return retry_on_conflict(
            lambda: self._apply(graph_id, idempotency_key, change, actor=actor, reason=reason)
        )

    def history(self, graph_id: str) -> list[RoutingEvent]:
        """Every routing event of ``graph_id``, oldest first."""
        with read_session(self._engine) as session:
            _routing_row(session, graph_id)
            rows = session.exec(_events_of(graph_id)).all()
        return [RoutingEvent.model_validate(row) for row in rows]

    def _apply(
        self, graph_id: str, key: str, change: _Change, *, actor: str, reason: str
    ) -> RoutingState:
        with write_session(self._engine) as session:
            row = _routing_row(session, graph_id, lock=True)
            if _event_exists(session, key):
                log.info("routing_change_replayed", graph_id=graph_id, idempotency_key=key)
                return RoutingState.model_validate(row)
            _transition(session, row, change)
            row.revision += 1
            row.updated_at = utcnow()
            session.add(row)
            session.add(_event_row(row, key, change.action, actor, reason))
            log.info(
                "routing_changed",
                graph_id=graph_id,
                action=change.action,
                idempotency_key=key,
                active_version_id=row.active_version_id,
                candidate_version_id=row.candidate_version_id,
                candidate_share=row.candidate_share,
            )
            return RoutingState.model_validate(row)


def _transition(session: Session, row: RoutingRow, change: _Change) -> None:
    """Apply ``change`` to ``row`` in place after checking that the versions it names exist."""
    for version_id in (change.active_version_id, change.candidate_version_id):
        if version_id is not None:
            _check_version(session, row.graph_id, version_id)
    _HANDLERS[change.action](session, row, change)


def _set_candidate(_session: Session, row: RoutingRow, change: _Change) -> None:
    candidate = change.candidate_version_id or row.candidate_version_id
    if candidate is None:
        raise SparkMisuseError(f"set_candidate on graph {row.graph_id!r} needs a candidate version")
    if candidate == row.active_version_id:
        raise SparkMisuseError(f"version {candidate!r} is already active on graph {row.graph_id!r}")
    share = row.candidate_share if change.candidate_share is None else change.candidate_share
    row.candidate_version_id = candidate
    row.candidate_share = _checked_share(row.graph_id, share)


def _promote(_session: Session, row: RoutingRow, change: _Change) -> None:
    candidate = change.candidate_version_id or row.candidate_version_id
    if candidate is None:
        raise SparkMisuseError(f"graph {row.graph_id!r} has no candidate to promote")
    row.active_version_id = candidate
    _drop_candidate(row)


def _rollback(session: Session, row: RoutingRow, change: _Change) -> None:
    if change.active_version_id is not None:
        row.active_version_id = change.active_version_id
    elif row.candidate_version_id is None:
        row.active_version_id = _previous_active(session, row)
    _drop_candidate(row)


def _clear_candidate(_session: Session, row: RoutingRow, _change: _Change) -> None:
    _drop_candidate(row)


def _set_active(_session: Session, row: RoutingRow, change: _Change) -> None:
    if change.active_version_id is None:
        raise SparkMisuseError(f"set_active on graph {row.graph_id!r} needs active_version_id")
    row.active_version_id = change.active_version_id
    if row.candidate_version_id == change.active_version_id:
        _drop_candidate(row)


_HANDLERS: dict[RoutingAction, Callable[[Session, RoutingRow, _Change], None]] = {
    "set_candidate": _set_candidate,
    "promote": _promote,
    "rollback": _rollback,
    "clear_candidate": _clear_candidate,
    "set_active": _set_active,
}


def _drop_candidate(row: RoutingRow) -> None:
    row.candidate_version_id = None
    row.candidate_share = 0.0


def _previous_active(session: Session, row: RoutingRow) -> str:
    """The version that was active before the current one, from the event log."""
    for event in reversed(session.exec(_events_of(row.graph_id)).all()):
        if event.active_version_id != row.active_version_id:
            return event.active_version_id
    raise SparkMisuseError(
        f"graph {row.graph_id!r} has no candidate and no earlier active version to roll back to"
    )


def _checked_share(graph_id: str, share: float) -> float:
    if not 0.0 < share <= 1.0:
        raise SparkMisuseError(
            f"candidate_share of graph {graph_id!r} must be in (0, 1], got {share!r}"
        )
    return float(share)


def _check_version(session: Session, graph_id: str, version_id: str) -> None:
    row = session.get(VersionRow, version_id)
    if row is None or row.graph_id != graph_id:
        raise UnknownVersionError(f"graph {graph_id!r} has no version {version_id!r}")


def _routing_row(session: Session, graph_id: str, *, lock: bool = False) -> RoutingRow:
    row = session.get(RoutingRow, graph_id, with_for_update=lock)
    if row is None:
        raise UnknownGraphError(f"no graph registered under {graph_id!r}")
    return row


def _event_exists(session: Session, key: str) -> bool:
    found = session.exec(
        select(RoutingEventRow.id).where(RoutingEventRow.idempotency_key == key)
    ).first()
    return found is not None


def _events_of(graph_id: str) -> SelectOfScalar[RoutingEventRow]:
    return (
        select(RoutingEventRow)
        .where(RoutingEventRow.graph_id == graph_id)
        .order_by(col(RoutingEventRow.id))
    )


def _event_row(row: RoutingRow, key: str, action: str, actor: str, reason: str) -> RoutingEventRow:
    return RoutingEventRow(
        graph_id=row.graph_id,
        idempotency_key=key,
        action=action,
        active_version_id=row.active_version_id,
        candidate_version_id=row.candidate_version_id,
        candidate_share=row.candidate_share,
        revision=row.revision,
        actor=actor,
        reason=reason,
        at=row.updated_at,
    )


def assign_arm(graph_id: str, routing_key: str | None, candidate_share: float) -> Arm:
    """The arm serving a request: sticky per ``(graph_id, routing_key)``, random without a key.

    The key hashes (SHA-256) to a point in [0, 1); the request goes to the candidate when the
    point falls below ``candidate_share``. Raising the share keeps every key already on the
    candidate there, so gradual rollouts never flip users back and forth.
    """
    if candidate_share <= 0.0:
        return "active"
    point = random.random() if routing_key is None else _unit_point(graph_id, routing_key)
    return "candidate" if point < candidate_share else "active"


def _unit_point(graph_id: str, routing_key: str) -> float:
    digest = hashlib.sha256(f"{graph_id}\x00{routing_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


class RoutingReader(Protocol):
    """Anything that reads the routing state of a graph (``RoutingStore`` in production)."""

    def get(self, graph_id: str) -> RoutingState:
        """The current routing state of ``graph_id``."""
        ...


class _Entry:
    """A cached routing state, the time it was read, and the lock guarding its refresh."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.state: RoutingState | None = None
        self.read_at = float("-inf")


class RoutingCache:
    """Routing states cached per graph: at most one database read per ``ttl_s`` per graph.

    Thread-safe: concurrent callers for the same graph wait for a single refresh instead of each
    reading the database; callers for other graphs are not blocked.
    """

    def __init__(
        self,
        store: RoutingReader,
        ttl_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, graph_id: str) -> RoutingState:
        """The routing state of ``graph_id``, read from the store when older than the TTL."""
        entry = self._entry(graph_id)
        with entry.lock:
            if entry.state is None or self._clock() - entry.read_at >= self._ttl_s:
                entry.state = self._store.get(graph_id)
                entry.read_at = self._clock()
            return entry.state

    def invalidate(self, graph_id: str) -> None:
        """Forget the cached state of ``graph_id`` so the next ``get`` reads the store."""
        with self._lock:
            self._entries.pop(graph_id, None)

    def _entry(self, graph_id: str) -> _Entry:
        with self._lock:
            return self._entries.setdefault(graph_id, _Entry())
