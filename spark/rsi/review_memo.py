"""What the workflow shows of an open review in the Web UI: its current details and its memo.

Kept apart from ``spark.rsi.review`` (which builds dossiers from specs, diffs and validation) so
that the workflow, which calls only these two, imports nothing but the contracts.
``spark.rsi.review`` re-exports both.
"""

from __future__ import annotations

from typing import Any

from spark.rsi.contracts import ReviewDossier


def expected_effects_text(dossier: ReviewDossier) -> str:
    """``latency -30%, cost +5%`` or ``none stated``."""
    parts = [f"{metric} {change:+.0%}" for metric, change in dossier.expected_effects.items()]
    return ", ".join(parts) or "none stated"


def review_details(dossier: ReviewDossier) -> str:
    """The Web UI's current details while the review is open: what to decide on, and how."""
    lines = [
        f"cycle {dossier.cycle}: awaiting review of {dossier.title!r} "
        f"({dossier.hypothesis_id}), risk {dossier.risk}",
        *[f"risk: {reason}" for reason in dossier.risk_reasons],
        *[f"change: {change}" for change in dossier.changes],
        f"expected: {expected_effects_text(dossier)}; rationale: {dossier.rationale or '-'}",
        f"decide: spark review show {dossier.graph_id}, then spark review "
        f"{dossier.graph_id} approve|reject --reviewer NAME "
        f"(allowed: {', '.join(dossier.allowed_reviewers) or 'anyone'})",
    ]
    return "\n".join(lines)


def review_memo(dossier: ReviewDossier) -> dict[str, Any]:
    """The review in the workflow's memo (Web UI): small, without the diff."""
    return dossier.model_dump(
        mode="json",
        include={
            "review_id",
            "hypothesis_id",
            "title",
            "risk",
            "risk_reasons",
            "changes",
            "expected_effects",
            "state",
            "reviewer",
            "comment",
        },
    )
