"""A ``Graph`` built in code follows routing like ``SparkClient.run`` once its id is registered."""

from __future__ import annotations

from typing import Any

from spark.graphs import Graph, Node
from spark.graphs.spec import GraphSpec
from spark.registry import RegistryStore, RoutingStore, assign_arm
from spark.telemetry import TelemetryConfig, TelemetryStore

GRAPH_ID = "routed-greeting"


class RoutedGreeter(Node):
    """Greets with the word in its config's params (a config-only change alters its output)."""

    def __init__(self, punctuation: str = "!", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.punctuation = punctuation  # constructor state a routed version must keep

    async def process(self, inputs: dict[str, Any]) -> dict[str, Any]:
        word = self.config.params.get("word", "hello")
        return {"greeting": f"{word} {inputs['name']}{self.punctuation}"}


def _graph(url: str, **kwargs: Any) -> Graph:
    greeter = RoutedGreeter(id="greet", punctuation="?", inputs=["name"], outputs=["greeting"])
    return Graph(
        start=greeter,
        graph_id=GRAPH_ID,
        telemetry_config=TelemetryConfig.from_url(url),
        **kwargs,
    )


def _with_word(spec: GraphSpec, word: str) -> GraphSpec:
    data = spec.model_dump()
    data["nodes"][0]["config"]["params"] = {"word": word}
    return GraphSpec.model_validate(data)


def _register_candidate(url: str, graph: Graph, share: float) -> tuple[str, str]:
    registry = RegistryStore(url)
    active = registry.register_graph(graph.to_spec(), node_modules=[__name__])
    candidate = registry.create_version(
        active.version_id, _with_word(graph.to_spec(), "hi"), author="test"
    )
    RoutingStore(url).apply(
        GRAPH_ID,
        idempotency_key=f"{GRAPH_ID}:candidate",
        action="set_candidate",
        candidate_version_id=candidate.version_id,
        candidate_share=share,
        actor="test",
        reason="test",
    )
    return active.version_id, candidate.version_id


async def test_unregistered_graph_runs_as_built(database_url: str) -> None:
    """A graph whose id is not registered in its database runs its built spec, arm direct."""
    async with _graph(database_url) as graph:
        result = await graph.run({"name": "ada"}, routing_key="k1")
    assert result.version_id == graph.version_id
    assert result.outputs == {"greeting": "hello ada?"}


async def test_registered_graph_serves_the_routed_version(database_url: str) -> None:
    """Each run of a registered graph serves the arm ``assign_arm`` picks for its routing key,
    runs that version's config on the graph's own node instances, and records telemetry under
    that version and arm."""
    graph = _graph(database_url)
    active_id, candidate_id = _register_candidate(database_url, graph, share=0.5)
    keys = [f"user-{i}" for i in range(12)]
    async with graph:
        results = {key: await graph.run({"name": "ada"}, routing_key=key) for key in keys}
    expected = {key: assign_arm(GRAPH_ID, key, 0.5) for key in keys}
    assert set(expected.values()) == {"active", "candidate"}  # both arms are exercised
    for key, result in results.items():
        on_candidate = expected[key] == "candidate"
        assert result.version_id == (candidate_id if on_candidate else active_id)
        assert result.outputs["greeting"] == ("hi ada?" if on_candidate else "hello ada?")
    store = TelemetryStore(database_url)
    candidates = sum(arm == "candidate" for arm in expected.values())
    assert store.count_traces(GRAPH_ID, candidate_id, routing_arm="candidate") == candidates
    assert store.count_traces(GRAPH_ID, active_id, routing_arm="active") == 12 - candidates


async def test_sticky_routing_key_keeps_its_version(database_url: str) -> None:
    """Runs with one routing key all land on the same version."""
    graph = _graph(database_url)
    _register_candidate(database_url, graph, share=0.5)
    async with graph:
        versions = {
            (await graph.run({"name": "x"}, routing_key="same")).version_id for _ in range(5)
        }
    assert len(versions) == 1


async def test_promoted_version_is_picked_up(database_url: str) -> None:
    """After the loop promotes a candidate, the same ``Graph`` object serves it (new TTL read)."""
    graph = _graph(database_url)
    _, candidate_id = _register_candidate(database_url, graph, share=0.1)
    RoutingStore(database_url).apply(
        GRAPH_ID, idempotency_key=f"{GRAPH_ID}:promote", action="promote", actor="t", reason="t"
    )
    async with graph:
        result = await graph.run({"name": "ada"})
    assert result.version_id == candidate_id
    assert result.outputs == {"greeting": "hi ada?"}


async def test_follow_routing_false_runs_as_built(database_url: str) -> None:
    """``follow_routing=False`` ignores a registered graph's routing."""
    graph = _graph(database_url, follow_routing=False)
    _register_candidate(database_url, graph, share=1.0)
    async with graph:
        result = await graph.run({"name": "ada"}, routing_key="k")
    assert result.version_id == graph.version_id
    assert result.outputs == {"greeting": "hello ada?"}
