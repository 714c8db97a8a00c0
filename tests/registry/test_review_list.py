"""``ReviewStore.list``: reviews of every graph or one, in one state or any, newest first, with
the dossier they were opened with."""

from __future__ import annotations

from spark.registry import ReviewStore


def test_list_filters_by_graph_and_state_newest_first(database_url: str) -> None:
    """Two graphs' reviews list together; filters narrow them; the dossier round-trips."""
    store = ReviewStore(database_url)
    store.request("r-1", "g1", 1, "h-a", "high", title="swap model", dossier={"diff": "~ x"})
    store.request("r-2", "g2", 1, "h-b", "critical", title="reroute")
    store.decide("r-2", False, "bob", "too risky")
    assert [r.review_id for r in store.list()] == ["r-2", "r-1"]
    [first] = store.list(graph_id="g1")
    assert (first.title, first.dossier, first.status) == ("swap model", {"diff": "~ x"}, "pending")
    assert [r.review_id for r in store.list(status="rejected")] == ["r-2"]
    assert store.list(graph_id="g1", status="approved") == []
