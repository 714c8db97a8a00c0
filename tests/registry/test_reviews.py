"""Review requests and decisions: idempotent, and a verdict never flips."""

from __future__ import annotations

import pytest

from spark.errors import SparkMisuseError
from spark.registry import ReviewRecord, ReviewStore


def _request(store: ReviewStore, review_id: str = "r-1", graph_id: str = "g1") -> ReviewRecord:
    return store.request(review_id, graph_id, 2, "h-abc", "high")


def test_request_is_idempotent(database_url: str) -> None:
    """Requesting the same review twice stores one pending review."""
    store = ReviewStore(database_url)
    first = _request(store)
    assert (first.status, first.risk, first.reviewer, first.decided_at) == (
        "pending",
        "high",
        None,
        None,
    )
    assert _request(store) == first
    assert store.pending() == [first]


def test_decide_is_idempotent(database_url: str) -> None:
    """Repeating a verdict keeps the first decision, its reviewer and its comment."""
    store = ReviewStore(database_url)
    _request(store)
    approved = store.decide("r-1", True, "ana", "looks safe")
    assert (approved.status, approved.reviewer, approved.comment) == (
        "approved",
        "ana",
        "looks safe",
    )
    assert approved.decided_at is not None
    assert store.decide("r-1", True, "bo", "retry") == approved
    assert store.get("r-1") == approved
    assert store.pending() == []


def test_opposite_verdict_on_a_decided_review_is_misuse(database_url: str) -> None:
    """Rejecting an approved review raises instead of flipping the verdict."""
    store = ReviewStore(database_url)
    _request(store)
    store.decide("r-1", False, "ana", "too risky")
    with pytest.raises(SparkMisuseError, match=r"'r-1'.*'rejected'"):
        store.decide("r-1", True, "bo", "")
    assert store.get("r-1").status == "rejected"


def test_expire_closes_only_pending_reviews(database_url: str) -> None:
    """An expired review cannot be decided later; expiring a decided review changes nothing."""
    store = ReviewStore(database_url)
    _request(store, "r-1")
    decided = store.decide(_request(store, "r-2").review_id, True, "ana")
    assert store.expire("r-1").status == "expired"
    assert store.expire("r-2") == decided
    with pytest.raises(SparkMisuseError, match="'expired'"):
        store.decide("r-1", True, "ana")


def test_pending_filters_by_graph(database_url: str) -> None:
    """``pending(graph_id)`` lists only that graph's open reviews."""
    store = ReviewStore(database_url)
    _request(store, "r-1", "g1")
    _request(store, "r-2", "g2")
    assert [r.review_id for r in store.pending("g2")] == ["r-2"]
    assert {r.review_id for r in store.pending()} == {"r-1", "r-2"}


def test_unknown_review_is_misuse(database_url: str) -> None:
    """Reading or deciding an unknown review raises an error quoting its id."""
    store = ReviewStore(database_url)
    with pytest.raises(SparkMisuseError, match="'nope'"):
        store.get("nope")
    with pytest.raises(SparkMisuseError, match="'nope'"):
        store.decide("nope", True, "ana")
