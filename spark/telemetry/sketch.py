"""Mergeable sketches for telemetry rollups: DDSketch quantiles and KMV distinct counts.

``LatencySketch`` is a DDSketch (Masson, Rim & Lee, VLDB 2019): value ``x > 0`` falls in bin
``ceil(log_gamma(x))`` with ``gamma = (1 + a) / (1 - a)``, so every quantile it returns is within
relative error ``a`` (1%) of the true value at that rank. Bins are dense counts from an offset;
merging adds counts bin by bin, so it is exact, associative and commutative. Non-positive values
go to a zero bin and read back as 0.

``DistinctSketch`` is a k-minimum-values sketch of 32-bit hashes: exact below ``k`` distinct
values, about ``1/sqrt(k)`` relative error above; merging is a union that keeps the ``k``
smallest hashes.

Both serialize to compact bytes (little-endian NumPy arrays) for the rollup tables.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

RELATIVE_ACCURACY = 0.01
_GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA = math.log(_GAMMA)
_MIN_POSITIVE = 1e-9
_HEADER = struct.Struct("<qqB")  # zero count, offset of the first bin, encoding
_DENSE, _SPARSE = 0, 1
_COUNTS = np.dtype("<u8")
_STORED_COUNTS = np.dtype("<u4")  # per rollup row: far below 2**32 values
_POSITIONS = np.dtype("<u2")
DISTINCT_K = 256
_HASHES = np.dtype("<u4")
_HEX_DIGITS = 16  # 32 bits: exact enough while distinct values << 2**32 / k


class LatencySketch:
    """Counts per logarithmic bin: quantiles within 1% relative error, exact merges."""

    __slots__ = ("counts", "offset", "zero")

    def __init__(
        self, zero: int = 0, offset: int = 0, counts: npt.NDArray[np.uint64] | None = None
    ) -> None:
        self.zero = zero
        self.offset = offset
        self.counts = counts if counts is not None else np.zeros(0, dtype=_COUNTS)

    @classmethod
    def of(cls, values: Iterable[float]) -> LatencySketch:
        """A sketch of ``values``."""
        array = np.asarray(values if isinstance(values, np.ndarray) else list(values), np.float64)
        positive = array[array > _MIN_POSITIVE]
        zero = int(array.size - positive.size)
        if positive.size == 0:
            return cls(zero)
        bins = bin_of(positive)
        low = int(bins.min())
        return cls(zero, low, np.bincount(bins - low).astype(_COUNTS))

    @property
    def count(self) -> int:
        """How many values the sketch holds."""
        return self.zero + int(self.counts.sum())

    def merge(self, other: LatencySketch) -> LatencySketch:
        """A new sketch holding the values of both."""
        return merge_all((self, other))

    def quantile(self, q: float) -> float:
        """The value at rank ``q * (count - 1)`` (lower rank), within 1% relative error."""
        total = self.count
        if total == 0:
            return 0.0
        rank = q * (total - 1)
        if rank < self.zero:
            return 0.0
        cumulative = np.cumsum(self.counts) + self.zero
        index = int(np.searchsorted(cumulative, rank, side="right"))
        return 2 * _GAMMA ** (self.offset + index) / (_GAMMA + 1)

    def to_bytes(self) -> bytes:
        """The sketch as bytes (``from_bytes`` reads them back): dense 32-bit counts, or the
        filled bins' positions and counts when under a third of the bins are filled."""
        filled = np.flatnonzero(self.counts)
        if filled.size * 3 < self.counts.size and self.counts.size < 2**16:
            body = filled.astype(_POSITIONS).tobytes()
            body += self.counts[filled].astype(_STORED_COUNTS).tobytes()
            return _HEADER.pack(self.zero, self.offset, _SPARSE) + body
        dense = self.counts.astype(_STORED_COUNTS).tobytes()
        return _HEADER.pack(self.zero, self.offset, _DENSE) + dense

    @classmethod
    def from_bytes(cls, data: bytes) -> LatencySketch:
        """The sketch that ``to_bytes`` wrote."""
        zero, offset, encoding = _HEADER.unpack_from(data)
        body = np.frombuffer(data, dtype=np.uint8, offset=_HEADER.size)
        if encoding == _DENSE:
            return cls(zero, offset, body.view(_STORED_COUNTS).astype(_COUNTS))
        filled = body.size // (_POSITIONS.itemsize + _STORED_COUNTS.itemsize)
        positions = body[: filled * _POSITIONS.itemsize].view(_POSITIONS)
        counts = np.zeros(int(positions[-1]) + 1 if filled else 0, dtype=_COUNTS)
        counts[positions] = body[filled * _POSITIONS.itemsize :].view(_STORED_COUNTS)
        return cls(zero, offset, counts)


def bin_of(positive: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """The bin of each positive value."""
    return np.ceil(np.log(positive) / _LOG_GAMMA).astype(np.int64)


def merge_all(sketches: Sequence[LatencySketch]) -> LatencySketch:
    """One sketch holding the values of all ``sketches`` (one allocation however many)."""
    filled = [s for s in sketches if s.counts.size]
    zero = sum(s.zero for s in sketches)
    if not filled:
        return LatencySketch(zero)
    low = min(s.offset for s in filled)
    high = max(s.offset + s.counts.size for s in filled)
    counts = np.zeros(high - low, dtype=_COUNTS)
    for sketch in filled:
        start = sketch.offset - low
        counts[start : start + sketch.counts.size] += sketch.counts
    return LatencySketch(zero, low, counts)


class DistinctSketch:
    """The ``k`` smallest 32-bit hashes of the values seen: a mergeable distinct count."""

    __slots__ = ("hashes",)

    def __init__(self, hashes: npt.NDArray[np.uint32] | None = None) -> None:
        self.hashes = hashes if hashes is not None else np.zeros(0, dtype=_HASHES)

    @classmethod
    def of(cls, values: Iterable[str]) -> DistinctSketch:
        """A sketch of the distinct strings in ``values``."""
        hashes = np.fromiter((hash32(value) for value in set(values)), dtype=_HASHES)
        return cls(np.unique(hashes)[:DISTINCT_K])

    def estimate(self) -> float:
        """The estimated number of distinct values (exact below ``DISTINCT_K``)."""
        if self.hashes.size < DISTINCT_K:
            return float(self.hashes.size)
        kth = float(self.hashes[DISTINCT_K - 1]) + 1.0
        return (DISTINCT_K - 1) * 2.0**32 / kth

    def to_bytes(self) -> bytes:
        """The sketch as bytes."""
        return self.hashes.astype(_HASHES).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> DistinctSketch:
        """The sketch that ``to_bytes`` wrote."""
        return cls(np.frombuffer(data, dtype=_HASHES))


def merge_distinct(sketches: Sequence[DistinctSketch]) -> DistinctSketch:
    """One sketch of the union of the values of all ``sketches``."""
    if not sketches:
        return DistinctSketch()
    # A full sketch's largest hash bounds the union's k-th smallest: drop what lies above it.
    full = [int(s.hashes[-1]) for s in sketches if s.hashes.size >= DISTINCT_K]
    parts = [s.hashes for s in sketches]
    if full:
        bound = min(full)
        parts = [h[: int(np.searchsorted(h, bound, side="right"))] for h in parts]
    return DistinctSketch(np.unique(np.concatenate(parts))[:DISTINCT_K])


def hash32(value: str) -> int:
    """32 uniform bits of ``value``: the runtime's fingerprints are already SHA-256 hex digits
    (``spark.graphs.policies.input_fingerprint``), so their first eight are taken as they are."""
    if len(value) >= _HEX_DIGITS:
        try:
            return int(value[:8], 16)
        except ValueError:
            pass
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=4).digest(), "little")
