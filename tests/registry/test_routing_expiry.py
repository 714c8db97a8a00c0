"""A candidate's routing can expire by itself: clients stop sending it traffic at that instant,
so an A/B window's cap holds even when no worker is alive to close it (issue 8, item 5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from spark.registry import RegistryStore, RoutingStore
from tests.registry.conftest import make_spec

GRAPH = "support-triage"


def test_candidate_stops_being_served_at_its_expiry(database_url: str) -> None:
    """Before the expiry the candidate gets its share; from the expiry on, none (read back
    from either database, naive or aware); the event log records the expiry."""
    registry = RegistryStore(database_url)
    base = registry.register_graph(make_spec(), ["nodes"])
    candidate = registry.create_version(base.version_id, make_spec("other"), author="rsi")
    routing = RoutingStore(database_url)
    expires = datetime.now(UTC) + timedelta(minutes=5)
    routing.apply(
        GRAPH,
        idempotency_key="c1:window:open",
        action="set_candidate",
        candidate_version_id=candidate.version_id,
        candidate_share=0.5,
        candidate_expires_at=expires,
        actor="rsi",
        reason="window",
    )
    state = routing.get(GRAPH)
    assert state.serving_share(expires - timedelta(seconds=1)) == 0.5
    assert state.serving_share(expires) == 0.0
    assert state.serving_share(expires + timedelta(hours=1)) == 0.0
    assert state.serving_share() == 0.5  # now is before the expiry
    event = routing.history(GRAPH)[-1]
    assert event.candidate_expires_at is not None
    assert abs(event.candidate_expires_at.replace(tzinfo=UTC) - expires) < timedelta(seconds=1)


def test_later_changes_replace_or_clear_the_expiry(database_url: str) -> None:
    """A set_candidate without an expiry (a rollout stage) never expires; dropping the
    candidate clears the expiry with it."""
    registry = RegistryStore(database_url)
    base = registry.register_graph(make_spec(), ["nodes"])
    candidate = registry.create_version(base.version_id, make_spec("other"), author="rsi")
    routing = RoutingStore(database_url)
    past = datetime.now(UTC) - timedelta(seconds=1)
    routing.apply(
        GRAPH,
        idempotency_key="c1:window:open",
        action="set_candidate",
        candidate_version_id=candidate.version_id,
        candidate_share=0.5,
        candidate_expires_at=past,
        actor="rsi",
        reason="window",
    )
    assert routing.get(GRAPH).serving_share() == 0.0
    stage = routing.apply(
        GRAPH,
        idempotency_key="c1:canary",
        action="set_candidate",
        candidate_share=0.1,
        actor="rsi",
        reason="canary",
    )
    assert stage.candidate_expires_at is None
    assert stage.serving_share() == 0.1
    cleared = routing.apply(
        GRAPH, idempotency_key="c1:close", action="clear_candidate", actor="rsi", reason="done"
    )
    assert cleared.candidate_expires_at is None
    assert cleared.serving_share() == 0.0
