"""The rollup sketches against exact answers: DDSketch quantiles and KMV distinct counts."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from spark.telemetry.sketch import (
    RELATIVE_ACCURACY,
    DistinctSketch,
    LatencySketch,
    merge_all,
    merge_distinct,
)

QUANTILES = (0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999)


def _lognormal(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.lognormal(mean=4.0, sigma=1.5, size=n)


def _bimodal(rng: np.random.Generator, n: int) -> np.ndarray:
    fast = rng.normal(20.0, 3.0, size=int(n * 0.7)).clip(0.5)
    slow = rng.lognormal(mean=8.0, sigma=0.4, size=n - fast.size)
    return np.concatenate([fast, slow])


def _exact(values: np.ndarray, q: float) -> float:
    """The value at rank ``q * (n - 1)`` rounded down: what DDSketch's guarantee is about."""
    ordered = np.sort(values)
    return float(ordered[int(q * (values.size - 1))])


@pytest.mark.parametrize("draw", [_lognormal, _bimodal], ids=["lognormal", "bimodal"])
def test_quantiles_within_one_percent_relative_error(draw: Callable[..., np.ndarray]) -> None:
    """Every quantile of a skewed sample is within 1% of the exact value at that rank."""
    values = draw(np.random.default_rng(7), 200_000)
    sketch = LatencySketch.of(values)
    for q in QUANTILES:
        exact = _exact(values, q)
        assert abs(sketch.quantile(q) - exact) <= RELATIVE_ACCURACY * exact, q


def test_merged_parts_equal_the_sketch_of_the_whole_in_any_grouping() -> None:
    """Merging is exact and associative: parts merged any way give the whole's bins."""
    values = _bimodal(np.random.default_rng(3), 30_000)
    a, b, c = (LatencySketch.of(part) for part in np.array_split(values, 3))
    whole = LatencySketch.of(values)
    for merged in (a.merge(b).merge(c), a.merge(b.merge(c)), merge_all([c, a, b])):
        assert (merged.zero, merged.offset) == (whole.zero, whole.offset)
        assert np.array_equal(merged.counts, whole.counts)


def test_zeros_and_empty_sketches() -> None:
    """Zero durations read back as 0; an empty sketch has no values and quantile 0."""
    sketch = LatencySketch.of([0.0, 0.0, 0.0, 50.0])
    assert sketch.count == 4 and sketch.quantile(0.5) == 0.0
    assert abs(sketch.quantile(1.0) - 50.0) <= 0.5
    assert LatencySketch().count == 0 and LatencySketch().quantile(0.9) == 0.0
    assert merge_all([LatencySketch(), sketch]).count == 4


@pytest.mark.parametrize(
    "values",
    [[], [0.0, 0.0], list(_lognormal(np.random.default_rng(1), 5000)), [1.0, 1e3, 1e6, 0.0]],
    ids=["empty", "zeros", "dense", "sparse"],
)
def test_bytes_round_trip(values: list[float]) -> None:
    """A sketch read back from its bytes (dense or sparse encoding) has the same bins."""
    sketch = LatencySketch.of(values)
    back = LatencySketch.from_bytes(sketch.to_bytes())
    assert (back.zero, back.offset) == (sketch.zero, sketch.offset)
    assert np.array_equal(back.counts, sketch.counts)


def test_distinct_counts_exact_when_few_and_close_when_many() -> None:
    """Below k distinct values the count is exact; at 50k, within 15% (about 2 sigma at k=256)."""
    few = [f"fp-{i % 100}" for i in range(1000)]
    assert DistinctSketch.of(few).estimate() == 100
    many = [f"fp-{i}" for i in range(50_000)]
    parts = [DistinctSketch.of(many[i::4]) for i in range(4)]
    merged = merge_distinct(parts)
    assert np.array_equal(merged.hashes, DistinctSketch.of(many).hashes)
    assert abs(merged.estimate() - 50_000) <= 0.15 * 50_000
    back = DistinctSketch.from_bytes(merged.to_bytes())
    assert back.estimate() == merged.estimate()
