"""Whether a proposed hypothesis should be tried (again), from what the experience store recorded.

Three rules, in this order:

1. **A decided change is not tried again on the same base version.** Shipped, rejected on
   evidence, refused by validation or by a reviewer: the same changes on the same version would
   meet the same verdict.
2. **Inconclusive is not final.** A test that could not decide (``inconclusive``, or
   ``invalid_test`` when the window could not be planned) is retried in a later cycle, with more
   evidence (the workflow lengthens the window per prior attempt), up to
   ``MAX_UNDECIDED_ATTEMPTS`` attempts on the same base version. Not when the online window
   was capped (it could hold only part of the runs its plan needed at the graph's traffic):
   the retry's longer window would be capped at the same length, judge as many runs and decide
   with no more power, so the change waits for a new base version and the cycle tries another.
3. **Rejected is not re-proposed.** A change rejected on evidence (``rejected_test``,
   ``rolled_back``) on any base version is not proposed on a new one unless the diagnosis it
   answers changed. Hypothesis ids hash the base version, so the comparison uses the
   base-independent ``change_signature`` and a ``diagnosis_fingerprint`` that is stable across
   cycles (diagnosis kind, target nodes and severity; never the free text with its live figures).
   The diagnosis changed only when it grew worse by more than noise can explain
   (``same_diagnosis``): a severity one band higher is what sampling noise gives a bottleneck
   measured near a band's edge (a latency share of 0.79 in one window, 0.80 in the next), and a
   lower severity is a weaker case than the one the test rejected.
   Nor is it re-proposed with other values for the same diagnosis (same ``change_shape``: the
   same operations on the same nodes and fields, numbers left out). A rule derives its values
   from the window's measurements (a timeout from the p95, a TTL from the gap between repeats),
   so the next cycle proposes the "same" change at a timeout of 0.18 s instead of 0.157 s; the
   test that rejected one measured the other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from spark.experience.store import Attempt, Decision
from spark.rsi.analysis import SEVERITY_ORDER, DiagnosticReport
from spark.rsi.contracts import WINDOW_CAPACITY_KEY
from spark.rsi.generator import diagnosis_category, diagnosis_kind_of
from spark.rsi.hypotheses import ChangeOp, Hypothesis

MAX_UNDECIDED_ATTEMPTS = 3
"""Attempts of the same change on the same base version that may end undecided before it waits
for a new base. With the window doubled per prior attempt, the third attempt runs four times the
first window: a change whose effect a window four times longer still cannot resolve is too small
(or the metric too noisy) to be worth more of the traffic it diverts."""

UNDECIDED_OUTCOMES = frozenset({"inconclusive", "invalid_test"})
"""Outcomes of a test that could not decide: retried with more evidence."""

REJECTED_ON_EVIDENCE = frozenset({"rejected_test", "rolled_back"})
"""Outcomes that measured the change doing harm (or no good): not re-proposed on a new base
version for the same diagnosis."""

NO_BOTTLENECK = "none"
UNKNOWN_SEVERITY = "unknown"
SEVERITY_RISE_BEYOND_NOISE = 2
"""Bands a diagnosis' severity must rise by before a change rejected for it is a new question.
Adjacent bands are 1.5-4x apart (``spark.rsi.analysis``), so one band is what a window's sampling
noise gives a value measured near a band's edge; two bands is the bottleneck at least doubled."""
_RANKS = {NO_BOTTLENECK: -1} | {severity: rank for severity, rank in SEVERITY_ORDER.items()}


class ProposalVerdict(BaseModel):
    """Whether to try a proposed hypothesis, how many undecided attempts it had, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision: Decision
    reason: str
    prior_attempts: int = Field(default=0, ge=0)


def change_signature(changes: Sequence[ChangeOp]) -> str:
    """A base-independent key of a list of changes: the hash of their canonical JSON."""
    canonical = json.dumps(
        [change.model_dump(mode="json") for change in changes],
        sort_keys=True,
        separators=(",", ":"),
    )
    return "c-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def change_shape(changes: Sequence[ChangeOp]) -> str:
    """``change_signature`` with every number left out: the operations, the nodes and fields
    they touch and every value that is not a number (a model name, a fallback type, a prompt)."""
    canonical = json.dumps(
        [_without_numbers(change.model_dump(mode="json")) for change in changes],
        sort_keys=True,
        separators=(",", ":"),
    )
    return "s-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _without_numbers(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_numbers(item) for item in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "#"
    return value


def diagnosis_fingerprint(hypothesis: Hypothesis, report: DiagnosticReport | None) -> str:
    """``"<diagnosis kind>|<target nodes>|<severity>"``: what the hypothesis answers, stable
    across cycles while the diagnosis stays the same. The severity is the highest one the report
    gives the targets' bottlenecks of the diagnosis' category (``none`` when there is none,
    ``unknown`` without a report)."""
    kind = diagnosis_kind_of(hypothesis)
    targets = hypothesis.target_nodes
    severity = UNKNOWN_SEVERITY if report is None else _severity(report, kind, targets)
    return f"{kind}|{','.join(targets)}|{severity}"


def same_diagnosis(recorded: str | None, current: str) -> bool:
    """Whether a change rejected for the ``recorded`` diagnosis fingerprint answers the same
    question under the ``current`` one: the same kind and target nodes, and a severity that did
    not rise by ``SEVERITY_RISE_BEYOND_NOISE`` bands or more. An unknown severity (no report)
    matches only itself."""
    if recorded is None:
        return False
    if recorded == current:
        return True
    then_question, _, then_severity = recorded.rpartition("|")
    now_question, _, now_severity = current.rpartition("|")
    if then_question != now_question or not then_question:
        return False
    if then_severity not in _RANKS or now_severity not in _RANKS:
        return False
    return _RANKS[now_severity] - _RANKS[then_severity] < SEVERITY_RISE_BEYOND_NOISE


def window_capacity(attempt: Attempt) -> float:
    """The share of its planned runs the attempt's online window held (1 when not capped or
    not recorded)."""
    value = attempt.details.get(WINDOW_CAPACITY_KEY)
    return float(value) if isinstance(value, int | float) and 0 < value < 1 else 1.0


def _severity(report: DiagnosticReport, kind: str, targets: Sequence[str]) -> str:
    category = diagnosis_category(kind)
    found = [b.severity for b in report.bottlenecks if b.kind == category and b.node_id in targets]
    return max(found, key=SEVERITY_ORDER.__getitem__, default=NO_BOTTLENECK)


def judge_proposal(
    hypothesis: Hypothesis, fingerprint: str, history: Sequence[Attempt]
) -> ProposalVerdict:
    """Whether to try ``hypothesis`` given the graph's ``history`` (its attempts on this base
    version and its attempts rejected on evidence on any version)."""
    here = [
        a
        for a in history
        if a.base_version_id == hypothesis.base_version_id
        and a.hypothesis_id == hypothesis.hypothesis_id
    ]
    decided = [a for a in here if a.outcome not in UNDECIDED_OUTCOMES]
    if decided:
        last = decided[-1]
        return _skip(f"already tried on this version: {last.outcome} in cycle {last.cycle}")
    if len(here) >= MAX_UNDECIDED_ATTEMPTS:
        return _skip(
            f"undecided {len(here)} times on this version (limit {MAX_UNDECIDED_ATTEMPTS}): "
            "waits for a new base version"
        )
    capped = [a for a in here if window_capacity(a) < 1.0]
    if capped:
        last = capped[-1]
        return _skip(
            f"undecided in cycle {last.cycle} with its online window capped at "
            f"{window_capacity(last):.0%} of the runs its plan needed: a retry's window would "
            "be capped the same and decide with no more power; waits for a new base version"
        )
    resembling = _rejected_with_other_values(hypothesis, fingerprint, history)
    if resembling:
        last = resembling[-1]
        return _skip(
            f"the same change with other values was {last.outcome} on {last.base_version_id} "
            f"in cycle {last.cycle} for the same diagnosis ({_as_recorded(last, fingerprint)}): "
            f"{last.title!r}"
        )
    rejected = _rejected_elsewhere(hypothesis, history)
    same = [a for a in rejected if same_diagnosis(a.diagnosis_fingerprint, fingerprint)]
    if same:
        last = same[-1]
        return _skip(
            f"{last.outcome} on {last.base_version_id} in cycle {last.cycle} for the same "
            f"diagnosis ({_as_recorded(last, fingerprint)})"
        )
    if here:
        outcomes = ", ".join(a.outcome for a in here)
        return ProposalVerdict(
            decision="retry",
            reason=f"undecided {len(here)} time(s) on this version ({outcomes}): retried with "
            "more evidence",
            prior_attempts=len(here),
        )
    if rejected:
        last = rejected[-1]
        return ProposalVerdict(
            decision="propose",
            reason=f"{last.outcome} on {last.base_version_id} in cycle {last.cycle} for "
            f"diagnosis {last.diagnosis_fingerprint or 'unrecorded'}; the diagnosis is now {fingerprint}",
        )
    shaped = _rejected_with_other_values(hypothesis, None, history)
    if shaped:
        last = shaped[-1]
        return ProposalVerdict(
            decision="propose",
            reason=f"the same change with other values was {last.outcome} on "
            f"{last.base_version_id} in cycle {last.cycle} for diagnosis "
            f"{last.diagnosis_fingerprint or 'unrecorded'}; the diagnosis is now {fingerprint}",
        )
    return ProposalVerdict(decision="propose", reason="not tried before")


def _as_recorded(attempt: Attempt, fingerprint: str) -> str:
    """The diagnosis an attempt was rejected for, and the current one when they differ within
    noise."""
    recorded = attempt.diagnosis_fingerprint or fingerprint
    if recorded == fingerprint:
        return fingerprint
    return f"{recorded}; now {fingerprint.rpartition('|')[2]}, within noise"


def _rejected_with_other_values(
    hypothesis: Hypothesis, fingerprint: str | None, history: Sequence[Attempt]
) -> list[Attempt]:
    """Attempts rejected on evidence, on any base version, for the same diagnosis (any diagnosis
    when ``fingerprint`` is None), of the same change with other numbers (rule 3)."""
    signature, shape = change_signature(hypothesis.changes), change_shape(hypothesis.changes)
    return [
        a
        for a in history
        if a.outcome in REJECTED_ON_EVIDENCE
        and (fingerprint is None or same_diagnosis(a.diagnosis_fingerprint, fingerprint))
        and a.change_shape == shape
        and a.change_signature != signature
    ]


def _rejected_elsewhere(hypothesis: Hypothesis, history: Sequence[Attempt]) -> list[Attempt]:
    signature = change_signature(hypothesis.changes)
    return [
        a
        for a in history
        if a.outcome in REJECTED_ON_EVIDENCE
        and a.change_signature == signature
        and a.base_version_id != hypothesis.base_version_id
    ]


def _skip(reason: str) -> ProposalVerdict:
    return ProposalVerdict(decision="skip", reason=reason)
