"""The OTLP/HTTP receiver on SQLite and PostgreSQL: an instrumented app's traces become runs and
node spans; bad payloads get 400 and write nothing; an app outside our runtime reads its routed
node configuration back."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from spark.client import SparkClient
from spark.db import get_engine
from spark.graphs.spec import GraphSpec, parse_graph_spec
from spark.otlp.receiver import OTLPReceiver
from spark.registry import RegistryStore, RoutingStore
from spark.settings import SparkSettings
from spark.telemetry import TelemetryStore
from tests.otlp.payloads import app_run, json_request, protobuf_request

PROTOBUF, JSON = "application/x-protobuf", "application/json"


@pytest.fixture
def receiver(database_url: str) -> Iterator[OTLPReceiver]:
    """A receiver on a free port, writing to the test database."""
    with OTLPReceiver(database_url, port=0) as running:
        yield running


def _post(
    receiver: OTLPReceiver, body: bytes, content_type: str, encoding: str | None = None
) -> tuple[int, bytes]:
    headers = {"Content-Type": content_type}
    if encoding:
        headers["Content-Encoding"] = encoding
    request = urllib.request.Request(receiver.endpoint, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _trace_id() -> str:
    return uuid.uuid4().hex


def _rows(database_url: str, sql: str) -> list[tuple]:
    with get_engine(database_url).connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql))]


def _counts(database_url: str) -> tuple[int, int]:
    traces = _rows(database_url, "SELECT count(*) FROM spark_traces")[0][0]
    spans = _rows(database_url, "SELECT count(*) FROM spark_spans")[0][0]
    return traces, spans


def test_json_and_protobuf_runs_become_traces_and_node_spans(
    database_url: str, receiver: OTLPReceiver
) -> None:
    """A JSON and a gzipped protobuf export each store one run (root span) with its two LLM
    calls as ``classify`` spans: tokens, cost, the failed call's error type, version and arm."""
    json_trace, proto_trace = _trace_id(), _trace_id()
    assert _post(receiver, json_request(json_trace, app_run(json_trace, "v-app")), JSON) == (
        200,
        b"{}",
    )
    body = gzip.compress(protobuf_request(proto_trace, app_run(proto_trace, "v-app")))
    assert _post(receiver, body, PROTOBUF, "gzip")[0] == 200
    runs = _rows(
        database_url,
        "SELECT graph_id, version_id, status, routing_arm, routing_key, duration_ms, cost "
        "FROM spark_traces ORDER BY trace_id",
    )
    assert [run[:5] for run in runs] == [("support-bot", "v-app", "ok", "active", "cust-1")] * 2
    assert all(run[5] == pytest.approx(900.0) and run[6] == pytest.approx(0.002) for run in runs)
    [node] = TelemetryStore(database_url).node_stats("support-bot", "v-app")
    assert (node.node_id, node.count, node.error_count) == ("classify", 4, 2)
    assert (node.total_tokens, node.error_types) == (300, {"RateLimitError": 2})
    assert node.total_cost == pytest.approx(0.004)
    assert TelemetryStore(database_url).count_traces("support-bot", "v-app") == 2


def test_spans_without_a_version_take_the_service_version(
    database_url: str, receiver: OTLPReceiver
) -> None:
    """An app that sets no ``spark.version.id`` (and whose graph is not registered) is
    attributed to its ``service.version``; the graph id comes from ``service.name``."""
    trace = _trace_id()
    assert _post(receiver, protobuf_request(trace, app_run(trace, None)), PROTOBUF)[0] == 200
    assert _rows(database_url, "SELECT DISTINCT graph_id, version_id FROM spark_spans") == [
        ("support-bot", "app-1.4")
    ]
    assert TelemetryStore(database_url).count_traces("support-bot", "app-1.4") == 1


def test_spans_before_their_root_are_kept_and_costed(
    database_url: str, receiver: OTLPReceiver
) -> None:
    """Children exported before their root are stored at once; the run, when its root arrives,
    costs the sum of them; exporting the same spans again adds nothing."""
    trace = _trace_id()
    root, *children = app_run(trace, "v-app")
    assert _post(receiver, json_request(trace, children), JSON)[0] == 200
    assert _counts(database_url) == (0, 2)
    for _ in range(2):
        assert _post(receiver, json_request(trace, [root]), JSON)[0] == 200
    assert _counts(database_url) == (1, 2)
    [(cost,)] = _rows(database_url, "SELECT cost FROM spark_traces")
    assert cost == pytest.approx(0.002)


def test_spans_after_their_root_add_their_cost(database_url: str, receiver: OTLPReceiver) -> None:
    """A span exported after its run's root (the run stored already) adds its cost to the run
    once, though the export is retried."""
    trace = _trace_id()
    root, first, second = app_run(trace, "v-app")
    assert _post(receiver, json_request(trace, [root, first]), JSON)[0] == 200
    for _ in range(2):
        assert _post(receiver, json_request(trace, [second]), JSON)[0] == 200
    assert _counts(database_url) == (1, 2)
    [(cost,)] = _rows(database_url, "SELECT cost FROM spark_traces")
    assert cost == pytest.approx(0.002)


def test_children_sent_again_with_their_root_are_stored_once(
    database_url: str, receiver: OTLPReceiver
) -> None:
    """Children exported before their root and again in the request that carries it (an
    exporter that re-batched its retry) are stored once, and the run costs them once."""
    trace = _trace_id()
    root, *children = app_run(trace, "v-app")
    assert _post(receiver, json_request(trace, children), JSON)[0] == 200
    assert _post(receiver, json_request(trace, [root, *children]), JSON)[0] == 200
    assert _counts(database_url) == (1, 2)
    [(cost,)] = _rows(database_url, "SELECT cost FROM spark_traces")
    assert cost == pytest.approx(0.002)


def test_children_sent_again_without_their_root_are_stored_once(
    database_url: str, receiver: OTLPReceiver
) -> None:
    """A run exported whole, then some of its spans again alone, keeps each span once and its
    cost unchanged."""
    trace = _trace_id()
    root, first, second = app_run(trace, "v-app")
    assert _post(receiver, json_request(trace, [root, first, second]), JSON)[0] == 200
    assert _post(receiver, json_request(trace, [second]), JSON)[0] == 200
    assert _post(receiver, json_request(trace, [first, second]), JSON)[0] == 200
    assert _counts(database_url) == (1, 2)
    [(cost,)] = _rows(database_url, "SELECT cost FROM spark_traces")
    assert cost == pytest.approx(0.002)


def _bad_payloads() -> list[tuple[str, bytes, str]]:
    trace = _trace_id()
    good = app_run(trace, "v-app")
    backwards_trace = _trace_id()
    backwards = app_run(backwards_trace, "v-app")
    backwards[2].end_ms = backwards[2].start_ms - 1
    bad_arm = app_run(_trace_id(), "v-app")
    bad_arm[0].attributes["spark.routing.arm"] = "blue"
    bad_tokens = app_run(_trace_id(), "v-app")
    bad_tokens[2].attributes["gen_ai.usage.input_tokens"] = "many"
    two_traces = json.loads(json_request(trace, good))
    two_traces["resourceSpans"] += json.loads(json_request(backwards_trace, backwards))[
        "resourceSpans"
    ]
    short_id = json.loads(json_request(trace, good))
    short_id["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["spanId"] = "abcd"
    return [
        ("not JSON", b"{resourceSpans", JSON),
        ("not hex", json_request("zz" * 16, good), JSON),
        ("must be 8 bytes", json.dumps(short_id).encode(), JSON),
        ("not an OTLP", b"\xff\xff\xff\xff", PROTOBUF),
        ("end time after it", protobuf_request(backwards_trace, backwards), PROTOBUF),
        ("end time after it", json.dumps(two_traces).encode(), JSON),
        ("is not one of", protobuf_request(trace, bad_arm), PROTOBUF),
        ("must be a number", json_request(trace, bad_tokens), JSON),
    ]


def test_malformed_payloads_get_400_and_write_nothing(
    database_url: str, receiver: OTLPReceiver
) -> None:
    """Each malformed export is answered 400 with a message saying what is wrong, and nothing
    of it is stored, not even the well-formed traces that came with it."""
    for expected, body, content_type in _bad_payloads():
        status, reply = _post(receiver, body, content_type)
        assert status == 400, expected
        assert expected.encode() in reply, (expected, reply)
    assert _counts(database_url) == (0, 0)


def test_unsupported_content_type_is_refused(receiver: OTLPReceiver) -> None:
    """A body that is neither protobuf nor JSON gets 415, naming the type."""
    status, reply = _post(receiver, b"hello", "text/plain")
    assert status == 415 and b"text/plain" in reply


def _app_spec(retries: int) -> GraphSpec:
    return parse_graph_spec(
        {
            "id": "support-bot",
            "entry": "classify",
            "inputs": ["ticket"],
            "nodes": [
                {
                    "id": "classify",
                    "type": "llm",
                    "config": {"model": "gpt-4o-mini", "retries": retries},
                    "inputs": ["ticket"],
                    "outputs": ["label"],
                    "tags": ["idempotent"],
                }
            ],
            "edges": [],
        }
    )


def _serve_request(client: SparkClient, receiver: OTLPReceiver) -> tuple[str, int]:
    """What the app does per request: read its routed config, run, export its spans tagged
    with the version it ran; returns the version and the retries it used."""
    routed = client.node_config("support-bot", "classify", routing_key="cust-1")
    trace = _trace_id()
    spans = app_run(trace, routed.version_id)
    spans[0].attributes.update(routed.span_attributes())
    assert _post(receiver, protobuf_request(trace, spans), PROTOBUF)[0] == 200
    return routed.version_id, routed.config.retries


def test_app_outside_our_runtime_gets_a_routed_config_change(
    database_url: str, receiver: OTLPReceiver
) -> None:
    """An app that only exports OTLP and reads ``node_config`` serves the registered config,
    then, once routing moves to a version with retries changed, the new config; its runs are
    attributed to the version each one served."""
    registry, routing = RegistryStore(database_url), RoutingStore(database_url)
    first = registry.register_graph(_app_spec(retries=0), ["tests.otlp.payloads"])
    settings = SparkSettings(database_url=database_url)
    client = SparkClient(settings, routing_ttl_s=0.0)
    try:
        assert _serve_request(client, receiver) == (first.version_id, 0)
        second = registry.create_version(first.version_id, _app_spec(retries=2), author="rsi")
        routing.apply(
            "support-bot",
            idempotency_key="test:promote",
            action="set_active",
            active_version_id=second.version_id,
            actor="rsi",
            reason="retries help the rate limits",
        )
        assert _serve_request(client, receiver) == (second.version_id, 2)
    finally:
        client.close()
    store = TelemetryStore(database_url)
    assert store.count_traces("support-bot", first.version_id) == 1
    assert store.count_traces("support-bot", second.version_id) == 1
