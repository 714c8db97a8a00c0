"""Which version serves a request: the one routing decision shared by ``SparkClient.run`` and a
registered ``Graph.run``.

``VersionRouter`` reads the routing table through ``RoutingCache`` (never a database read per
request), picks the arm with ``assign_arm`` (sticky per routing key) and hands back the routed
version's spec, cached forever once read (versions are immutable), so requests keep being served
while the database is away. A graph without a candidate sends every request to its active
version, so that decision is kept until the routing cache hands out another state.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from spark.errors import RoutingUnavailableError, UnknownGraphError
from spark.graphs.spec import GraphSpec
from spark.registry import RegistryStore, RoutingCache, RoutingState, RoutingStore, assign_arm
from spark.registry.routing import StalePolicy
from spark.telemetry.models import RoutingArm


@dataclass(frozen=True, slots=True)
class RoutedVersion:
    """The version chosen for one request, the arm it was served on, and its spec."""

    version_id: str
    arm: RoutingArm
    spec: GraphSpec


class VersionRouter:
    """Routes requests of registered graphs to their active or candidate version.

    Thread-safe. ``routing_ttl_s``, ``routing_max_stale_s`` and ``routing_on_stale`` are those
    of ``RoutingCache``.
    """

    def __init__(
        self,
        registry: RegistryStore,
        routing: RoutingStore,
        *,
        routing_ttl_s: float = 1.0,
        routing_max_stale_s: float = 600.0,
        routing_on_stale: StalePolicy = "serve",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.routing = routing
        self._ttl_s = routing_ttl_s
        self._clock = clock
        self._cache = RoutingCache(
            routing,
            ttl_s=routing_ttl_s,
            max_stale_s=routing_max_stale_s,
            on_stale=routing_on_stale,
            clock=clock,
        )
        self._specs: dict[str, GraphSpec] = {}
        self._settled: dict[str, tuple[RoutingState, RoutedVersion]] = {}
        self._unregistered_until: dict[str, float] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_database(cls, database_url: str, *, routing_ttl_s: float = 1.0) -> VersionRouter:
        """A router over the registry and routing tables at ``database_url``."""
        return cls(
            RegistryStore(database_url), RoutingStore(database_url), routing_ttl_s=routing_ttl_s
        )

    def route(self, graph_id: str, routing_key: str | None) -> RoutedVersion:
        """The version serving this request; ``UnknownGraphError`` when the graph has no
        routing, ``RoutingUnavailableError`` when neither the table nor the spec can be read."""
        state = self._cache.get(graph_id)
        settled = self._settled.get(graph_id)
        if settled is not None and settled[0] is state:
            return settled[1]  # the same state, no candidate: the same answer for every request
        self._load_specs(state.active_version_id, state.candidate_version_id)
        version_id, arm = choose_version(state, routing_key)
        routed = RoutedVersion(version_id, arm, self.spec(version_id))
        if same_for_every_request(state):
            self._settled[graph_id] = (state, routed)
        return routed

    def route_if_registered(self, graph_id: str, routing_key: str | None) -> RoutedVersion | None:
        """Like ``route``, but None for a graph not registered in this database; that answer is
        cached for the routing TTL, so an unregistered graph costs no database read per request
        either."""
        with self._lock:
            if self._clock() < self._unregistered_until.get(graph_id, float("-inf")):
                return None
        try:
            return self.route(graph_id, routing_key)
        except UnknownGraphError:
            with self._lock:
                self._unregistered_until[graph_id] = self._clock() + self._ttl_s
            return None

    def age_s(self, graph_id: str) -> float | None:
        """Seconds since ``graph_id``'s routing was last read from the store (None: never)."""
        return self._cache.age_s(graph_id)

    def spec(self, version_id: str) -> GraphSpec:
        """The spec of ``version_id``, read once and cached forever (versions are immutable)."""
        spec = self._specs.get(version_id)
        if spec is None:
            try:
                spec = self.registry.get_version(version_id).spec
            except SQLAlchemyError as exc:
                raise RoutingUnavailableError(
                    f"the spec of version {version_id!r} is not cached and the registry cannot "
                    f"be reached ({type(exc).__name__})"
                ) from exc
            self._specs[version_id] = spec
        return spec

    def _load_specs(self, *version_ids: str | None) -> None:
        """Cache the specs of both routed versions while the database answers, so an outage
        later finds every version the cached routing table can pick."""
        for version_id in version_ids:
            if version_id is not None and version_id not in self._specs:
                with contextlib.suppress(SQLAlchemyError):
                    self.spec(version_id)


def same_for_every_request(state: RoutingState) -> bool:
    """Whether ``state`` routes every request alike, whatever its key and time: without a
    candidate (or with a share of 0) each goes to the active version, on the active arm. Routing
    states are not changed in place: the cache reads a new one."""
    return state.candidate_version_id is None or state.candidate_share <= 0.0


def choose_version(state: RoutingState, routing_key: str | None) -> tuple[str, RoutingArm]:
    """The version id and arm serving a request under ``state`` (sticky per routing key)."""
    arm = assign_arm(state.graph_id, routing_key, state.serving_share())
    if arm == "candidate" and state.candidate_version_id:
        return state.candidate_version_id, arm
    return state.active_version_id, arm
