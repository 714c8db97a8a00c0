"""Deployment records: idempotent start and finish, allowed status changes."""

from __future__ import annotations

import pytest

from spark.errors import SparkMisuseError
from spark.registry import DeploymentRecord, DeploymentStore, deployment_id_for

DEPLOYMENT = deployment_id_for("support-triage", 3, "v-new")


def _start(store: DeploymentStore, to_version_id: str = "v-new") -> DeploymentRecord:
    return store.start(DEPLOYMENT, "support-triage", 3, "v-old", to_version_id, "canary")


def test_start_is_idempotent(database_url: str) -> None:
    """Starting the same deployment twice stores one in-progress record and returns it."""
    store = DeploymentStore(database_url)
    first = _start(store)
    assert DEPLOYMENT == "support-triage:c3:v-new"
    assert (first.status, first.strategy, first.cycle) == ("in_progress", "canary", 3)
    assert _start(store) == first
    assert store.list("support-triage") == [first]


def test_start_with_a_reused_id_and_other_content_is_misuse(database_url: str) -> None:
    """An idempotency key reused for a different deployment is refused, naming the fields."""
    store = DeploymentStore(database_url)
    _start(store)
    with pytest.raises(SparkMisuseError, match="to_version_id"):
        _start(store, to_version_id="v-other")


def test_finish_is_idempotent(database_url: str) -> None:
    """Finishing twice with the same status changes nothing the second time."""
    store = DeploymentStore(database_url)
    _start(store)
    done = store.finish(DEPLOYMENT, "deployed", "healthy")
    assert (done.status, done.reason) == ("deployed", "healthy")
    assert store.finish(DEPLOYMENT, "deployed", "retried") == done
    assert store.get(DEPLOYMENT) == done


def test_a_deployed_version_can_still_be_rolled_back(database_url: str) -> None:
    """Post-rollout monitoring may turn ``deployed`` into ``rolled_back``, never the reverse."""
    store = DeploymentStore(database_url)
    _start(store)
    store.finish(DEPLOYMENT, "deployed", "healthy")
    rolled = store.finish(DEPLOYMENT, "rolled_back", "p95 regression")
    assert (rolled.status, rolled.reason) == ("rolled_back", "p95 regression")
    with pytest.raises(SparkMisuseError, match="'rolled_back'"):
        store.finish(DEPLOYMENT, "deployed", "again")


def test_unknown_deployment_is_misuse(database_url: str) -> None:
    """Reading or finishing an unknown deployment raises an error quoting its id."""
    store = DeploymentStore(database_url)
    with pytest.raises(SparkMisuseError, match="'nope'"):
        store.get("nope")
    with pytest.raises(SparkMisuseError, match="'nope'"):
        store.finish("nope", "aborted", "")
    assert store.list("support-triage") == []
