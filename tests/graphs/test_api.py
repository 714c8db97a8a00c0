"""The Spark-style API: Node subclasses, edge operators, Graph runs, spec round trips."""

from __future__ import annotations

from typing import Any

import pytest

from spark.errors import InvalidGraphSpecError, SparkMisuseError
from spark.graphs import (
    EdgeCondition,
    Graph,
    GraphRuntime,
    Node,
    NodeContext,
    NodeRegistry,
    SpecNode,
    default_registry,
    default_version_id,
    node,
)
from spark.telemetry.models import RunTelemetry


class ApiClassify(Node):
    """Labels a ticket from its text."""

    async def process(self, inputs: dict[str, Any]) -> dict[str, Any]:
        self.report_usage(tokens=7, cost=0.01)
        return {"label": "billing" if "invoice" in inputs["text"] else "other"}


class ApiBilling(Node):
    """Handles billing tickets."""

    async def process(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"team": "billing"}


class ApiArchive(Node):
    """Archives anything."""

    async def process(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"archived": True}


class ApiGreeter(Node):
    """A node with its own constructor argument and an explicit registry type name."""

    type_name = "api_greeter"

    def __init__(self, greeting: str = "hello", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.greeting = greeting

    async def process(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"greeting": f"{self.greeting} {inputs['name']}"}


def _ticket_graph(**graph_kwargs: Any) -> Graph:
    classify = ApiClassify(inputs=["text"], outputs=["label"], config={"retries": 1})
    classify.on(field="label", value="billing") >> ApiBilling(outputs=["team"])
    classify >> ApiArchive(outputs=["archived"])
    return Graph(start=classify, **graph_kwargs)


class _Recorder:
    def __init__(self) -> None:
        self.runs: list[RunTelemetry] = []
        self.calls: list[str] = []

    def submit(self, run: RunTelemetry) -> None:
        self.runs.append(run)

    def flush(self) -> None:
        self.calls.append("flush")

    async def close(self) -> None:
        self.calls.append("close")


class _TelemetryConfig:
    def __init__(self) -> None:
        self.recorders: list[_Recorder] = []

    def open_recorder(self) -> _Recorder:
        self.recorders.append(_Recorder())
        return self.recorders[-1]


def test_node_subclasses_register_under_class_or_type_name() -> None:
    """Defining a ``Node`` subclass registers it; ``type_name`` overrides the class name."""
    assert "ApiClassify" in default_registry()
    assert "api_greeter" in default_registry()
    assert "ApiGreeter" not in default_registry()


def test_to_spec_captures_nodes_edges_conditions_and_inputs() -> None:
    """The spec lists nodes from the start node, edges with conditions and inferred inputs."""
    spec = _ticket_graph(graph_id="tickets").to_spec()

    assert spec.id == "tickets" and spec.entry == "ApiClassify"
    assert [(n.id, n.type) for n in spec.nodes] == [
        ("ApiClassify", "ApiClassify"),
        ("ApiBilling", "ApiBilling"),
        ("ApiArchive", "ApiArchive"),
    ]
    assert spec.node("ApiClassify").config.retries == 1
    assert [(e.source, e.target, e.condition) for e in spec.edges] == [
        ("ApiClassify", "ApiBilling", EdgeCondition(field="label", op="eq", value="billing")),
        ("ApiClassify", "ApiArchive", None),
    ]
    assert spec.inputs == ["text"]


async def test_graph_run_follows_conditions() -> None:
    """A run takes the conditional branch only when its condition holds."""
    graph = _ticket_graph()

    billing = await graph.run({"text": "my invoice"})
    other = await graph.run({"text": "hello"})

    assert billing.outputs == {"label": "billing", "team": "billing", "archived": True}
    assert other.node_statuses["ApiBilling"] == "skipped"


def test_fan_out_and_join_with_lists_and_connect() -> None:
    """``a >> [b, c]`` fans out, ``[b, c] >> d`` joins, ``connect(when=...)`` adds a condition."""
    start = ApiClassify(id="start", outputs=["label"], inputs=["text"])
    left, right = ApiBilling(id="left"), ApiArchive(id="right")
    join = ApiBilling(id="join")
    start >> [left, right]
    [left, right] >> join
    start.connect(ApiArchive(id="maybe"), when=EdgeCondition(field="label", op="truthy"))

    spec = Graph(start=start).to_spec()

    assert sorted(spec.predecessors("join")) == ["left", "right"]
    assert spec.successors("start") == ["left", "right", "maybe"]
    assert next(e for e in spec.edges if e.target == "maybe").condition == EdgeCondition(
        field="label", op="truthy"
    )


async def test_graph_runs_the_instances_it_was_built_from() -> None:
    """A run uses the graph's own node objects, constructor state included."""
    graph = Graph(start=ApiGreeter("bonjour", inputs=["name"], outputs=["greeting"]))

    result = await graph.run({"name": "Ada"})

    assert result.outputs == {"greeting": "bonjour Ada"}


def test_from_spec_round_trips_spec_and_version() -> None:
    """``Graph.from_spec(spec).to_spec()`` equals ``spec``, so the version id is the same."""
    original = _ticket_graph()

    rebuilt = Graph.from_spec(original.to_spec())

    assert rebuilt.to_spec() == original.to_spec()
    assert rebuilt.version_id == original.version_id == default_version_id(original.to_spec())
    assert isinstance(rebuilt.node("ApiBilling"), ApiBilling)


async def test_from_spec_wraps_function_nodes_in_spec_nodes() -> None:
    """A type registered as a function becomes a ``SpecNode`` that runs the registered impl."""
    registry = NodeRegistry()

    @node("shout", registry=registry)
    async def shout(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        return {"loud": inputs["text"].upper()}

    original = Graph(
        start=SpecNode("shout", id="s", inputs=["text"], registry=registry), registry=registry
    )

    rebuilt = Graph.from_spec(original.to_spec(), registry)
    result = await rebuilt.run({"text": "hi"})

    assert isinstance(rebuilt.node("s"), SpecNode)
    assert result.outputs == {"loud": "HI"}


async def test_exported_spec_runs_on_a_bare_runtime() -> None:
    """A spec of ``Node`` subclasses runs through the default registry alone."""
    spec = _ticket_graph().to_spec()

    result = await GraphRuntime().run(spec, {"text": "invoice 7"}, version_id="v1")

    assert result.outputs["team"] == "billing"


async def test_telemetry_recorder_opens_lazily_and_closes_with_the_graph() -> None:
    """The recorder opens at the first run, gets every run, and is flushed then closed."""
    config = _TelemetryConfig()

    async with _ticket_graph(telemetry_config=config) as graph:
        assert config.recorders == []
        await graph.run({"text": "invoice"})
        await graph.run({"text": "other"})

    recorder = config.recorders[0]
    assert len(config.recorders) == 1 and len(recorder.runs) == 2
    assert recorder.calls == ["flush", "close"]
    assert recorder.runs[0].spans[0].tokens == 7
    assert recorder.runs[0].trace.version_id == graph.version_id


def test_duplicate_node_ids_are_rejected() -> None:
    """Two nodes with the same id make an invalid graph (give one an explicit ``id=``)."""
    start = ApiBilling()
    start >> ApiBilling()

    with pytest.raises(InvalidGraphSpecError, match="duplicate node id"):
        Graph(start=start)


def test_invalid_config_names_the_node() -> None:
    """A config dict that fails validation raises ``InvalidGraphSpecError`` naming the node."""
    with pytest.raises(InvalidGraphSpecError, match="'bad'"):
        ApiBilling(id="bad", config={"retries": -1})


def test_usage_outside_a_run_is_misuse() -> None:
    """``report_usage`` only works while the node is running."""
    with pytest.raises(SparkMisuseError, match="no node is running"):
        ApiBilling().report_usage(tokens=1)


def test_two_classes_cannot_share_a_type_name() -> None:
    """A second, different class under a registered type name is refused at definition."""
    with pytest.raises(SparkMisuseError, match="'ApiBilling' is already registered"):

        class ApiBilling(Node):
            async def process(self, inputs: dict[str, Any]) -> dict[str, Any]:
                return {}
