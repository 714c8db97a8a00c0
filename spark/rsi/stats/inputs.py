"""Checks that turn caller data into clean float arrays, or raise ``InvalidInputError``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from spark.errors import InvalidInputError
from spark.rsi.stats.models import MetricKind

FloatArray = NDArray[np.float64]
Samples = Sequence[float] | NDArray[Any]


def as_samples(values: Samples, *, label: str, minimum: int = 2) -> FloatArray:
    """Return ``values`` as a finite 1-D float array of at least ``minimum`` entries."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise InvalidInputError(f"{label!r} must be a flat sequence, got shape {array.shape}")
    if array.size == 0:
        raise InvalidInputError(f"{label!r} is empty: an arm needs at least {minimum} samples")
    if array.size < minimum:
        raise InvalidInputError(f"{label!r} has {array.size} samples, needs {minimum}")
    if not np.all(np.isfinite(array)):
        raise InvalidInputError(f"{label!r} holds NaN or infinite values")
    return array


def as_metric_samples(values: Samples, kind: MetricKind, label: str) -> FloatArray:
    """Return clean samples for a metric of ``kind``: positive latencies, 0/1 rates."""
    array = as_samples(values, label=label)
    if kind == "latency" and np.any(array <= 0):
        raise InvalidInputError(f"{label!r} holds a latency <= 0 (min {array.min()!r})")
    if kind == "rate" and not np.all((array == 0) | (array == 1)):
        raise InvalidInputError(f"{label!r} is a rate metric and must hold only 0 and 1")
    return array


def as_pair(
    baseline: Samples,
    candidate: Samples,
    kind: MetricKind,
    name: str,
) -> tuple[FloatArray, FloatArray]:
    """Clean both arms of one metric, labelling errors with the arm and the metric name."""
    return (
        as_metric_samples(baseline, kind, f"baseline[{name}]"),
        as_metric_samples(candidate, kind, f"candidate[{name}]"),
    )


def check_paired(baseline: FloatArray, candidate: FloatArray, name: str) -> None:
    """Raise unless paired arms have one candidate value per baseline value."""
    if baseline.size != candidate.size:
        raise InvalidInputError(
            f"paired metric {name!r} has {baseline.size} baseline and "
            f"{candidate.size} candidate samples; paired arms must match"
        )
