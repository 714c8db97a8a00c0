"""Aggregated telemetry views returned by the telemetry store and read by RSI analysis.

These are pydantic models: small summaries that may cross the Temporal boundary.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class NodeStats(BaseModel):
    """Per-node statistics over a window of spans (skipped spans excluded)."""

    graph_id: str
    version_id: str | None = None
    node_id: str
    count: int
    error_count: int
    error_rate: float
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    # (quantile, ms) pairs, ascending, of the upper half of the latency distribution
    # (spark.telemetry._queries.LATENCY_PROFILE); empty where the source did not give them
    latency_quantiles: tuple[tuple[float, float], ...] = ()
    total_cost: float = 0.0
    mean_cost: float = 0.0
    total_tokens: int = 0
    mean_attempts: float = 1.0
    cache_hit_rate: float = 0.0
    # distinct input fingerprints / fingerprinted spans; low = repeated inputs. 1.0 where no span
    # is fingerprinted: only nodes a cache could serve are (spark.graphs.runtime.measures_repeats)
    distinct_input_ratio: float = 1.0
    error_types: dict[str, int] = Field(default_factory=dict)


class VersionStats(BaseModel):
    """Whole-run statistics of one graph version over a window of traces.

    ``count`` is the traces recorded; ``estimated_count`` the runs they stand for, each trace
    counting ``1 / sampling_rate`` (equal to ``count`` without sampling, None when unknown).
    Means, rates and percentiles are over the recorded traces: unbiased for all runs, because
    sampling is decided per trace independently of the run.
    """

    graph_id: str
    version_id: str | None = None
    count: int
    estimated_count: float | None = None
    error_count: int
    error_rate: float
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_cost: float = 0.0
    mean_quality: float | None = None
    quality_count: int = 0
    mean_ok_ms: float | None = None  # of the runs that did not fail (None: every run failed)
    first_started_at: float | None = None
    last_started_at: float | None = None


class TraceMetrics(BaseModel):
    """Per-trace metric arrays for statistical tests (one entry per trace, same order)."""

    graph_id: str
    version_id: str | None = None
    trace_ids: list[str] = Field(default_factory=list)
    latency_ms: list[float] = Field(default_factory=list)
    error: list[float] = Field(default_factory=list)  # 1.0 = failed run, 0.0 = ok
    cost: list[float] = Field(default_factory=list)
    quality: list[float | None] = Field(default_factory=list)  # feedback score or trace quality
    started_at: list[float] = Field(default_factory=list)  # epoch seconds; empty where unknown


class Moments(BaseModel):
    """Count, sum and sum of squares of one metric over a window's runs."""

    count: int = 0
    sum: float = 0.0
    sum_squares: float = 0.0


class ArmMoments(BaseModel):
    """One routing arm's runs as SQL aggregates, for statistical tests at any window size.

    Every figure is per request, failed requests included (time to a final outcome and what it
    cost, as the caller sees it): ``errors`` counts failed runs out of ``runs``;
    ``log_latency`` (natural log of milliseconds, runs with a positive duration) and
    ``latency`` (milliseconds) and ``cost`` cover every run; ``quality`` covers runs with a
    feedback score or a recorded quality. The cross sums (error x latency, error x cost,
    latency x cost) give the variance of any weighted combination of the three.
    """

    runs: int = 0
    errors: int = 0
    log_latency: Moments = Field(default_factory=Moments)
    latency: Moments = Field(default_factory=Moments)
    cost: Moments = Field(default_factory=Moments)
    quality: Moments = Field(default_factory=Moments)
    error_latency: float = 0.0
    error_cost: float = 0.0
    latency_cost: float = 0.0


class RecordedRun(BaseModel):
    """A production request kept for offline replay."""

    trace_id: str
    version_id: str
    started_at: float
    inputs: dict[str, Any]
    side_effect_outputs: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="recorded outputs of side-effect nodes, by node id"
    )
