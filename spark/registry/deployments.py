"""Deployment records: one row per deployment, keyed by its idempotency key.

The deployment workflow calls ``start`` before its first routing step and ``finish`` at the end;
both are idempotent so a retried activity records a deployment once. The routing steps themselves
are recorded in the routing event log.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict
from sqlmodel import Session, col, select

from spark.db import get_engine
from spark.errors import SparkMisuseError
from spark.registry._sql import read_session, retry_on_conflict, utcnow, write_session
from spark.registry.tables import DeploymentRow

DeploymentStrategy = Literal["direct", "canary", "blue_green", "gradual"]
DeploymentStatus = Literal["in_progress", "deployed", "rolled_back", "aborted"]
FinalStatus = Literal["deployed", "rolled_back", "aborted"]

# A deployed version may still be rolled back by post-rollout monitoring; other ends are final.
_ALLOWED: dict[str, set[str]] = {
    "in_progress": {"deployed", "rolled_back", "aborted"},
    "deployed": {"rolled_back"},
    "rolled_back": set(),
    "aborted": set(),
}

log = structlog.get_logger(__name__)


class DeploymentRecord(BaseModel):
    """One deployment of ``to_version_id`` over ``from_version_id``."""

    model_config = ConfigDict(from_attributes=True)

    deployment_id: str
    graph_id: str
    cycle: int
    from_version_id: str
    to_version_id: str
    strategy: DeploymentStrategy
    status: DeploymentStatus
    reason: str
    created_at: datetime
    updated_at: datetime


def deployment_id_for(graph_id: str, cycle: int, version_id: str) -> str:
    """The conventional deployment id (idempotency key): ``"<graph>:c<cycle>:<version>"``."""
    return f"{graph_id}:c{cycle}:{version_id}"


class DeploymentStore:
    """Deployment records in the shared Spark database."""

    def __init__(self, database_url: str) -> None:
        self._engine = get_engine(database_url)

    def start(
        self,
        deployment_id: str,
        graph_id: str,
        cycle: int,
        from_version_id: str,
        to_version_id: str,
        strategy: DeploymentStrategy,
    ) -> DeploymentRecord:
        """Record a deployment as in progress; an existing ``deployment_id`` returns the stored one.

        Reusing an id for a different graph, version pair or strategy raises ``SparkMisuseError``.
        """
        fields: dict[str, Any] = {
            "deployment_id": deployment_id,
            "graph_id": graph_id,
            "cycle": cycle,
            "from_version_id": from_version_id,
            "to_version_id": to_version_id,
            "strategy": strategy,
        }
        return retry_on_conflict(lambda: self._start(DeploymentRow(**fields)))

    def finish(self, deployment_id: str, status: FinalStatus, reason: str) -> DeploymentRecord:
        """Record how the deployment ended; idempotent.

        Finishing again with the stored status returns the record unchanged. A ``deployed``
        deployment may still become ``rolled_back``; any other change of a finished deployment
        raises ``SparkMisuseError``.
        """
        with write_session(self._engine) as session:
            row = _row(session, deployment_id, lock=True)
            if row.status == status:
                return DeploymentRecord.model_validate(row)
            if status not in _ALLOWED[row.status]:
                raise SparkMisuseError(
                    f"deployment {deployment_id!r} is {row.status!r} and cannot become {status!r}"
                )
            row.status, row.reason, row.updated_at = status, reason, utcnow()
            session.add(row)
            log.info(
                "deployment_finished", deployment_id=deployment_id, status=status, reason=reason
            )
            return DeploymentRecord.model_validate(row)

    def get(self, deployment_id: str) -> DeploymentRecord:
        """The deployment ``deployment_id``; ``SparkMisuseError`` when none is stored."""
        with read_session(self._engine) as session:
            return DeploymentRecord.model_validate(_row(session, deployment_id))

    def list(self, graph_id: str) -> builtins.list[DeploymentRecord]:
        """Every deployment of ``graph_id``, oldest first."""
        with read_session(self._engine) as session:
            rows = session.exec(
                select(DeploymentRow)
                .where(DeploymentRow.graph_id == graph_id)
                .order_by(col(DeploymentRow.created_at), col(DeploymentRow.deployment_id))
            ).all()
        return [DeploymentRecord.model_validate(row) for row in rows]

    def _start(self, new: DeploymentRow) -> DeploymentRecord:
        with write_session(self._engine) as session:
            row = session.get(DeploymentRow, new.deployment_id)
            if row is None:
                session.add(new)
                log.info(
                    "deployment_started", deployment_id=new.deployment_id, graph_id=new.graph_id
                )
                return DeploymentRecord.model_validate(new)
            _check_same(row, new)
            return DeploymentRecord.model_validate(row)


def _check_same(stored: DeploymentRow, new: DeploymentRow) -> None:
    fields = ("graph_id", "cycle", "from_version_id", "to_version_id", "strategy")
    differing = [name for name in fields if getattr(stored, name) != getattr(new, name)]
    if differing:
        raise SparkMisuseError(
            f"deployment {stored.deployment_id!r} already exists with different {differing}"
        )


def _row(session: Session, deployment_id: str, *, lock: bool = False) -> DeploymentRow:
    row = session.get(DeploymentRow, deployment_id, with_for_update=lock)
    if row is None:
        raise SparkMisuseError(f"no deployment stored under {deployment_id!r}")
    return row
