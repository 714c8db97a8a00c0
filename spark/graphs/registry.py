"""The node registry: node type names mapped to async implementations.

An implementation is ``async def impl(inputs: dict, ctx: NodeContext) -> dict``. Modules register
theirs with ``@node("name")`` into ``default_registry()``; a worker makes a stored spec runnable by
importing the modules that define its types (``NodeRegistry.load_modules``).
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from spark.errors import InvalidInputError, SparkMisuseError, UnknownNodeTypeError
from spark.graphs.spec import GraphSpec, NodeConfig, NodeSpec


@dataclass(slots=True)
class NodeUsage:
    """Tokens and cost reported by a node execution, summed over its attempts and fallback."""

    tokens: int = 0
    cost: float = 0.0


@dataclass(slots=True)
class NodeContext:
    """What a node implementation knows about the execution it is part of."""

    node_id: str
    node_type: str
    config: NodeConfig
    graph_id: str
    version_id: str
    trace_id: str = ""
    attempt: int = 1
    usage: NodeUsage = field(default_factory=NodeUsage)

    def report_usage(self, tokens: int = 0, cost: float = 0.0) -> None:
        """Add ``tokens`` and ``cost`` to the usage recorded on this node's span."""
        if tokens < 0 or cost < 0:
            raise InvalidInputError(
                f"node {self.node_id!r} reported negative usage (tokens={tokens}, cost={cost})"
            )
        self.usage.tokens += tokens
        self.usage.cost += cost


class NodeImpl(Protocol):
    """An async node implementation: reads the node's inputs, returns fields to merge."""

    def __call__(self, inputs: dict[str, Any], ctx: NodeContext) -> Awaitable[dict[str, Any]]:
        """Run the node once."""
        ...


ImplT = TypeVar("ImplT", bound=Callable[..., Awaitable[dict[str, Any]]])


def impl_module(impl: object) -> str:
    """The module defining an implementation (its node class for class-based nodes)."""
    target = getattr(impl, "node_class", impl)
    return str(getattr(target, "__module__", None) or "?")


def impl_origin(impl: object) -> str:
    """``module.qualname`` of an implementation (of its node class for class-based nodes)."""
    target = getattr(impl, "node_class", impl)
    qualname = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{impl_module(impl)}.{qualname}"


class NodeRegistry:
    """Node type names mapped to implementations, with the module that registered each."""

    def __init__(self) -> None:
        self._impls: dict[str, NodeImpl] = {}
        self._modules: dict[str, str] = {}
        self.generation = 0  # counts registrations: what was resolved before may have changed

    def register(self, type_name: str, impl: NodeImpl) -> NodeImpl:
        """Register ``impl`` under ``type_name``.

        Registering the same definition again (a module reload) replaces it; a different
        definition under a taken name raises ``SparkMisuseError``.
        """
        existing = self._impls.get(type_name)
        if existing is not None and impl_origin(existing) != impl_origin(impl):
            raise SparkMisuseError(
                f"node type {type_name!r} is already registered by {impl_origin(existing)!r}; "
                f"{impl_origin(impl)!r} must use another name"
            )
        self._impls[type_name] = impl
        self._modules[type_name] = impl_module(impl)
        self.generation += 1
        return impl

    def get(self, type_name: str, *, node_id: str | None = None) -> NodeImpl:
        """The implementation of ``type_name``; ``UnknownNodeTypeError`` names it (and the node)."""
        try:
            return self._impls[type_name]
        except KeyError:
            where = f" (node {node_id!r})" if node_id is not None else ""
            raise UnknownNodeTypeError(
                f"node type {type_name!r}{where} is not registered; "
                f"known types: {sorted(self._impls)}"
            ) from None

    def resolve(self, node_spec: NodeSpec) -> NodeImpl:
        """The implementation that runs ``node_spec``."""
        return self.get(node_spec.type, node_id=node_spec.id)

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._impls

    def types(self) -> list[str]:
        """Registered type names, sorted."""
        return sorted(self._impls)

    def check_spec(self, spec: GraphSpec) -> None:
        """Raise ``UnknownNodeTypeError`` naming every unregistered type and the node using it."""
        missing = [
            f"{type_name!r} ({role} {node_id!r})"
            for node_id, role, type_name in _type_uses(spec)
            if type_name not in self
        ]
        if missing:
            raise UnknownNodeTypeError(
                f"graph {spec.id!r} uses unregistered node type(s): {', '.join(missing)}"
            )

    def missing_types(self, spec: GraphSpec) -> list[str]:
        """Node and fallback types ``spec`` uses that are not registered, sorted."""
        return sorted({type_name for _, _, type_name in _type_uses(spec) if type_name not in self})

    def load_modules(self, module_names: Iterable[str]) -> None:
        """Import modules so their ``@node`` registrations exist, and adopt those types here."""
        for module_name in module_names:
            _import_node_module(module_name)
            if self is not _DEFAULT_REGISTRY:
                self._adopt_from(_DEFAULT_REGISTRY, module_name)

    def _adopt_from(self, other: NodeRegistry, module_name: str) -> None:
        for type_name, module in other._modules.items():
            if module == module_name:
                self.register(type_name, other._impls[type_name])


def _type_uses(spec: GraphSpec) -> list[tuple[str, str, str]]:
    """(node id, role, type) for every node type and fallback type the spec uses."""
    uses = [(node.id, "node", node.type) for node in spec.nodes]
    uses += [
        (node.id, "fallback of node", node.config.fallback)
        for node in spec.nodes
        if node.config.fallback
    ]
    return uses


def _import_node_module(module_name: str) -> None:
    try:
        importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise UnknownNodeTypeError(
            f"node module {module_name!r} cannot be imported: module {exc.name!r} not found"
        ) from exc


_DEFAULT_REGISTRY = NodeRegistry()


def default_registry() -> NodeRegistry:
    """The process-wide registry that ``@node`` and ``Node`` subclasses register into."""
    return _DEFAULT_REGISTRY


def node(type_name: str, *, registry: NodeRegistry | None = None) -> Callable[[ImplT], ImplT]:
    """Decorator registering an async node implementation under ``type_name``."""

    def register(impl: ImplT) -> ImplT:
        target = registry if registry is not None else _DEFAULT_REGISTRY
        target.register(type_name, impl)
        return impl

    return register
