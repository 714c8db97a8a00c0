"""Graph registration and immutable versions, on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from spark.errors import InvalidChangeError, UnknownGraphError, UnknownVersionError
from spark.registry import RegistryStore, RoutingStore, version_id_for
from tests.registry.conftest import SpecFactory, make_spec

MODULES = ["examples.support.nodes"]


def test_first_registration_stores_graph_root_version_and_routing(database_url: str) -> None:
    """The first registration stores the graph, a parentless version and routes all to it."""
    spec = make_spec()
    version = RegistryStore(database_url).register_graph(spec, MODULES, author="ana")
    assert version.version_id == "v-" + spec.content_hash()[:16]
    assert version.parent_id is None
    assert version.spec == spec
    graph = RegistryStore(database_url).get_graph("support-triage")
    assert (graph.node_modules, graph.owner) == (MODULES, "ana")
    routing = RoutingStore(database_url).get("support-triage")
    assert (routing.active_version_id, routing.candidate_version_id) == (version.version_id, None)


def test_registering_the_same_spec_twice_is_a_no_op(database_url: str) -> None:
    """Re-registering an identical spec returns the same version and writes nothing new."""
    store = RegistryStore(database_url)
    first = store.register_graph(make_spec(), MODULES)
    second = store.register_graph(make_spec(), MODULES)
    assert second == first
    assert len(store.list_versions("support-triage")) == 1
    assert len(RoutingStore(database_url).history("support-triage")) == 1


def test_registering_a_changed_spec_adds_a_child_of_active_without_routing(
    database_url: str, spec_factory: SpecFactory
) -> None:
    """A changed spec becomes a new version under the active one; routing stays on the old."""
    store = RegistryStore(database_url)
    root = store.register_graph(spec_factory(), MODULES)
    changed = store.register_graph(spec_factory("Classify briefly."), ["other.nodes"], owner="bo")
    assert changed.parent_id == root.version_id
    assert changed.version_id != root.version_id
    assert RoutingStore(database_url).get("support-triage").active_version_id == root.version_id
    graph = store.get_graph("support-triage")
    assert (graph.node_modules, graph.owner) == (["other.nodes"], "bo")


def test_create_version_is_idempotent_on_content(database_url: str) -> None:
    """Creating the same spec twice stores one version, keeping the first author and note."""
    store = RegistryStore(database_url)
    root = store.register_graph(make_spec(), MODULES)
    spec = make_spec("Classify carefully.")
    first = store.create_version(root.version_id, spec, hypothesis_id="h-1", author="rsi", note="a")
    again = store.create_version(root.version_id, spec, hypothesis_id="h-2", author="x", note="b")
    assert again == first
    assert (again.hypothesis_id, again.author, again.note) == ("h-1", "rsi", "a")
    assert len(store.list_versions("support-triage")) == 2


def test_create_version_of_existing_content_returns_the_stored_version(database_url: str) -> None:
    """A child whose spec equals an older version is that older version, never an edited copy."""
    store = RegistryStore(database_url)
    root = store.register_graph(make_spec(), MODULES)
    child = store.create_version(root.version_id, make_spec("B"), author="rsi")
    back = store.create_version(child.version_id, make_spec(), author="rsi", note="revert")
    assert back == root
    assert store.get_version(root.version_id) == root


def test_lineage_runs_from_root_to_self(database_url: str) -> None:
    """``lineage`` lists every ancestor, root first, ending with the version asked for."""
    store = RegistryStore(database_url)
    root = store.register_graph(make_spec(), MODULES)
    child = store.create_version(root.version_id, make_spec("B"), author="rsi")
    grandchild = store.create_version(child.version_id, make_spec("C"), author="rsi")
    store.create_version(root.version_id, make_spec("D"), author="rsi")
    chain = store.lineage(grandchild.version_id)
    assert [v.version_id for v in chain] == [
        root.version_id,
        child.version_id,
        grandchild.version_id,
    ]
    assert store.lineage(root.version_id) == [root]


def test_list_versions_is_oldest_first(database_url: str) -> None:
    """``list_versions`` returns every version of the graph in creation order."""
    store = RegistryStore(database_url)
    root = store.register_graph(make_spec(), MODULES)
    child = store.create_version(root.version_id, make_spec("B"), author="rsi")
    store.register_graph(make_spec(graph_id="other-graph"), MODULES)
    assert [v.version_id for v in store.list_versions("support-triage")] == [
        root.version_id,
        child.version_id,
    ]


def test_unknown_ids_raise_errors_naming_them(database_url: str) -> None:
    """Unknown graphs and versions raise the named misuse errors quoting the id."""
    store = RegistryStore(database_url)
    with pytest.raises(UnknownGraphError, match="'nope-graph'"):
        store.get_graph("nope-graph")
    with pytest.raises(UnknownGraphError, match="'nope-graph'"):
        store.list_versions("nope-graph")
    with pytest.raises(UnknownVersionError, match="'v-missing'"):
        store.get_version("v-missing")
    with pytest.raises(UnknownVersionError, match="'v-missing'"):
        store.lineage("v-missing")
    with pytest.raises(UnknownVersionError, match="'v-missing'"):
        store.create_version("v-missing", make_spec(), author="rsi")


def test_create_version_rejects_a_spec_of_another_graph(database_url: str) -> None:
    """A version's spec must belong to the same graph as its parent."""
    store = RegistryStore(database_url)
    root = store.register_graph(make_spec(), MODULES)
    with pytest.raises(InvalidChangeError, match="'other-graph'"):
        store.create_version(root.version_id, make_spec(graph_id="other-graph"), author="rsi")


def test_concurrent_registrations_store_one_graph_and_version(database_url: str) -> None:
    """Racing first registrations of one spec (retried activities) store it exactly once."""
    store = RegistryStore(database_url)
    with ThreadPoolExecutor(max_workers=4) as pool:
        versions = list(pool.map(lambda _: store.register_graph(make_spec(), MODULES), range(4)))
    assert {v.version_id for v in versions} == {version_id_for(make_spec())}
    assert len(store.list_versions("support-triage")) == 1
    assert len(RoutingStore(database_url).history("support-triage")) == 1
