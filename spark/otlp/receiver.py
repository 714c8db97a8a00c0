"""The OTLP/HTTP trace receiver: ``POST /v1/traces`` into the telemetry tables.

Answers as the OTLP/HTTP specification asks: 200 with an ``ExportTraceServiceResponse`` in the
request's encoding; 400 with a ``google.rpc.Status`` naming what is wrong for a payload that does
not decode or map (nothing of it is written); 415 for another Content-Type; 503 while the
database cannot be reached (exporters retry it). Runs in a thread of the calling process::

    with OTLPReceiver(database_url, port=4318) as receiver:
        ...  # receiver.endpoint == "http://127.0.0.1:4318/v1/traces"
"""

from __future__ import annotations

import functools
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import structlog
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from sqlalchemy.exc import SQLAlchemyError

from spark.errors import InvalidInputError, UnknownGraphError
from spark.otlp.decode import CONTENT_TYPES, JSON, decode_request, decompress, media_type
from spark.otlp.mapping import VersionResolver, map_request
from spark.otlp.writer import OTLPWriter
from spark.registry import RoutingStore
from spark.telemetry._bulk import is_connection_failure

log = structlog.get_logger(__name__)

TRACES_PATH = "/v1/traces"
DEFAULT_PORT = 4318
MAX_BODY_BYTES = 32 * 1024 * 1024
_INVALID_ARGUMENT, _UNAVAILABLE, _INTERNAL = 3, 14, 13


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: status code, content type and body."""

    status: int
    content_type: str
    body: bytes


class OTLPIngest:
    """Decodes, maps and stores one export request (the receiver's logic, without HTTP)."""

    def __init__(self, database_url: str) -> None:
        self._writer = OTLPWriter(database_url)
        self._routing = RoutingStore(database_url)

    def export(self, body: bytes, content_type: str | None, encoding: str | None) -> Reply:
        """Store the spans of one ``POST /v1/traces`` body; the reply to send."""
        kind = media_type(content_type)
        if kind not in CONTENT_TYPES:
            return _status(415, JSON, _INVALID_ARGUMENT, f"unsupported Content-Type {kind!r}")
        try:
            batch = map_request(
                decode_request(decompress(body, encoding), kind), self._version_resolver()
            )
            self._writer.write(batch)
        except InvalidInputError as exc:
            log.warning("otlp.rejected", reason=str(exc))
            return _status(400, kind, _INVALID_ARGUMENT, str(exc))
        except SQLAlchemyError as exc:
            return _database_failure(kind, exc)
        log.debug("otlp.stored", runs=len(batch.traces), spans=len(batch.spans))
        return _success(kind)

    def _version_resolver(self) -> VersionResolver:
        """The active version of a registered graph (read once per request and graph)."""

        @functools.cache
        def active_version(graph_id: str) -> str | None:
            try:
                return self._routing.get(graph_id).active_version_id
            except UnknownGraphError:
                return None

        return active_version


def _success(kind: str) -> Reply:
    response = ExportTraceServiceResponse()
    body = b"{}" if kind == JSON else response.SerializeToString()
    return Reply(200, kind, body)


def _database_failure(kind: str, exc: SQLAlchemyError) -> Reply:
    if is_connection_failure(exc):
        log.warning("otlp.database_unavailable", error=type(exc).__name__)
        return _status(503, kind, _UNAVAILABLE, "the telemetry database cannot be reached")
    log.error("otlp.write_failed", error=type(exc).__name__, exc_info=exc)
    return _status(500, kind, _INTERNAL, f"the spans could not be stored ({type(exc).__name__})")


def _status(http_status: int, kind: str, code: int, message: str) -> Reply:
    """A ``google.rpc.Status`` reply in the request's encoding."""
    if kind == JSON:
        return Reply(http_status, JSON, json.dumps({"code": code, "message": message}).encode())
    return Reply(http_status, kind, _status_protobuf(code, message))


def _status_protobuf(code: int, message: str) -> bytes:
    """``google.rpc.Status{code, message}`` on the wire (field 1 varint, field 2 string)."""
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != TRACES_PATH:
            return self._send(_status(404, JSON, 5, f"no such endpoint {self.path!r}"))
        length = int(self.headers.get("Content-Length") or -1)
        if length < 0 or length > MAX_BODY_BYTES:
            limit = f"a Content-Length of at most {MAX_BODY_BYTES} bytes is required"
            return self._send(_status(411 if length < 0 else 413, JSON, _INVALID_ARGUMENT, limit))
        body = self.rfile.read(length)
        headers = self.headers
        self._send(
            self.server.ingest.export(body, headers["Content-Type"], headers["Content-Encoding"])
        )

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        if reply.status == 503:
            self.send_header("Retry-After", "5")
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: object) -> None:
        """Access lines go to structlog at debug level, not to stderr."""
        log.debug("otlp.http", line=format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], ingest: OTLPIngest) -> None:
        super().__init__(address, _Handler)
        self.ingest = ingest


class OTLPReceiver:
    """``POST /v1/traces`` on ``host:port`` (port 0: any free port), served from a thread."""

    def __init__(self, database_url: str, host: str = "127.0.0.1", port: int = DEFAULT_PORT):
        self._server = _Server((host, port), OTLPIngest(database_url))
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """The URL exporters send to (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{TRACES_PATH}"

    def start(self) -> OTLPReceiver:
        """Serve from a daemon thread until ``close``."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="spark-otlp", daemon=True
        )
        self._thread.start()
        log.info("otlp.listening", endpoint=self.endpoint)
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until ``close`` is called from another (or an interrupt)."""
        log.info("otlp.listening", endpoint=self.endpoint)
        self._server.serve_forever()

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
