"""Full attempt records in the experience store: round trip, queries by each dimension, and
attempts recorded before records existed, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from spark.experience import Attempt, AttemptRecord, ExperienceStore
from spark.experience.records import (
    ABTestRecord,
    DeploymentStepRecord,
    DeploymentStepsRecord,
    DiffRecord,
    HealthCheckRecord,
    MonitoringRecord,
    NodeCharacteristics,
    ReviewOutcome,
    StatRecord,
    ValidationRecord,
    hypothesis_types_of,
)
from spark.rsi.hypotheses import AddCache, Hypothesis, SetPrompt


def _hypothesis(change: AddCache | SetPrompt, graph_id: str = "g1") -> Hypothesis:
    return Hypothesis(
        graph_id=graph_id,
        base_version_id="v-base",
        title=f"{change.op} on {change.node_id}",
        diagnosis="repeated_inputs: 40% of classify's inputs repeat",
        changes=[change],
        rationale="the same inputs come back; a cache answers them at once",
        primary_metric="latency",
        expected_effects={"latency": -0.3, "cost": -0.2},
    )


def _pair(
    change: AddCache | SetPrompt,
    *,
    cycle: int = 1,
    node_type: str = "llm",
    diagnosis_kind: str = "repeated_inputs",
    graph_id: str = "g1",
) -> tuple[Attempt, AttemptRecord]:
    hypothesis = _hypothesis(change, graph_id)
    attempt = Attempt.from_hypothesis(
        hypothesis,
        cycle=cycle,
        diagnosis_kind=diagnosis_kind,
        outcome="shipped",
        candidate_version_id="v-cand",
        effect=-0.25,
    )
    record = AttemptRecord(
        attempt_id=attempt.attempt_id,
        graph_id=graph_id,
        cycle=cycle,
        base_version_id="v-base",
        candidate_version_id="v-cand",
        hypothesis=hypothesis,
        hypothesis_types=hypothesis_types_of(hypothesis.changes),
        diagnosis_kind=diagnosis_kind,
        diagnosis_category="latency",
        outcome="shipped",
        decision_reasons=["latency improved significantly", "every guardrail held"],
        effect=-0.25,
        expected_effect=-0.3,
        validation=ValidationRecord(approved=True, risk="medium", warnings=["new cache"]),
        diff=DiffRecord(
            summary="1 node changed",
            unified='--- g1@base\n+++ g1@candidate\n-  "cache_ttl_s": null\n+  "cache_ttl_s": 60\n',
            structured={"summary": "1 node changed", "nodes_changed": [{"node_id": "classify"}]},
        ),
        test=ABTestRecord(
            outcome="ship",
            reasons=["latency improved significantly"],
            metrics=[
                StatRecord(
                    name="latency",
                    role="primary",
                    estimate=-0.25,
                    ci_low=-0.31,
                    ci_high=-0.18,
                    p_value=0.001,
                    n_baseline=200,
                    n_candidate=200,
                    method="Mann-Whitney U, Hodges-Lehmann ratio",
                )
            ],
            replayed=200,
        ),
        deployment=DeploymentStepsRecord(
            deployment_id="g1:c1:v-cand",
            strategy="canary",
            status="deployed",
            steps=[
                DeploymentStepRecord(
                    action="set_candidate",
                    active_version_id="v-base",
                    candidate_version_id="v-cand",
                    candidate_share=0.05,
                    revision=2,
                    actor="rsi",
                    reason="canary",
                    at=datetime(2026, 1, 1, tzinfo=UTC),
                ),
                DeploymentStepRecord(
                    action="set_active",
                    active_version_id="v-cand",
                    revision=3,
                    actor="rsi",
                    reason="all traffic",
                ),
            ],
        ),
        monitoring=MonitoringRecord(
            outcome="shipped",
            checks=[HealthCheckRecord(status="healthy", candidate_traces=50)] * 2,
        ),
        review=ReviewOutcome(required=True, approved=True, reviewer="bob", comment="fine"),
        targets=[
            NodeCharacteristics(
                node_id=change.node_id, node_type=node_type, depth=1, fan_out=2, fan_in=1
            )
        ],
        graph_depth=3,
    )
    return attempt, record


def test_a_full_record_round_trips(database_url: str) -> None:
    """Every part of a recorded attempt (diff, stats with intervals, deployment steps,
    monitoring, review, node traits) reads back equal, stamped with its first record time."""
    store = ExperienceStore(database_url)
    attempt, record = _pair(AddCache(node_id="classify", ttl_s=60))

    store.record_attempt(attempt, record)
    stored = store.record_of(attempt.attempt_id)

    assert stored is not None and stored.recorded_at is not None
    assert stored.model_dump(exclude={"recorded_at"}) == record.model_dump(exclude={"recorded_at"})
    assert stored.test is not None and stored.test.metrics[0].ci_low == -0.31
    assert stored.deployment is not None and [s.action for s in stored.deployment.steps] == [
        "set_candidate",
        "set_active",
    ]


def test_recording_again_replaces_the_record_once(database_url: str) -> None:
    """A retried or later record (rolled back after shipped) replaces the stored one: the
    history shows one attempt, with the latest outcome."""
    store = ExperienceStore(database_url)
    attempt, record = _pair(AddCache(node_id="classify", ttl_s=60))
    store.record_attempt(attempt, record)
    later = record.model_copy(update={"outcome": "rolled_back"})
    store.record_attempt(attempt.model_copy(update={"outcome": "rolled_back"}), later)

    history = store.history("g1")

    assert len(history) == 1
    assert history[0].attempt.outcome == "rolled_back"
    assert history[0].record is not None and history[0].record.outcome == "rolled_back"


def test_history_queries_by_each_dimension(database_url: str) -> None:
    """The history narrows by graph, hypothesis type, change kind, node type and diagnosis
    (its kind or its category), each alone and combined."""
    store = ExperienceStore(database_url)
    cache = _pair(AddCache(node_id="classify", ttl_s=60), cycle=1, node_type="llm")
    prompt = _pair(
        SetPrompt(node_id="route", prompt="be brief"),
        cycle=2,
        node_type="router",
        diagnosis_kind="low_quality",
    )
    other = _pair(AddCache(node_id="classify", ttl_s=60), cycle=1, graph_id="g2")
    for attempt, record in (cache, prompt, other):
        store.record_attempt(attempt, record)

    def cycles(**filters: Any) -> list[tuple[str, int]]:
        return sorted((h.attempt.graph_id, h.attempt.cycle) for h in store.history(**filters))

    assert cycles(graph_id="g1") == [("g1", 1), ("g1", 2)]
    assert cycles(graph_id="g1", hypothesis_type="caching") == [("g1", 1)]
    assert cycles(graph_id="g1", hypothesis_type="prompt_optimization") == [("g1", 2)]
    assert cycles(graph_id="g1", change_kind="set_prompt") == [("g1", 2)]
    assert cycles(graph_id="g1", node_type="llm") == [("g1", 1)]
    assert cycles(graph_id="g1", diagnosis="low_quality") == [("g1", 2)]
    assert cycles(diagnosis="repeated_inputs") == [("g1", 1), ("g2", 1)]
    assert cycles(graph_id="g1", diagnosis="latency") == [("g1", 1), ("g1", 2)]
    assert cycles(change_kind="add_cache", node_type="llm") == [("g1", 1), ("g2", 1)]
    assert cycles(graph_id="g1", change_kind="add_cache", node_type="router") == []


def test_attempts_without_a_record_still_load(database_url: str) -> None:
    """An attempt recorded the old way (no full record) is listed with ``record`` None and is
    found by its diagnosis kind."""
    store = ExperienceStore(database_url)
    attempt, _ = _pair(AddCache(node_id="classify", ttl_s=60))
    store.record_attempt(attempt)

    history = store.history("g1", diagnosis="repeated_inputs")

    assert [h.record for h in history] == [None]
    assert history[0].attempt.attempt_id == attempt.attempt_id
    assert store.record_of(attempt.attempt_id) is None
