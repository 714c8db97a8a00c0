"""A real database outage under traffic, on SQLite and on PostgreSQL (issue 8, items 3 and 4).

Telemetry sent while the database refuses connections is kept in memory within the queue bound
and written when it returns; every run that could not be kept is counted in ``dropped`` and
nothing else is; serving goes on from the last routing table read.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import MutableMapping, Sequence
from typing import Any

import pytest
from structlog.testing import capture_logs

from examples.support_triage.graph import NODE_MODULES, build_spec
from examples.support_triage.traffic import make_ticket
from spark.client import SparkClient
from spark.errors import RoutingUnavailableError
from spark.graphs.runtime import RunResult
from spark.registry import GraphVersion, RegistryStore, RoutingCache, RoutingStore, assign_arm
from spark.registry.routing import StalePolicy
from spark.settings import SparkSettings
from spark.telemetry import TelemetryConfig
from spark.telemetry.recorder import Recorder
from tests.faults.outage import DatabaseOutage, outage
from tests.telemetry import factories

GRAPH = "outage-graph"
ACTIVE_SPEC = build_spec(GRAPH, classify_failure_rate=0.0, kb_latency_ms=1.0)
CANDIDATE_SPEC = build_spec(GRAPH, classify_failure_rate=0.0, kb_latency_ms=2.0)
FAST: dict[str, Any] = {
    "flush_interval_s": 0.02,
    "batch_size": 50,
    "retry_initial_s": 0.01,
    "retry_max_s": 0.1,
    "close_timeout_s": 5.0,
}


def _send(recorder: Recorder, count: int) -> None:
    for _ in range(count):
        recorder.submit(factories.run(2))


def _events(logs: Sequence[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


# -- telemetry ----------------------------------------------------------------------------------


def test_runs_sent_during_an_outage_are_all_written_when_the_database_returns(
    database: DatabaseOutage,
) -> None:
    """With the database refusing connections, runs queue (flush cannot finish); once it is back
    every one of them is written, dropped stays 0, and the outage is logged once, not per retry."""
    with capture_logs() as logs:
        _write_340_runs_across_an_outage(database, TelemetryConfig.from_url(database.url, **FAST))
    assert len(_events(logs, "telemetry.store_unavailable")) == 1
    assert len(_events(logs, "telemetry.store_recovered")) == 1


def test_the_writer_process_writes_through_an_outage(postgres_outage: DatabaseOutage) -> None:
    """The same with ``writer_process``: the child retries through the outage, the parent's
    flush waits for it, and every run lands once the database is back."""
    config = TelemetryConfig.from_url(postgres_outage.url, writer_process=True, **FAST)
    _write_340_runs_across_an_outage(postgres_outage, config)


def _write_340_runs_across_an_outage(database: DatabaseOutage, config: TelemetryConfig) -> None:
    """40 runs, then 300 while the database is away (flush cannot finish), then every one of
    them written once it is back: none dropped, none pending, the failed attempts counted."""
    store = config.open_store()
    with config.open_recorder() as recorder:
        _send(recorder, 40)
        assert recorder.flush(timeout=30)
        with outage(database):
            _send(recorder, 300)
            assert recorder.flush(timeout=0.3) is False
        assert recorder.flush(timeout=60)
        stats = recorder.stats
    assert store.count_traces("g") == stats.written == 340
    assert (stats.dropped, stats.pending, stats.spans_written) == (0, 0, 680)
    assert stats.write_errors >= 1


def test_overflow_during_an_outage_is_exactly_the_runs_not_written(
    database: DatabaseOutage,
) -> None:
    """Past max_queue runs in memory, runs are refused; after the outage dropped equals the runs
    sent minus the runs the database holds, to the run."""
    config = TelemetryConfig.from_url(database.url, max_queue=100, **FAST)
    store = config.open_store()
    with config.open_recorder() as recorder:
        with outage(database):
            _send(recorder, 250)
            assert recorder.flush(timeout=0.2) is False
            assert (recorder.stats.pending, recorder.stats.refused) == (100, 150)
        assert recorder.flush(timeout=60)
        stats = recorder.stats
    stored = store.count_traces("g")
    assert stored == stats.written == 100
    assert stats.dropped == 250 - stored == 150


def test_close_during_an_outage_is_bounded_and_counts_what_it_abandons(
    database: DatabaseOutage,
) -> None:
    """Closing while the database is away returns after close_timeout_s; the runs it could not
    write are counted as dropped (runs sent minus runs stored) and logged with their number."""
    config = TelemetryConfig.from_url(database.url, **(FAST | {"close_timeout_s": 0.3}))
    store = config.open_store()
    recorder = config.open_recorder()
    _send(recorder, 30)
    assert recorder.flush(timeout=30)
    with capture_logs() as logs, outage(database):
        _send(recorder, 70)
        recorder.close()
    stats = recorder.stats
    stored = store.count_traces("g")
    assert stored == stats.written == 30
    assert stats.dropped == stats.abandoned == 100 - stored
    (line,) = _events(logs, "telemetry.runs_abandoned")
    assert (line["runs"], line["spans"]) == (70, 140)


# -- serving --------------------------------------------------------------------------------------


def _client(database: DatabaseOutage, **telemetry: Any) -> SparkClient:
    """A client re-reading routing every 50 ms, with fast telemetry retries (``telemetry``
    overrides them)."""
    settings = SparkSettings(
        database_url=database.url, task_queue="outage", temporal_address="127.0.0.1:1"
    )
    config = TelemetryConfig.from_url(database.url, **(FAST | telemetry))
    return SparkClient(settings, routing_ttl_s=0.05, telemetry=config)


def _register_canary(registry: RegistryStore, routing: RoutingStore) -> list[GraphVersion]:
    """Two versions of the example graph with half of the traffic on the second."""
    active = registry.register_graph(ACTIVE_SPEC, NODE_MODULES)
    candidate = registry.create_version(active.version_id, CANDIDATE_SPEC, author="test")
    routing.apply(
        GRAPH,
        idempotency_key="outage:canary",
        action="set_candidate",
        candidate_version_id=candidate.version_id,
        candidate_share=0.5,
        actor="test",
        reason="canary",
    )
    return [active, candidate]


def _canary_on(client: SparkClient) -> set[str]:
    """The canary of ``_register_canary`` registered through ``client`` (its nodes loaded)."""
    client.register_graph(ACTIVE_SPEC, NODE_MODULES)
    return {v.version_id for v in _register_canary(client.registry, client.routing)}


async def _serve(client: SparkClient, count: int, rng: random.Random) -> list[RunResult]:
    """``count`` keyed requests, 32 at a time, as production traffic arrives."""
    gate = asyncio.Semaphore(32)
    tickets = [make_ticket(rng) for _ in range(count)]

    async def one(ticket: dict[str, Any]) -> RunResult:
        async with gate:
            return await client.run(GRAPH, ticket, routing_key=ticket["customer_id"])

    return list(await asyncio.gather(*(one(ticket) for ticket in tickets)))


async def _until_recovered(client: SparkClient, rng: random.Random) -> list[RunResult]:
    """Requests until the client has re-read routing from the returned store (at most 20 s)."""
    results, deadline = [], time.monotonic() + 20
    while time.monotonic() < deadline:
        results += await _serve(client, 5, rng)
        age = client.routing_age_s(GRAPH)
        if age is not None and age < 0.05:
            return results
        await asyncio.sleep(0.01)
    raise AssertionError("routing was never read again after the outage")


async def test_serving_goes_on_from_the_last_routing_table_during_an_outage(
    database: DatabaseOutage,
) -> None:
    """Every request during the outage is served on the cached routing (both arms, sticky), the
    stale table is logged once with its age, and all telemetry lands after: dropped 0."""
    client = _client(database)
    versions = _canary_on(client)
    rng = random.Random(7)
    served = await _serve(client, 40, rng)
    with capture_logs() as logs:
        with outage(database):
            during = await _serve(client, 200, rng)
            assert client.flush(timeout=0.2) is False
        served += during + await _until_recovered(client, rng)
    assert client.flush(timeout=60)
    assert {r.version_id for r in during} == versions
    assert all(r.status == "ok" for r in served)
    (stale,) = _events(logs, "routing.serving_stale")
    assert stale["graph_id"] == GRAPH and stale["stale_s"] >= 0
    assert len(_events(logs, "routing.store_recovered")) == 1
    assert client.telemetry.count_traces(GRAPH) == client.telemetry_stats.written == len(served)
    assert client.telemetry_dropped == 0
    client.close()


async def test_a_client_that_never_read_routing_fails_with_a_typed_error(
    database: DatabaseOutage,
) -> None:
    """With no routing table ever read and the store away, a request raises
    RoutingUnavailableError naming the graph; once the store is back requests are served."""
    setup = _client(database)
    _canary_on(setup)
    setup.close()
    client = _client(database)
    client.register_graph(ACTIVE_SPEC, NODE_MODULES)
    rng = random.Random(3)
    with outage(database), pytest.raises(RoutingUnavailableError, match=GRAPH):
        await client.run(GRAPH, make_ticket(rng))
    served = await _until_recovered(client, rng)
    assert all(r.status == "ok" for r in served)
    client.close()


class _Clock:
    """A manual monotonic clock."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("on_stale", ["serve", "active_only", "fail"])
def test_past_max_stale_s_the_policy_decides_and_logs_once(
    database: DatabaseOutage, on_stale: StalePolicy
) -> None:
    """Within max_stale_s the last table serves as is; past it 'serve' keeps it, 'active_only'
    drops the candidate, 'fail' raises; logged once per outage; the store's return ends it."""
    routing = RoutingStore(database.url)
    active, candidate = _register_canary(RegistryStore(database.url), routing)
    clock = _Clock()
    cache = RoutingCache(routing, ttl_s=1.0, clock=clock, max_stale_s=60.0, on_stale=on_stale)
    fresh = cache.get(GRAPH)
    with capture_logs() as logs, outage(database):
        clock.now += 30
        assert cache.get(GRAPH) == fresh
        clock.now += 31
        if on_stale == "fail":
            with pytest.raises(RoutingUnavailableError, match="stale"):
                cache.get(GRAPH)
        else:
            late = [cache.get(GRAPH) for _ in range(5)]
            expected = candidate.version_id if on_stale == "serve" else None
            assert {s.candidate_version_id for s in late} == {expected}
            assert {s.active_version_id for s in late} == {active.version_id}
    assert len(_events(logs, "routing.serving_stale")) == 1
    (beyond,) = _events(logs, "routing.stale_beyond_limit")
    assert beyond["stale_s"] == 61.0 and beyond["on_stale"] == on_stale
    clock.now += 1
    assert cache.get(GRAPH) == fresh
    assert cache.age_s(GRAPH) == 0.0


async def test_a_client_closed_during_an_outage_reports_every_run_it_could_not_keep(
    database: DatabaseOutage,
) -> None:
    """SparkClient.telemetry_dropped is the one honest figure: after closing with the database
    away it equals the runs served minus the runs the database holds."""
    client = _client(database, close_timeout_s=0.3)
    _canary_on(client)
    rng = random.Random(5)
    served = await _serve(client, 30, rng)
    assert client.flush(timeout=30)
    with outage(database):
        served += await _serve(client, 50, rng)
        client.close()
    stored = client.telemetry.count_traces(GRAPH)
    assert stored == client.telemetry_stats.written == 30
    assert client.telemetry_dropped == len(served) - stored == 50


async def test_a_version_first_picked_during_an_outage_is_served(
    database: DatabaseOutage,
) -> None:
    """The specs of both routed versions are cached with the routing table, so a request that
    first lands on a 1% candidate during the outage is still served on it."""
    client = _client(database)
    _canary_on(client)
    active, candidate = _register_canary(client.registry, client.routing)
    client.routing.apply(
        GRAPH,
        idempotency_key="outage:one-percent",
        action="set_candidate",
        candidate_share=0.01,
        actor="test",
        reason="smaller canary",
    )
    keys = (f"cust-{n}" for n in range(100_000))
    lucky = next(k for k in keys if assign_arm(GRAPH, k, 0.01) == "candidate")
    rng = random.Random(9)
    warm = await client.run(GRAPH, make_ticket(rng), routing_key="cust-on-active")
    assert warm.version_id == active.version_id
    with outage(database):
        result = await client.run(GRAPH, make_ticket(rng), routing_key=lucky)
    assert (result.version_id, result.status) == (candidate.version_id, "ok")
    client.close()
