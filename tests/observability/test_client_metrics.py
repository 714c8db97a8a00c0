"""The telemetry queue's metrics, served over HTTP by ``prometheus_client``: written runs,
queue depth and the runs lost, as the recorder counts them."""

from __future__ import annotations

import socket
import urllib.request

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from spark.observability.client_metrics import RecorderCollector, serve_metrics
from spark.telemetry import TelemetryRecorder, TelemetryStore
from tests.telemetry.factories import run


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrape(address: str) -> dict[tuple[str, str], float]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, sample.labels.get("reason", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("spark_telemetry")
    }


def test_queue_metrics_show_written_and_refused_runs(sqlite_database_url: str) -> None:
    """Three runs written, then one refused by the closed recorder: the scrape shows the queue
    empty, three written, one dropped as refused."""
    recorder = TelemetryRecorder(TelemetryStore(sqlite_database_url))
    registry = CollectorRegistry()
    registry.register(RecorderCollector(lambda: recorder.stats, source="test"))
    for _ in range(3):
        recorder.submit(run())
    assert recorder.flush(10)
    recorder.close()
    recorder.submit(run())
    address = f"127.0.0.1:{_free_port()}"
    server, thread = serve_metrics(address, registry)
    try:
        samples = _scrape(address)
    finally:
        server.shutdown()
        thread.join()
    assert samples[("spark_telemetry_queue_depth", "")] == 0
    assert samples[("spark_telemetry_submitted_total", "")] == 3
    assert samples[("spark_telemetry_written_total", "")] == 3
    assert samples[("spark_telemetry_dropped_total", "refused")] == 1
    assert samples[("spark_telemetry_dropped_total", "failed")] == 0
