"""The report's judgements: the objective's loss, regressions beyond noise, wrong changes and
the oracle fraction."""

from __future__ import annotations

import numpy as np

from spark.graphs.spec import GraphSpec
from spark.rsi.objectives import Objective
from spark.scenarios import report as rep


def _samples(
    n: int, *, fail_every: int = 0, latency: float = 100.0, quality: float = 0.9
) -> rep.Samples:
    ok = np.array([not (fail_every and i % fail_every == 0) for i in range(n)])
    rng = np.random.default_rng(3)
    return rep.Samples(
        ok=ok,
        latency_ms=latency * rng.lognormal(0, 0.2, n),
        cost=np.full(n, 0.001),
        quality=np.where(ok, quality, np.nan),
    )


def test_the_loss_prices_failures_latency_cost_and_quality_by_the_weights() -> None:
    """With the original as reference, each term weighs its weight; failures count fully."""
    original = _samples(200)
    reference = rep.reference_of(original)
    objective = Objective()
    base = rep.objective_loss(objective, original, reference)
    assert abs(base - (0.25 + 0.25 - 0.5)) < 1e-9
    failing = _samples(200, fail_every=4)
    assert rep.objective_loss(objective, failing, reference) > base + 0.2


def test_a_clearly_worse_deployment_is_a_regression_and_noise_is_not() -> None:
    """A child failing a quarter of requests regressed against its parent; a child measured
    with the same distribution did not."""
    parent = _samples(300)
    reference, objective = rep.reference_of(parent), Objective()
    rng = np.random.default_rng(0)
    worse = rep.regression("c", "p", _samples(300, fail_every=4), parent, objective, reference, rng)
    assert worse is not None and worse.loss_change > 0
    same = rep.Samples(parent.ok, parent.latency_ms[::-1].copy(), parent.cost, parent.quality)
    assert rep.regression("c", "p", same, parent, objective, reference, rng) is None


def test_breaking_a_constraint_the_parent_kept_is_a_regression() -> None:
    """A child whose p95 exceeds a p95 constraint the parent kept is reported with the
    constraint, even if the objective has no latency weight."""
    objective = Objective(
        weights={"latency": 0.0}, constraints=[{"metric": "p95_latency_ms", "max": 200}]
    )
    parent, child = _samples(300, latency=100), _samples(300, latency=400)
    found = rep.regression(
        "c", "p", child, parent, objective, rep.reference_of(parent), np.random.default_rng(0)
    )
    assert found is not None and found.broken_constraints == ["p95_latency_ms <= 200"]


def _spec(**node_fields: object) -> GraphSpec:
    node = {"id": "pay", "type": "t", "inputs": [], "outputs": ["x"], **node_fields}
    return GraphSpec.model_validate({"id": "g", "entry": "pay", "nodes": [node]})


def test_any_change_to_a_protected_node_is_a_wrong_change() -> None:
    """A protected node whose config changed is reported."""
    parent = _spec(tags=["protected"])
    child = _spec(tags=["protected"], config={"timeout_s": 5})
    kinds = [w.kind for w in rep.wrong_changes("v2", parent, child)]
    assert kinds == ["protected_node_changed"]


def test_a_cache_on_a_node_not_declared_deterministic_is_wrong() -> None:
    """A cache added to a node without the ``deterministic`` tag is reported."""
    child = _spec(config={"cache_ttl_s": 60})
    assert [w.kind for w in rep.wrong_changes("v2", _spec(), child)] == [
        "cache_on_non_deterministic_node"
    ]


def test_retries_on_a_non_idempotent_side_effect_node_are_wrong() -> None:
    """Retrying a side-effect node not tagged idempotent is reported; on an idempotent one it
    is not."""
    parent = _spec(tags=["side_effects"])
    child = _spec(tags=["side_effects"], config={"retries": 2})
    assert [w.kind for w in rep.wrong_changes("v2", parent, child)] == [
        "retries_on_non_idempotent_side_effect"
    ]
    safe_parent = _spec(tags=["side_effects", "idempotent"])
    safe_child = _spec(tags=["side_effects", "idempotent"], config={"retries": 2})
    assert rep.wrong_changes("v2", safe_parent, safe_child) == []


def test_oracle_fraction_is_clipped_and_undefined_without_a_gap() -> None:
    """Half the way to the oracle is 0.5; beyond it is 1; worse than the original is 0; an
    oracle no better than the original gives None."""
    assert rep.oracle_fraction(1.0, 0.75, 0.5) == 0.5
    assert rep.oracle_fraction(1.0, 0.4, 0.5) == 1.0
    assert rep.oracle_fraction(1.0, 1.2, 0.5) == 0.0
    assert rep.oracle_fraction(1.0, 0.9, 1.1) is None


def test_a_protected_node_skipped_where_the_parent_ran_it_is_a_wrong_change() -> None:
    """A successful run of the child that skipped the protected node, on a request where the
    parent ran it, counts as a bypass; runs that failed before reaching it do not."""
    parent_spec = _spec(tags=["protected", "side_effects"])
    parent = rep.Samples(
        ok=np.array([True, True, True]),
        latency_ms=np.ones(3),
        cost=np.zeros(3),
        quality=np.full(3, np.nan),
        ran={"pay": np.array([True, True, True])},
    )
    child = rep.Samples(
        ok=np.array([True, False, True]),
        latency_ms=np.ones(3),
        cost=np.zeros(3),
        quality=np.full(3, np.nan),
        ran={"pay": np.array([False, False, True])},
    )
    found = rep.protected_skips("v2", parent_spec, child, parent)
    assert [(w.kind, w.detail.split()[0]) for w in found] == [("protected_node_skipped", "1")]
