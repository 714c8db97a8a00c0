"""Build an attempt's full record from what the workflow sent and what the stores hold.

The workflow sends the hypothesis, the validation verdict, the A/B statistics, the decision's
reasons, the health checks and the review (``AttemptEvidence``); the stores add the diff of the
candidate against its base (``spark.graphs.diff``), the deployment with its routing steps, and the
characteristics of the touched nodes.
"""

from __future__ import annotations

import json

from activities.deps import ActivityDeps
from spark.experience import Attempt, AttemptRecord
from spark.experience.characteristics import graph_depth, node_characteristics
from spark.experience.records import (
    ABTestRecord,
    DeploymentStepRecord,
    DeploymentStepsRecord,
    DiffRecord,
    HealthCheckRecord,
    MonitoringRecord,
    ReviewOutcome,
    StatRecord,
    ValidationRecord,
    hypothesis_types_of,
)
from spark.graphs.diff import diff_graphs, render_json, render_unified
from spark.graphs.spec import GraphSpec
from spark.registry.deployments import deployment_id_for
from spark.rsi.contracts import AttemptEvidence, RecordAttemptInput
from spark.rsi.generator import diagnosis_category

DEPLOYED_OUTCOMES = frozenset({"shipped", "rolled_back"})


def build_record(deps: ActivityDeps, inp: RecordAttemptInput, attempt: Attempt) -> AttemptRecord:
    """The full record of ``attempt`` (see the module docstring)."""
    evidence = inp.evidence or AttemptEvidence()
    base = deps.registry.get_version(inp.base_version_id).spec
    hypothesis = inp.hypothesis.model_copy(update={"base_version_id": inp.base_version_id})
    return AttemptRecord(
        attempt_id=attempt.attempt_id,
        graph_id=inp.graph_id,
        cycle=inp.cycle,
        base_version_id=inp.base_version_id,
        candidate_version_id=inp.candidate_version_id,
        hypothesis=hypothesis,
        hypothesis_types=hypothesis_types_of(hypothesis.changes),
        diagnosis_kind=attempt.diagnosis_kind,
        diagnosis_category=diagnosis_category(attempt.diagnosis_kind),
        outcome=inp.outcome,
        decision_reasons=list(evidence.reasons),
        effect=inp.effect,
        expected_effect=hypothesis.expected_effects.get(hypothesis.primary_metric),
        validation=_validation(evidence),
        diff=_diff(deps, base, inp.candidate_version_id),
        test=_test(evidence),
        deployment=_deployment(deps, inp),
        monitoring=_monitoring(evidence, inp.outcome),
        review=_review(evidence),
        targets=node_characteristics(base, hypothesis.target_nodes),
        graph_depth=graph_depth(base),
        change_signature=attempt.change_signature,
        diagnosis_fingerprint=attempt.diagnosis_fingerprint,
    )


def _validation(evidence: AttemptEvidence) -> ValidationRecord | None:
    item = evidence.validation
    if item is None:
        return None
    return ValidationRecord(
        approved=item.approved,
        risk=item.risk,
        requires_review=item.requires_review,
        violations=list(item.violations),
        warnings=list(item.warnings),
    )


def _diff(deps: ActivityDeps, base: GraphSpec, candidate_id: str | None) -> DiffRecord | None:
    if candidate_id is None:
        return None
    candidate = deps.registry.get_version(candidate_id).spec
    diff = diff_graphs(base, candidate, old_label="base", new_label="candidate")
    return DiffRecord(
        summary=diff.summary(),
        unified=render_unified(base, candidate, diff),
        structured=json.loads(render_json(diff)),
    )


def _test(evidence: AttemptEvidence) -> ABTestRecord | None:
    test = evidence.test
    if test is None:
        return None
    return ABTestRecord(
        outcome=test.outcome,
        reasons=list(test.reasons),
        metrics=[StatRecord.model_validate(m.model_dump()) for m in test.metrics],
        replayed=test.replayed,
        live_runs=test.live_runs,
    )


def _deployment(deps: ActivityDeps, inp: RecordAttemptInput) -> DeploymentStepsRecord | None:
    """The candidate's deployment and its routing steps (rollouts and a rollback of it)."""
    if inp.candidate_version_id is None or inp.outcome not in DEPLOYED_OUTCOMES:
        return None
    deployment_id = deployment_id_for(inp.graph_id, inp.cycle, inp.candidate_version_id)
    found = [d for d in deps.deployments.list(inp.graph_id) if d.deployment_id == deployment_id]
    if not found:
        return None
    keys = (f"deploy:{deployment_id}", f"rollback:{deployment_id}")
    steps = [
        DeploymentStepRecord.model_validate(event.model_dump())
        for event in deps.routing.history(inp.graph_id)
        if event.idempotency_key.startswith(keys)
    ]
    record = found[0]
    return DeploymentStepsRecord(
        deployment_id=deployment_id,
        strategy=record.strategy,
        status=record.status,
        reason=record.reason,
        steps=steps,
    )


def _monitoring(evidence: AttemptEvidence, outcome: str) -> MonitoringRecord | None:
    if not evidence.health_checks and outcome not in DEPLOYED_OUTCOMES:
        return None
    checks = [HealthCheckRecord.model_validate(h.model_dump()) for h in evidence.health_checks]
    reasons = [r for h in evidence.health_checks for r in h.reasons if h.status == "regressed"]
    return MonitoringRecord(outcome=outcome, checks=checks, reasons=reasons)


def _review(evidence: AttemptEvidence) -> ReviewOutcome | None:
    if not evidence.review_required:
        return None
    decision = evidence.review
    return ReviewOutcome(
        required=True,
        approved=evidence.review_approved,
        reviewer=decision.reviewer if decision else None,
        comment=decision.comment if decision else "",
        timed_out=decision is None,
    )
