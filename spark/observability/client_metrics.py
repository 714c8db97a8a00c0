"""The production client's telemetry queue as Prometheus metrics (``prometheus_client``).

A process that serves requests with ``SparkClient`` queues their telemetry in memory and writes it
in batches; these metrics show how deep that queue is and every run it lost::

    from spark.observability.client_metrics import register_client_metrics, serve_metrics

    register_client_metrics(client)          # into prometheus_client's default registry
    serve_metrics("0.0.0.0:9465")            # or mount the registry in your own web app

The figures are read from the recorder at scrape time (``RecorderStats``), never copied.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from spark.client import SparkClient
from spark.observability.names import (
    TELEMETRY_DROPPED,
    TELEMETRY_QUEUE_DEPTH,
    TELEMETRY_SUBMITTED,
    TELEMETRY_WRITE_ERRORS,
    TELEMETRY_WRITTEN,
)
from spark.observability.settings import parse_bind_address
from spark.telemetry import RecorderStats

DROP_REASONS = ("refused", "failed", "abandoned")


class RecorderCollector(Collector):
    """Collects one recorder's counters, labelled ``source`` (which client or process)."""

    def __init__(self, stats: Callable[[], RecorderStats], source: str = "client") -> None:
        self._stats = stats
        self._source = source

    def collect(self) -> Iterator[Metric]:
        """The queue depth gauge and the run counters, as the recorder reports them now."""
        stats, labels = self._stats(), ["source"]
        depth = GaugeMetricFamily(
            TELEMETRY_QUEUE_DEPTH, "runs queued, not yet written", labels=labels
        )
        depth.add_metric([self._source], stats.pending)
        yield depth
        yield self._counter(TELEMETRY_SUBMITTED, "runs queued for writing", stats.submitted)
        yield self._counter(TELEMETRY_WRITTEN, "runs written to the database", stats.written)
        yield self._counter(TELEMETRY_WRITE_ERRORS, "failed write attempts", stats.write_errors)
        dropped = CounterMetricFamily(
            TELEMETRY_DROPPED, "runs whose telemetry is lost for good", labels=["source", "reason"]
        )
        for reason in DROP_REASONS:
            dropped.add_metric([self._source, reason], getattr(stats, reason))
        yield dropped

    def _counter(self, name: str, documentation: str, value: int) -> CounterMetricFamily:
        counter = CounterMetricFamily(name, documentation, labels=["source"])
        counter.add_metric([self._source], value)
        return counter


def register_client_metrics(
    client: SparkClient, registry: CollectorRegistry = REGISTRY, source: str = "client"
) -> RecorderCollector:
    """Expose ``client``'s telemetry queue through ``registry`` (unregister the returned
    collector when the client closes)."""
    collector = RecorderCollector(lambda: client.telemetry_stats, source)
    registry.register(collector)
    return collector


def serve_metrics(
    address: str, registry: CollectorRegistry = REGISTRY
) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``registry`` at ``http://<address>/metrics`` from a daemon thread; stop it with
    ``server.shutdown()``."""
    host, _, port = parse_bind_address(address).rpartition(":")
    return start_http_server(int(port), addr=host, registry=registry)
