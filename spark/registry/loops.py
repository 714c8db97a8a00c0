"""One RSI loop per graph, whatever its workflow id: a lease in the shared database.

The loop's plan activity takes the lease for its graph at the start of every cycle, keyed by its
workflow id (continue-as-new keeps the id, so it keeps the lease), and the loop releases it when
it ends. A second loop, started under another id (``temporal workflow start`` with any
``--workflow-id``), finds the lease held and is refused with ``LoopAlreadyRunningError``,
unless the holder is no longer running (terminated, or failed before it could release): then
the lease passes to the newcomer. Taking the lease is one transaction (compare-and-set on the
holder), so two loops starting at the same instant cannot both win.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog
from pydantic import BaseModel, ConfigDict
from sqlmodel import Field, Session, SQLModel

from spark.db import get_engine
from spark.errors import LoopAlreadyRunningError
from spark.registry._sql import read_session, retry_on_conflict, utcnow, write_session

log = structlog.get_logger(__name__)


class LoopLeaseRow(SQLModel, table=True):
    """Which workflow runs the RSI loop of a graph."""

    __tablename__ = "spark_loop_leases"

    graph_id: str = Field(primary_key=True)
    workflow_id: str
    acquired_at: datetime = Field(default_factory=utcnow)
    renewed_at: datetime = Field(default_factory=utcnow)


class LoopLease(BaseModel):
    """A graph's loop lease: its holder and since when."""

    model_config = ConfigDict(from_attributes=True)

    graph_id: str
    workflow_id: str
    acquired_at: datetime
    renewed_at: datetime


class LoopLeaseStore:
    """Loop leases in the shared Spark database."""

    def __init__(self, database_url: str) -> None:
        self._engine = get_engine(database_url)

    def holder(self, graph_id: str) -> LoopLease | None:
        """The lease of ``graph_id``, or None when no loop holds it."""
        with read_session(self._engine) as session:
            row = session.get(LoopLeaseRow, graph_id)
            return None if row is None else LoopLease.model_validate(row)

    def acquire(
        self, graph_id: str, workflow_id: str, is_running: Callable[[str], bool]
    ) -> LoopLease:
        """Take or renew the lease for ``workflow_id``. Another holder keeps it while
        ``is_running(holder)`` says it runs: then ``LoopAlreadyRunningError`` names it."""
        current = self.holder(graph_id)
        stale: str | None = None
        if current is not None and current.workflow_id != workflow_id:
            if is_running(current.workflow_id):
                raise _conflict(graph_id, current.workflow_id)
            stale = current.workflow_id
        return retry_on_conflict(lambda: self._take(graph_id, workflow_id, stale))

    def _take(self, graph_id: str, workflow_id: str, stale: str | None) -> LoopLease:
        with write_session(self._engine) as session:
            row = _locked(session, graph_id)
            if row is None:
                row = LoopLeaseRow(graph_id=graph_id, workflow_id=workflow_id)
            elif row.workflow_id == stale:
                log.warning("loop lease taken over", graph_id=graph_id, stale_holder=stale)
                row.workflow_id, row.acquired_at = workflow_id, utcnow()
            elif row.workflow_id != workflow_id:
                raise _conflict(graph_id, row.workflow_id)
            row.renewed_at = utcnow()
            session.add(row)
            session.flush()
            return LoopLease.model_validate(row)

    def release(self, graph_id: str, workflow_id: str) -> bool:
        """Give the lease up if ``workflow_id`` holds it; True when it did."""
        with write_session(self._engine) as session:
            row = _locked(session, graph_id)
            if row is None or row.workflow_id != workflow_id:
                return False
            session.delete(row)
            return True


def _locked(session: Session, graph_id: str) -> LoopLeaseRow | None:
    return session.get(LoopLeaseRow, graph_id, with_for_update=True)


def _conflict(graph_id: str, holder: str) -> LoopAlreadyRunningError:
    return LoopAlreadyRunningError(
        f"graph {graph_id!r} already has a running RSI loop: workflow {holder!r}. One loop per "
        f"graph: wait for it to end, or stop it (temporal workflow terminate -w {holder})"
    )
