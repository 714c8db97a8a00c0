"""The byte format between a ``ProcessRecorder`` and its writer process.

Frames are ``kind`` (one byte), ``length`` (four bytes, big-endian) and a payload. A batch of
records travels as one ``marshal`` payload of plain tuples: ``marshal`` is C all the way and
about ten times faster than pickling the slotted records (measured: 3.6 against 33 us a run of
ten spans), which matters because the serving thread encodes each batch. A record ``marshal``
cannot carry (a node input holding a model, a ``datetime``, a ``str`` subclass) is completed
first (``complete_run``: its inputs JSON and fingerprints become strings) and, if a field is
still not plain, pickled on its own; one no codec takes is refused.
"""

from __future__ import annotations

import marshal
import pickle
from collections.abc import Callable, Iterable, Iterator
from operator import attrgetter
from typing import Any, cast

from spark.telemetry.fingerprints import complete_run
from spark.telemetry.models import (
    FeedbackRecord,
    PendingRun,
    RunTelemetry,
    SpanRecord,
    TraceRecord,
)

Record = RunTelemetry | PendingRun | FeedbackRecord

# parent -> writer
INIT, RECORDS, FLUSH, CLOSE = b"I", b"R", b"F", b"C"
# writer -> parent
STATS, CLOSED = b"S", b"X"

HEADER_BYTES = 5
_PENDING_HEAD = attrgetter(
    "trace_id",
    "graph_id",
    "version_id",
    "started_at",
    "duration_ms",
    "status",
    "routing_arm",
    "routing_key",
    "error_type",
    "inputs",
    "inputs_json",
)
_FEEDBACK = attrgetter("trace_id", "score", "created_at", "label", "source")
_PENDING, _RUN, _SCORE, _PICKLED = "p", "r", "f", "k"


class UnencodableRecordError(ValueError):
    """A record none of the codecs can carry (a field neither marshal nor pickle takes)."""


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    """One frame: kind, payload length, payload."""
    return kind + len(payload).to_bytes(4, "big") + payload


def read_frames(buffer: bytearray) -> Iterator[tuple[bytes, bytes]]:
    """The complete frames at the start of ``buffer``, removed from it as they are yielded."""
    while len(buffer) >= HEADER_BYTES:
        length = int.from_bytes(buffer[1:HEADER_BYTES], "big")
        end = HEADER_BYTES + length
        if len(buffer) < end:
            return
        kind, payload = bytes(buffer[:1]), bytes(buffer[HEADER_BYTES:end])
        del buffer[:end]
        yield kind, payload


def encode_records(records: list[Record]) -> tuple[bytes, list[Record]]:
    """The payload of a batch, and the records refused because no codec can carry them."""
    try:
        return marshal.dumps([_plain(record) for record in records]), []
    except ValueError:
        return _encode_one_by_one(records)


def _encode_one_by_one(records: Iterable[Record]) -> tuple[bytes, list[Record]]:
    encoded: list[Any] = []
    refused: list[Record] = []
    for record in records:
        try:
            encoded.append(_encodable(record))
        except UnencodableRecordError:
            refused.append(record)
    return marshal.dumps(encoded), refused


def _encodable(record: Record) -> Any:
    """The record as marshal-able tuples: as it is, completed, or pickled."""
    plain = _plain(record)
    try:
        marshal.dumps(plain)
        return plain
    except ValueError:
        pass
    if isinstance(record, PendingRun):
        plain = _plain(complete_run(record))
        try:
            marshal.dumps(plain)
            return plain
        except ValueError:
            pass
    try:
        return (_PICKLED, pickle.dumps(plain, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception as exc:  # pickle raises whatever the object's reducer raises
        raise UnencodableRecordError(f"cannot encode {type(record).__name__}: {exc}") from exc


def _plain(record: Record) -> tuple[Any, ...]:
    if isinstance(record, PendingRun):
        return (
            _PENDING,
            _PENDING_HEAD(record),
            record.span_fields,
            record.node_inputs,
            record.sampling_rate,
        )
    if isinstance(record, RunTelemetry):
        return (_RUN, tuple(record.trace), list(map(tuple, record.spans)))
    return (_SCORE, _FEEDBACK(record))


_new_record = tuple.__new__
"""A span or trace record of its row (marshal keeps plain tuples only), with no per-field call."""
_new_pending_run = cast(Callable[..., PendingRun], PendingRun)
"""``PendingRun`` built positionally from its head fields as encoded (``_PENDING_HEAD``)."""


def decode_records(payload: bytes) -> list[Record]:
    """The records of a batch payload."""
    return [_record(item) for item in marshal.loads(payload)]


def _record(item: tuple[Any, ...]) -> Record:
    tag = item[0]
    if tag == _PICKLED:
        return _record(pickle.loads(item[1]))
    if tag == _PENDING:
        _, head, span_fields, node_inputs, sampling_rate = item
        return _new_pending_run(*head, span_fields, node_inputs, sampling_rate)
    if tag == _RUN:
        _, trace, spans = item
        return RunTelemetry(
            _new_record(TraceRecord, trace), [_new_record(SpanRecord, span) for span in spans]
        )
    return FeedbackRecord(*item[1])


def encode_value(value: Any) -> bytes:
    """A control payload (ids, counters, timeouts): plain values only."""
    return marshal.dumps(value)


def decode_value(payload: bytes) -> Any:
    """The value of a control payload."""
    return marshal.loads(payload)
