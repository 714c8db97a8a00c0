"""``ExperienceDatabase``: the original description's experience API over the experience store.

::

    experience_db = ExperienceDatabase()                      # the Spark database (SQLite)
    experience_db = ExperienceDatabase("postgresql://u@h/db")  # or any SQLAlchemy URL / file
    await experience_db.initialize()
    attempts = await experience_db.query_hypotheses(graph_id="support-triage", deployed=True)

A thin façade: attempts and patterns are what ``RSIWorkflow`` records through
``ExperienceStore`` (``spark.experience.store``); every query here runs in SQL on those tables.
Hypothesis types are the description's (``spark.rsi.hypothesis_types``), matched through the
change operations each attempt was made of. An attempt was *deployed* when it reached all
traffic (``shipped``, or ``rolled_back`` afterwards), *tested* when an A/B test judged it.
Patterns are learned from attempts by the loop, never stored by hand.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import String, cast, false, func, or_
from sqlmodel import col, select

from spark.db import dispose_engine, get_engine, normalize_url, sqlite_url
from spark.experience.store import Attempt, ExperienceStore, Pattern
from spark.experience.tables import AttemptRow, PatternRow
from spark.registry._sql import read_session
from spark.rsi.hypothesis_types import CHANGE_KINDS_BY_TYPE, HypothesisType
from spark.settings import SparkSettings

DEPLOYED_OUTCOMES = ("shipped", "rolled_back")
TESTED_OUTCOMES = ("shipped", "rolled_back", "rejected_test", "inconclusive", "invalid_test")


class ExperienceStats(BaseModel):
    """Counts over the whole experience database."""

    total_hypotheses: int
    deployed_count: int
    tested_count: int
    total_patterns: int
    hypothesis_types: dict[str, int] = Field(
        default_factory=dict, description="attempts per hypothesis type (0s left out)"
    )


def database_url_of(database: str | Path | None) -> str:
    """A SQLAlchemy URL for ``database``: a URL as given, a path as a SQLite file, None as the
    Spark database (``SPARK_DATABASE_URL``, else ``.spark/spark.db``)."""
    if database is None:
        return SparkSettings.from_env().database_url
    if isinstance(database, str) and "://" in database:
        return normalize_url(database)
    return sqlite_url(database)


class ExperienceDatabase:
    """Every RSI attempt and learned pattern, queryable by graph, type and outcome."""

    def __init__(self, database: str | Path | None = None) -> None:
        self.database_url = database_url_of(database)
        self.store = ExperienceStore(self.database_url)

    async def initialize(self) -> None:
        """Connect and create the tables if needed (idempotent)."""
        await asyncio.to_thread(get_engine, self.database_url)

    async def close(self) -> None:
        """Release the database connections (a later query reconnects)."""
        await asyncio.to_thread(dispose_engine, self.database_url)

    async def query_hypotheses(
        self,
        graph_id: str | None = None,
        hypothesis_type: HypothesisType | None = None,
        deployed: bool | None = None,
        limit: int = 100,
    ) -> list[Attempt]:
        """Attempts, newest first, filtered by graph, hypothesis type and whether they were
        deployed."""
        query = select(AttemptRow)
        if graph_id is not None:
            query = query.where(AttemptRow.graph_id == graph_id)
        if hypothesis_type is not None:
            query = query.where(_made_of(CHANGE_KINDS_BY_TYPE[hypothesis_type]))
        if deployed is not None:
            shipped = col(AttemptRow.outcome).in_(DEPLOYED_OUTCOMES)
            query = query.where(shipped if deployed else ~shipped)
        query = query.order_by(col(AttemptRow.created_at).desc(), col(AttemptRow.attempt_id))
        rows = await self._all(query.limit(limit))
        return [Attempt.model_validate(row) for row in rows]

    async def query_patterns(
        self,
        hypothesis_type: HypothesisType | None = None,
        min_success_rate: float = 0.5,
        limit: int = 10,
    ) -> list[Pattern]:
        """Learned patterns succeeding at least ``min_success_rate``, best rate first (then the
        most attempts)."""
        query = self._patterns(hypothesis_type).where(PatternRow.success_rate >= min_success_rate)
        query = query.order_by(col(PatternRow.success_rate).desc(), col(PatternRow.attempts).desc())
        return await self._pattern_list(query, limit)

    async def query_successful_patterns(
        self, hypothesis_type: HypothesisType | None = None, limit: int = 10
    ) -> list[Pattern]:
        """Learned patterns that shipped at least once, best success rate first."""
        query = self._patterns(hypothesis_type).where(PatternRow.successes > 0)
        query = query.order_by(col(PatternRow.success_rate).desc(), col(PatternRow.attempts).desc())
        return await self._pattern_list(query, limit)

    async def query_failure_patterns(
        self, hypothesis_type: HypothesisType | None = None, limit: int = 10
    ) -> list[Pattern]:
        """Learned patterns that failed at least once, worst success rate first."""
        query = self._patterns(hypothesis_type).where(PatternRow.successes < PatternRow.attempts)
        query = query.order_by(col(PatternRow.success_rate), col(PatternRow.attempts).desc())
        return await self._pattern_list(query, limit)

    async def get_stats(self) -> ExperienceStats:
        """Attempts (all, deployed, tested), patterns, and attempts per hypothesis type."""
        return await asyncio.to_thread(self._stats)

    # ----- SQL -----

    def _patterns(self, hypothesis_type: HypothesisType | None) -> Any:
        query = select(PatternRow)
        if hypothesis_type is not None:
            kinds = CHANGE_KINDS_BY_TYPE[hypothesis_type]
            query = query.where(col(PatternRow.change_kind).in_(kinds))
        return query

    async def _pattern_list(self, query: Any, limit: int) -> list[Pattern]:
        rows = await self._all(query.order_by(col(PatternRow.pattern_id)).limit(limit))
        return [Pattern.model_validate(row) for row in rows]

    async def _all(self, query: Any) -> list[Any]:
        return await asyncio.to_thread(self._fetch, query)

    def _fetch(self, query: Any) -> list[Any]:
        with read_session(get_engine(self.database_url)) as session:
            return list(session.exec(query).all())

    def _stats(self) -> ExperienceStats:
        with read_session(get_engine(self.database_url)) as session:

            def count(*conditions: Any) -> int:
                query = select(func.count()).select_from(AttemptRow).where(*conditions)
                return int(session.exec(query).one())

            by_type = {t: count(_made_of(kinds)) for t, kinds in CHANGE_KINDS_BY_TYPE.items()}
            patterns = session.exec(select(func.count()).select_from(PatternRow)).one()
            return ExperienceStats(
                total_hypotheses=count(),
                deployed_count=count(col(AttemptRow.outcome).in_(DEPLOYED_OUTCOMES)),
                tested_count=count(col(AttemptRow.outcome).in_(TESTED_OUTCOMES)),
                total_patterns=int(patterns),
                hypothesis_types={t: n for t, n in by_type.items() if n},
            )


def _made_of(change_kinds: tuple[str, ...]) -> Any:
    """SQL: the attempt has an operation of one of ``change_kinds``. ``change_kinds`` is a JSON
    list of quoted names, so a quoted name matches exactly, on SQLite and PostgreSQL alike."""
    if not change_kinds:
        return false()
    text = cast(AttemptRow.change_kinds, String)
    return or_(*(text.like(f'%"{kind}"%') for kind in change_kinds))
