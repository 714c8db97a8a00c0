"""The experience store: every RSI attempt with its outcome, and the patterns learned from them."""

from spark.experience.store import (
    Attempt,
    DiagnosisKind,
    ExperienceStore,
    Outcome,
    Pattern,
    ProposalDecision,
    pattern_id_for,
)

__all__ = [
    "Attempt",
    "DiagnosisKind",
    "ExperienceStore",
    "Outcome",
    "Pattern",
    "ProposalDecision",
    "pattern_id_for",
]
