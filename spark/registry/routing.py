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
from datetime import UTC, datetime
from typing import Literal, Protocol

import structlog
from pydantic import BaseModel, ConfigDict
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from spark.db import get_engine
from spark.errors import (
    RoutingUnavailableError,
    SparkError,
    SparkMisuseError,
    UnknownGraphError,
    UnknownVersionError,
)
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
    candidate_expires_at: datetime | None = None
    revision: int
    updated_at: datetime

    def serving_share(self, now: datetime | None = None) -> float:
        """The candidate's share of traffic at ``now`` (default: this machine's clock): 0 once
        the candidate's expiry has passed, so a window's cap holds even when nothing is left
        to take the candidate out of routing. Clients should keep their clocks synchronised
        (NTP); a skew of s seconds moves the cut-off by s."""
        if self.candidate_version_id is None or self.candidate_share <= 0.0:
            return 0.0
        if self.candidate_expires_at is not None:
            current = now or datetime.now(UTC)
            if current >= as_utc(self.candidate_expires_at):
                return 0.0
        return self.candidate_share


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (databases without time zones hand back naive UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class RoutingEvent(BaseModel):
    """One applied routing change: who, what, why, when, and the state it produced."""

    model_config = ConfigDict(from_attributes=True)

    graph_id: str
    idempotency_key: str
    action: RoutingAction
    active_version_id: str
    candidate_version_id: str | None
    candidate_share: float
    candidate_expires_at: datetime | None = None
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
    candidate_expires_at: datetime | None = None


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
        candidate_expires_at: datetime | None = None,
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
          with ``candidate_expires_at`` clients stop routing to it at that instant by
          themselves (an A/B window's cap); without it the candidate never expires;
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
            candidate_expires_at=candidate_expires_at,
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
    row.candidate_expires_at = change.candidate_expires_at


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
    row.candidate_expires_at = None


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
        candidate_expires_at=row.candidate_expires_at,
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


StalePolicy = Literal["serve", "active_only", "fail"]


class _Entry:
    """A cached routing state, when it was read, the refresh lock, and the outage if any."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.state: RoutingState | None = None
        self.read_at = float("-inf")
        self.next_read_at = float("-inf")
        self.outage_since: float | None = None
        self.error = ""
        self.beyond_limit_logged = False


class RoutingCache:
    """Routing states cached per graph: at most one database read per ``ttl_s`` per graph.

    Thread-safe: a caller for a graph never seen waits for a single read; once a state is known,
    callers never wait on the database: the one that finds it older than ``ttl_s`` refreshes it
    while the others are served the cached state.

    When the store cannot be reached, the last state read keeps serving (the routing table cannot
    change while its database is away, unless only this client is cut off) and the store is
    retried once per ``ttl_s`` (by one caller; the others are served meanwhile). Each outage
    logs ``routing.serving_stale`` once per graph, and ``routing.store_recovered`` with how long
    it lasted. Past ``max_stale_s`` seconds without a
    successful read the outage logs ``routing.stale_beyond_limit`` once and ``on_stale`` decides:
    ``"serve"`` (default) keeps the last table, ``"active_only"`` sends every request to the last
    known active version (no experiment runs blind), ``"fail"`` raises
    ``RoutingUnavailableError``. A graph whose routing was never read while the store is away
    raises ``RoutingUnavailableError`` (graph id and the store's error in the message); each such
    request asks the store again, so serving starts as soon as it is back.
    """

    def __init__(
        self,
        store: RoutingReader,
        ttl_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_stale_s: float = 600.0,
        on_stale: StalePolicy = "serve",
    ) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._clock = clock
        self._max_stale_s = max_stale_s
        self._on_stale = on_stale
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, graph_id: str) -> RoutingState:
        """The routing state of ``graph_id``, read from the store when older than the TTL."""
        entry = self._entry(graph_id)
        state = entry.state
        if state is not None and entry.outage_since is None and self._clock() < entry.next_read_at:
            return state  # fresh: what the locked path below would serve, without the lock
        if entry.state is None:
            entry.lock.acquire()
        elif not entry.lock.acquire(blocking=False):
            return self._served(graph_id, entry)  # another caller is refreshing it
        try:
            if self._clock() >= entry.next_read_at:
                self._refresh(graph_id, entry)
            return self._served(graph_id, entry)
        finally:
            entry.lock.release()

    def age_s(self, graph_id: str) -> float | None:
        """Seconds since the cached state of ``graph_id`` was read from the store (None: never)."""
        entry = self._entries.get(graph_id)
        if entry is None or entry.state is None:
            return None
        return self._clock() - entry.read_at

    def invalidate(self, graph_id: str) -> None:
        """Make the next ``get`` of ``graph_id`` read the store (the state read last stays as the
        fallback while the store is away)."""
        with self._lock:
            entry = self._entries.get(graph_id)
            if entry is not None:
                entry.next_read_at = float("-inf")

    def _entry(self, graph_id: str) -> _Entry:
        entry = self._entries.get(graph_id)  # a dict read is atomic: no lock, no allocation
        if entry is not None:
            return entry
        with self._lock:
            return self._entries.setdefault(graph_id, _Entry())

    def _refresh(self, graph_id: str, entry: _Entry) -> None:
        """Read the store; on an outage keep the cached state and retry after ``ttl_s``."""
        try:
            state = self._store.get(graph_id)
        except SparkError:
            raise  # an answer from the store (e.g. unknown graph), not an outage
        except Exception as exc:  # whatever the driver raises when the database is away
            if entry.state is not None:  # without a table every request asks the store again
                entry.next_read_at = self._clock() + self._ttl_s
            self._note_unavailable(graph_id, entry, exc)
            return
        now = self._clock()
        self._note_recovered(graph_id, entry, now)
        entry.state, entry.read_at, entry.next_read_at = state, now, now + self._ttl_s

    def _note_unavailable(self, graph_id: str, entry: _Entry, exc: Exception) -> None:
        entry.error = f"{type(exc).__name__}: {str(exc)[:200]}"
        if entry.outage_since is not None:
            return
        entry.outage_since = self._clock()
        stale_s = None if entry.state is None else round(entry.outage_since - entry.read_at, 3)
        log.warning(
            "routing.serving_stale" if entry.state else "routing.store_unavailable",
            graph_id=graph_id,
            stale_s=stale_s,
            max_stale_s=self._max_stale_s,
            error=entry.error,
        )

    def _note_recovered(self, graph_id: str, entry: _Entry, now: float) -> None:
        if entry.outage_since is None:
            return
        log.info(
            "routing.store_recovered",
            graph_id=graph_id,
            outage_s=round(now - entry.outage_since, 3),
            stale_s=None if entry.state is None else round(now - entry.read_at, 3),
        )
        entry.outage_since, entry.beyond_limit_logged = None, False

    def _served(self, graph_id: str, entry: _Entry) -> RoutingState:
        """The cached state, or what ``on_stale`` makes of it past ``max_stale_s``."""
        state = entry.state
        if state is None:
            raise RoutingUnavailableError(
                f"routing of graph {graph_id!r} is unknown: the routing store cannot be reached "
                f"({entry.error}) and this client has not read it before"
            )
        stale_s = self._clock() - entry.read_at
        if entry.outage_since is None or stale_s <= self._max_stale_s:
            return state
        self._log_beyond_limit(graph_id, entry, stale_s)
        if self._on_stale == "fail":
            raise RoutingUnavailableError(
                f"routing of graph {graph_id!r} is {stale_s:.0f} s stale, past max_stale_s="
                f"{self._max_stale_s!r}, and the routing store cannot be reached ({entry.error})"
            )
        if self._on_stale == "active_only":
            return state.model_copy(update={"candidate_version_id": None, "candidate_share": 0.0})
        return state

    def _log_beyond_limit(self, graph_id: str, entry: _Entry, stale_s: float) -> None:
        if entry.beyond_limit_logged:
            return
        entry.beyond_limit_logged = True
        log.error(
            "routing.stale_beyond_limit",
            graph_id=graph_id,
            stale_s=round(stale_s, 3),
            max_stale_s=self._max_stale_s,
            on_stale=self._on_stale,
            error=entry.error,
        )
