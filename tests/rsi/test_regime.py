"""A change of the failure rate inside the analysis window is found where it happened, and a
steady rate is not cut."""

from __future__ import annotations

import numpy as np

from spark.rsi.regime import failure_regime_change


def failures(*segments: tuple[int, float], seed: int = 1) -> list[float]:
    """Runs oldest first: ``(count, failure rate)`` per segment."""
    rng = np.random.default_rng(seed)
    return [float(x) for n, rate in segments for x in rng.random(n) < rate]


def times(count: int) -> list[float]:
    return [1000.0 + i / 30 for i in range(count)]


def test_a_throttling_onset_is_found_where_it_began() -> None:
    """5,000 runs failing 0.5%, then 150 failing 35% (a provider started throttling): the
    recent regime starts within a few runs of the onset, with both rates measured."""
    runs = failures((5000, 0.005), (150, 0.35))
    change = failure_regime_change(times(len(runs)), runs, min_runs=100)
    assert change is not None
    assert abs(change.index - 5000) <= 10
    assert change.started_at == times(len(runs))[change.index]
    assert change.before < 0.01 and change.after > 0.25
    assert change.p_value <= 0.01
    assert "diagnosed on the runs since" in change.describe()


def test_an_outage_that_ended_is_found_too() -> None:
    """30% failures that stopped: the window starts after the recovery."""
    runs = failures((400, 0.3), (1500, 0.01))
    change = failure_regime_change(times(len(runs)), runs, min_runs=100)
    assert change is not None
    assert abs(change.index - 400) <= 10
    assert change.after < 0.02


def test_a_steady_failure_rate_is_not_cut() -> None:
    """Twenty windows of 3,000 runs at a steady 5%: no change found in any (alpha 0.01)."""
    found = [
        failure_regime_change(times(3000), failures((3000, 0.05), seed=s), min_runs=100, seed=s)
        for s in range(20)
    ]
    assert found == [None] * 20


def test_no_change_without_room_or_without_variation() -> None:
    """Fewer than two minimum segments, no failure at all, or mismatched lengths: None."""
    runs = failures((150, 0.0), (40, 0.5))
    assert failure_regime_change(times(len(runs)), runs, min_runs=100) is None
    assert failure_regime_change(times(500), [0.0] * 500, min_runs=100) is None
    assert failure_regime_change(times(10), [0.0] * 500, min_runs=100) is None
