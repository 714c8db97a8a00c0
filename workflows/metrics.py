"""The RSI loop's own metrics, emitted from workflow code through the SDK's metric meter.

``workflow.metric_meter()`` records nothing while a workflow task replays history, so each event
counts once however often the worker replays it, and emitting adds no command to the history (no
patch needed). The worker exports them with the SDK's own metrics on its Prometheus endpoint
(``SPARK_METRICS_ADDRESS``; see ``spark.observability``, which lists every name). Every metric
carries the SDK's ``namespace``, ``task_queue`` and ``workflow_type`` labels plus ``graph_id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.common import MetricMeter

with workflow.unsafe.imports_passed_through():
    from spark.observability.names import (
        CYCLES,
        DECISIONS,
        DEPLOYMENTS,
        HYPOTHESES,
        REVIEW_WAIT,
        ROLLBACKS,
    )

if TYPE_CHECKING:
    from spark.rsi.hypotheses import Hypothesis


def _meter(graph_id: str) -> MetricMeter:
    return workflow.metric_meter().with_additional_attributes({"graph_id": graph_id})


def cycle_finished(graph_id: str, outcome: str) -> None:
    """A cycle ended with ``outcome`` (its decision: shipped, rolled_back, rejected_test...)."""
    meter = _meter(graph_id)
    meter.create_counter(CYCLES, "RSI cycles finished").add(1)
    meter.create_counter(DECISIONS, "RSI cycle decisions, by outcome").add(1, {"outcome": outcome})


def hypotheses_proposed(graph_id: str, hypotheses: Sequence[Hypothesis]) -> None:
    """The generator proposed ``hypotheses``: one count each, by kind (its change operations,
    sorted and joined with ``+``, e.g. ``set_config`` or ``add_cache+set_config``)."""
    counter = _meter(graph_id).create_counter(HYPOTHESES, "hypotheses proposed, by kind")
    for hypothesis in hypotheses:
        counter.add(1, {"kind": hypothesis_kind(hypothesis)})


def hypothesis_kind(hypothesis: Hypothesis) -> str:
    """The label value of a hypothesis: its distinct change operations, sorted, joined by ``+``."""
    return "+".join(sorted(set(hypothesis.change_kinds)))


def version_deployed(graph_id: str, strategy: str) -> None:
    """A candidate took all traffic (the rollout's final switch) under ``strategy``."""
    _meter(graph_id).create_counter(DEPLOYMENTS, "versions deployed to all traffic").add(
        1, {"strategy": strategy}
    )


def rolled_back(graph_id: str, trigger: str) -> None:
    """Traffic went back to the replaced version: ``trigger`` is ``signal`` (someone asked) or
    ``health`` (a health check found a regression)."""
    _meter(graph_id).create_counter(ROLLBACKS, "deployments rolled back, by trigger").add(
        1, {"trigger": trigger}
    )


def review_decided(graph_id: str, verdict: str, waited: timedelta) -> None:
    """A review closed (``approved``, ``rejected`` or ``expired``) after ``waited`` (workflow time
    from the moment it was opened)."""
    histogram = _meter(graph_id).create_histogram_float(
        REVIEW_WAIT, "time a hypothesis waited for its review, in seconds", "s"
    )
    histogram.record(max(waited.total_seconds(), 0.0), {"verdict": verdict})
