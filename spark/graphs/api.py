"""A Spark-style Python API over ``GraphSpec`` and the runtime.

::

    class Classify(Node):
        async def process(self, inputs: dict[str, Any]) -> dict[str, Any]:
            return {"label": "billing" if "invoice" in inputs["text"] else "other"}

    classify = Classify(inputs=["text"], outputs=["label"])
    classify.on(field="label", value="billing") >> Billing(id="billing")
    classify >> Archive()
    async with Graph(start=classify, telemetry_config=TelemetryConfig.create_sqlite()) as graph:
        result = await graph.run({"text": "my invoice"})

``Node`` subclasses register into the default node registry under their class name (or their
``type_name`` class attribute), so a spec exported with ``to_spec()`` runs anywhere the defining
module is imported. Node ids default to the type name: give an explicit ``id=`` when a type is used
twice. Ids are stable names, never generated, so telemetry joins across processes and versions.
"""

from __future__ import annotations

import abc
import copy
import inspect
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, overload

import networkx as nx
import structlog
from pydantic import ValidationError

from spark.errors import InvalidGraphSpecError, RoutingUnavailableError, SparkMisuseError
from spark.graphs.registry import NodeContext, NodeImpl, NodeRegistry, default_registry
from spark.graphs.runtime import GraphRuntime, RunResult
from spark.graphs.spec import (
    ConditionOp,
    EdgeCondition,
    GraphSpec,
    NodeConfig,
    NodeSpec,
    NodeTag,
    parse_graph_spec,
)
from spark.telemetry.models import PendingRun, RoutingArm, RunTelemetry

if TYPE_CHECKING:
    from spark.serving import RoutedVersion, VersionRouter

log = structlog.get_logger(__name__)

_current_context: ContextVar[NodeContext | None] = ContextVar("spark_node_context", default=None)

NodeT = TypeVar("NodeT", bound="Node")


class TelemetryRecorderLike(Protocol):
    """A telemetry sink that can be flushed and closed (sync or async methods)."""

    def submit(self, run: RunTelemetry | PendingRun) -> None:
        """Accept a finished run without blocking (pending if the recorder defers fingerprints)."""
        ...

    def flush(self) -> object:
        """Write everything accepted so far."""
        ...

    def close(self) -> object:
        """Flush and release resources."""
        ...


class TelemetryConfigLike(Protocol):
    """Anything that opens a telemetry recorder, e.g. ``spark.telemetry.TelemetryConfig``."""

    def open_recorder(self) -> TelemetryRecorderLike:
        """A started recorder."""
        ...


def current_context() -> NodeContext:
    """The context of the node running in this task; ``SparkMisuseError`` outside a node run."""
    ctx = _current_context.get()
    if ctx is None:
        raise SparkMisuseError("no node is running: the node context exists only inside process()")
    return ctx


class Node(abc.ABC):
    """Subclass and implement ``process``; connect instances with ``>>``, ``on`` or ``connect``."""

    type_name: ClassVar[str | None] = None

    def __init_subclass__(cls, register: bool = True, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if register and not inspect.isabstract(cls):
            default_registry().register(cls.registered_type(), _NodeClassImpl(cls))

    @classmethod
    def registered_type(cls) -> str:
        """The registry type name of this class: its own ``type_name`` or its class name."""
        return cls.__dict__.get("type_name") or cls.__name__

    def __init__(
        self,
        *,
        id: str | None = None,
        config: NodeConfig | Mapping[str, Any] | None = None,
        inputs: Sequence[str] = (),
        outputs: Sequence[str] = (),
        tags: Sequence[NodeTag] = (),
        description: str = "",
    ) -> None:
        self.node_type = self._own_type()
        self.id = id or self.node_type
        self.config = _as_config(config, self.id)
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.tags = list(tags)
        self.description = description
        self.edges: list[tuple[Node, EdgeCondition | None]] = []

    def _own_type(self) -> str:
        return type(self).registered_type()

    @abc.abstractmethod
    async def process(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Read the node's inputs, return the fields to merge into the graph state."""

    async def invoke(self, inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        """Run ``process`` with ``ctx`` as the current node context (the runtime calls this)."""
        token = _current_context.set(ctx)
        try:
            return await self.process(inputs)
        finally:
            _current_context.reset(token)

    @property
    def context(self) -> NodeContext:
        """The running execution's context (attempt, config, ids); only inside ``process``."""
        return current_context()

    def report_usage(self, tokens: int = 0, cost: float = 0.0) -> None:
        """Add tokens and cost to the span of the running execution."""
        current_context().report_usage(tokens=tokens, cost=cost)

    def connect(self, target: NodeT, when: EdgeCondition | None = None) -> NodeT:
        """Add an edge to ``target``, taken only when ``when`` holds (always if ``None``)."""
        self.edges.append((target, when))
        return target

    def on(self, field: str, op: ConditionOp = "eq", value: Any = None) -> ConditionalEdge:
        """Start a conditional edge: ``node.on(field="label", value="spam") >> target``."""
        return ConditionalEdge(self, EdgeCondition(field=field, op=op, value=value))

    @overload
    def __rshift__(self, other: NodeT) -> NodeT: ...

    @overload
    def __rshift__(self, other: list[NodeT]) -> list[NodeT]: ...

    def __rshift__(self, other: Any) -> Any:
        """``a >> b`` adds the edge a→b and returns b; ``a >> [b, c]`` fans out."""
        targets = other if isinstance(other, list) else [other]
        for target in targets:
            self.connect(target)
        return other

    def __rrshift__(self, other: list[Node]) -> Node:
        """``[a, b] >> c`` joins: edges a→c and b→c; returns c."""
        for source in other:
            source.connect(self)
        return self

    def spec_data(self) -> dict[str, Any]:
        """This node as ``NodeSpec`` data (validated when the graph builds its spec)."""
        return {
            "id": self.id,
            "type": self.node_type,
            "config": self.config.model_dump(exclude_defaults=True),
            "inputs": self.inputs,
            "outputs": self.outputs,
            "tags": self.tags,
            "description": self.description,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, type={self.node_type!r})"


@dataclass(frozen=True, slots=True)
class ConditionalEdge:
    """A pending conditional edge; ``>> target`` completes it and returns the target."""

    source: Node
    condition: EdgeCondition

    def __rshift__(self, target: NodeT) -> NodeT:
        """Add the conditional edge to ``target``."""
        return self.source.connect(target, when=self.condition)


class SpecNode(Node, register=False):
    """A node known only by its registered type (built by ``Graph.from_spec``)."""

    def __init__(
        self, type_name: str, *, registry: NodeRegistry | None = None, **kwargs: Any
    ) -> None:
        self._type_name = type_name
        self.registry = registry if registry is not None else default_registry()
        super().__init__(**kwargs)

    def _own_type(self) -> str:
        return self._type_name

    async def process(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Delegate to the implementation registered under this node's type."""
        ctx = current_context()
        return await self.registry.get(self.node_type, node_id=self.id)(inputs, ctx)


class _NodeClassImpl:
    """The registry entry of a ``Node`` subclass: a fresh instance per execution."""

    def __init__(self, node_class: type[Node]) -> None:
        self.node_class = node_class

    async def __call__(self, inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        instance = self.node_class(id=ctx.node_id, config=ctx.config)
        return await instance.invoke(inputs, ctx)


class _GraphNodeRegistry(NodeRegistry):
    """Resolves a graph's own node instances by id, everything else through ``base``."""

    def __init__(self, base: NodeRegistry, nodes: Sequence[Node]) -> None:
        super().__init__()
        self._base = base
        self._nodes = {node.id: node for node in nodes if not isinstance(node, SpecNode)}

    def register(self, type_name: str, impl: NodeImpl) -> NodeImpl:
        """Register into the base registry."""
        return self._base.register(type_name, impl)

    def get(self, type_name: str, *, node_id: str | None = None) -> NodeImpl:
        """Look ``type_name`` up in the base registry."""
        return self._base.get(type_name, node_id=node_id)

    def resolve(self, node_spec: NodeSpec) -> NodeImpl:
        """The graph's own instance for ``node_spec.id`` if its type matches, else the base's."""
        node = self._nodes.get(node_spec.id)
        if node is not None and node.node_type == node_spec.type:
            return _as_specified(node, node_spec).invoke
        return super().resolve(node_spec)

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._base

    def types(self) -> list[str]:
        """The base registry's type names."""
        return self._base.types()


def _as_specified(node: Node, node_spec: NodeSpec) -> Node:
    """``node`` itself when it matches ``node_spec``, else a shallow copy carrying the spec's
    config and data contract (a routed version may have changed them)."""
    if (
        node.config == node_spec.config
        and node.inputs == node_spec.inputs
        and node.outputs == node_spec.outputs
        and sorted(set(node.tags)) == node_spec.tags
    ):
        return node
    version = copy.copy(node)
    version.config = node_spec.config.model_copy(deep=True)
    version.inputs, version.outputs = list(node_spec.inputs), list(node_spec.outputs)
    version.tags = list(node_spec.tags)
    return version


def default_version_id(spec: GraphSpec) -> str:
    """The content-derived version id of a spec: ``"v-"`` + 16 hex digits of its hash."""
    return "v-" + spec.content_hash()[:16]


class Graph:
    """A graph of ``Node`` instances discovered from ``start``, runnable and convertible to a spec.

    The structure is captured when the graph is built; edges added afterwards are not seen.
    ``start`` may be a list of nodes: a graph that fans out at the start, each of them an entry
    node running on the request's inputs (the first one gives the default graph id).

    Routing: when the graph's id is registered (``SparkClient.register_graph`` or ``spark
    register``) in ``database_url`` (default: the telemetry config's database, where registry,
    routing and telemetry live together), every ``run`` serves the version routing picks, as
    ``SparkClient.run`` does, so a graph built in code picks up what the RSI loop deployed; the
    graph's own node instances run with that version's config. A graph not registered there
    (the answer is re-checked once per second, never per run) runs as built;
    ``follow_routing=False`` always runs it as built.
    """

    def __init__(
        self,
        start: Node | Sequence[Node],
        *,
        telemetry_config: TelemetryConfigLike | None = None,
        graph_id: str | None = None,
        inputs: Sequence[str] | None = None,
        registry: NodeRegistry | None = None,
        version_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        database_url: str | None = None,
        follow_routing: bool = True,
    ) -> None:
        nodes = discover_nodes(start)
        spec = build_spec(start, nodes, graph_id=graph_id, inputs=inputs, metadata=metadata)
        self._setup(spec, nodes, registry, telemetry_config, version_id)
        self._bind_routing(database_url, follow_routing)

    def _setup(
        self,
        spec: GraphSpec,
        nodes: list[Node],
        registry: NodeRegistry | None,
        telemetry_config: TelemetryConfigLike | None,
        version_id: str | None,
    ) -> None:
        self.spec = spec
        self.nodes = nodes
        self.version_id = version_id or default_version_id(spec)
        self.registry = registry if registry is not None else default_registry()
        self.telemetry_config = telemetry_config
        self.runtime = GraphRuntime(_GraphNodeRegistry(self.registry, nodes))
        self._recorder: TelemetryRecorderLike | None = None

    def _bind_routing(self, database_url: str | None, follow_routing: bool) -> None:
        """Where routing is read from: ``database_url``, else the telemetry config's database
        (registry, routing and telemetry share one database); nowhere without ``follow_routing``."""
        url = database_url or getattr(self.telemetry_config, "database_url", None)
        self.routing_database_url = url if follow_routing and isinstance(url, str) else None
        self._router: VersionRouter | None = None

    @classmethod
    def from_spec(
        cls,
        spec: GraphSpec,
        registry: NodeRegistry | None = None,
        *,
        telemetry_config: TelemetryConfigLike | None = None,
        version_id: str | None = None,
        database_url: str | None = None,
        follow_routing: bool = True,
    ) -> Graph:
        """A graph whose ``to_spec()`` equals ``spec``; registered ``Node`` classes are rebuilt.

        ``database_url`` and ``follow_routing`` are those of ``Graph``."""
        nodes = {node.id: node_from_spec(node, registry) for node in spec.nodes}
        for edge in spec.edges:
            nodes[edge.source].connect(nodes[edge.target], when=edge.condition)
        graph = cls.__new__(cls)
        graph._setup(
            spec.model_copy(deep=True), list(nodes.values()), registry, telemetry_config, version_id
        )
        graph._bind_routing(database_url, follow_routing)
        return graph

    @property
    def id(self) -> str:
        """The graph id."""
        return self.spec.id

    def to_spec(self) -> GraphSpec:
        """A copy of the graph's validated spec."""
        return self.spec.model_copy(deep=True)

    def node(self, node_id: str) -> Node:
        """The node instance with ``node_id``."""
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise InvalidGraphSpecError(f"graph {self.id!r} has no node {node_id!r}")

    async def run(
        self,
        inputs: Mapping[str, Any] | None = None,
        *,
        routing_arm: RoutingArm = "direct",
        routing_key: str | None = None,
        trace_id: str | None = None,
    ) -> RunResult:
        """Run the graph once; telemetry goes to the configured recorder, if any.

        When the graph's id is registered in its database (see ``Graph``), the run follows
        routing exactly as ``SparkClient.run`` does: the active or candidate version (sticky by
        ``routing_key``) runs, and telemetry is recorded under that version and arm. Otherwise the
        graph runs as built, on ``routing_arm``.
        """
        self._open_recorder()
        routed = self._routed(routing_key)
        if routed is None:
            spec, version_id = self.spec, self.version_id
        else:
            spec, version_id, routing_arm = routed.spec, routed.version_id, routed.arm
        return await self.runtime.run(
            spec,
            inputs or {},
            version_id=version_id,
            routing_arm=routing_arm,
            routing_key=routing_key,
            trace_id=trace_id,
        )

    def _routed(self, routing_key: str | None) -> RoutedVersion | None:
        """The routed version of this request; None when the graph is not registered, or its
        routing was never read and the database is away (then it serves as built)."""
        if self.routing_database_url is None:
            return None
        if self._router is None:
            from spark.serving import VersionRouter  # spark.registry imports spark.graphs

            self._router = VersionRouter.for_database(self.routing_database_url)
        try:
            return self._router.route_if_registered(self.id, routing_key)
        except RoutingUnavailableError as exc:
            log.warning("graph.routing_unavailable", graph_id=self.id, error=str(exc)[:200])
            return None

    def _open_recorder(self) -> None:
        if self.telemetry_config is not None and self._recorder is None:
            self._recorder = self.telemetry_config.open_recorder()
            self.runtime.sink = self._recorder

    async def flush(self) -> None:
        """Write the telemetry recorded so far."""
        if self._recorder is not None:
            await _maybe_await(self._recorder.flush())

    async def close(self) -> None:
        """Flush and close the telemetry recorder; a later run opens a new one."""
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return
        self.runtime.sink = None
        await _maybe_await(recorder.flush())
        await _maybe_await(recorder.close())

    async def __aenter__(self) -> Graph:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


async def _maybe_await(result: object) -> None:
    if inspect.isawaitable(result):
        await result


def discover_nodes(start: Node | Sequence[Node]) -> list[Node]:
    """Nodes reachable from ``start`` (one node or several) along edges, breadth-first, each
    once."""
    queue = _starts(start)
    found: dict[int, Node] = {id(node): node for node in queue}
    while queue:
        node = queue.pop(0)
        for target, _ in node.edges:
            if id(target) not in found:
                found[id(target)] = target
                queue.append(target)
    return list(found.values())


def _starts(start: Node | Sequence[Node]) -> list[Node]:
    starts = [start] if isinstance(start, Node) else list(start)
    if not starts:
        raise SparkMisuseError("a graph needs at least one start node")
    return starts


def build_spec(
    start: Node | Sequence[Node],
    nodes: Sequence[Node],
    *,
    graph_id: str | None = None,
    inputs: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> GraphSpec:
    """The validated spec of a node graph; graph inputs default to the fields nothing upstream
    writes."""
    edges = [_edge_data(node, target, when) for node in nodes for target, when in node.edges]
    starts = _starts(start)
    return parse_graph_spec(
        {
            "id": graph_id or starts[0].id,
            "entry": starts[0].id,
            "entry_nodes": [node.id for node in starts] if len(starts) > 1 else [],
            "nodes": [node.spec_data() for node in nodes],
            "edges": edges,
            "inputs": list(inputs) if inputs is not None else infer_graph_inputs(nodes),
            "metadata": dict(metadata or {}),
        }
    )


def _edge_data(source: Node, target: Node, when: EdgeCondition | None) -> dict[str, Any]:
    condition = when.model_dump() if when is not None else None
    return {"source": source.id, "target": target.id, "condition": condition}


def infer_graph_inputs(nodes: Sequence[Node]) -> list[str]:
    """Fields some node reads that none of its ancestors declares as an output, sorted."""
    graph = nx.DiGraph()
    graph.add_nodes_from(id(node) for node in nodes)
    graph.add_edges_from((id(node), id(target)) for node in nodes for target, _ in node.edges)
    by_key = {id(node): node for node in nodes}
    needed: set[str] = set()
    for node in nodes:
        upstream = {field for key in nx.ancestors(graph, id(node)) for field in by_key[key].outputs}
        needed.update(set(node.inputs) - upstream)
    return sorted(needed)


def node_from_spec(node_spec: NodeSpec, registry: NodeRegistry | None = None) -> Node:
    """A ``Node`` for ``node_spec``: its registered ``Node`` class if any, else a ``SpecNode``."""
    registry = registry if registry is not None else default_registry()
    kwargs: dict[str, Any] = {
        "id": node_spec.id,
        "config": node_spec.config,
        "inputs": node_spec.inputs,
        "outputs": node_spec.outputs,
        "tags": node_spec.tags,
        "description": node_spec.description,
    }
    node_class = _node_class(registry, node_spec.type)
    if node_class is None:
        return SpecNode(node_spec.type, registry=registry, **kwargs)
    try:
        return node_class(**kwargs)
    except TypeError as exc:
        raise SparkMisuseError(
            f"node {node_spec.id!r}: cannot build {node_class.__qualname__!r} from its spec: {exc}"
        ) from exc


def _node_class(registry: NodeRegistry, type_name: str) -> type[Node] | None:
    if type_name not in registry:
        return None
    node_class = getattr(registry.get(type_name), "node_class", None)
    if isinstance(node_class, type) and issubclass(node_class, Node):
        return node_class
    return None


def _as_config(config: NodeConfig | Mapping[str, Any] | None, node_id: str) -> NodeConfig:
    if config is None:
        return NodeConfig()
    if isinstance(config, NodeConfig):
        return config.model_copy(deep=True)
    try:
        return NodeConfig.model_validate(dict(config))
    except ValidationError as exc:
        raise InvalidGraphSpecError(f"node {node_id!r} config is invalid: {exc}") from exc
