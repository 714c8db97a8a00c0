"""The experience store: attempt upserts, ``tried``, pattern extraction and proposal decisions."""

from __future__ import annotations

from typing import Any

import pytest

from spark.experience import Attempt, ExperienceStore, Outcome, ProposalDecision
from spark.experience.store import Decision
from spark.rsi.hypotheses import AddCache, Hypothesis, SetConfig


def _attempt(
    hypothesis_id: str,
    outcome: Outcome,
    *,
    cycle: int = 1,
    diagnosis_kind: str = "latency",
    change_kinds: list[str] | None = None,
    effect: float | None = None,
    graph_id: str = "g1",
) -> Attempt:
    return Attempt(
        graph_id=graph_id,
        cycle=cycle,
        base_version_id="v-base",
        candidate_version_id="v-cand",
        hypothesis_id=hypothesis_id,
        title=f"try {hypothesis_id}",
        diagnosis_kind=diagnosis_kind,
        change_kinds=change_kinds or ["add_cache"],
        target_nodes=["classify"],
        primary_metric="latency",
        risk="low",
        outcome=outcome,
        effect=effect,
    )


def test_from_hypothesis_copies_its_identity() -> None:
    """An attempt built from a hypothesis carries its id, change kinds and target nodes."""
    hypothesis = Hypothesis(
        graph_id="g1",
        base_version_id="v-base",
        title="cache and retry",
        diagnosis="slow classify",
        changes=[
            AddCache(node_id="classify", ttl_s=60),
            SetConfig(node_id="fetch", values={"retries": 2}),
        ],
    )
    attempt = Attempt.from_hypothesis(
        hypothesis, cycle=4, diagnosis_kind="latency", outcome="inconclusive"
    )
    assert attempt.attempt_id == f"g1:c4:{hypothesis.hypothesis_id}"
    assert attempt.change_kinds == ["add_cache", "set_config"]
    assert attempt.target_nodes == ["classify", "fetch"]


def test_recording_an_attempt_twice_stores_it_once(database_url: str) -> None:
    """A retried activity recording the same attempt leaves one row, stamped by the store."""
    store = ExperienceStore(database_url)
    first = store.record_attempt(_attempt("h-1", "shipped", effect=-0.2))
    again = store.record_attempt(_attempt("h-1", "shipped", effect=-0.2))
    assert first.created_at is not None
    assert again == first
    assert store.attempts() == [first]


def test_a_later_outcome_updates_the_attempt(database_url: str) -> None:
    """``rolled_back`` after ``shipped`` replaces the outcome and keeps the creation time."""
    store = ExperienceStore(database_url)
    shipped = store.record_attempt(_attempt("h-1", "shipped", effect=-0.2))
    update: dict[str, Any] = {"outcome": "rolled_back", "effect": 0.1, "details": {"why": "p95"}}
    rolled = store.record_attempt(_attempt("h-1", "shipped").model_copy(update=update))
    assert (rolled.outcome, rolled.effect, rolled.details) == ("rolled_back", 0.1, {"why": "p95"})
    assert rolled.created_at == shipped.created_at
    assert store.attempts("g1") == [rolled]


def test_tried_matches_graph_base_version_and_hypothesis(database_url: str) -> None:
    """``tried`` is true only for a hypothesis already attempted on that base of that graph."""
    store = ExperienceStore(database_url)
    store.record_attempt(_attempt("h-1", "rejected_test"))
    assert store.tried("g1", "v-base", "h-1")
    assert not store.tried("g1", "v-other", "h-1")
    assert not store.tried("g2", "v-base", "h-1")
    assert not store.tried("g1", "v-base", "h-2")


def test_attempts_filters_by_graph_and_limits(database_url: str) -> None:
    """``attempts`` returns the newest first, of one graph when asked, at most ``limit``."""
    store = ExperienceStore(database_url)
    for cycle in range(1, 4):
        store.record_attempt(_attempt(f"h-{cycle}", "inconclusive", cycle=cycle))
    store.record_attempt(_attempt("h-9", "failed", graph_id="g2"))
    assert [a.cycle for a in store.attempts("g1")] == [3, 2, 1]
    assert [a.hypothesis_id for a in store.attempts(limit=2)] == ["h-9", "h-3"]


def test_extract_patterns_counts_successes_and_mean_effect(database_url: str) -> None:
    """Patterns group by diagnosis x change kind; only shipped attempts are successes."""
    store = ExperienceStore(database_url)
    store.record_attempt(_attempt("h-1", "shipped", effect=-0.3))
    store.record_attempt(_attempt("h-2", "rolled_back", effect=0.1))
    store.record_attempt(_attempt("h-3", "rejected_validation"))
    both = ["add_cache", "set_config", "add_cache"]
    store.record_attempt(_attempt("h-4", "shipped", change_kinds=both, effect=-0.2))
    store.record_attempt(_attempt("h-5", "inconclusive", diagnosis_kind="errors"))
    patterns = {p.pattern_id: p for p in store.extract_patterns()}
    assert sorted(patterns) == ["errors|add_cache", "latency|add_cache", "latency|set_config"]
    cache = patterns["latency|add_cache"]
    assert (cache.diagnosis_kind, cache.change_kind) == ("latency", "add_cache")
    assert (cache.attempts, cache.successes, cache.success_rate) == (4, 2, 0.5)
    assert cache.mean_effect == pytest.approx((-0.3 + 0.1 - 0.2) / 3)
    config = patterns["latency|set_config"]
    assert (config.attempts, config.successes, config.success_rate) == (1, 1, 1.0)
    assert patterns["errors|add_cache"].mean_effect is None
    assert store.patterns() == sorted(patterns.values(), key=lambda p: p.pattern_id)


def test_extract_patterns_replaces_the_stored_set(database_url: str) -> None:
    """Re-extraction recomputes from attempts and drops groups below ``min_attempts``."""
    store = ExperienceStore(database_url)
    store.record_attempt(_attempt("h-1", "shipped", effect=-0.3))
    store.record_attempt(_attempt("h-2", "shipped", effect=-0.1))
    store.record_attempt(_attempt("h-3", "failed", diagnosis_kind="cost"))
    assert len(store.extract_patterns()) == 2
    store.record_attempt(_attempt("h-2", "rolled_back", effect=0.05))
    patterns = store.extract_patterns(min_attempts=2)
    assert [(p.pattern_id, p.successes) for p in patterns] == [("latency|add_cache", 1)]
    assert store.patterns() == patterns


def _decision(
    hypothesis_id: str, decision: Decision, reason: str, **extra: Any
) -> ProposalDecision:
    return ProposalDecision(
        graph_id=extra.pop("graph_id", "g1"),
        base_version_id=extra.pop("base_version_id", "v-base"),
        hypothesis_id=hypothesis_id,
        title=f"try {hypothesis_id}",
        change_signature=f"c-{hypothesis_id}",
        diagnosis_fingerprint="heavy_tail|classify|high",
        decision=decision,
        reason=reason,
        **extra,
    )


def test_proposal_decisions_are_kept_with_their_reason(database_url: str) -> None:
    """What generation decided about each hypothesis, and why, can be read back per graph and
    base version; a later decision about the same hypothesis replaces the earlier one."""
    store = ExperienceStore(database_url)
    store.record_proposals(
        [
            _decision("h-1", "propose", "not tried before"),
            _decision("h-2", "skip", "already tried on this version: shipped in cycle 1"),
            _decision("h-1", "propose", "not tried before", base_version_id="v-next"),
            _decision("h-2", "skip", "already tried on this version: shipped in cycle 1"),
        ]
    )
    store.record_proposals([_decision("h-1", "retry", "undecided 1 time(s)", prior_attempts=1)])
    on_base = {d.hypothesis_id: d for d in store.proposals("g1", "v-base")}
    assert {h: (d.decision, d.prior_attempts) for h, d in on_base.items()} == {
        "h-1": ("retry", 1),
        "h-2": ("skip", 0),
    }
    assert on_base["h-2"].reason == "already tried on this version: shipped in cycle 1"
    assert len(store.proposals("g1")) == 3
    assert store.proposal("g1", "v-next", "h-1") is not None
    assert store.proposal("g1", "v-next", "h-3") is None
    assert store.proposals("other") == []


def test_attempt_history_queries_by_base_version_and_outcome(database_url: str) -> None:
    """``attempts_on`` lists one base version's attempts oldest first; ``attempts_with_outcome``
    finds outcomes on any version; signature and fingerprint are read from the details."""
    store = ExperienceStore(database_url)
    stamped = {"change_signature": "c-1", "diagnosis_fingerprint": "heavy_tail|classify|high"}
    store.record_attempt(_attempt("h-1", "inconclusive", cycle=1))
    store.record_attempt(
        _attempt("h-1", "rejected_test", cycle=2).model_copy(update={"details": stamped})
    )
    store.record_attempt(
        _attempt("h-9", "rolled_back", cycle=3).model_copy(update={"base_version_id": "v-next"})
    )
    assert [a.cycle for a in store.attempts_on("g1", "v-base")] == [1, 2]
    rejected = store.attempts_with_outcome("g1", ["rejected_test", "rolled_back"])
    assert [a.hypothesis_id for a in rejected] == ["h-1", "h-9"]
    assert (rejected[0].change_signature, rejected[0].diagnosis_fingerprint) == (
        "c-1",
        "heavy_tail|classify|high",
    )
    assert rejected[1].change_signature is None
