"""Diagnose a graph version from aggregated telemetry: bottlenecks, failure patterns, structure.

Inputs are the SQL aggregates of one version over one window (``NodeStats`` per node and
``VersionStats`` for whole runs) and the version's spec. Rules, all grounded in those figures:

- **errors**: a node's error rate, banded (>= 0.5% low, 2% medium, 5% high, 20% critical) once
  its 95% Wilson lower bound clears 0.5% (a lone failure is noise). The band drops one level when
  the run error rate shows that less than a quarter of the node's failures reach users (absorbed
  by fallbacks or optional branches).
- **latency**: a node's share of the critical path, where each node weighs its mean latency times
  how often it runs; or a heavy tail (p99/p50 >= 4) that makes up a real part of the run's tail.
- **cost**: a node's share of the total cost.
- **quality**: output-format failures (parse, schema, validation...) of a prompted node, or a low
  mean run quality when exactly one node carries a prompt (otherwise it is not attributable).

Structure: depth, width, the critical path weighted by telemetry, and every maximal independent
group (a window of a simple chain whose members share no data and not two side effects; the
entry heads one when it is independent of the nodes after it), the candidates for ``parallelize``,
each with its expected gain: the run's makespan (a node starts once every predecessor settled)
now minus with the group fanned out, as a share of the critical path. Also how often each node
ran in the window (0: never; skipped spans do not count) and its share of the total cost.

Shares are banded alike (>= 25% low, 40% medium, 60% high, 80% critical). Bottlenecks are sorted
by severity, then share. With fewer traces than ``min_traces`` no bottleneck is reported.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field

from spark.errors import InvalidChangeError, InvalidInputError
from spark.graphs.spec import GraphSpec, NodeSpec
from spark.rsi.changes import apply_changes
from spark.rsi.fan_in import fan_in_wait_ms
from spark.rsi.hypotheses import Parallelize
from spark.rsi.tail import TailProfile
from spark.telemetry.aggregates import NodeStats, VersionStats

BottleneckKind = Literal["errors", "latency", "cost", "quality"]
Severity = Literal["low", "medium", "high", "critical"]
ErrorCategory = Literal["transient", "quality", "other"]
SEVERITY_ORDER: dict[Severity, int] = {"low": 0, "medium": 1, "high": 2, "critical": 3}
_SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")
_KIND_ORDER: dict[BottleneckKind, int] = {"errors": 0, "quality": 1, "latency": 2, "cost": 3}

ERROR_RATE_BANDS = (0.005, 0.02, 0.05, 0.20)
SHARE_BANDS = (0.25, 0.40, 0.60, 0.80)
HEAVY_TAIL_RATIO = 4.0
MIN_TAIL_SHARE = 0.25
WILSON_Z = 1.96

_TRANSIENT_MARKERS = (
    "transient", "timeout", "timedout", "connection", "connect", "ratelimit", "throttl",
    "unavailable", "temporar", "overload", "reset", "busy", "retry", "503", "502", "504", "429",
)  # fmt: skip
_QUALITY_MARKERS = (
    "parse", "schema", "validation", "format", "json", "decode", "refus", "invalidoutput",
    "hallucinat", "quality",
)  # fmt: skip


class Bottleneck(BaseModel):
    """A node that accounts for a large part of the run's errors, latency, cost or quality loss."""

    model_config = ConfigDict(extra="forbid")

    node_id: str
    kind: BottleneckKind
    severity: Severity
    metric_value: float = Field(description="error rate, mean ms, total cost or failure rate")
    share: float = Field(ge=0.0, le=1.0, description="share of the total the node accounts for")
    evidence: dict[str, Any] = Field(default_factory=dict)


class FailurePattern(BaseModel):
    """How often one error type occurred on one node."""

    model_config = ConfigDict(extra="forbid")

    node_id: str
    error_type: str
    count: int
    share: float = Field(description="share of the node's errors")
    category: ErrorCategory


class ParallelGroup(BaseModel):
    """One parallelizable chain and what running it side by side is expected to save: the
    run's makespan (each node waits for all its predecessors) recomputed with the chain as a
    fan-out/fan-in, on the same telemetry weights, less ``fan_in_wait_ms``: how much longer than
    the slowest mean the fan-in waits for the slowest member, from the members' measured latency
    distributions (``spark.rsi.fan_in``; 0 where a member has none)."""

    model_config = ConfigDict(extra="forbid")

    nodes: list[str]
    saved_ms: float = Field(ge=0.0)
    fan_in_wait_ms: float = Field(default=0.0, ge=0.0)
    gain: float = Field(ge=0.0, le=1.0, description="share of the critical path saved")


class StructureReport(BaseModel):
    """The graph's shape, with latency weights from telemetry where available."""

    model_config = ConfigDict(extra="forbid")

    entry: str
    node_count: int
    edge_count: int
    depth: int = Field(description="nodes on the longest path")
    width: int = Field(description="most nodes in one topological generation")
    critical_path: list[str]
    critical_path_ms: float
    node_latency_ms: dict[str, float] = Field(
        default_factory=dict, description="mean latency x share of runs executing the node"
    )
    parallelizable_chains: list[list[str]] = Field(default_factory=list)
    parallel_groups: list[ParallelGroup] = Field(
        default_factory=list, description="each parallelizable chain with its expected gain"
    )
    side_effect_nodes: list[str] = Field(default_factory=list)
    protected_nodes: list[str] = Field(default_factory=list)
    node_run_share: dict[str, float] = Field(
        default_factory=dict, description="share of the window's runs executing each node"
    )
    node_cost_share: dict[str, float] = Field(
        default_factory=dict, description="each node's share of the window's total cost"
    )

    def latency_share(self, node_id: str) -> float:
        """The node's share of critical-path latency (0 when off the path or without data)."""
        if node_id not in self.critical_path or self.critical_path_ms <= 0:
            return 0.0
        return self.node_latency_ms.get(node_id, 0.0) / self.critical_path_ms


class DiagnosticReport(BaseModel):
    """Everything analysis found about one version over one window."""

    model_config = ConfigDict(extra="forbid")

    graph_id: str
    version_id: str | None
    trace_count: int
    window: str
    window_seconds: float | None = None
    sufficient_data: bool
    run_error_rate: float = 0.0
    run_p50_ms: float = 0.0
    run_p95_ms: float = 0.0
    run_mean_ms: float = 0.0
    run_mean_ok_ms: float | None = Field(
        default=None, description="mean latency of the runs that did not fail (None: unknown)"
    )
    mean_quality: float | None = None
    bottlenecks: list[Bottleneck] = Field(default_factory=list)
    failure_patterns: list[FailurePattern] = Field(default_factory=list)
    structure: StructureReport
    summary: str
    regime_change: str | None = Field(
        default=None,
        description="why the window starts later than asked: the failure rate changed inside "
        "it (spark.rsi.regime), and the diagnosis reads the runs since",
    )

    @property
    def latency_scale(self) -> float:
        """The mean latency of all runs over that of the runs that did not fail: what turns a
        relative change of the runs' mean latency into the objective's latency term, which is
        relative to the mean successful run (``spark.rsi.objectives``). Above 1 where failed
        runs are slow (timeouts), below where they fail fast; 1 when unknown."""
        if self.run_mean_ok_ms is None or self.run_mean_ok_ms <= 0 or self.run_mean_ms <= 0:
            return 1.0
        return self.run_mean_ms / self.run_mean_ok_ms

    def bottlenecks_of(self, kind: BottleneckKind) -> list[Bottleneck]:
        """The bottlenecks of one kind, in report order."""
        return [b for b in self.bottlenecks if b.kind == kind]


# ----- node facts shared with the generator and validation -----


def is_retry_safe(node: NodeSpec) -> bool:
    """Whether re-running the node is harmless: tagged idempotent, or free of side effects."""
    return node.has_tag("idempotent") or not node.has_tag("side_effects")


def can_run_concurrently(first: NodeSpec, second: NodeSpec) -> bool:
    """Whether two nodes may run in parallel: neither reads or writes a field the other writes,
    and they do not both have side effects."""
    if first.has_tag("side_effects") and second.has_tag("side_effects"):
        return False
    first_writes, second_writes = set(first.outputs), set(second.outputs)
    if first_writes & (set(second.inputs) | second_writes):
        return False
    return not second_writes & set(first.inputs)


def classify_error(error_type: str) -> ErrorCategory:
    """``transient`` (timeouts, rate limits, connection faults), ``quality`` (unparseable or
    invalid output) or ``other``, from the error type's name."""
    name = re.sub(r"[^a-z0-9]", "", error_type.lower())
    if any(marker in name for marker in _TRANSIENT_MARKERS):
        return "transient"
    if any(marker in name for marker in _QUALITY_MARKERS):
        return "quality"
    return "other"


# ----- entry point -----


def analyze(
    spec: GraphSpec,
    node_stats: list[NodeStats],
    version_stats: VersionStats,
    *,
    min_traces: int = 30,
    quality_floor: float = 0.7,
) -> DiagnosticReport:
    """Diagnose ``spec`` from its telemetry aggregates; no bottleneck below ``min_traces`` runs."""
    stats = _stats_by_node(spec, node_stats, version_stats)
    structure = describe_structure(
        spec,
        _expected_latency(stats, version_stats.count),
        run_share=_run_share(stats, version_stats.count),
        cost_share=_cost_share(stats),
        latency_profiles=_latency_profiles(stats),
    )
    sufficient = version_stats.count >= min_traces
    found = _Findings(spec, stats, version_stats, structure, quality_floor)
    bottlenecks = found.bottlenecks() if sufficient else []
    patterns = _failure_patterns(stats.values()) if sufficient else []
    return DiagnosticReport(
        graph_id=spec.id,
        version_id=version_stats.version_id,
        trace_count=version_stats.count,
        window=describe_window(version_stats),
        window_seconds=_window_seconds(version_stats),
        sufficient_data=sufficient,
        run_error_rate=version_stats.error_rate,
        run_p50_ms=version_stats.p50_ms,
        run_p95_ms=version_stats.p95_ms,
        run_mean_ms=version_stats.mean_ms,
        run_mean_ok_ms=version_stats.mean_ok_ms,
        mean_quality=version_stats.mean_quality,
        bottlenecks=bottlenecks,
        failure_patterns=patterns,
        structure=structure,
        summary=_summary(version_stats, bottlenecks, sufficient, min_traces),
    )


def _stats_by_node(
    spec: GraphSpec, node_stats: Sequence[NodeStats], version_stats: VersionStats
) -> dict[str, NodeStats]:
    """Node stats of this graph and version keyed by node id; stats of unknown nodes dropped."""
    if version_stats.graph_id != spec.id:
        raise InvalidInputError(
            f"version stats are for graph {version_stats.graph_id!r}, not {spec.id!r}"
        )
    by_node: dict[str, NodeStats] = {}
    for stats in node_stats:
        _check_node_stats(spec, stats, version_stats)
        if stats.node_id in by_node:
            raise InvalidInputError(f"duplicate node stats for node {stats.node_id!r}")
        if spec.has_node(stats.node_id):
            by_node[stats.node_id] = stats
    return by_node


def _check_node_stats(spec: GraphSpec, stats: NodeStats, version_stats: VersionStats) -> None:
    if stats.graph_id != spec.id:
        raise InvalidInputError(
            f"node stats of {stats.node_id!r} are for graph {stats.graph_id!r}, not {spec.id!r}"
        )
    versions = {stats.version_id, version_stats.version_id}
    if None not in versions and len(versions) > 1:
        raise InvalidInputError(
            f"node stats of {stats.node_id!r} are for version {stats.version_id!r}, "
            f"not {version_stats.version_id!r}"
        )


def _expected_latency(stats: Mapping[str, NodeStats], trace_count: int) -> dict[str, float]:
    """Mean latency per run: a node that runs in a third of the runs weighs a third."""
    if trace_count <= 0:
        return {}
    return {n: s.mean_ms * min(1.0, s.count / trace_count) for n, s in stats.items()}


def _latency_profiles(stats: Mapping[str, NodeStats]) -> dict[str, TailProfile]:
    """Each node's measured latency distribution, where its quantiles can carry one."""
    profiles = {
        node_id: TailProfile.of(s.mean_ms, s.latency_quantiles) for node_id, s in stats.items()
    }
    return {node_id: p for node_id, p in profiles.items() if p is not None}


def _run_share(stats: Mapping[str, NodeStats], trace_count: int) -> dict[str, float]:
    """How often each node ran (skipped spans are not counted, so a node absent from the stats
    never ran in the window); empty without runs."""
    if trace_count <= 0:
        return {}
    return {n: min(1.0, s.count / trace_count) for n, s in stats.items()}


def _cost_share(stats: Mapping[str, NodeStats]) -> dict[str, float]:
    """Each node's share of the total cost (empty when nothing cost anything)."""
    total = sum(s.total_cost for s in stats.values())
    return {n: s.total_cost / total for n, s in stats.items()} if total > 0 else {}


def describe_window(version_stats: VersionStats) -> str:
    """The analysed window as ``start .. end (N traces)`` in UTC, or ``unknown window``."""
    first, last = version_stats.first_started_at, version_stats.last_started_at
    if first is None or last is None:
        return f"unknown window ({version_stats.count} traces)"
    return f"{_iso(first)} .. {_iso(last)} ({version_stats.count} traces)"


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _window_seconds(version_stats: VersionStats) -> float | None:
    first, last = version_stats.first_started_at, version_stats.last_started_at
    return None if first is None or last is None else max(0.0, last - first)


def _summary(
    version_stats: VersionStats, bottlenecks: list[Bottleneck], sufficient: bool, min_traces: int
) -> str:
    if not sufficient:
        return f"insufficient data: {version_stats.count} traces, {min_traces} required"
    head = (
        f"{version_stats.count} traces, error rate {version_stats.error_rate:.1%}, "
        f"p50 {version_stats.p50_ms:.0f} ms, p95 {version_stats.p95_ms:.0f} ms"
    )
    if not bottlenecks:
        return f"{head}; no bottleneck"
    top = "; ".join(f"{b.severity} {b.kind} on {b.node_id!r}" for b in bottlenecks[:3])
    return f"{head}; {len(bottlenecks)} bottleneck(s), top: {top}"


# ----- bottleneck rules -----


def _band(value: float, bands: tuple[float, float, float, float]) -> int | None:
    """Index of the highest band ``value`` reaches, or None below the lowest."""
    reached = [i for i, threshold in enumerate(bands) if value >= threshold]
    return reached[-1] if reached else None


def _max_level(*levels: int | None) -> int | None:
    reached = [level for level in levels if level is not None]
    return max(reached) if reached else None


def _severity(level: int) -> Severity:
    return _SEVERITIES[max(0, min(3, level))]


def wilson_lower_bound(successes: int, trials: int, z: float = WILSON_Z) -> float:
    """Lower end of the Wilson score interval for a proportion (0 when there are no trials)."""
    if trials <= 0:
        return 0.0
    p = successes / trials
    centre = p + z * z / (2 * trials)
    margin = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, (centre - margin) / (1 + z * z / trials))


class _Findings:
    """Applies the bottleneck rules to one version's aggregates."""

    def __init__(
        self,
        spec: GraphSpec,
        stats: dict[str, NodeStats],
        run: VersionStats,
        structure: StructureReport,
        quality_floor: float,
    ) -> None:
        self.spec, self.stats, self.run, self.structure = spec, stats, run, structure
        self.quality_floor = quality_floor
        self.total_errors = sum(s.error_count for s in stats.values())
        self.total_cost = sum(s.total_cost for s in stats.values())

    def bottlenecks(self) -> list[Bottleneck]:
        """Every bottleneck found, most severe first."""
        found: list[Bottleneck | None] = []
        for stats in self.stats.values():
            found += [self.errors(stats), self.latency(stats), self.cost(stats)]
            found.append(self.quality(stats))
        return sorted((b for b in found if b is not None), key=_impact_order)

    def errors(self, stats: NodeStats) -> Bottleneck | None:
        """An error bottleneck when the node fails measurably often."""
        if stats.count <= 0 or wilson_lower_bound(stats.error_count, stats.count) < 0.005:
            return None
        level = _band(stats.error_count / stats.count, ERROR_RATE_BANDS)
        if level is None:
            return None
        share = stats.error_count / self.total_errors
        level += self._run_calibration(stats, share)
        return Bottleneck(
            node_id=stats.node_id,
            kind="errors",
            severity=_severity(level),
            metric_value=stats.error_count / stats.count,
            share=share,
            evidence=self._error_evidence(stats),
        )

    def _run_calibration(self, stats: NodeStats, share: float) -> int:
        """-1 when runs rarely fail although the node does: its failures are mostly absorbed
        (fallbacks, optional branches) before they reach users."""
        user_facing = min(1.0, share * self.run.error_count / stats.error_count)
        return -1 if user_facing < 0.25 else 0

    def _error_evidence(self, stats: NodeStats) -> dict[str, Any]:
        categories = _category_counts(stats)
        return {
            "count": stats.count,
            "error_count": stats.error_count,
            "error_rate": stats.error_rate,
            "run_error_rate": self.run.error_rate,
            "wilson_low": wilson_lower_bound(stats.error_count, stats.count),
            "transient_share": categories["transient"] / stats.error_count,
            "quality_share": categories["quality"] / stats.error_count,
            "error_types": dict(stats.error_types),
            "mean_attempts": stats.mean_attempts,
            "p50_ms": stats.p50_ms,
            "p95_ms": stats.p95_ms,
        }

    def latency(self, stats: NodeStats) -> Bottleneck | None:
        """A latency bottleneck for a large critical-path share or a heavy, costly tail."""
        share = self.structure.latency_share(stats.node_id)
        tail_ratio = stats.p99_ms / stats.p50_ms if stats.p50_ms > 0 else 0.0
        tail_share = self._tail_share(stats)
        heavy_tail = tail_ratio >= HEAVY_TAIL_RATIO and tail_share >= MIN_TAIL_SHARE
        tail_level = (1 if tail_share >= 0.5 else 0) if heavy_tail else None
        level = _max_level(_band(share, SHARE_BANDS), tail_level)
        if level is None:
            return None
        evidence = _latency_evidence(stats) | {
            "critical_path_share": share,
            "tail_ratio": tail_ratio,
            "tail_share": tail_share,
            "heavy_tail": heavy_tail,
        }
        return Bottleneck(
            node_id=stats.node_id,
            kind="latency",
            severity=_severity(level),
            metric_value=stats.mean_ms,
            share=share,
            evidence=evidence,
        )

    def _tail_share(self, stats: NodeStats) -> float:
        """How much of the run's p50-to-p95 spread the node's own spread could explain (0 off
        the critical path)."""
        run_spread = self.run.p95_ms - self.run.p50_ms
        if run_spread <= 0 or stats.node_id not in self.structure.critical_path:
            return 0.0
        return max(0.0, min(1.0, (stats.p95_ms - stats.p50_ms) / run_spread))

    def cost(self, stats: NodeStats) -> Bottleneck | None:
        """A cost bottleneck when the node holds a large share of the total cost."""
        if self.total_cost <= 0 or stats.total_cost <= 0:
            return None
        share = stats.total_cost / self.total_cost
        level = _band(share, SHARE_BANDS)
        if level is None:
            return None
        evidence = _latency_evidence(stats) | {
            "total_cost": stats.total_cost,
            "mean_cost": stats.mean_cost,
            "total_tokens": stats.total_tokens,
        }
        return Bottleneck(
            node_id=stats.node_id,
            kind="cost",
            severity=_severity(level),
            metric_value=stats.total_cost,
            share=share,
            evidence=evidence,
        )

    def quality(self, stats: NodeStats) -> Bottleneck | None:
        """A quality bottleneck on a prompted node: bad-output failures or low run quality."""
        node = self.spec.node(stats.node_id)
        if not node.config.prompt or stats.count <= 0:
            return None
        failures = _category_counts(stats)["quality"]
        failure_level = _band(failures / stats.count, ERROR_RATE_BANDS) if failures else None
        level = _max_level(failure_level, self._low_quality_level(node))
        if level is None:
            return None
        return Bottleneck(
            node_id=node.id,
            kind="quality",
            severity=_severity(level),
            metric_value=failures / stats.count,
            share=failures / self.total_errors if self.total_errors else 1.0,
            evidence={
                "quality_failures": failures,
                "quality_failure_rate": failures / stats.count,
                "mean_quality": self.run.mean_quality,
                "quality_floor": self.quality_floor,
                "error_types": dict(stats.error_types),
            },
        )

    def _low_quality_level(self, node: NodeSpec) -> int | None:
        """Level for low mean run quality, attributed only when ``node`` is the one prompt."""
        quality = self.run.mean_quality
        prompted = [n for n in self.spec.nodes if n.config.prompt]
        if quality is None or quality >= self.quality_floor or prompted != [node]:
            return None
        return 2 if quality < self.quality_floor - 0.2 else 1


def _latency_evidence(stats: NodeStats) -> dict[str, Any]:
    return {
        "count": stats.count,
        "mean_ms": stats.mean_ms,
        "p50_ms": stats.p50_ms,
        "p95_ms": stats.p95_ms,
        "p99_ms": stats.p99_ms,
        "latency_quantiles": [list(point) for point in stats.latency_quantiles],
        "distinct_input_ratio": stats.distinct_input_ratio,
        "cache_hit_rate": stats.cache_hit_rate,
    }


def _category_counts(stats: NodeStats) -> dict[ErrorCategory, int]:
    counts: dict[ErrorCategory, int] = {"transient": 0, "quality": 0, "other": 0}
    for error_type, count in stats.error_types.items():
        counts[classify_error(error_type)] += count
    untyped = stats.error_count - sum(stats.error_types.values())
    counts["other"] += max(0, untyped)
    return counts


def _impact_order(bottleneck: Bottleneck) -> tuple[int, float, int, str]:
    severity = SEVERITY_ORDER[bottleneck.severity]
    return (-severity, -bottleneck.share, _KIND_ORDER[bottleneck.kind], bottleneck.node_id)


def _failure_patterns(stats: Iterable[NodeStats]) -> list[FailurePattern]:
    patterns = [
        FailurePattern(
            node_id=s.node_id,
            error_type=error_type,
            count=count,
            share=count / max(s.error_count, sum(s.error_types.values())),
            category=classify_error(error_type),
        )
        for s in stats
        for error_type, count in s.error_types.items()
        if count > 0
    ]
    return sorted(patterns, key=lambda p: (-p.count, p.node_id, p.error_type))


# ----- structure -----


def describe_structure(
    spec: GraphSpec,
    node_latency_ms: Mapping[str, float],
    *,
    run_share: Mapping[str, float] | None = None,
    cost_share: Mapping[str, float] | None = None,
    latency_profiles: Mapping[str, TailProfile] | None = None,
) -> StructureReport:
    """Depth, width, critical path (by ``node_latency_ms``), parallelizable chains with their
    expected gain (less the fan-in's wait for the slowest member, from ``latency_profiles``),
    and (when given) how often each node ran and its share of the cost. With ``run_share``
    every node of the spec gets a share (0: it never ran in the window)."""
    graph = spec.to_networkx()
    path, path_ms = _critical_path(spec, graph, node_latency_ms)
    chains = parallelizable_chains(spec)
    return StructureReport(
        entry=spec.entry,
        node_count=graph.number_of_nodes(),
        edge_count=graph.number_of_edges(),
        depth=int(nx.dag_longest_path_length(graph)) + 1,
        width=max(len(generation) for generation in nx.topological_generations(graph)),
        critical_path=path,
        critical_path_ms=path_ms,
        node_latency_ms={n: node_latency_ms.get(n, 0.0) for n in sorted(graph.nodes)},
        parallelizable_chains=chains,
        parallel_groups=[
            _parallel_group(spec, chain, node_latency_ms, path_ms, latency_profiles or {})
            for chain in chains
        ],
        side_effect_nodes=[n.id for n in spec.nodes if n.has_tag("side_effects")],
        protected_nodes=[n.id for n in spec.nodes if n.has_tag("protected")],
        node_run_share=_every_node(graph, run_share),
        node_cost_share=dict(sorted((cost_share or {}).items())),
    )


def _every_node(graph: nx.DiGraph, shares: Mapping[str, float] | None) -> dict[str, float]:
    return {} if shares is None else {n: shares.get(n, 0.0) for n in sorted(graph.nodes)}


def makespan_ms(spec: GraphSpec, node_latency_ms: Mapping[str, float]) -> float:
    """Expected run duration under the runtime's rule that a node starts once every predecessor
    has settled: the latest finish over all nodes, each lasting its weight."""
    graph = spec.to_networkx()
    finish: dict[str, float] = {}
    for node_id in nx.topological_sort(graph):
        start = max((finish[p] for p in graph.predecessors(node_id)), default=0.0)
        finish[node_id] = start + node_latency_ms.get(node_id, 0.0)
    return max(finish.values(), default=0.0)


def _parallel_group(
    spec: GraphSpec,
    chain: list[str],
    weights: Mapping[str, float],
    path_ms: float,
    profiles: Mapping[str, TailProfile],
) -> ParallelGroup:
    """The chain's expected saving: makespan now minus makespan with the chain parallelized,
    less the fan-in's expected wait for the slowest member beyond the slowest mean (the
    members that run side by side: an entry heading the chain still runs first)."""
    try:
        after = makespan_ms(apply_changes(spec, [Parallelize(node_ids=chain)]), weights)
    except InvalidChangeError:  # a chain the change cannot express saves nothing
        return ParallelGroup(nodes=list(chain), saved_ms=0.0, gain=0.0)
    side_by_side = chain[1:] if spec.is_entry(chain[0]) else chain
    measured = [profiles[n] for n in side_by_side if n in profiles]
    wait = fan_in_wait_ms(measured) if len(measured) == len(side_by_side) else 0.0
    saved = max(0.0, makespan_ms(spec, weights) - after - wait)
    gain = min(1.0, saved / path_ms) if path_ms > 0 else 0.0
    return ParallelGroup(
        nodes=list(chain),
        saved_ms=round(saved, 3),
        fan_in_wait_ms=round(wait, 3),
        gain=round(gain, 4),
    )


def _critical_path(
    spec: GraphSpec, graph: nx.DiGraph, weights: Mapping[str, float]
) -> tuple[list[str], float]:
    """The heaviest path from the entry (ties: the longer, then lexicographically first)."""
    best: dict[str, tuple[float, int, list[str]]] = {}
    for node in nx.lexicographical_topological_sort(graph):
        weight = weights.get(node, 0.0)
        incoming = [best[p] for p in sorted(graph.predecessors(node)) if p in best]
        if spec.is_entry(node) or incoming:
            total, length, path = max(incoming, key=lambda b: b[:2], default=(0.0, 0, []))
            best[node] = (total + weight, length + 1, [*path, node])
    total, _, path = max(best.values(), key=lambda b: b[:2])
    return path, total


def parallelizable_chains(spec: GraphSpec) -> list[list[str]]:
    """Every maximal independent group: a window of a simple chain (no branching inside,
    unconditional links) whose members can all run concurrently (``can_run_concurrently``).

    The entry heads a group when it is independent of the nodes after it; it still runs first
    (a run starts there), so such a group needs two more members (``changes`` parallelizes
    the rest after it). Groups overlap where a member conflicts with only part of a window."""
    chains: list[list[str]] = []
    for segment in _simple_segments(spec):
        chains += _independent_runs(spec, segment)
    return chains


def _simple_segments(spec: GraphSpec) -> list[list[str]]:
    out_degree = Counter(edge.source for edge in spec.edges)
    in_degree = Counter(edge.target for edge in spec.edges)
    links = {
        edge.source: edge.target
        for edge in spec.edges
        if edge.condition is None and out_degree[edge.source] == 1 and in_degree[edge.target] == 1
    }
    starts = sorted(set(links) - set(links.values()))
    segments = []
    for start in starts:
        segment = [start]
        while segment[-1] in links:
            segment.append(links[segment[-1]])
        segments.append(segment)
    return segments


def _independent_runs(spec: GraphSpec, segment: list[str]) -> list[list[str]]:
    """Maximal windows of ``segment`` with no conflicting pair (sliding, may overlap)."""
    nodes = {node.id: node for node in spec.nodes}
    runs: list[list[str]] = []
    current: list[str] = []
    for node_id in segment:
        node = nodes[node_id]
        conflicts = [i for i, m in enumerate(current) if not can_run_concurrently(nodes[m], node)]
        if conflicts:
            if len(current) >= 2:
                runs.append(current)
            current = current[conflicts[-1] + 1 :]
        current = [*current, node_id]
    if len(current) >= 2:
        runs.append(current)
    return [run for run in runs if not spec.is_entry(run[0]) or _entry_group_counts(run, runs)]


def _entry_group_counts(run: list[str], runs: list[list[str]]) -> bool:
    """A group headed by the entry parallelizes only the rest (the entry stays first): worth
    reporting when two or more follow it and no other group already covers them."""
    rest = set(run[1:])
    return len(rest) >= 2 and not any(other != run and rest <= set(other) for other in runs)
