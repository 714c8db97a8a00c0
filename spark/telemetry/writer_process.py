"""The writer process behind a ``ProcessRecorder``: ``python -m spark.telemetry.writer_process``.

It reads frames (``spark.telemetry._wire``) on stdin: first the ``TelemetryConfig`` as JSON,
then batches of records, flush requests and a close. Every record goes into an ordinary
``TelemetryRecorder`` of this process, so batching, retries through an outage, splitting a
rejected batch and abandoning on close behave exactly as with the writer thread. It answers on
the stdout it was started with: the recorder's counters after each flush, every
``flush_interval_s`` while they change, and once more when it closes. It decodes the next batch
only once its writer threads have a batch free, so that one writer thread keeps to one core
(a thread decoding ahead here would take turns on the serving process's core, which costs the
request path more than it saves). Anything else this
process prints (logs) goes to stderr. End of input (the parent is gone) closes the recorder.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from dataclasses import astuple
from typing import BinaryIO

import structlog

from spark.telemetry import _wire
from spark.telemetry.config import TelemetryConfig
from spark.telemetry.models import FeedbackRecord
from spark.telemetry.recorder import TelemetryRecorder

log = structlog.get_logger(__name__)

_READ_BYTES = 1 << 20


class WriterInputError(ValueError):
    """The input is not what a ``ProcessRecorder`` sends (this module is started by one)."""


class _Replies:
    """Frames to the parent, from the reading loop and the counters' reporter alike."""

    def __init__(self, fd: int, recorder: TelemetryRecorder) -> None:
        self._fd, self._recorder, self._lock = fd, recorder, threading.Lock()
        self._last: tuple[int, ...] | None = None

    def stats(self, flush_id: int | None = None, kind: bytes = _wire.STATS) -> None:
        counters = astuple(self._recorder.stats)
        with self._lock:
            if flush_id is None and kind == _wire.STATS and counters == self._last:
                return
            self._last = counters
            data = _wire.frame(kind, _wire.encode_value((flush_id, counters)))
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]


def serve(source: BinaryIO, reply_fd: int) -> None:
    """Read frames from ``source`` until a close or the end of input."""
    buffer = bytearray()
    recorder: TelemetryRecorder | None = None
    replies: _Replies | None = None
    stop = threading.Event()
    in_flight = 1
    while True:
        chunk = source.read1(_READ_BYTES) if hasattr(source, "read1") else source.read(_READ_BYTES)
        if not chunk:
            break
        buffer.extend(chunk)
        for kind, payload in _wire.read_frames(buffer):
            if kind == _wire.INIT:
                config = TelemetryConfig.model_validate_json(payload)
                recorder = _thread_recorder(config)
                in_flight = config.writer_threads * config.batch_size
                replies = _Replies(reply_fd, recorder)
                _start_reporter(replies, config.flush_interval_s, stop)
            elif recorder is None or replies is None:
                raise WriterInputError(f"frame {kind!r} before the configuration frame")
            elif kind == _wire.RECORDS:
                _submit(recorder, _wire.decode_records(payload))
                # No more batches in hand than writer threads to write them: decoding further
                # ahead would keep one more thread of this process busy, on a share of the
                # serving process's core.
                if recorder.stats.pending >= in_flight:
                    recorder.flush()
            elif kind == _wire.FLUSH:
                recorder.flush()
                replies.stats(_wire.decode_value(payload))
            elif kind == _wire.CLOSE:
                stop.set()
                recorder.close(_wire.decode_value(payload))
                replies.stats(None, _wire.CLOSED)
                return
    stop.set()
    if recorder is not None:  # the parent went away without closing: write what came
        recorder.close()
    if buffer:
        raise WriterInputError(f"input ended inside a frame ({len(buffer)} bytes left unread)")


def _thread_recorder(config: TelemetryConfig) -> TelemetryRecorder:
    recorder = config.model_copy(update={"writer_process": False}).open_recorder()
    assert isinstance(recorder, TelemetryRecorder)  # writer_process is off
    return recorder


def _submit(recorder: TelemetryRecorder, records: list[_wire.Record]) -> None:
    scores = [record for record in records if isinstance(record, FeedbackRecord)]
    for record in records:
        if not isinstance(record, FeedbackRecord):
            recorder.submit(record)
    if scores:
        recorder.submit_feedback(scores)


def _start_reporter(replies: _Replies, interval_s: float, stop: threading.Event) -> None:
    def report() -> None:
        while not stop.wait(interval_s):
            replies.stats()

    threading.Thread(target=report, name="spark-telemetry-reporter", daemon=True).start()


def main() -> None:
    """Entry point: frames in on stdin, replies out on the stdout this process started with;
    stdout itself then points at stderr, so a stray print or log line cannot corrupt a frame."""
    reply_fd = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        with contextlib.suppress(BrokenPipeError):  # the parent closed its end first
            serve(sys.stdin.buffer, reply_fd)
    except WriterInputError as exc:
        sys.exit(f"spark.telemetry.writer_process: {exc}; it is started by ProcessRecorder")


if __name__ == "__main__":
    main()
