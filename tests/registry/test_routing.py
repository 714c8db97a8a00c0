"""Routing changes, their idempotency and audit log, sticky assignment and the routing cache."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from spark.errors import SparkMisuseError, UnknownGraphError, UnknownVersionError
from spark.registry import (
    GraphVersion,
    RegistryStore,
    RoutingCache,
    RoutingState,
    RoutingStore,
    assign_arm,
)
from spark.serving import VersionRouter
from tests.registry.conftest import make_spec

GRAPH = "support-triage"


def _versions(database_url: str, count: int) -> list[GraphVersion]:
    registry = RegistryStore(database_url)
    versions = [registry.register_graph(make_spec(), ["nodes"])]
    for index in range(1, count):
        spec = make_spec(f"prompt {index}")
        versions.append(registry.create_version(versions[0].version_id, spec, author="rsi"))
    return versions


def _canary(store: RoutingStore, version_id: str, key: str = "c1:canary") -> RoutingState:
    return store.apply(
        GRAPH,
        idempotency_key=key,
        action="set_candidate",
        candidate_version_id=version_id,
        candidate_share=0.1,
        actor="rsi",
        reason="canary",
    )


def test_apply_twice_with_one_key_acts_once(database_url: str) -> None:
    """A replayed step (same idempotency key) returns the state without a second change or event."""
    root, candidate = _versions(database_url, 2)
    store = RoutingStore(database_url)
    first = _canary(store, candidate.version_id)
    replay = store.apply(
        GRAPH, idempotency_key="c1:canary", action="promote", actor="rsi", reason="replayed"
    )
    assert replay == first
    assert (replay.active_version_id, replay.candidate_share) == (root.version_id, 0.1)
    assert [e.idempotency_key for e in store.history(GRAPH)] == [f"{GRAPH}:register", "c1:canary"]


def test_promote_makes_the_candidate_active(database_url: str) -> None:
    """Promote moves the candidate to active, clears the candidate and logs who and why."""
    _root, candidate = _versions(database_url, 2)
    store = RoutingStore(database_url)
    _canary(store, candidate.version_id)
    state = store.apply(
        GRAPH, idempotency_key="c1:promote", action="promote", actor="bo", reason="won"
    )
    assert (state.active_version_id, state.candidate_version_id) == (candidate.version_id, None)
    assert (state.candidate_share, state.revision) == (0.0, 3)
    last = store.history(GRAPH)[-1]
    assert (last.action, last.actor, last.reason, last.revision) == ("promote", "bo", "won", 3)


def test_set_candidate_without_version_only_changes_the_share(database_url: str) -> None:
    """A gradual rollout step keeps the candidate and raises its share."""
    _root, candidate = _versions(database_url, 2)
    store = RoutingStore(database_url)
    _canary(store, candidate.version_id)
    state = store.apply(
        GRAPH,
        idempotency_key="c1:step-25",
        action="set_candidate",
        candidate_share=0.25,
        actor="rsi",
        reason="step",
    )
    assert (state.candidate_version_id, state.candidate_share) == (candidate.version_id, 0.25)


def test_rollback_during_a_canary_drops_the_candidate(database_url: str) -> None:
    """Rolling back an unfinished rollout leaves the active version and removes the candidate."""
    root, candidate = _versions(database_url, 2)
    store = RoutingStore(database_url)
    _canary(store, candidate.version_id)
    state = store.apply(GRAPH, idempotency_key="c1:rb", action="rollback", actor="u", reason="bad")
    assert (state.active_version_id, state.candidate_version_id) == (root.version_id, None)


def test_rollback_after_promote_returns_to_the_previous_active(database_url: str) -> None:
    """Without a candidate, rollback routes back to the version active before the last switch."""
    root, candidate = _versions(database_url, 2)
    store = RoutingStore(database_url)
    _canary(store, candidate.version_id)
    store.apply(GRAPH, idempotency_key="c1:promote", action="promote", actor="rsi", reason="won")
    state = store.apply(GRAPH, idempotency_key="c1:rb", action="rollback", actor="u", reason="slow")
    assert state.active_version_id == root.version_id
    assert store.history(GRAPH)[-1].action == "rollback"


def test_rollback_and_set_active_to_a_named_version(database_url: str) -> None:
    """``rollback`` and ``set_active`` with ``active_version_id`` route all traffic to it."""
    root, second, third = _versions(database_url, 3)
    store = RoutingStore(database_url)
    store.apply(
        GRAPH,
        idempotency_key="k1",
        action="set_active",
        active_version_id=third.version_id,
        actor="u",
        reason="switch",
    )
    _canary(store, second.version_id, key="k2")
    state = store.apply(
        GRAPH,
        idempotency_key="k3",
        action="rollback",
        active_version_id=root.version_id,
        actor="u",
        reason="back to root",
    )
    assert (state.active_version_id, state.candidate_version_id) == (root.version_id, None)


def test_clear_candidate_keeps_the_active_version(database_url: str) -> None:
    """``clear_candidate`` stops candidate traffic and nothing else."""
    root, candidate = _versions(database_url, 2)
    store = RoutingStore(database_url)
    _canary(store, candidate.version_id)
    state = store.apply(
        GRAPH, idempotency_key="c1:clr", action="clear_candidate", actor="u", reason=""
    )
    assert (state.active_version_id, state.candidate_version_id) == (root.version_id, None)


def test_unknown_graph_and_versions_raise_named_errors(database_url: str) -> None:
    """Unknown graphs and versions (or versions of another graph) are misuse errors naming them."""
    _versions(database_url, 1)
    other = RegistryStore(database_url).register_graph(make_spec(graph_id="other-graph"), ["n"])
    store = RoutingStore(database_url)
    with pytest.raises(UnknownGraphError, match="'nope'"):
        store.get("nope")
    with pytest.raises(UnknownGraphError, match="'nope'"):
        store.history("nope")
    with pytest.raises(UnknownGraphError, match="'nope'"):
        store.apply("nope", idempotency_key="k", action="clear_candidate", actor="u", reason="")
    with pytest.raises(UnknownVersionError, match="'v-missing'"):
        _canary(store, "v-missing")
    with pytest.raises(UnknownVersionError, match=repr(other.version_id)):
        _canary(store, other.version_id)


def test_a_rejected_change_writes_nothing(database_url: str) -> None:
    """An invalid change leaves state and log untouched, so its key stays free for a valid one."""
    _root, candidate = _versions(database_url, 2)
    store = RoutingStore(database_url)
    before = store.get(GRAPH)
    with pytest.raises(SparkMisuseError, match="no candidate"):
        store.apply(GRAPH, idempotency_key="k", action="promote", actor="u", reason="")
    with pytest.raises(SparkMisuseError, match="candidate_share"):
        store.apply(
            GRAPH,
            idempotency_key="k",
            action="set_candidate",
            candidate_version_id=candidate.version_id,
            candidate_share=1.5,
            actor="u",
            reason="",
        )
    assert store.get(GRAPH) == before
    assert _canary(store, candidate.version_id, key="k").candidate_version_id is not None


def test_concurrent_applies_with_different_keys_are_all_recorded(database_url: str) -> None:
    """Parallel changes serialise: every one is logged with its own revision, none is lost."""
    _root, candidate = _versions(database_url, 2)
    store = RoutingStore(database_url)
    shares = [round(0.1 * n, 1) for n in range(1, 9)]

    def step(share: float) -> RoutingState:
        return store.apply(
            GRAPH,
            idempotency_key=f"share-{share}",
            action="set_candidate",
            candidate_version_id=candidate.version_id,
            candidate_share=share,
            actor="rsi",
            reason="step",
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(step, shares))
    events = store.history(GRAPH)[1:]
    assert sorted(e.idempotency_key for e in events) == sorted(f"share-{s}" for s in shares)
    assert [e.revision for e in events] == list(range(2, 10))
    assert store.get(GRAPH).revision == 9
    assert store.get(GRAPH).candidate_share == events[-1].candidate_share


def test_concurrent_applies_with_one_key_act_once(database_url: str) -> None:
    """Racing retries of the same step produce exactly one event."""
    _root, candidate = _versions(database_url, 2)
    store = RoutingStore(database_url)
    with ThreadPoolExecutor(max_workers=4) as pool:
        states = list(pool.map(lambda _: _canary(store, candidate.version_id), range(4)))
    assert {s.revision for s in states} == {2}
    assert len(store.history(GRAPH)) == 2


def test_assign_arm_is_sticky_per_routing_key() -> None:
    """The same key always lands on the same arm."""
    arms = {assign_arm(GRAPH, "user-42", 0.5) for _ in range(20)}
    assert len(arms) == 1


def test_assign_arm_respects_the_share_and_keeps_keys_when_it_grows() -> None:
    """About ``share`` of keys go to the candidate, and raising the share never moves one back."""
    keys = [f"user-{n}" for n in range(10_000)]
    at_10 = {k for k in keys if assign_arm(GRAPH, k, 0.10) == "candidate"}
    at_25 = {k for k in keys if assign_arm(GRAPH, k, 0.25) == "candidate"}
    assert 0.08 < len(at_10) / len(keys) < 0.12
    assert 0.22 < len(at_25) / len(keys) < 0.28
    assert at_10 <= at_25


def test_assign_arm_edges_and_keyless_requests() -> None:
    """Share 0 never and share 1 always picks the candidate; keyless requests split randomly."""
    assert assign_arm(GRAPH, "k", 0.0) == "active"
    assert assign_arm(GRAPH, "k", 1.0) == "candidate"
    keyless = [assign_arm(GRAPH, None, 0.3) for _ in range(5_000)]
    assert 0.25 < keyless.count("candidate") / len(keyless) < 0.35


class _CountingStore:
    """A routing reader that counts database reads."""

    def __init__(self, store: RoutingStore) -> None:
        self.store = store
        self.reads = 0
        self._lock = threading.Lock()

    def get(self, graph_id: str) -> RoutingState:
        with self._lock:
            self.reads += 1
        return self.store.get(graph_id)


class _Clock:
    """A manual monotonic clock."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_routing_cache_reads_the_database_once_per_ttl(database_url: str) -> None:
    """Within the TTL every get is served from memory; after it, or after invalidate, one read."""
    _versions(database_url, 1)
    spy, clock = _CountingStore(RoutingStore(database_url)), _Clock()
    cache = RoutingCache(spy, ttl_s=1.0, clock=clock)
    states = [cache.get(GRAPH) for _ in range(50)]
    assert spy.reads == 1 and len({s.revision for s in states}) == 1
    clock.now += 0.5
    cache.get(GRAPH)
    assert spy.reads == 1
    clock.now += 0.6
    cache.get(GRAPH)
    assert spy.reads == 2
    cache.invalidate(GRAPH)
    cache.get(GRAPH)
    assert spy.reads == 3


def test_routing_cache_is_thread_safe(database_url: str) -> None:
    """Many threads asking at once for a cold graph cause a single database read."""
    _versions(database_url, 1)
    spy = _CountingStore(RoutingStore(database_url))
    cache = RoutingCache(spy, ttl_s=60.0)
    with ThreadPoolExecutor(max_workers=8) as pool:
        states = list(pool.map(lambda _: cache.get(GRAPH), range(64)))
    assert spy.reads == 1
    assert len({s.active_version_id for s in states}) == 1


class _GatedStore:
    """A routing reader whose reads can be held inside the call, as a hung database does."""

    def __init__(self, store: RoutingStore) -> None:
        self.store = store
        self.open, self.entered = threading.Event(), threading.Event()
        self.open.set()

    def get(self, graph_id: str) -> RoutingState:
        self.entered.set()
        assert self.open.wait(10)
        return self.store.get(graph_id)


def test_once_a_table_is_known_no_caller_waits_for_a_refresh(database_url: str) -> None:
    """While one caller is stuck refreshing an expired state, the others are served the cached
    state at once instead of queueing behind the database."""
    _versions(database_url, 1)
    gated, clock = _GatedStore(RoutingStore(database_url)), _Clock()
    cache = RoutingCache(gated, ttl_s=1.0, clock=clock)
    known = cache.get(GRAPH)
    gated.open.clear()
    gated.entered.clear()
    clock.now += 5
    with ThreadPoolExecutor(max_workers=1) as pool:
        refreshing = pool.submit(cache.get, GRAPH)
        assert gated.entered.wait(5)
        served = [cache.get(GRAPH) for _ in range(100)]
        gated.open.set()
        assert refreshing.result(timeout=10) == known
    assert served == [known] * 100
    assert cache.age_s(GRAPH) == 0.0


def test_age_s_is_none_for_a_graph_never_read(database_url: str) -> None:
    """age_s says how old the cached state is, and None before the first read."""
    _versions(database_url, 1)
    clock = _Clock()
    cache = RoutingCache(RoutingStore(database_url), ttl_s=10.0, clock=clock)
    assert cache.age_s(GRAPH) is None
    cache.get(GRAPH)
    clock.now += 3
    assert cache.age_s(GRAPH) == 3.0


def test_the_router_keeps_a_decision_only_while_it_holds_for_every_request(
    database_url: str,
) -> None:
    """Without a candidate every key is sent to the active version (one decision, kept while the
    cached state lasts); a candidate read after the TTL is routed per key at once, and clearing
    it brings every key back to the active version."""
    root, candidate = _versions(database_url, 2)
    store, clock = RoutingStore(database_url), _Clock()
    router = VersionRouter(RegistryStore(database_url), store, routing_ttl_s=1.0, clock=clock)
    keys = [f"user-{i}" for i in range(200)]

    assert {router.route(GRAPH, key).version_id for key in keys} == {root.version_id}
    assert router.route(GRAPH, "a") is router.route(GRAPH, "b")
    _canary(store, candidate.version_id)
    clock.now += 1.5
    arms = [router.route(GRAPH, key) for key in keys]
    assert {(r.arm, r.version_id) for r in arms} == {
        ("active", root.version_id),
        ("candidate", candidate.version_id),
    }
    assert [r.arm for r in arms] == [router.route(GRAPH, key).arm for key in keys]  # sticky
    store.apply(
        GRAPH, idempotency_key="c1:clear", action="clear_candidate", actor="rsi", reason="x"
    )
    clock.now += 1.5
    assert {router.route(GRAPH, key).arm for key in keys} == {"active"}
