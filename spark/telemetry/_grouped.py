"""Rollup sums and sketches of many keys at once, for the write path.

A batch's rows are numbered by key (``index``); every sum is one ``np.bincount`` over the whole
batch and every sketch one sort, instead of a round of NumPy calls per key. The results equal
``rollups.summarise`` applied to each key's rows (``tests/telemetry/test_rollups.py`` pins it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from spark.telemetry.sketch import DISTINCT_K, DistinctSketch, LatencySketch, bin_of, hash32

Array = npt.NDArray[Any]
_MIN_POSITIVE = 1e-9


class Grouped:
    """Per-key sums (arrays of length ``keys``), first and last start, error types, sketches."""

    def __init__(self, columns: Mapping[str, Sequence[Any]], index: Array, keys: int) -> None:
        self.index, self.keys = index, keys
        duration = np.asarray(columns["duration_ms"], dtype=np.float64)
        cost = np.asarray(columns["cost"], dtype=np.float64)
        self.failed = np.fromiter(
            map("error".__eq__, columns["status"]), np.float64, len(columns["status"])
        )
        failed = self.failed
        self.sums = self._moment_sums(duration, cost, failed) | self._optional_sums(columns)
        started = np.asarray(columns["started_at"], dtype=np.float64)
        self.first = np.full(keys, np.inf)
        np.minimum.at(self.first, index, started)
        self.last = np.full(keys, -np.inf)
        np.maximum.at(self.last, index, started)
        self.error_types = self._error_types(columns)
        self.latency = self._latency(duration)
        self.inputs = self._inputs(columns["input_fingerprint"])

    def _sum(self, weights: Array | None = None, mask: Array | None = None) -> Array:
        index = self.index if mask is None else self.index[mask]
        return np.bincount(index, weights=weights, minlength=self.keys).astype(np.float64)

    def _moment_sums(self, duration: Array, cost: Array, failed: Array) -> dict[str, Array]:
        positive = duration > 0
        logs = np.log(duration[positive])
        return {
            "n": self._sum(),
            "errors": self._sum(failed),
            "lat_sum": self._sum(duration),
            "lat_sq": self._sum(duration * duration),
            "log_n": self._sum(mask=positive),
            "log_sum": self._sum(logs, positive),
            "log_sq": self._sum(logs * logs, positive),
            "cost_sum": self._sum(cost),
            "cost_sq": self._sum(cost * cost),
            "err_lat": self._sum(duration * failed),
            "err_cost": self._sum(cost * failed),
            "lat_cost": self._sum(duration * cost),
        }

    def _optional_sums(self, columns: Mapping[str, Sequence[Any]]) -> dict[str, Array]:
        sums = {name: self._column_sum(columns.get(source)) for name, source in _COUNTED.items()}
        rates = columns.get("sampling_rate")
        weights = 1.0 / np.asarray(rates, np.float64) if rates else None
        sums["weight"] = self._sum(weights) if weights is not None else np.zeros(self.keys)
        fingerprints = columns["input_fingerprint"]
        sums["fingerprinted"] = self._sum(np.array([fp is not None for fp in fingerprints], float))
        quality = columns.get("quality") or [None] * len(self.index)
        known = np.array([q is not None for q in quality], dtype=bool)
        values = np.array([q for q in quality if q is not None], dtype=np.float64)
        sums["quality_n"] = self._sum(mask=known)
        sums["quality_sum"] = self._sum(values, known)
        sums["quality_sq"] = self._sum(values * values, known)
        return sums

    def _column_sum(self, values: Sequence[Any] | None) -> Array:
        if not values:
            return np.zeros(self.keys)
        return self._sum(np.asarray(values, dtype=np.float64))

    def _error_types(self, columns: Mapping[str, Sequence[Any]]) -> list[Counter[str]]:
        counters: list[Counter[str]] = [Counter() for _ in range(self.keys)]
        failed = np.flatnonzero(self.failed)
        kinds = columns["error_type"]
        for key, at in zip(self.index[failed].tolist(), failed.tolist(), strict=True):
            counters[key][kinds[at] or "unknown"] += 1
        return counters

    def _latency(self, duration: Array) -> list[LatencySketch]:
        positive = duration > _MIN_POSITIVE
        zeros = np.bincount(self.index[~positive], minlength=self.keys)
        bins = bin_of(duration[positive])
        sketches = [LatencySketch(int(zero)) for zero in zeros]
        if bins.size == 0:
            return sketches
        low, width = int(bins.min()), int(bins.max() - bins.min()) + 1
        codes, counts = np.unique(self.index[positive] * width + (bins - low), return_counts=True)
        owners = codes // width
        bounds = np.searchsorted(owners, np.arange(self.keys + 1))
        for key in range(self.keys):
            start, stop = bounds[key], bounds[key + 1]
            if start < stop:
                sketches[key] = _sketch(
                    int(zeros[key]), codes[start:stop] % width + low, counts[start:stop]
                )
        return sketches

    def _inputs(self, fingerprints: Sequence[str | None]) -> list[DistinctSketch]:
        present = np.array([fp is not None for fp in fingerprints], dtype=bool)
        distinct = {fp: hash32(fp) for fp in set(fingerprints) if fp is not None}
        hashes = np.array([distinct[fp] for fp in fingerprints if fp is not None], np.int64)
        codes = np.unique((self.index[present].astype(np.int64) << 32) | hashes)
        bounds = np.searchsorted(codes >> 32, np.arange(self.keys + 1))
        return [
            DistinctSketch(
                (codes[bounds[k] : bounds[k + 1]][:DISTINCT_K] & 0xFFFFFFFF).astype(np.uint32)
            )
            for k in range(self.keys)
        ]

    def values(self, key: int) -> tuple[dict[str, float], float, float]:
        """The sums, first and last start of key number ``key``."""
        sums = {name: float(column[key]) for name, column in self.sums.items()}
        sums.update((name, round(sums[name])) for name in _INTEGERS)
        return sums, float(self.first[key]), float(self.last[key])


_COUNTED = {"tokens": "tokens", "attempts": "attempts", "cache_hits": "cache_hit"}
_INTEGERS = (
    "n",
    "errors",
    "log_n",
    "tokens",
    "attempts",
    "cache_hits",
    "fingerprinted",
    "quality_n",
)


def _sketch(zero: int, bins: Array, counts: Array) -> LatencySketch:
    offset = int(bins[0])
    dense = np.zeros(int(bins[-1]) - offset + 1, dtype=np.uint64)
    dense[bins - offset] = counts
    return LatencySketch(zero, offset, dense)
