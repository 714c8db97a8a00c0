"""The experience store: every RSI attempt with its outcome, and the patterns learned from them."""

from spark.experience.records import AttemptRecord
from spark.experience.store import (
    Attempt,
    AttemptHistory,
    DiagnosisKind,
    ExperienceStore,
    Outcome,
    Pattern,
    ProposalDecision,
    pattern_id_for,
)

__all__ = [
    "Attempt",
    "AttemptHistory",
    "AttemptRecord",
    "DiagnosisKind",
    "ExperienceStore",
    "Outcome",
    "Pattern",
    "ProposalDecision",
    "pattern_id_for",
]
