"""OTLP/HTTP request bodies (protobuf or JSON, gzip or not) as ``ExportTraceServiceRequest``.

Anything that does not decode raises ``InvalidInputError`` with what was wrong, so the receiver
answers 400 and writes nothing.
"""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spark.errors import InvalidInputError

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
CONTENT_TYPES = (PROTOBUF, JSON)
_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def media_type(content_type: str | None) -> str:
    """The media type of a ``Content-Type`` header, lower case, without parameters."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def decompress(body: bytes, content_encoding: str | None) -> bytes:
    """The body without its ``gzip`` / ``deflate`` encoding (identity passes through)."""
    encoding = (content_encoding or "identity").strip().lower()
    try:
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
    except (OSError, EOFError, zlib.error) as exc:
        raise InvalidInputError(f"body is not valid {encoding}: {exc}") from exc
    if encoding != "identity":
        raise InvalidInputError(f"unsupported Content-Encoding {encoding!r} (gzip, deflate)")
    return body


def decode_request(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    """Parse an export request in ``content_type`` (``PROTOBUF`` or ``JSON``)."""
    if content_type == PROTOBUF:
        return _from_protobuf(body)
    if content_type == JSON:
        return _from_json(body)
    raise InvalidInputError(f"unsupported Content-Type {content_type!r} (use {PROTOBUF} or {JSON})")


def _from_protobuf(body: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise InvalidInputError(f"body is not an OTLP ExportTraceServiceRequest: {exc}") from exc
    return request


def _from_json(body: bytes) -> ExportTraceServiceRequest:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"body is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidInputError("an OTLP/JSON export request is an object with resourceSpans")
    try:
        return json_format.ParseDict(
            _ids_as_base64(document), ExportTraceServiceRequest(), ignore_unknown_fields=True
        )
    except json_format.ParseError as exc:
        raise InvalidInputError(f"body is not an OTLP/JSON export request: {exc}") from exc


def _ids_as_base64(node: Any) -> Any:
    """OTLP/JSON writes trace and span ids in hex, where protobuf's JSON mapping expects base64
    bytes: convert them (in every nested object: spans and their links)."""
    if isinstance(node, list):
        return [_ids_as_base64(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key: _hex_to_base64(key, value) if key in _ID_FIELDS else _ids_as_base64(value)
        for key, value in node.items()
    }


def _hex_to_base64(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"{key} must be a hex string, got {value!r}")
    try:
        return base64.b64encode(bytes.fromhex(value)).decode()
    except ValueError as exc:
        raise InvalidInputError(f"{key} {value!r} is not hex") from exc
