"""Experience tables: every RSI attempt with its outcome, and the patterns learned from them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index
from sqlmodel import Field, SQLModel

from spark.registry._sql import utcnow


class AttemptRow(SQLModel, table=True):
    """One hypothesis tried in one cycle; ``attempt_id`` is ``"<graph>:c<cycle>:<hypothesis_id>"``."""

    __tablename__ = "spark_attempts"

    attempt_id: str = Field(primary_key=True)
    graph_id: str = Field(index=True)
    cycle: int
    base_version_id: str
    candidate_version_id: str | None = None
    hypothesis_id: str = Field(index=True)
    title: str
    diagnosis_kind: str
    change_kinds: list[str] = Field(default_factory=list, sa_type=JSON)
    target_nodes: list[str] = Field(default_factory=list, sa_type=JSON)
    primary_metric: str
    risk: str
    outcome: str
    effect: float | None = None
    details: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow)


class PatternRow(SQLModel, table=True):
    """How often one kind of change answered one kind of diagnosis, and how well it did."""

    __tablename__ = "spark_patterns"

    pattern_id: str = Field(primary_key=True)
    diagnosis_kind: str
    change_kind: str
    attempts: int
    successes: int
    success_rate: float
    mean_effect: float | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class ProposalRow(SQLModel, table=True):
    """What generation decided about one hypothesis on one base version, and why.

    ``proposal_id`` is ``"<graph>:<base_version_id>:<hypothesis_id>"``; the latest decision
    replaces the earlier one (``decision`` is ``propose``, ``retry`` or ``skip``).
    """

    __tablename__ = "spark_proposals"

    proposal_id: str = Field(primary_key=True)
    graph_id: str = Field(index=True)
    base_version_id: str
    hypothesis_id: str = Field(index=True)
    title: str
    change_signature: str = Field(index=True)
    diagnosis_fingerprint: str
    decision: str
    reason: str
    prior_attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class AttemptRecordRow(SQLModel, table=True):
    """The full record of one attempt (``spark.experience.records.AttemptRecord`` as JSON),
    keyed like its ``spark_attempts`` row; attempts recorded before it existed have none."""

    __tablename__ = "spark_attempt_records"

    attempt_id: str = Field(primary_key=True)
    graph_id: str = Field(index=True)
    outcome: str
    record: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class AttemptFacetRow(SQLModel, table=True):
    """One value an attempt can be found by: ``facet`` is ``hypothesis_type``, ``change_kind``,
    ``node_type`` or ``diagnosis`` (its kind and its coarse category)."""

    __tablename__ = "spark_attempt_facets"

    attempt_id: str = Field(primary_key=True)
    facet: str = Field(primary_key=True)
    value: str = Field(primary_key=True)
    graph_id: str = Field(index=True)

    __table_args__ = (Index("ix_spark_attempt_facets_facet_value", "facet", "value"),)


class LearnedPatternRow(SQLModel, table=True):
    """One learned pattern (``spark.rsi.patterns.LearnedPattern`` as JSON) per scope (a graph id
    or ``*``), diagnosis kind, change kind and node type."""

    __tablename__ = "spark_learned_patterns"

    pattern_id: str = Field(primary_key=True)
    scope: str = Field(index=True)
    diagnosis_kind: str
    change_kind: str
    node_type: str
    verdict: str
    attempts: int
    pattern: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    updated_at: datetime = Field(default_factory=utcnow)
