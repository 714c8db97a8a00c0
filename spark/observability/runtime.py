"""The worker's Temporal runtime with the SDK's Prometheus exporter.

A worker reports its metrics through the runtime of the client it polls with; ``install`` makes
the exporting runtime the process default before the worker connects, so every client created
afterwards (``spark.temporal.connect``) uses it.
"""

from __future__ import annotations

import structlog
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from spark.observability.names import REVIEW_WAIT

log = structlog.get_logger(__name__)

# Reviews wait minutes to days: the SDK's default buckets are milliseconds-sized.
REVIEW_WAIT_BUCKETS_S = (60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 86400.0, 3 * 86400.0)


def prometheus_runtime(bind_address: str) -> Runtime:
    """A runtime whose SDK and workflow metrics are served at ``http://<bind_address>/metrics``
    (bound at once: a port in use raises here, not at the first scrape)."""
    config = PrometheusConfig(
        bind_address=bind_address,
        histogram_bucket_overrides={REVIEW_WAIT: REVIEW_WAIT_BUCKETS_S},
    )
    return Runtime(telemetry=TelemetryConfig(metrics=config))


def install(bind_address: str | None) -> Runtime | None:
    """Make a Prometheus-exporting runtime the default for the clients created after this call;
    None (metrics off) changes nothing. Call it before the first client connects."""
    if bind_address is None:
        return None
    runtime = prometheus_runtime(bind_address)
    Runtime.set_default(runtime, error_if_already_set=True)
    log.info("metrics endpoint", url=f"http://{bind_address}/metrics")
    return runtime
