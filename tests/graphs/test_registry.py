"""The node registry: registration, lookup errors, module loading, node context usage."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from spark.errors import InvalidInputError, SparkMisuseError, UnknownNodeTypeError
from spark.graphs import NodeConfig, NodeContext, NodeRegistry, default_registry, node
from tests.graphs.helpers import make_spec


async def _echo(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
    return dict(inputs)


async def _other(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
    return {}


def test_decorator_registers_and_returns_the_function(registry: NodeRegistry) -> None:
    """``@node`` registers the callable under its name and leaves it usable as is."""
    decorated = node("echo", registry=registry)(_echo)

    assert decorated is _echo
    assert "echo" in registry
    assert registry.get("echo") is _echo
    assert registry.types() == ["echo"]


def test_get_unknown_type_names_the_type(registry: NodeRegistry) -> None:
    """Looking up an unregistered type raises ``UnknownNodeTypeError`` quoting the type."""
    with pytest.raises(UnknownNodeTypeError, match="'nope'"):
        registry.get("nope")


def test_resolve_unknown_type_names_type_and_node(registry: NodeRegistry) -> None:
    """Resolving a node spec of an unknown type names both the type and the node id."""
    spec = make_spec([{"id": "classify", "type": "llm_classifier"}])

    with pytest.raises(UnknownNodeTypeError, match=r"'llm_classifier'.*'classify'"):
        registry.resolve(spec.node("classify"))


def test_same_definition_may_register_twice(registry: NodeRegistry) -> None:
    """Re-registering the same definition (a module reload) is accepted."""
    registry.register("echo", _echo)
    registry.register("echo", _echo)

    assert registry.get("echo") is _echo


def test_different_definition_under_a_taken_name_is_refused(registry: NodeRegistry) -> None:
    """Two different implementations cannot share a type name."""
    registry.register("echo", _echo)

    with pytest.raises(SparkMisuseError, match="'echo' is already registered"):
        registry.register("echo", _other)


def test_missing_types_lists_node_and_fallback_types(registry: NodeRegistry) -> None:
    """``missing_types`` reports unregistered node types and fallback types, sorted, once."""
    registry.register("echo", _echo)
    spec = make_spec(
        [
            {"id": "a", "type": "echo", "config": {"fallback": "cheap"}},
            {"id": "b", "type": "fancy"},
            {"id": "c", "type": "fancy"},
        ],
        [("a", "b"), ("a", "c")],
    )

    assert registry.missing_types(spec) == ["cheap", "fancy"]


def test_check_spec_names_every_missing_type_and_its_node(registry: NodeRegistry) -> None:
    """``check_spec`` lists each unregistered node or fallback type with the node using it."""
    registry.register("echo", _echo)
    spec = make_spec(
        [
            {"id": "a", "type": "echo", "config": {"fallback": "cheap"}},
            {"id": "b", "type": "fancy"},
        ],
        [("a", "b")],
    )

    with pytest.raises(UnknownNodeTypeError) as raised:
        registry.check_spec(spec)

    assert "'cheap' (fallback of node 'a')" in str(raised.value)
    assert "'fancy' (node 'b')" in str(raised.value)


def test_check_spec_accepts_a_fully_registered_spec(registry: NodeRegistry) -> None:
    """A spec whose types are all registered passes ``check_spec``."""
    registry.register("echo", _echo)

    registry.check_spec(make_spec([{"id": "a", "type": "echo"}]))


def test_default_registry_is_one_per_process() -> None:
    """``default_registry()`` always returns the same registry."""
    assert default_registry() is default_registry()


def test_load_modules_names_a_missing_module(registry: NodeRegistry) -> None:
    """Loading a module that does not exist raises ``UnknownNodeTypeError`` with its name."""
    with pytest.raises(UnknownNodeTypeError, match="'spark_no_such_node_module'"):
        registry.load_modules(["spark_no_such_node_module"])


def test_load_modules_adopts_the_module_node_types(
    registry: NodeRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A private registry gains the types a loaded module registers with ``@node``."""
    module = "spark_graphs_test_plugin_nodes"
    (tmp_path / f"{module}.py").write_text(
        "from spark.graphs import node\n\n"
        "@node('plugin_upper')\n"
        "async def upper(inputs, ctx):\n"
        "    return {'text': inputs['text'].upper()}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)

    registry.load_modules([module])

    assert "plugin_upper" in registry
    assert registry.get("plugin_upper") is default_registry().get("plugin_upper")


def test_report_usage_accumulates() -> None:
    """Usage reported several times adds up on the context."""
    ctx = NodeContext("n", "t", NodeConfig(), graph_id="g", version_id="v")

    ctx.report_usage(tokens=10, cost=0.25)
    ctx.report_usage(tokens=5, cost=0.5)

    assert (ctx.usage.tokens, ctx.usage.cost) == (15, 0.75)


def test_report_usage_refuses_negative_values() -> None:
    """Negative usage is a misuse, named with the node id."""
    ctx = NodeContext("n", "t", NodeConfig(), graph_id="g", version_id="v")

    with pytest.raises(InvalidInputError, match="'n'"):
        ctx.report_usage(tokens=-1)
