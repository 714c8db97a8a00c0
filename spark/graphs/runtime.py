"""The graph runtime: executes one ``GraphSpec`` version through a node registry.

Semantics of one run:

- the shared state starts as the request inputs; each node reads the state restricted to its
  declared ``inputs`` (the whole state when it declares none) and its output dict is merged in;
- a node starts once every predecessor has settled (ran, failed or was skipped), so independent
  branches run concurrently: a node that is the only one its predecessor made ready runs on in
  that predecessor's task, each of several made ready at once gets its own task; a run with one
  entry runs it in the caller's task (and context: a context variable a node of that first chain
  sets is the caller's), each entry of several gets its own;
- it runs if it is an entry (every entry of a multi-entry graph starts at once, on the request's
  inputs) or one incoming edge is active: the source ran and the edge's
  condition held on the state right after the source's output was merged; otherwise it is skipped;
- a node that fails after its policies (``spark.graphs.policies``) fails the run: nodes still
  running are cancelled, the rest skipped; the result says so, nothing is raised;
- misuse raises before anything runs (unknown node type, missing inputs), and a replay that would
  repeat a side effect raises ``ReplayRefusedError``;
- every node gets exactly one span (``skipped`` included) and the run one trace, handed to the sink
  in a single ``submit`` call;
- a node's input fingerprint is computed on the request path only for its result cache
  (``cache_ttl_s``); a sink that ``defers_fingerprints`` gets a ``PendingRun`` holding the inputs
  each node ran on and its spans' fields in one flat list (``spark.telemetry.fingerprints``
  builds the trace and span records off the request path, hashes and mints the span ids), and
  without a sink nothing is hashed or serialised.
"""

from __future__ import annotations

import asyncio
import copy
import operator
import time
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from spark.errors import InvalidInputError, NodeExecutionError, ReplayRefusedError
from spark.graphs.policies import (
    DEFAULT_CACHE_ENTRIES,
    Clock,
    PolicyOutcome,
    ResultCache,
    call_once,
    execute_node,
    input_fingerprint,
    try_canonical_json,
)
from spark.graphs.registry import NodeContext, NodeImpl, NodeRegistry, default_registry
from spark.graphs.shared_outcomes import SharedOutcome, SharedOutcomes
from spark.graphs.spec import EdgeSpec, GraphSpec, NodeSpec
from spark.telemetry.fingerprints import fingerprint_of_json
from spark.telemetry.ids import new_span_ids, new_trace_id
from spark.telemetry.models import (
    PENDING_SPAN_FIELDS,
    PENDING_SPAN_WIDTH,
    PendingRun,
    RoutingArm,
    RunStatus,
    RunTelemetry,
    SpanRecord,
    SpanStatus,
    TelemetrySink,
    TraceRecord,
)

log = structlog.get_logger(__name__)


@dataclass(slots=True, frozen=True)
class RunResult:
    """The outcome of one graph run; ``outputs`` holds the fields the nodes wrote."""

    trace_id: str
    graph_id: str
    version_id: str
    status: RunStatus
    outputs: dict[str, Any]
    duration_ms: float
    node_statuses: dict[str, SpanStatus]
    cost: float = 0.0
    tokens: int = 0
    error_type: str | None = None
    error_message: str | None = None
    failed_node_id: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the run succeeded."""
        return self.status == "ok"


@dataclass(slots=True, frozen=True)
class _RunRequest:
    spec: GraphSpec
    inputs: dict[str, Any]
    version_id: str
    trace_id: str
    replay_outputs: dict[str, dict[str, Any]] | None
    telemetry: _TelemetryMode
    shared: SharedOutcomes | None = None


# "off": no sink; "eager": fingerprints (of the nodes that ``measures_repeats``) on the request
# path; "deferred": the sink computes them
_TelemetryMode = Literal["off", "eager", "deferred"]


@dataclass(slots=True, frozen=True)
class _Topology:
    """What scheduling reads of a spec, indexed once per spec instead of once per node."""

    nodes: dict[str, NodeSpec]
    entries: frozenset[str]
    successors: dict[str, list[str]]
    incoming: dict[str, tuple[tuple[str, str], ...]]  # the keys of the edges into each node
    always_active: dict[str, tuple[tuple[str, str], ...]]  # outgoing edges without a condition
    conditional: dict[str, tuple[EdgeSpec, ...]]  # outgoing edges with one
    in_degree: dict[str, int]
    roots: list[str]  # nodes without predecessors, in spec order
    node_ids: tuple[str, ...]  # every node, in spec order
    node_list: tuple[NodeSpec, ...]  # the spec's own objects, to notice a replaced node or edge
    edges: tuple[EdgeSpec, ...]
    repeats_measured: frozenset[str]  # nodes whose spans carry an input fingerprint
    cached: frozenset[str]  # nodes with a result cache (``cache_ttl_s``)
    cached_or_measured: frozenset[str]  # ``cached`` and ``repeats_measured`` together
    plain: frozenset[str]  # nodes called once, directly: no cache, timeout, retry or fallback
    side_effects: frozenset[str]  # nodes whose spans keep their output (for replay)


def topology_of(spec: GraphSpec) -> _Topology:
    """Index ``spec``'s nodes and edges for the scheduler."""
    predecessors = {node.id: spec.predecessors(node.id) for node in spec.nodes}
    successors: dict[str, list[str]] = {node.id: [] for node in spec.nodes}
    incoming: dict[str, list[tuple[str, str]]] = {node.id: [] for node in spec.nodes}
    always: dict[str, list[tuple[str, str]]] = {node.id: [] for node in spec.nodes}
    conditional: dict[str, list[EdgeSpec]] = {node.id: [] for node in spec.nodes}
    for node_id, sources in predecessors.items():
        for source in sources:
            successors[source].append(node_id)
    for edge in spec.edges:
        incoming[edge.target].append(edge.key)
        if edge.condition is None:
            always[edge.source].append(edge.key)
        else:
            conditional[edge.source].append(edge)
    repeats_measured = frozenset(node.id for node in spec.nodes if measures_repeats(node))
    cached = frozenset(node.id for node in spec.nodes if node.config.cache_ttl_s is not None)
    return _Topology(
        nodes={node.id: node for node in spec.nodes},
        entries=frozenset(node.id for node in spec.nodes if spec.is_entry(node.id)),
        successors=successors,
        incoming={node_id: tuple(keys) for node_id, keys in incoming.items()},
        always_active={node_id: tuple(keys) for node_id, keys in always.items()},
        conditional={node_id: tuple(edges) for node_id, edges in conditional.items()},
        in_degree={node_id: len(sources) for node_id, sources in predecessors.items()},
        roots=[node_id for node_id, sources in predecessors.items() if not sources],
        node_ids=tuple(node.id for node in spec.nodes),
        node_list=tuple(spec.nodes),
        edges=tuple(spec.edges),
        repeats_measured=repeats_measured,
        cached=cached,
        cached_or_measured=cached | repeats_measured,
        plain=frozenset(node.id for node in spec.nodes if _called_plainly(node)),
        side_effects=frozenset(node.id for node in spec.nodes if node.has_tag("side_effects")),
    )


def _called_plainly(node: NodeSpec) -> bool:
    """Whether ``execute_node`` would make exactly one call of the implementation, outside any
    timeout scope: no result cache, no timeout, no retry and no fallback."""
    config = node.config
    return (
        config.cache_ttl_s is None
        and config.timeout_s is None
        and not config.retries
        and not config.fallback
    )


def measures_repeats(node: NodeSpec) -> bool:
    """Whether telemetry fingerprints ``node``'s inputs: only where the repeat statistic
    (``NodeStats.distinct_input_ratio``) can lead to a decision, that is on a node a cache may
    serve (tagged ``deterministic``, without ``side_effects``: the only nodes the generator
    proposes a cache for and validation accepts one on) or that has one already. Hashing the
    inputs of every other node would cost the writer about a microsecond a node for a figure
    nothing reads."""
    cacheable = node.has_tag("deterministic") and not node.has_tag("side_effects")
    return cacheable or node.config.cache_ttl_s is not None


_TOPOLOGY_CACHE_SIZE = 256


class GraphRuntime:
    """Runs graph specs: concurrency, per-node policies, telemetry, replay."""

    def __init__(
        self,
        registry: NodeRegistry | None = None,
        sink: TelemetrySink | None = None,
        *,
        clock: Clock = time.time,
        cache_max_entries: int = DEFAULT_CACHE_ENTRIES,
    ) -> None:
        self.registry = registry if registry is not None else default_registry()
        self.sink = sink
        self.clock = clock
        self.cache = ResultCache(cache_max_entries, clock)
        self._topologies: dict[int, tuple[GraphSpec, _Topology]] = {}
        # per spec: the topology and registry generation its implementations were resolved at
        self._resolved: dict[int, tuple[_Topology, int, ResolvedImpls]] = {}

    async def run(
        self,
        spec: GraphSpec,
        inputs: Mapping[str, Any],
        *,
        version_id: str,
        routing_arm: RoutingArm = "direct",
        routing_key: str | None = None,
        replay_outputs: dict[str, dict[str, Any]] | None = None,
        trace_id: str | None = None,
        shared: SharedOutcomes | None = None,
    ) -> RunResult:
        """Run ``spec`` on ``inputs``; node failures are reported in the result, not raised.

        With ``replay_outputs`` (even empty) nodes tagged ``side_effects`` are not executed: their
        recorded output is reused, and a missing one raises ``ReplayRefusedError``. With
        ``shared`` (paired replay), the nodes it shares reuse the other arm's outcome on the same
        inputs, or record theirs for it (``spark.graphs.shared_outcomes``).
        """
        check_inputs(spec, inputs)
        request = _RunRequest(
            spec,
            dict(inputs),
            version_id,
            trace_id or new_trace_id(),
            replay_outputs,
            self._telemetry_mode(),
            shared,
        )
        topology = self.topology(spec)
        resolved = self._resolve(spec, topology, replay_outputs)
        execution = _Execution(self, request, topology, resolved)
        await execution.run()
        if self.sink is not None:
            self._submit(execution.telemetry(routing_arm, routing_key))
        return execution.result()

    def topology(self, spec: GraphSpec) -> _Topology:
        """``spec``'s scheduling index, kept for the spec object (rebuilt if its node or edge
        list is replaced; specs are not edited in place once parsed)."""
        cached = self._topologies.get(id(spec))
        if cached is not None and cached[0] is spec and _same_lists(cached[1], spec):
            return cached[1]
        if len(self._topologies) >= _TOPOLOGY_CACHE_SIZE:
            self._topologies.clear()
        topology = topology_of(spec)
        self._topologies[id(spec)] = (spec, topology)
        return topology

    def _resolve(
        self,
        spec: GraphSpec,
        topology: _Topology,
        replay_outputs: dict[str, dict[str, Any]] | None,
    ) -> ResolvedImpls:
        """``resolve_impls`` of ``spec`` (whose ``topology`` this is), kept for the spec while
        its node list and the registry are unchanged (a replay resolves afresh: which nodes it
        executes varies)."""
        if replay_outputs is not None:
            return resolve_impls(self.registry, spec, replay_outputs)
        generation = self.registry.generation
        cached = self._resolved.get(id(spec))
        if cached is not None and cached[0] is topology and cached[1] == generation:
            return cached[2]
        resolved = resolve_impls(self.registry, spec)
        if len(self._resolved) >= _TOPOLOGY_CACHE_SIZE:
            self._resolved.clear()
        self._resolved[id(spec)] = (topology, generation, resolved)
        return resolved

    def _telemetry_mode(self) -> _TelemetryMode:
        if self.sink is None:
            return "off"
        return "deferred" if getattr(self.sink, "defers_fingerprints", False) else "eager"

    def _submit(self, run: RunTelemetry | PendingRun) -> None:
        if self.sink is None:
            return
        try:
            self.sink.submit(run)
        except Exception:
            trace_id = run.trace_id if isinstance(run, PendingRun) else run.trace.trace_id
            log.exception("telemetry_submit_failed", trace_id=trace_id)


def _same_lists(topology: _Topology, spec: GraphSpec) -> bool:
    return _same_items(topology.node_list, spec.nodes) and _same_items(topology.edges, spec.edges)


def _same_items(kept: tuple[Any, ...], current: list[Any]) -> bool:
    return len(kept) == len(current) and all(map(operator.is_, kept, current))


def check_inputs(spec: GraphSpec, inputs: Mapping[str, Any]) -> None:
    """Raise ``InvalidInputError`` listing the declared graph inputs the request lacks."""
    if not isinstance(inputs, Mapping):
        raise InvalidInputError(
            f"graph {spec.id!r} inputs must be a mapping, got {type(inputs).__name__!r}"
        )
    missing = [name for name in spec.inputs if name not in inputs]
    if missing:
        raise InvalidInputError(f"graph {spec.id!r} is missing required input(s) {missing}")


@dataclass(slots=True, frozen=True)
class ResolvedImpls:
    """The implementation (and fallback) of every node that may execute in a run."""

    impls: dict[str, NodeImpl]
    fallbacks: dict[str, NodeImpl]


def resolve_impls(
    registry: NodeRegistry, spec: GraphSpec, replay_outputs: dict[str, Any] | None = None
) -> ResolvedImpls:
    """Resolve every node type up front; ``UnknownNodeTypeError`` names the type and the node.

    In replay, side-effect nodes never execute, so their types need not be registered.
    """
    nodes = [node for node in spec.nodes if not _replayed(node, replay_outputs)]
    impls = {node.id: registry.resolve(node) for node in nodes}
    fallbacks = {
        node.id: registry.get(node.config.fallback, node_id=node.id)
        for node in nodes
        if node.config.fallback
    }
    return ResolvedImpls(impls, fallbacks)


def _replayed(node: NodeSpec, replay_outputs: dict[str, Any] | None) -> bool:
    return replay_outputs is not None and node.has_tag("side_effects")


def node_inputs(node: NodeSpec, state: dict[str, Any]) -> dict[str, Any]:
    """The state restricted to the node's declared inputs (a copy of all of it if none)."""
    if not node.inputs:
        return dict(state)
    return {name: state[name] for name in node.inputs if name in state}


def _ms(seconds: float) -> float:
    return max(seconds, 0.0) * 1000.0


def _copied(outcome: PolicyOutcome) -> PolicyOutcome:
    """``outcome`` with its own copy of the output (the arms must not share mutable values)."""
    return PolicyOutcome(
        output=copy.deepcopy(outcome.output),
        error=outcome.error,
        attempts=outcome.attempts,
        cache_hit=outcome.cache_hit,
        used_fallback=outcome.used_fallback,
    )


class _NodeFailedError(Exception):
    """Internal: a node task failed and recorded why in ``_Execution.failure``."""


@dataclass(slots=True, frozen=True)
class _Failure:
    node_id: str
    error: Exception


class _Execution:
    """The state of one run: shared state, settled nodes, active edges, spans."""

    def __init__(
        self,
        runtime: GraphRuntime,
        request: _RunRequest,
        topology: _Topology,
        resolved: ResolvedImpls,
    ) -> None:
        self.runtime = runtime
        self.request = request
        self.spec = request.spec
        self.resolved = resolved
        self.state: dict[str, Any] = dict(request.inputs)
        self.written: dict[str, None] = {}
        self.topology = topology
        self.unsettled = dict(self.topology.in_degree)
        self.active_edges: set[tuple[str, str]] = set()
        # every span recorded so far: its fields (PENDING_SPAN_FIELDS) one after another in a
        # flat list, and where each node's fields begin (one span a node: the first one stays)
        self.span_fields: list[Any] = []
        self.recorded: dict[str, int] = {}
        self.running: dict[str, tuple[float, NodeContext]] = {}
        self.captured: dict[str, dict[str, Any]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.finished: asyncio.Future[None] | None = None
        self.failure: _Failure | None = None
        self.aborted = False
        # no replay and no paired arm: a node in ``topology.plain`` is called directly
        self.plain_calls = request.replay_outputs is None and request.shared is None
        # the nodes ``_fingerprint`` may hash or capture the inputs of (None for the others)
        self.fingerprinted = (
            topology.cached if request.telemetry == "off" else topology.cached_or_measured
        )
        self.started_at = runtime.clock()
        self.finished_at = self.started_at

    async def run(self) -> None:
        """Run every node once it is ready, stop at the first failure, account for every node.

        A run that starts at one node runs it in the caller's task, and the nodes after it as
        long as each makes exactly one node ready (``_chain``): until then no other node runs,
        so there is nothing to cancel at a failure, and a chain pays for no task."""
        self.finished = asyncio.get_running_loop().create_future()
        try:
            ready = self._ready(self.topology.roots)
            if len(ready) == 1:
                try:
                    await self._chain(ready[0])
                except _NodeFailedError:
                    return
            else:
                self._start(ready)
            if self.tasks:
                await self.finished
        finally:
            await _cancel_all(list(self.tasks))
            self._record_unsettled()
            self.finished_at = self.runtime.clock()

    def _start(self, ready: list[NodeSpec]) -> None:
        for node in ready:
            task = asyncio.create_task(self._chain(node), name=f"spark-node-{node.id}")
            self.tasks.add(task)
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """Resolve ``finished`` when the last task ends, or at the first error."""
        self.tasks.discard(task)
        error = None if task.cancelled() else task.exception()
        finished = self.finished
        if finished is None or finished.done():
            return
        if error is not None and not isinstance(error, _NodeFailedError):
            finished.set_exception(error)
        elif error is not None or not self.tasks:
            finished.set_result(None)

    async def _chain(self, node: NodeSpec) -> None:
        """Execute ``node``, then go on in this task while it makes exactly one node ready."""
        current: NodeSpec | None = node
        if self.aborted:  # another node failed after this one was made ready
            self._record_skipped(node)
            return
        while current is not None:
            try:
                await self._execute(current)
            except asyncio.CancelledError:
                self._record_cancelled(current)
                raise
            ready = self._settle(current.id)
            if len(ready) == 1:
                current = ready[0]
            else:
                current = None
                self._start(ready)

    def _settle(self, node_id: str) -> list[NodeSpec]:
        """Mark ``node_id`` settled; the successors now ready to execute, in spec order (those
        that will not run are recorded as skipped and settle in turn)."""
        return self._ready(self._newly_ready(node_id))

    def _newly_ready(self, node_id: str) -> list[str]:
        ready = []
        for target in self.topology.successors[node_id]:
            self.unsettled[target] -= 1
            if not self.unsettled[target]:
                ready.append(target)
        return ready

    def _ready(self, node_ids: Iterable[str]) -> list[NodeSpec]:
        ready: list[NodeSpec] = []
        pending = list(node_ids)
        while pending:
            node = self.topology.nodes[pending.pop(0)]
            if self._activated(node) and not self.aborted:
                ready.append(node)
            else:
                self._record_skipped(node)
                pending.extend(self._newly_ready(node.id))
        return ready

    def _activated(self, node: NodeSpec) -> bool:
        topology = self.topology
        return node.id in topology.entries or not self.active_edges.isdisjoint(
            topology.incoming[node.id]
        )

    async def _execute(self, node: NodeSpec) -> None:
        node_id = node.id
        ctx = self._context(node)
        inputs = node_inputs(node, self.state)
        fingerprint = self._fingerprint(node, inputs) if node_id in self.fingerprinted else None
        started = self.runtime.clock()
        self.running[node_id] = (started, ctx)
        shared = self.request.shared
        if self.plain_calls and node_id in self.topology.plain and node_id not in self.captured:
            outcome = await call_once(self.resolved.impls[node_id], inputs, ctx)
        elif self._replayed(node):
            outcome = self._recorded_outcome(node)
        elif shared is not None and (
            shared.shares(node.id) or shared.shares_first_attempt(node.id)
        ):
            outcome = await self._shared_outcome(shared, node, inputs, ctx, fingerprint)
        else:
            outcome = await self._policy_outcome(node, inputs, ctx, fingerprint)
        self._record_executed(node, started, ctx, outcome, fingerprint)
        if outcome.error is not None:
            self._fail(node, outcome.error, outcome.attempts)
        self._apply(node, outcome.output or {})

    def _fingerprint(self, node: NodeSpec, inputs: dict[str, Any]) -> str | None:
        """The inputs' fingerprint now if the cache needs it, or an eager sink records it for a
        node whose repeats telemetry measures (``measures_repeats``); a deferring sink gets the
        inputs of such a node themselves (``node_inputs`` made a fresh dict for this node)."""
        if node.config.cache_ttl_s is not None and not self._replayed(node):
            return input_fingerprint(inputs)
        mode = self.request.telemetry
        if mode == "off" or node.id not in self.topology.repeats_measured:
            return None
        if mode == "eager":
            return input_fingerprint(inputs)
        self.captured[node.id] = inputs
        return None

    def _replayed(self, node: NodeSpec) -> bool:
        return _replayed(node, self.request.replay_outputs)

    def _side_effect_json(self, node: NodeSpec, output: dict[str, Any] | None) -> str | None:
        if output is None or node.id not in self.topology.side_effects:
            return None
        return try_canonical_json(output)

    def _context(self, node: NodeSpec) -> NodeContext:
        request = self.request
        return NodeContext(
            node.id, node.type, node.config, self.spec.id, request.version_id, request.trace_id
        )

    def _policy_outcome(
        self,
        node: NodeSpec,
        inputs: dict[str, Any],
        ctx: NodeContext,
        fingerprint: str | None,
        impl: NodeImpl | None = None,
    ) -> Coroutine[Any, Any, PolicyOutcome]:
        key = (self.request.version_id, node.id, fingerprint) if fingerprint else None
        return execute_node(
            impl or self.resolved.impls[node.id],
            inputs,
            ctx,
            fallback=self.resolved.fallbacks.get(node.id),
            cache=self.runtime.cache,
            cache_key=key,
        )

    async def _shared_outcome(
        self,
        shared: SharedOutcomes,
        node: NodeSpec,
        inputs: dict[str, Any],
        ctx: NodeContext,
        fingerprint: str | None,
    ) -> PolicyOutcome:
        """A node the arms of a paired replay share on these inputs: an unchanged node takes the
        other arm's draw (as long as it took), else runs and keeps its own for the other arm; a
        node whose retry policy alone changed runs under its own policies with its first attempt
        drawn once for both arms. Inputs without a fingerprint are not shared."""
        key = input_fingerprint(inputs)
        if key is None:
            return await self._policy_outcome(node, inputs, ctx, fingerprint)
        if not shared.shares(node.id):
            impl = shared.first_attempt_shared(node.id, key, self.resolved.impls[node.id])
            return await self._policy_outcome(node, inputs, ctx, fingerprint, impl)
        draw = shared.take(node.id, key)
        if draw is not None:
            await asyncio.sleep(draw.duration_s)
            ctx.report_usage(tokens=draw.tokens, cost=draw.cost)
            return _copied(draw.outcome)
        began = time.monotonic()
        outcome = await self._policy_outcome(node, inputs, ctx, fingerprint)
        took = max(time.monotonic() - began, 0.0)
        shared.keep(
            node.id, key, SharedOutcome(_copied(outcome), took, ctx.usage.tokens, ctx.usage.cost)
        )
        return outcome

    def _recorded_outcome(self, node: NodeSpec) -> PolicyOutcome:
        recorded = (self.request.replay_outputs or {}).get(node.id)
        if recorded is None:
            self.aborted = True
            raise ReplayRefusedError(
                f"replay of graph {self.spec.id!r} would repeat the side effects of node "
                f"{node.id!r}: no recorded output for it"
            )
        return PolicyOutcome(output=copy.deepcopy(recorded), attempts=0)

    def _fail(self, node: NodeSpec, error: Exception, attempts: int) -> None:
        self.aborted = True
        self.failure = _Failure(node.id, error)
        log.info(
            "graph_node_failed",
            graph_id=self.spec.id,
            version_id=self.request.version_id,
            trace_id=self.request.trace_id,
            node_id=node.id,
            error_type=type(error).__name__,
            attempts=attempts,
        )
        raise _NodeFailedError(node.id)

    def _apply(self, node: NodeSpec, output: dict[str, Any]) -> None:
        state, topology = self.state, self.topology
        state.update(output)
        self.written.update(dict.fromkeys(output))
        self.active_edges.update(topology.always_active[node.id])
        for edge in topology.conditional[node.id]:
            if edge.condition is not None and edge.condition.holds(state):
                self.active_edges.add(edge.key)

    def _record_cancelled(self, node: NodeSpec) -> None:
        if node.id in self.running and node.id not in self.recorded:
            started, ctx = self.running[node.id]
            self._record_skipped(node, started, ctx, error_type="CancelledError")

    def _record_unsettled(self) -> None:
        for node in self.spec.nodes:
            if node.id not in self.recorded:
                self._record_skipped(node)

    def _record_executed(
        self,
        node: NodeSpec,
        started: float,
        ctx: NodeContext,
        outcome: PolicyOutcome,
        fingerprint: str | None,
    ) -> None:
        error, usage = outcome.error, ctx.usage
        self._record(  # positional: this runs once per node
            node,
            started,
            "ok" if error is None else "error",
            type(error).__name__ if error is not None else None,
            outcome.attempts,
            outcome.cache_hit,
            usage.tokens,
            usage.cost,
            fingerprint,
            self._side_effect_json(node, outcome.output),
        )

    def _record_skipped(
        self,
        node: NodeSpec,
        started: float | None = None,
        ctx: NodeContext | None = None,
        error_type: str | None = None,
    ) -> None:
        self._record(
            node,
            started if started is not None else self.runtime.clock(),
            status="skipped",
            error_type=error_type,
            attempts=ctx.attempt if ctx is not None else 0,
            tokens=ctx.usage.tokens if ctx is not None else 0,
            cost=ctx.usage.cost if ctx is not None else 0.0,
        )

    def _record(
        self,
        node: NodeSpec,
        started: float,
        status: SpanStatus,
        error_type: str | None = None,
        attempts: int = 1,
        cache_hit: bool = False,
        tokens: int = 0,
        cost: float = 0.0,
        input_fingerprint: str | None = None,
        output_json: str | None = None,
    ) -> None:
        """Record ``node``'s span, unless it has one already (the first recorded stays)."""
        node_id, fields = node.id, self.span_fields
        if node_id in self.recorded:
            return
        self.recorded[node_id] = len(fields)
        fields.extend(  # in PENDING_SPAN_FIELDS order
            (
                node_id,
                node.type,
                started,
                max(self.runtime.clock() - started, 0.0) * 1000.0,
                status,
                error_type,
                attempts,
                cache_hit,
                tokens,
                cost,
                input_fingerprint,
                output_json,
            )
        )

    def telemetry(
        self, routing_arm: RoutingArm, routing_key: str | None
    ) -> RunTelemetry | PendingRun:
        """The trace and the spans (in the order they were recorded) of the finished run:
        complete for an eager sink, left pending for a deferring one."""
        if self.request.telemetry == "deferred":
            return self._pending(routing_arm, routing_key)
        request, fields = self.request, self.span_fields
        inputs_json = try_canonical_json(request.inputs)
        trace = TraceRecord(
            trace_id=request.trace_id,
            graph_id=self.spec.id,
            version_id=request.version_id,
            started_at=self.started_at,
            duration_ms=_ms(self.finished_at - self.started_at),
            status=self._status(),
            routing_arm=routing_arm,
            routing_key=routing_key,
            input_fingerprint=fingerprint_of_json(inputs_json),
            inputs_json=inputs_json,
            error_type=self._error_type(),
            cost=sum(fields[_COST::PENDING_SPAN_WIDTH]),
        )
        run_ids = (request.trace_id, self.spec.id, request.version_id)
        spans = [
            SpanRecord(span_id, *run_ids, *fields[at : at + PENDING_SPAN_WIDTH])
            for span_id, at in zip(
                new_span_ids(len(self.recorded)),
                range(0, len(fields), PENDING_SPAN_WIDTH),
                strict=True,
            )
        ]
        return RunTelemetry(trace=trace, spans=spans)

    def _pending(self, routing_arm: RoutingArm, routing_key: str | None) -> PendingRun:
        """The run for a deferring sink: no trace record, no hashing, no record per span, and
        the inputs JSON left to the writer when the inputs cannot change before it runs
        (``_unchanging``)."""
        request, failure = self.request, self.failure
        inputs = request.inputs
        later = _unchanging(inputs)
        return PendingRun(  # positional: this runs once per request
            request.trace_id,
            self.spec.id,
            request.version_id,
            self.started_at,
            _ms(self.finished_at - self.started_at),
            "ok" if failure is None else "error",
            routing_arm,
            routing_key,
            None if failure is None else type(failure.error).__name__,
            inputs if later else None,
            None if later else try_canonical_json(inputs),
            self.span_fields,
            self.captured,
        )

    def result(self) -> RunResult:
        """The caller-facing result of the finished run."""
        failure, fields, recorded, state = self.failure, self.span_fields, self.recorded, self.state
        return RunResult(
            self.request.trace_id,
            self.spec.id,
            self.request.version_id,
            "ok" if failure is None else "error",
            {name: state[name] for name in self.written},
            _ms(self.finished_at - self.started_at),
            {node_id: fields[recorded[node_id] + _STATUS] for node_id in self.topology.node_ids},
            sum(fields[_COST::PENDING_SPAN_WIDTH]),
            sum(fields[_TOKENS::PENDING_SPAN_WIDTH]),
            None if failure is None else type(failure.error).__name__,
            None if failure is None else _failure_message(failure),
            None if failure is None else failure.node_id,
        )  # positional, in ``RunResult`` field order: this runs once per request

    def _status(self) -> RunStatus:
        return "ok" if self.failure is None else "error"

    def _error_type(self) -> str | None:
        return type(self.failure.error).__name__ if self.failure is not None else None


_STATUS, _COST, _TOKENS = map(PENDING_SPAN_FIELDS.index, ("status", "cost", "tokens"))
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _unchanging(inputs: dict[str, Any]) -> bool:
    """Whether ``inputs`` (the runtime's own copy of the request inputs, given to no node and
    no caller) serialises to the same JSON whenever it is read: every key a ``str`` and every
    value exactly a ``str``, number, bool or None (immutable; subclasses could change how they
    serialise). Anything else (a list, a nested dict, a model) the caller or a node could
    still change, so its JSON is taken on the request path."""
    scalars = _SCALARS
    for key, value in inputs.items():  # a loop: a generator in ``all`` costs twice as much
        if type(key) is not str or type(value) not in scalars:
            return False
    return True


def _failure_message(failure: _Failure) -> str:
    error = failure.error
    return str(NodeExecutionError(failure.node_id, type(error).__name__, str(error)))


async def _cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
