"""Review requests: a human decision on a risky hypothesis, recorded once.

The RSI workflow requests a review (idempotent by ``review_id``) with the dossier the reviewer
decides on, and waits for a signal; the decision is stored here with who made it and why. A
decided review never changes its verdict. ``list`` answers ``spark review list``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from spark.db import get_engine
from spark.errors import SparkMisuseError
from spark.registry._sql import read_session, retry_on_conflict, utcnow, write_session
from spark.registry.tables import ReviewRow
from spark.rsi.hypotheses import RiskLevel

ReviewStatus = Literal["pending", "approved", "rejected", "expired"]

log = structlog.get_logger(__name__)


class ReviewRecord(BaseModel):
    """A review request and, once decided, its verdict."""

    model_config = ConfigDict(from_attributes=True)

    review_id: str
    graph_id: str
    cycle: int
    hypothesis_id: str
    risk: RiskLevel
    title: str = ""
    dossier: dict[str, Any] = Field(
        default_factory=dict, description="what the reviewer was shown (a ReviewDossier as JSON)"
    )
    status: ReviewStatus
    reviewer: str | None
    comment: str
    created_at: datetime
    decided_at: datetime | None


class ReviewStore:
    """Review requests and decisions in the shared Spark database."""

    def __init__(self, database_url: str) -> None:
        self._engine = get_engine(database_url)

    def request(
        self,
        review_id: str,
        graph_id: str,
        cycle: int,
        hypothesis_id: str,
        risk: RiskLevel,
        *,
        title: str = "",
        dossier: dict[str, Any] | None = None,
    ) -> ReviewRecord:
        """Open a pending review; an existing ``review_id`` returns the stored review unchanged."""
        fields: dict[str, Any] = {
            "review_id": review_id,
            "graph_id": graph_id,
            "cycle": cycle,
            "hypothesis_id": hypothesis_id,
            "risk": risk,
            "title": title,
            "dossier": dossier or {},
        }
        return retry_on_conflict(lambda: self._request(ReviewRow(**fields)))

    def decide(
        self, review_id: str, approved: bool, reviewer: str, comment: str = ""
    ) -> ReviewRecord:
        """Approve or reject a pending review; idempotent.

        Repeating the stored verdict returns the review unchanged (first reviewer and comment
        kept). The opposite verdict on a decided review, or any verdict on an expired one, raises
        ``SparkMisuseError``.
        """
        verdict: ReviewStatus = "approved" if approved else "rejected"
        with write_session(self._engine) as session:
            row = _row(session, review_id, lock=True)
            if row.status == verdict:
                return ReviewRecord.model_validate(row)
            if row.status != "pending":
                raise SparkMisuseError(
                    f"review {review_id!r} is already {row.status!r}; cannot mark it {verdict!r}"
                )
            _close(row, verdict, reviewer, comment)
            session.add(row)
            log.info("review_decided", review_id=review_id, status=verdict, reviewer=reviewer)
            return ReviewRecord.model_validate(row)

    def expire(self, review_id: str, reason: str = "review window elapsed") -> ReviewRecord:
        """Mark a pending review expired; a decided or expired review is returned unchanged."""
        with write_session(self._engine) as session:
            row = _row(session, review_id, lock=True)
            if row.status == "pending":
                _close(row, "expired", None, reason)
                session.add(row)
                log.info("review_expired", review_id=review_id)
            return ReviewRecord.model_validate(row)

    def get(self, review_id: str) -> ReviewRecord:
        """The review ``review_id``; ``SparkMisuseError`` when none is stored."""
        with read_session(self._engine) as session:
            return ReviewRecord.model_validate(_row(session, review_id))

    def pending(self, graph_id: str | None = None) -> list[ReviewRecord]:
        """Pending reviews, oldest first, of one graph or of all graphs."""
        query = select(ReviewRow).where(ReviewRow.status == "pending")
        if graph_id is not None:
            query = query.where(ReviewRow.graph_id == graph_id)
        with read_session(self._engine) as session:
            rows = session.exec(query.order_by(col(ReviewRow.created_at))).all()
        return [ReviewRecord.model_validate(row) for row in rows]

    def list(
        self,
        graph_id: str | None = None,
        status: ReviewStatus | None = None,
        limit: int = 100,
    ) -> list[ReviewRecord]:
        """Reviews of one graph or of all graphs, in one state or any, newest first."""
        query = select(ReviewRow)
        if graph_id is not None:
            query = query.where(ReviewRow.graph_id == graph_id)
        if status is not None:
            query = query.where(ReviewRow.status == status)
        newest_first = query.order_by(col(ReviewRow.created_at).desc()).limit(limit)
        with read_session(self._engine) as session:
            rows = session.exec(newest_first).all()
        return [ReviewRecord.model_validate(row) for row in rows]

    def _request(self, new: ReviewRow) -> ReviewRecord:
        with write_session(self._engine) as session:
            row = session.get(ReviewRow, new.review_id)
            if row is not None:
                return ReviewRecord.model_validate(row)
            session.add(new)
            log.info(
                "review_requested", review_id=new.review_id, graph_id=new.graph_id, risk=new.risk
            )
            return ReviewRecord.model_validate(new)


def _close(row: ReviewRow, status: ReviewStatus, reviewer: str | None, comment: str) -> None:
    row.status, row.reviewer, row.comment, row.decided_at = status, reviewer, comment, utcnow()


def _row(session: Session, review_id: str, *, lock: bool = False) -> ReviewRow:
    row = session.get(ReviewRow, review_id, with_for_update=lock)
    if row is None:
        raise SparkMisuseError(f"no review stored under {review_id!r}")
    return row
