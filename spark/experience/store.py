"""The experience store: what RSI tried, what happened, and the patterns learned from it.

``record_attempt`` is an upsert keyed by ``attempt_id``, so a retried activity stores an attempt
once and a later outcome (``rolled_back`` after ``shipped``) updates it. Patterns are recomputed
from all attempts, grouped by diagnosis kind x change kind.

``record_proposals`` keeps, per graph, base version and hypothesis, what generation last decided
about it (proposed, retried after an undecided test, or skipped) and why, so an operator can ask
why a change is (not) being tried. An attempt's ``details`` carry the base-independent change
signature and the diagnosis fingerprint it was tried under (see ``spark.experience.policy``).

An attempt may carry its full ``AttemptRecord`` (``spark.experience.records``), stored as JSON in
``spark_attempt_records`` with the facets ``history`` queries by (hypothesis type, change kind,
node type, diagnosis). ``extract_learned_patterns`` derives success patterns and anti-patterns
per graph and across graphs from attempts and records (``spark.experience.patterns``); the pooled
``extract_patterns`` / ``patterns`` stay for callers of the older API.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from statistics import fmean
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, delete, select

from spark.db import get_engine
from spark.experience import _records_sql as records_sql
from spark.experience.patterns import extract as extract_learned
from spark.experience.records import AttemptRecord
from spark.experience.tables import AttemptRecordRow, AttemptRow, PatternRow, ProposalRow
from spark.registry._sql import read_session, retry_on_conflict, utcnow, write_session
from spark.rsi.hypotheses import Hypothesis, Metric, RiskLevel
from spark.rsi.patterns import LearnedPattern

Outcome = Literal[
    "shipped",
    "rejected_validation",
    "rejected_review",
    "rejected_test",
    "inconclusive",
    "invalid_test",
    "rolled_back",
    "failed",
]
DiagnosisKind = str  # "errors", "latency", "cost", "quality", ...
Decision = Literal["propose", "retry", "skip"]
SIGNATURE_KEY = "change_signature"
FINGERPRINT_KEY = "diagnosis_fingerprint"
SHAPE_KEY = "change_shape"

log = structlog.get_logger(__name__)


class Attempt(BaseModel):
    """One hypothesis tried in one cycle, and its outcome."""

    model_config = ConfigDict(from_attributes=True)

    graph_id: str
    cycle: int
    base_version_id: str
    candidate_version_id: str | None = None
    hypothesis_id: str
    title: str
    diagnosis_kind: DiagnosisKind
    change_kinds: list[str] = Field(default_factory=list)
    target_nodes: list[str] = Field(default_factory=list)
    primary_metric: Metric
    risk: RiskLevel
    outcome: Outcome
    effect: float | None = Field(
        default=None, description="measured relative change of the primary metric, e.g. -0.25"
    )
    details: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = Field(
        default=None,
        description="set by the store on first record (workflows must not read clocks)",
    )

    @property
    def attempt_id(self) -> str:
        """The business key: ``"<graph>:c<cycle>:<hypothesis_id>"``."""
        return f"{self.graph_id}:c{self.cycle}:{self.hypothesis_id}"

    @property
    def change_signature(self) -> str | None:
        """The base-independent signature of the changes tried (None for older records)."""
        value = self.details.get(SIGNATURE_KEY)
        return value if isinstance(value, str) else None

    @property
    def change_shape(self) -> str | None:
        """The signature of the changes with their numbers left out (None for older records)."""
        value = self.details.get(SHAPE_KEY)
        return value if isinstance(value, str) else None

    @property
    def diagnosis_fingerprint(self) -> str | None:
        """The diagnosis the changes answered when tried (None for older records)."""
        value = self.details.get(FINGERPRINT_KEY)
        return value if isinstance(value, str) else None

    @classmethod
    def from_hypothesis(
        cls,
        hypothesis: Hypothesis,
        *,
        cycle: int,
        diagnosis_kind: DiagnosisKind,
        outcome: Outcome,
        candidate_version_id: str | None = None,
        effect: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> Attempt:
        """The attempt record of ``hypothesis`` in ``cycle``."""
        return cls(
            graph_id=hypothesis.graph_id,
            cycle=cycle,
            base_version_id=hypothesis.base_version_id,
            candidate_version_id=candidate_version_id,
            hypothesis_id=hypothesis.hypothesis_id,
            title=hypothesis.title,
            diagnosis_kind=diagnosis_kind,
            change_kinds=hypothesis.change_kinds,
            target_nodes=hypothesis.target_nodes,
            primary_metric=hypothesis.primary_metric,
            risk=hypothesis.risk,
            outcome=outcome,
            effect=effect,
            details=details or {},
        )


class Pattern(BaseModel):
    """How one kind of change fared against one kind of diagnosis."""

    model_config = ConfigDict(from_attributes=True)

    pattern_id: str
    diagnosis_kind: DiagnosisKind
    change_kind: str
    attempts: int
    successes: int
    success_rate: float
    mean_effect: float | None = Field(
        description="mean measured effect over the attempts that measured one; None if none did"
    )
    updated_at: datetime


class ProposalDecision(BaseModel):
    """What generation decided about one hypothesis on one base version, and why."""

    model_config = ConfigDict(from_attributes=True)

    graph_id: str
    base_version_id: str
    hypothesis_id: str
    title: str
    change_signature: str
    diagnosis_fingerprint: str
    decision: Decision
    reason: str
    prior_attempts: int = Field(default=0, ge=0)
    updated_at: datetime | None = Field(default=None, description="set by the store")

    @property
    def proposal_id(self) -> str:
        """The business key: ``"<graph>:<base_version_id>:<hypothesis_id>"``."""
        return f"{self.graph_id}:{self.base_version_id}:{self.hypothesis_id}"


class AttemptHistory(BaseModel):
    """One attempt and its full record (None for attempts recorded before records existed)."""

    attempt: Attempt
    record: AttemptRecord | None = None


def pattern_id_for(diagnosis_kind: str, change_kind: str) -> str:
    """The pattern key: ``"<diagnosis_kind>|<change_kind>"``."""
    return f"{diagnosis_kind}|{change_kind}"


class ExperienceStore:
    """Attempts and learned patterns in the shared Spark database."""

    def __init__(self, database_url: str) -> None:
        self._engine = get_engine(database_url)

    def record_attempt(self, attempt: Attempt, record: AttemptRecord | None = None) -> Attempt:
        """Store ``attempt`` (and its full ``record``, when given), or update the stored one
        with the same ``attempt_id``.

        An update replaces the outcome, effect, details and candidate version (and the record)
        and keeps the original ``created_at``; recording the same attempt twice stores it once.
        """
        if record is not None and record.attempt_id != attempt.attempt_id:
            raise ValueError(f"record {record.attempt_id!r} is not attempt {attempt.attempt_id!r}")
        return retry_on_conflict(lambda: self._upsert(attempt, record))

    def record_of(self, attempt_id: str) -> AttemptRecord | None:
        """The full record of one attempt, if one was stored."""
        with read_session(self._engine) as session:
            return records_sql.load_record(session.get(AttemptRecordRow, attempt_id))

    def history(
        self,
        graph_id: str | None = None,
        *,
        hypothesis_type: str | None = None,
        change_kind: str | None = None,
        node_type: str | None = None,
        diagnosis: str | None = None,
        limit: int = 100,
    ) -> list[AttemptHistory]:
        """Attempts with their full records, newest first, of one graph (or all), narrowed by
        hypothesis type, change kind, touched node type and diagnosis (kind or category)."""
        filters = {
            "hypothesis_type": hypothesis_type,
            "change_kind": change_kind,
            "node_type": node_type,
            "diagnosis": diagnosis,
        }
        query = records_sql.history_query(graph_id, filters).limit(limit)
        with read_session(self._engine) as session:
            rows = session.exec(query).all()
        return [
            AttemptHistory(attempt=Attempt.model_validate(a), record=records_sql.load_record(r))
            for a, r in rows
        ]

    def extract_learned_patterns(self) -> list[LearnedPattern]:
        """Recompute the success patterns and anti-patterns of every graph and across graphs
        (``spark.experience.patterns``), store them and return them."""
        return retry_on_conflict(self._extract_learned)

    def learned_patterns(self, graph_id: str | None = None) -> list[LearnedPattern]:
        """The stored learned patterns of ``graph_id`` and across graphs (every scope without
        it), ordered by pattern id."""
        with read_session(self._engine) as session:
            rows = session.exec(records_sql.patterns_query(graph_id)).all()
        return [LearnedPattern.model_validate(row.pattern) for row in rows]

    def attempts(self, graph_id: str | None = None, limit: int = 100) -> list[Attempt]:
        """The most recent attempts (newest first), of one graph or of all graphs."""
        query = select(AttemptRow)
        if graph_id is not None:
            query = query.where(AttemptRow.graph_id == graph_id)
        query = query.order_by(col(AttemptRow.created_at).desc(), col(AttemptRow.attempt_id))
        with read_session(self._engine) as session:
            rows = session.exec(query.limit(limit)).all()
        return [Attempt.model_validate(row) for row in rows]

    def tried(self, graph_id: str, base_version_id: str, hypothesis_id: str) -> bool:
        """Whether this hypothesis was already attempted on this base version of the graph."""
        query = select(AttemptRow.attempt_id).where(
            AttemptRow.graph_id == graph_id,
            AttemptRow.base_version_id == base_version_id,
            AttemptRow.hypothesis_id == hypothesis_id,
        )
        with read_session(self._engine) as session:
            return session.exec(query.limit(1)).first() is not None

    def attempts_on(self, graph_id: str, base_version_id: str) -> list[Attempt]:
        """Every attempt made on one base version of the graph, oldest first."""
        query = select(AttemptRow).where(
            AttemptRow.graph_id == graph_id, AttemptRow.base_version_id == base_version_id
        )
        return self._attempts(query)

    def attempts_with_outcome(self, graph_id: str, outcomes: Iterable[str]) -> list[Attempt]:
        """Every attempt on the graph (any base version) that ended in one of ``outcomes``,
        oldest first."""
        query = select(AttemptRow).where(
            AttemptRow.graph_id == graph_id, col(AttemptRow.outcome).in_(list(outcomes))
        )
        return self._attempts(query)

    def record_proposals(self, decisions: Iterable[ProposalDecision]) -> None:
        """Store each decision, replacing the earlier one about the same hypothesis on the same
        base version (one transaction; recording the same decisions twice stores them once)."""
        batch = list({d.proposal_id: d for d in decisions}.values())  # the last one counts
        if batch:
            retry_on_conflict(lambda: self._upsert_proposals(batch))

    def proposals(
        self, graph_id: str, base_version_id: str | None = None
    ) -> list[ProposalDecision]:
        """The latest decision about each hypothesis of the graph (of one base version when
        given), most recently decided first."""
        query = select(ProposalRow).where(ProposalRow.graph_id == graph_id)
        if base_version_id is not None:
            query = query.where(ProposalRow.base_version_id == base_version_id)
        query = query.order_by(col(ProposalRow.updated_at).desc(), col(ProposalRow.proposal_id))
        with read_session(self._engine) as session:
            rows = session.exec(query).all()
        return [ProposalDecision.model_validate(row) for row in rows]

    def proposal(
        self, graph_id: str, base_version_id: str, hypothesis_id: str
    ) -> ProposalDecision | None:
        """The latest decision about one hypothesis on one base version, if any."""
        key = f"{graph_id}:{base_version_id}:{hypothesis_id}"
        with read_session(self._engine) as session:
            row = session.get(ProposalRow, key)
        return None if row is None else ProposalDecision.model_validate(row)

    def extract_patterns(self, min_attempts: int = 1) -> list[Pattern]:
        """Recompute every pattern from all attempts, store them and return them.

        Attempts group by diagnosis kind x change kind (an attempt with several change kinds
        counts once in each). A success is an attempt whose outcome is ``shipped`` (an attempt
        rolled back later carries ``rolled_back``). Groups with fewer than ``min_attempts``
        attempts are dropped; the stored set is replaced in one transaction.
        """
        return retry_on_conflict(lambda: self._extract(min_attempts))

    def patterns(self) -> list[Pattern]:
        """The stored patterns, ordered by ``pattern_id``."""
        with read_session(self._engine) as session:
            rows = session.exec(select(PatternRow).order_by(col(PatternRow.pattern_id))).all()
        return [Pattern.model_validate(row) for row in rows]

    def _upsert(self, attempt: Attempt, record: AttemptRecord | None) -> Attempt:
        with write_session(self._engine) as session:
            row = session.get(AttemptRow, attempt.attempt_id, with_for_update=True)
            if row is None:
                row = _new_row(attempt)
            else:
                _update_outcome(row, attempt)
            session.add(row)
            if record is not None:
                records_sql.save_record(session, record, utcnow())
            log.info("attempt_recorded", attempt_id=row.attempt_id, outcome=row.outcome)
            return Attempt.model_validate(row)

    def _extract_learned(self) -> list[LearnedPattern]:
        with write_session(self._engine) as session:
            patterns = extract_learned(records_sql.observations(session))
            records_sql.replace_patterns(session, patterns, utcnow())
            anti = sum(p.verdict == "anti" for p in patterns)
            log.info("learned_patterns_extracted", patterns=len(patterns), anti_patterns=anti)
            return patterns

    def _attempts(self, query: Any) -> list[Attempt]:
        query = query.order_by(col(AttemptRow.created_at), col(AttemptRow.attempt_id))
        with read_session(self._engine) as session:
            rows = session.exec(query).all()
        return [Attempt.model_validate(row) for row in rows]

    def _upsert_proposals(self, decisions: list[ProposalDecision]) -> None:
        with write_session(self._engine) as session:
            now = utcnow()
            for decision in decisions:
                row = session.get(ProposalRow, decision.proposal_id, with_for_update=True)
                values = decision.model_dump(exclude={"updated_at"})
                if row is None:
                    row = ProposalRow(proposal_id=decision.proposal_id, created_at=now, **values)
                else:
                    row.sqlmodel_update(values)
                row.updated_at = now
                session.add(row)
            log.info("proposals_recorded", decisions=[d.decision for d in decisions])

    def _extract(self, min_attempts: int) -> list[Pattern]:
        with write_session(self._engine) as session:
            groups = _group(_outcome_rows(session))
            now = utcnow()
            rows = [
                _pattern_row(kind, change, outcomes, now)
                for (kind, change), outcomes in sorted(groups.items())
                if len(outcomes) >= min_attempts
            ]
            session.exec(delete(PatternRow))
            session.add_all(rows)
            log.info("patterns_extracted", patterns=len(rows), min_attempts=min_attempts)
            return [Pattern.model_validate(row) for row in rows]


_Outcome = tuple[str, float | None]


def _outcome_rows(session: Session) -> list[tuple[str, list[str], str, float | None]]:
    query = select(
        AttemptRow.diagnosis_kind, AttemptRow.change_kinds, AttemptRow.outcome, AttemptRow.effect
    )
    return [
        (kind, list(changes), outcome, effect)
        for kind, changes, outcome, effect in session.exec(query)
    ]


def _group(
    rows: Iterable[tuple[str, list[str], str, float | None]],
) -> dict[tuple[str, str], list[_Outcome]]:
    groups: dict[tuple[str, str], list[_Outcome]] = defaultdict(list)
    for diagnosis_kind, change_kinds, outcome, effect in rows:
        for change_kind in dict.fromkeys(change_kinds):
            groups[(diagnosis_kind, change_kind)].append((outcome, effect))
    return groups


def _pattern_row(kind: str, change: str, outcomes: list[_Outcome], now: datetime) -> PatternRow:
    successes = sum(1 for outcome, _ in outcomes if outcome == "shipped")
    effects = [effect for _, effect in outcomes if effect is not None]
    return PatternRow(
        pattern_id=pattern_id_for(kind, change),
        diagnosis_kind=kind,
        change_kind=change,
        attempts=len(outcomes),
        successes=successes,
        success_rate=successes / len(outcomes),
        mean_effect=fmean(effects) if effects else None,
        updated_at=now,
    )


def _update_outcome(row: AttemptRow, attempt: Attempt) -> None:
    row.outcome = attempt.outcome
    row.effect = attempt.effect
    row.details = dict(attempt.details)
    if attempt.candidate_version_id is not None:
        row.candidate_version_id = attempt.candidate_version_id


def _new_row(attempt: Attempt) -> AttemptRow:
    row = AttemptRow(attempt_id=attempt.attempt_id, **attempt.model_dump(exclude={"created_at"}))
    row.created_at = attempt.created_at or utcnow()
    return row
