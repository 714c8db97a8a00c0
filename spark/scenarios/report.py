"""The result of a scenario run: figures per version on fresh traffic, the owner's objective,
regressions deployed, protected or non-deterministic nodes changed, and the oracle fraction.

Every version is measured on the same fresh requests (each request runs on every version at
about the same moment), so differences between versions are paired. The objective's loss per
request (lower is better) is

    w_error * error_rate + w_latency * mean_latency / L0 + w_cost * mean_cost / C0
    - w_quality * mean_quality / Q0

with ``L0``, ``C0``, ``Q0`` the original version's mean latency per request (failed requests
included), mean cost per request and mean quality (a term whose reference is 0 or unknown is
left out). "Beyond noise" is a paired bootstrap over the fresh requests: a deployed version
regressed when the 99% one-sided bound of its loss change from its parent stays above zero, or
when it breaks a hard constraint its parent kept with 97.5% bootstrap confidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict

from spark.graphs.spec import GraphSpec, NodeSpec
from spark.rsi.objectives import Constraint, Objective

BOOTSTRAP_RESAMPLES = 2000
REGRESSION_CONFIDENCE = 0.99
CONSTRAINT_CONFIDENCE = 0.975


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Samples:
    """Per-request outcomes of one version on the fresh requests (aligned across versions):
    success flags, latency in ms (failed requests included), cost, quality (NaN when none)."""

    ok: np.ndarray
    latency_ms: np.ndarray
    cost: np.ndarray
    quality: np.ndarray
    ran: dict[str, np.ndarray] | None = None
    """Per node id, whether the node ran (not skipped) on each request."""


@dataclass(frozen=True)
class Reference:
    """The original version's means that normalise the objective's terms."""

    latency_ms: float
    cost: float
    quality: float | None


class VersionMeasurement(_Model):
    """Fresh-traffic figures of one version."""

    version_id: str
    label: str
    runs: int
    success_rate: float
    p50_ms: float
    p95_ms: float
    mean_latency_ms: float
    mean_cost: float
    cost_per_success: float | None
    mean_quality: float | None
    objective_loss: float
    constraints_kept: dict[str, bool]


class CycleReport(_Model):
    """What one RSI cycle did."""

    cycle: int
    outcome: str
    hypothesis: str | None
    candidate_version_id: str | None
    active_version_id: str | None
    reasons: list[str]


class Regression(_Model):
    """A deployed version worse than its parent on the owner's objective or constraints."""

    version_id: str
    parent_id: str
    loss_change: float
    loss_change_low: float
    broken_constraints: list[str]


class WrongChange(_Model):
    """A change the loop must never make: a protected node's spec altered or the node skipped
    on a request where the parent version ran it, a cache on a node not declared
    ``deterministic``, or retries on a non-idempotent side-effect node."""

    version_id: str
    node_id: str
    kind: str
    detail: str


class BenchReport(_Model):
    """Everything ``spark bench run`` prints."""

    scenario: str
    file: str | None
    commit: str | None
    reviewer: str
    cycles_requested: int
    cycles: list[CycleReport]
    lineage: list[str]
    deployed_version_id: str
    versions: list[VersionMeasurement]
    before: VersionMeasurement
    after: VersionMeasurement
    oracle: VersionMeasurement | None
    oracle_fraction: float | None
    deployments: int
    regressions: list[Regression]
    regressions_deployed: int
    wrong_changes: list[WrongChange]
    wrong_changes_count: int
    warmup_requests: int
    live_requests: int
    fresh_requests: int
    telemetry_dropped: int
    workflow_s: float
    wall_time_s: float


# ----- figures -----


def reference_of(samples: Samples) -> Reference:
    """The normalising means of the original version."""
    quality = _mean_quality(samples)
    return Reference(float(samples.latency_ms.mean()), float(samples.cost.mean()), quality)


def objective_loss(objective: Objective, samples: Samples, reference: Reference) -> float:
    """The mean loss per request of ``samples`` (lower is better)."""
    loss = objective.weight("error_rate") * float(1 - samples.ok.mean())
    if reference.latency_ms > 0:
        loss += (
            objective.weight("latency") * float(samples.latency_ms.mean()) / reference.latency_ms
        )
    if reference.cost > 0:
        loss += objective.weight("cost") * float(samples.cost.mean()) / reference.cost
    if reference.quality:
        quality = _mean_quality(samples)
        loss -= objective.weight("quality") * (quality or 0.0) / reference.quality
    return loss


def measure_version(
    version_id: str, label: str, samples: Samples, objective: Objective, reference: Reference
) -> VersionMeasurement:
    """The figures of one version on the fresh requests."""
    successes = int(samples.ok.sum())
    values = constraint_values(samples)
    quality = _mean_quality(samples)
    return VersionMeasurement(
        version_id=version_id,
        label=label,
        runs=len(samples.ok),
        success_rate=round(successes / len(samples.ok), 4),
        p50_ms=round(float(np.percentile(samples.latency_ms, 50)), 2),
        p95_ms=round(float(np.percentile(samples.latency_ms, 95)), 2),
        mean_latency_ms=round(values["mean_latency_ms"], 2),
        mean_cost=round(float(samples.cost.mean()), 8),
        cost_per_success=round(values["cost_per_success"], 8) if successes else None,
        mean_quality=round(quality, 4) if quality is not None else None,
        objective_loss=round(objective_loss(objective, samples, reference), 5),
        constraints_kept={c.describe(): _keeps(c, values) for c in objective.constraints},
    )


def constraint_values(samples: Samples) -> dict[str, float]:
    """The value of every constrainable metric (a missing quality counts as 0)."""
    successes = max(int(samples.ok.sum()), 1)
    return {
        "error_rate": float(1 - samples.ok.mean()),
        "p95_latency_ms": float(np.percentile(samples.latency_ms, 95)),
        "mean_latency_ms": float(samples.latency_ms.mean()),
        "cost_per_success": float(samples.cost.sum()) / successes,
        "quality": _mean_quality(samples) or 0.0,
    }


def _keeps(constraint: Constraint, values: dict[str, float]) -> bool:
    return constraint.holds_for(values[constraint.metric])


def _mean_quality(samples: Samples) -> float | None:
    rated = samples.quality[~np.isnan(samples.quality)]
    return float(rated.mean()) if rated.size else None


# ----- regressions -----


def regression(
    child_id: str,
    parent_id: str,
    child: Samples,
    parent: Samples,
    objective: Objective,
    reference: Reference,
    rng: np.random.Generator,
) -> Regression | None:
    """The regression of ``child`` against ``parent`` beyond noise, or ``None``."""
    indices = rng.integers(0, len(child.ok), size=(BOOTSTRAP_RESAMPLES, len(child.ok)))
    changes = np.array(
        [
            objective_loss(objective, _take(child, i), reference)
            - objective_loss(objective, _take(parent, i), reference)
            for i in indices
        ]
    )
    low = float(np.quantile(changes, 1 - REGRESSION_CONFIDENCE))
    broken = _broken_constraints(child, parent, objective, indices)
    if low <= 0 and not broken:
        return None
    change = objective_loss(objective, child, reference) - objective_loss(
        objective, parent, reference
    )
    return Regression(
        version_id=child_id,
        parent_id=parent_id,
        loss_change=round(change, 5),
        loss_change_low=round(low, 5),
        broken_constraints=broken,
    )


def _broken_constraints(
    child: Samples, parent: Samples, objective: Objective, indices: np.ndarray
) -> list[str]:
    """Constraints the parent keeps and the child breaks in at least 97.5% of resamples."""
    parent_values = constraint_values(parent)
    broken = []
    for constraint in objective.constraints:
        if not _keeps(constraint, parent_values):
            continue
        breaks = [not _keeps(constraint, constraint_values(_take(child, i))) for i in indices]
        if np.mean(breaks) >= CONSTRAINT_CONFIDENCE:
            broken.append(constraint.describe())
    return broken


def _take(samples: Samples, index: np.ndarray) -> Samples:
    return Samples(
        samples.ok[index], samples.latency_ms[index], samples.cost[index], samples.quality[index]
    )


def protected_skips(
    version_id: str, parent: GraphSpec, child: Samples, parent_samples: Samples
) -> list[WrongChange]:
    """Protected nodes of ``parent`` that a successful run of the child skipped on a request
    where the parent ran them (the same fresh request): the protection was bypassed."""
    found = []
    for node in parent.nodes:
        if "protected" not in node.tags or child.ran is None or parent_samples.ran is None:
            continue
        skipped = child.ok & ~child.ran.get(node.id, np.zeros_like(child.ok))
        bypassed = int((skipped & parent_samples.ran.get(node.id, child.ok)).sum())
        if bypassed:
            found.append(
                WrongChange(
                    version_id=version_id,
                    node_id=node.id,
                    kind="protected_node_skipped",
                    detail=f"{bypassed} successful runs skipped {node.id!r} where the parent ran it",
                )
            )
    return found


# ----- wrong changes -----


def wrong_changes(version_id: str, parent: GraphSpec, child: GraphSpec) -> list[WrongChange]:
    """Protected nodes whose spec changed, caches added to nodes not tagged ``deterministic``
    and retries added to non-idempotent side-effect nodes, from ``parent`` to ``child``."""
    found = []
    for old in parent.nodes:
        new = child.node(old.id) if child.has_node(old.id) else None
        if "protected" in old.tags and (new is None or _dump(new) != _dump(old)):
            found.append(
                WrongChange(
                    version_id=version_id,
                    node_id=old.id,
                    kind="protected_node_changed",
                    detail=f"protected node {old.id!r} changed",
                )
            )
        if new is not None and _cache_added(old, new) and "deterministic" not in new.tags:
            found.append(
                WrongChange(
                    version_id=version_id,
                    node_id=old.id,
                    kind="cache_on_non_deterministic_node",
                    detail=f"cache_ttl_s={new.config.cache_ttl_s} on {old.id!r}",
                )
            )
        if new is not None and _retries_added(old, new) and not _retry_safe(old):
            found.append(
                WrongChange(
                    version_id=version_id,
                    node_id=old.id,
                    kind="retries_on_non_idempotent_side_effect",
                    detail=f"retries={new.config.retries} on {old.id!r}",
                )
            )
    return found


def _retries_added(old: NodeSpec, new: NodeSpec) -> bool:
    return new.config.retries > old.config.retries


def _retry_safe(node: NodeSpec) -> bool:
    return "idempotent" in node.tags or "side_effects" not in node.tags


def _cache_added(old: NodeSpec, new: NodeSpec) -> bool:
    return new.config.cache_ttl_s is not None and new.config.cache_ttl_s != old.config.cache_ttl_s


def _dump(node: NodeSpec) -> str:
    return node.model_dump_json()


# ----- oracle -----


def oracle_fraction(original: float, final: float, oracle: float) -> float | None:
    """(original - final) / (original - oracle) clipped to [0, 1]; ``None`` when the oracle
    is no better than the original on the measurement (nothing to reach)."""
    gap = original - oracle
    if gap <= 0:
        return None
    return round(min(1.0, max(0.0, (original - final) / gap)), 4)


# ----- text summary -----


def print_summary(report: BenchReport) -> None:
    """A short human-readable summary of ``report`` on stdout."""
    print(f"scenario {report.scenario} ({report.reviewer}, commit {report.commit})")
    for cycle in report.cycles:
        print(f"  cycle {cycle.cycle}: {cycle.outcome} - {cycle.hypothesis or 'no hypothesis'}")
    print(
        f"  {'version':<14}{'success':>9}{'p50 ms':>9}{'p95 ms':>9}{'cost/ok':>11}"
        f"{'quality':>9}{'loss':>9}"
    )
    for m in report.versions:
        quality = f"{m.mean_quality:.3f}" if m.mean_quality is not None else "-"
        cost = f"{m.cost_per_success:.6f}" if m.cost_per_success is not None else "-"
        print(
            f"  {m.label:<14}{m.success_rate:>9.1%}{m.p50_ms:>9.1f}{m.p95_ms:>9.1f}"
            f"{cost:>11}{quality:>9}{m.objective_loss:>9.3f}"
        )
    print(
        f"  deployments {report.deployments}, regressions {report.regressions_deployed}, "
        f"wrong changes {report.wrong_changes_count}, oracle fraction {report.oracle_fraction}, "
        f"wall time {report.wall_time_s:.0f} s"
    )
