"""The fan-in's wait for the slowest of nodes run side by side, from their measured latency
distributions, against simulation; and the parallel groups' saving net of it."""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist

import numpy as np
import pytest

from spark.rsi.analysis import analyze, describe_structure
from spark.rsi.fan_in import cdf, fan_in_wait_ms
from spark.rsi.generator import RuleBasedGenerator
from spark.rsi.tail import TailProfile
from spark.telemetry._queries import LATENCY_PROFILE
from tests.rsi.builders import healthy_node_stats, support_spec, version_stats

LEVELS = LATENCY_PROFILE
"""The quantile levels the telemetry store measures."""
_NORMAL = NormalDist()
CHAIN = ["classify", "fetch_account", "fetch_history"]


def _measured(samples: np.ndarray) -> TailProfile:
    """The profile the store would report for these latencies (ms)."""
    points = [(q, float(np.quantile(samples, q))) for q in LEVELS]
    profile = TailProfile.of(float(samples.mean()), points)
    assert profile is not None
    return profile


def _simulated_wait(samples: list[np.ndarray]) -> float:
    stacked = np.stack(samples)
    return float(stacked.max(axis=0).mean() - stacked.mean(axis=1).max())


Draw = Callable[[np.random.Generator, int], np.ndarray]


@pytest.mark.parametrize(
    ("draw", "label"),
    [
        (lambda rng, n: 50 * np.exp(0.5 * rng.standard_normal(n)), "lognormal 50 ms"),
        (lambda rng, n: 20 * np.exp(1.0 * rng.standard_normal(n)), "lognormal heavy"),
        (lambda rng, n: 60 * rng.weibull(1.5, n), "weibull"),
        (lambda rng, n: 30 + 40 * rng.random(n), "uniform 30-70 ms"),
    ],
)
def test_the_wait_matches_simulation(draw: Draw, label: str) -> None:
    """Two and three independent members of the same distribution: the wait rebuilt from the
    measured quantiles lies within 10% (or 1 ms) of what a simulation of the max gives."""
    rng = np.random.default_rng(7)
    for members in (2, 3):
        samples = [draw(rng, 200_000) for _ in range(members)]
        expected = _simulated_wait(samples)
        got = fan_in_wait_ms([_measured(s) for s in samples])
        assert got == pytest.approx(expected, rel=0.10, abs=1.0), label
        assert got > 0


def test_unequal_members_wait_little_for_the_slowest() -> None:
    """A member far slower than the other decides the fan-in alone: almost no extra wait."""
    rng = np.random.default_rng(3)
    slow, fast = 200 * np.exp(0.2 * rng.standard_normal(100_000)), 10 + rng.random(100_000)
    assert fan_in_wait_ms([_measured(slow), _measured(fast)]) < 0.5


def test_constant_latencies_and_single_members_cost_no_wait() -> None:
    fixed = TailProfile.of(40.0, [(q, 40.0) for q in LEVELS])
    assert fixed is not None
    assert fan_in_wait_ms([fixed, fixed]) == pytest.approx(0.0, abs=1e-6)
    assert fan_in_wait_ms([fixed]) == 0.0
    zero = TailProfile.of(1e-9, [(q, 0.0) for q in LEVELS])
    assert zero is not None and fan_in_wait_ms([zero, zero]) == 0.0


def test_the_rebuilt_cdf_is_the_lognormal_one_below_and_above_the_median() -> None:
    """Below the median the lowest segment's fit is carried on: on a lognormal, exact."""
    median, sigma = 50.0, 0.6
    profile = TailProfile.of(
        median * math.exp(sigma**2 / 2),
        [(q, median * math.exp(sigma * _NORMAL.inv_cdf(q))) for q in LEVELS],
    )
    assert profile is not None
    for value in (5.0, 20.0, 49.0, 70.0, 150.0):
        exact = _NORMAL.cdf(math.log(value / median) / sigma)
        assert cdf(profile, value) == pytest.approx(exact, abs=1e-6)
    assert cdf(profile, 0.0) == 0.0
    assert cdf(profile, 10_000.0) == 1.0


def test_a_parallel_group_saves_its_mean_saving_less_the_fan_in_wait() -> None:
    """classify, fetch_account and fetch_history at 100 ms each: by the means, side by side
    they save 200 ms; with a measured spread the fan-in waits for the slowest, so less."""
    rng = np.random.default_rng(11)
    stats = []
    for stat in healthy_node_stats():
        if stat.node_id in CHAIN:
            latencies = 100 * np.exp(0.5 * rng.standard_normal(50_000))
            latencies *= 100 / latencies.mean()
            points = [(q, float(np.quantile(latencies, q))) for q in LEVELS]
            stat = stat.model_copy(update={"mean_ms": 100.0, "latency_quantiles": points})
        stats.append(stat)
    report = analyze(support_spec(), stats, version_stats())
    (group,) = [g for g in report.structure.parallel_groups if g.nodes == CHAIN]
    by_means = describe_structure(support_spec(), report.structure.node_latency_ms)
    (plain,) = [g for g in by_means.parallel_groups if g.nodes == CHAIN]
    assert plain.saved_ms == pytest.approx(200.0, abs=0.5)
    assert plain.fan_in_wait_ms == 0.0
    assert 20.0 < group.fan_in_wait_ms < 60.0  # three lognormals, sigma 0.5, mean 100 ms
    assert group.saved_ms == pytest.approx(plain.saved_ms - group.fan_in_wait_ms, abs=0.01)
    assert group.gain < plain.gain
    proposals = RuleBasedGenerator().generate(
        report, support_spec(), base_version_id="v1", max_hypotheses=20
    )
    (parallel,) = [h for h in proposals if h.title.startswith("Run 'classify'")]
    assert parallel.expected_effects["latency"] == pytest.approx(-group.gain, abs=1e-3)
    assert f"{group.fan_in_wait_ms:.3g} ms the fan-in waits" in parallel.rationale
