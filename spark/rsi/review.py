"""A review's dossier: what a reviewer needs to decide on a hypothesis awaiting review, and its
text for a terminal and the Web UI.

Pure functions: the caller (the ``open_review`` activity) loads the base spec and the earlier
attempts; nothing here reads a store or a clock.
"""

from __future__ import annotations

from spark.errors import InvalidChangeError
from spark.graphs.diff import render
from spark.graphs.spec import GraphSpec
from spark.rsi.changes import apply_changes, describe_change
from spark.rsi.contracts import MAX_REVIEW_DIFF_CHARS, ReviewDossier, ValidatedHypothesis
from spark.rsi.review_memo import expected_effects_text
from spark.rsi.review_memo import review_details as review_details  # re-exported
from spark.rsi.review_memo import review_memo as review_memo  # re-exported
from spark.rsi.validation import risk_reasons

GATES_AHEAD = (
    "no replay or A/B yet for this change: an approval sends it to the replay gate and the "
    "A/B window; it ships only if those pass and every objective constraint holds"
)


def build_dossier(
    spec: GraphSpec,
    item: ValidatedHypothesis,
    *,
    review_id: str,
    cycle: int,
    evidence: list[str],
    allowed_reviewers: list[str],
) -> ReviewDossier:
    """The dossier of ``item`` (validated against ``spec``, its base version); ``evidence``
    lists what earlier tests of the same change found."""
    hypothesis = item.hypothesis
    return ReviewDossier(
        review_id=review_id,
        graph_id=hypothesis.graph_id,
        cycle=cycle,
        hypothesis_id=hypothesis.hypothesis_id,
        title=hypothesis.title,
        base_version_id=hypothesis.base_version_id,
        diagnosis=hypothesis.diagnosis,
        rationale=hypothesis.rationale,
        changes=[describe_change(change) for change in hypothesis.changes],
        operations=[change.model_dump(mode="json") for change in hypothesis.changes],
        diff=candidate_diff(spec, item),
        risk=item.risk,
        risk_reasons=risk_reasons(spec, hypothesis.changes),
        warnings=list(item.warnings),
        primary_metric=hypothesis.primary_metric,
        expected_effects=dict(hypothesis.expected_effects),
        evidence=[*evidence, GATES_AHEAD],
        allowed_reviewers=list(allowed_reviewers),
    )


def candidate_diff(spec: GraphSpec, item: ValidatedHypothesis) -> str:
    """The text diff from ``spec`` to the spec the change would make (capped in size)."""
    try:
        candidate = apply_changes(spec, item.hypothesis.changes)
    except InvalidChangeError as exc:  # validated changes apply; say so if one ever does not
        return f"no diff: the changes do not apply to {spec.id!r} ({exc})\n"
    text = render(
        "text",
        spec,
        candidate,
        old_label=item.hypothesis.base_version_id,
        new_label="candidate",
    )
    if len(text) <= MAX_REVIEW_DIFF_CHARS:
        return text
    return text[:MAX_REVIEW_DIFF_CHARS] + "\n... (cut; `spark diff` shows all of it)\n"


def describe_dossier(dossier: ReviewDossier) -> str:
    """The dossier as text: what ``spark review show`` prints and the Web UI's details show."""
    lines = [
        f"review {dossier.review_id} [{dossier.state}] of graph {dossier.graph_id!r}, "
        f"cycle {dossier.cycle}",
        f"hypothesis {dossier.hypothesis_id}: {dossier.title}",
        f"diagnosis: {dossier.diagnosis or '-'}",
        f"rationale: {dossier.rationale or '-'}",
        f"risk: {dossier.risk}",
        *_bullets(dossier.risk_reasons),
        "changes:",
        *_bullets(dossier.changes),
        f"expected effects (primary: {dossier.primary_metric}): {expected_effects_text(dossier)}",
        *([f"warnings: {'; '.join(dossier.warnings)}"] if dossier.warnings else []),
        "evidence so far:",
        *_bullets(dossier.evidence),
        f"reviewers: {', '.join(dossier.allowed_reviewers) or 'anyone'}",
    ]
    if dossier.state != "pending":
        who = f" by {dossier.reviewer}" if dossier.reviewer else ""
        note = f": {dossier.comment}" if dossier.comment else ""
        lines.append(f"verdict: {dossier.state}{who}{note}")
    return "\n".join([*lines, "diff:", dossier.diff.rstrip("\n")]) + "\n"


def _bullets(items: list[str]) -> list[str]:
    return [f"  - {item}" for item in items]
