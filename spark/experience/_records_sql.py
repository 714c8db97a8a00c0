"""SQL for full attempt records, their facets and learned patterns (used by ``ExperienceStore``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exists, or_
from sqlmodel import Session, col, delete, select

from spark.experience.patterns import Observation
from spark.experience.records import AttemptRecord
from spark.experience.tables import (
    AttemptFacetRow,
    AttemptRecordRow,
    AttemptRow,
    LearnedPatternRow,
)
from spark.rsi.patterns import ALL_GRAPHS, LearnedPattern

FACETS = ("hypothesis_type", "change_kind", "node_type", "diagnosis")


def facet_values(record: AttemptRecord) -> dict[str, list[str]]:
    """What the record can be found by, per facet."""
    diagnosis = [record.diagnosis_kind, record.diagnosis_category]
    return {
        "hypothesis_type": list(record.hypothesis_types),
        "change_kind": record.change_kinds,
        "node_type": record.node_types,
        "diagnosis": [d for d in dict.fromkeys(diagnosis) if d],
    }


def save_record(session: Session, record: AttemptRecord, now: datetime) -> None:
    """Insert or replace the record and its facets (the first ``recorded_at`` is kept)."""
    row = session.get(AttemptRecordRow, record.attempt_id, with_for_update=True)
    if row is None:
        row = AttemptRecordRow(
            attempt_id=record.attempt_id,
            graph_id=record.graph_id,
            outcome=record.outcome,
            created_at=now,
        )
    stamped = record.model_copy(update={"recorded_at": row.created_at})
    row.outcome = record.outcome
    row.record = stamped.model_dump(mode="json")
    row.updated_at = now
    session.add(row)
    session.exec(
        delete(AttemptFacetRow).where(col(AttemptFacetRow.attempt_id) == record.attempt_id)
    )
    session.add_all(
        AttemptFacetRow(
            attempt_id=record.attempt_id, facet=facet, value=value, graph_id=record.graph_id
        )
        for facet, values in facet_values(record).items()
        for value in dict.fromkeys(values)
    )


def load_record(row: AttemptRecordRow | None) -> AttemptRecord | None:
    """The stored record, or None."""
    return None if row is None else AttemptRecord.model_validate(row.record)


def history_query(graph_id: str | None, filters: dict[str, str | None]) -> Any:
    """Attempts (with their record, if any) matching every given facet, newest first. A
    diagnosis also matches the attempt's own diagnosis kind, so older attempts without a record
    are found by it."""
    query = select(AttemptRow, AttemptRecordRow).join(
        AttemptRecordRow,
        col(AttemptRecordRow.attempt_id) == col(AttemptRow.attempt_id),
        isouter=True,
    )
    if graph_id is not None:
        query = query.where(AttemptRow.graph_id == graph_id)
    for facet, value in filters.items():
        if value is None:
            continue
        has_facet = _has_facet(facet, value)
        if facet == "diagnosis":
            has_facet = or_(col(AttemptRow.diagnosis_kind) == value, has_facet)
        query = query.where(has_facet)
    return query.order_by(col(AttemptRow.created_at).desc(), col(AttemptRow.attempt_id))


def _has_facet(facet: str, value: str) -> Any:
    return exists().where(
        col(AttemptFacetRow.attempt_id) == col(AttemptRow.attempt_id),
        col(AttemptFacetRow.facet) == facet,
        col(AttemptFacetRow.value) == value,
    )


def observations(session: Session) -> list[Observation]:
    """Every attempt as pattern extraction sees it (characteristics from its record, if any)."""
    query = select(AttemptRow, AttemptRecordRow).join(
        AttemptRecordRow,
        col(AttemptRecordRow.attempt_id) == col(AttemptRow.attempt_id),
        isouter=True,
    )
    return [_observation(attempt, load_record(row)) for attempt, row in session.exec(query)]


def _observation(attempt: AttemptRow, record: AttemptRecord | None) -> Observation:
    targets = record.targets if record else []
    return Observation(
        graph_id=attempt.graph_id,
        diagnosis_kind=attempt.diagnosis_kind,
        change_kinds=tuple(attempt.change_kinds),
        outcome=attempt.outcome,
        primary_metric=attempt.primary_metric,
        effect=attempt.effect,
        expected_effect=record.expected_effect if record else None,
        node_types=tuple(t.node_type for t in targets),
        depths=tuple(t.depth for t in targets),
        fan_outs=tuple(t.fan_out for t in targets),
    )


def replace_patterns(session: Session, patterns: list[LearnedPattern], now: datetime) -> None:
    """Replace every stored learned pattern with ``patterns``."""
    session.exec(delete(LearnedPatternRow))
    session.add_all(
        LearnedPatternRow(
            pattern_id=p.pattern_id,
            scope=p.scope,
            diagnosis_kind=p.diagnosis_kind,
            change_kind=p.change_kind,
            node_type=p.node_type,
            verdict=p.verdict,
            attempts=p.attempts,
            pattern=p.model_dump(mode="json"),
            updated_at=now,
        )
        for p in patterns
    )


def patterns_query(graph_id: str | None) -> Any:
    """Learned patterns of one graph and across graphs (all scopes without ``graph_id``)."""
    query = select(LearnedPatternRow)
    if graph_id is not None:
        query = query.where(col(LearnedPatternRow.scope).in_([graph_id, ALL_GRAPHS]))
    return query.order_by(col(LearnedPatternRow.pattern_id))
