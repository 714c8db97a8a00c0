"""Registry tables: graphs, immutable versions, routing with its event log, deployments, reviews.

Primary keys are business keys (content hash, deployment id, review id, idempotency key), so a
retried Temporal activity finds what its earlier attempt stored instead of writing it twice.
Timestamps are UTC-aware.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Text
from sqlmodel import Field, SQLModel

from spark.registry._sql import utcnow


class GraphRow(SQLModel, table=True):
    """A registered graph and the Python modules that hold its node implementations."""

    __tablename__ = "spark_graphs"

    graph_id: str = Field(primary_key=True)
    node_modules: list[str] = Field(default_factory=list, sa_type=JSON)
    owner: str
    created_at: datetime = Field(default_factory=utcnow)


class VersionRow(SQLModel, table=True):
    """An immutable graph version; ``version_id`` is ``"v-" + spec.content_hash()[:16]``."""

    __tablename__ = "spark_versions"

    version_id: str = Field(primary_key=True)
    graph_id: str = Field(index=True)
    parent_id: str | None = None
    spec_json: str = Field(sa_type=Text)
    hypothesis_id: str | None = None
    author: str
    note: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class RoutingRow(SQLModel, table=True):
    """Which version serves a graph, and which candidate receives what share of traffic."""

    __tablename__ = "spark_routing"

    graph_id: str = Field(primary_key=True)
    active_version_id: str
    candidate_version_id: str | None = None
    candidate_share: float = 0.0
    # Past this instant clients stop routing to the candidate by themselves (an A/B window's cap
    # holds even when no worker is alive to close the window). None: no expiry.
    candidate_expires_at: datetime | None = None
    revision: int = 1
    updated_at: datetime = Field(default_factory=utcnow)


class RoutingEventRow(SQLModel, table=True):
    """One applied routing change and the state it produced (the audit log)."""

    __tablename__ = "spark_routing_events"

    id: int | None = Field(default=None, primary_key=True)
    graph_id: str = Field(index=True)
    idempotency_key: str = Field(unique=True)
    action: str
    active_version_id: str
    candidate_version_id: str | None = None
    candidate_share: float = 0.0
    candidate_expires_at: datetime | None = None
    revision: int
    actor: str
    reason: str = ""
    at: datetime = Field(default_factory=utcnow)


class DeploymentRow(SQLModel, table=True):
    """One deployment; ``deployment_id`` is its idempotency key, e.g. ``"<graph>:c<cycle>:<version>"``."""

    __tablename__ = "spark_deployments"

    deployment_id: str = Field(primary_key=True)
    graph_id: str = Field(index=True)
    cycle: int
    from_version_id: str
    to_version_id: str
    strategy: str
    status: str = "in_progress"
    reason: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ReviewRow(SQLModel, table=True):
    """A request for a human decision on a risky hypothesis, with the dossier it was shown with."""

    __tablename__ = "spark_reviews"

    review_id: str = Field(primary_key=True)
    graph_id: str = Field(index=True)
    cycle: int
    hypothesis_id: str
    risk: str
    title: str = ""
    dossier: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    status: str = Field(default="pending", index=True)
    reviewer: str | None = None
    comment: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    decided_at: datetime | None = None
