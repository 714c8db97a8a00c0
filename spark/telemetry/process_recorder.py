"""A telemetry recorder whose writer runs in a separate process (``writer_process=True``).

Why: a writer *thread* shares the serving thread's GIL. On a busy server the serving thread
holds the GIL nearly all the time, so the writer spends its life waiting for it, and every time
the event loop lets go of the GIL (once per loop turn) it has to wake the waiting writer first:
a futex wake and a cross-CPU wake-up each time, 2.2-3.3 us a node at the median on this
machine whatever the writer does, against 0.6-1.3 in most runs with this recorder
(``BENCHMARKS.md``, issue 11). A process has its own GIL.

What the serving process does: ``submit`` appends the run to a list (under a lock); every
``batch_size`` runs the submitting thread encodes the batch in one ``marshal`` call
(``spark.telemetry._wire``, about 9 us a run of ten spans, once per batch) and writes it to the
writer's pipe without blocking (a frame that does not fit waits in a backlog). One service
thread sleeps in ``select``: it ships what has waited ``flush_interval_s``, pushes the backlog
when the pipe has room, and reads the writer's counters. The writer process
(``spark.telemetry.writer_process``) runs an ordinary ``TelemetryRecorder``, so outages,
rejected batches and close behave as with the thread.

The writer process and the service thread start at the first run, score or flush: a client
that records nothing (a CLI command's) starts no process. While the process cannot be started,
records are refused and counted, the error is logged, and the start is tried again at most once
a second.

Bounds: at most ``max_queue`` runs wait in this process (the writer holds at most ``max_queue``
more), further ones are refused and counted. ``stats`` combines this process's counters with
the writer's last report (every ``flush_interval_s``, and after every flush). If the writer
process dies, the runs it had are counted as abandoned, logged, and a new one is started for
the runs still here.
"""

from __future__ import annotations

import atexit
import math
import os
import select
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import structlog

from spark.telemetry import _wire
from spark.telemetry.recorder import (
    ABANDON_GRACE_S,
    RecorderLifecycle,
    RecorderStats,
    trace_id_of,
)
from spark.telemetry.sampling import trace_sampled

if TYPE_CHECKING:
    from spark.telemetry.config import TelemetryConfig
    from spark.telemetry.models import FeedbackRecord, PendingRun, RunTelemetry

log = structlog.get_logger(__name__)

_RESTART_MIN_INTERVAL_S = 1.0
_REFUSAL_LOG_INTERVAL_S = 10.0
_PIPE_BYTES = 1 << 20  # asked for; Linux grants up to /proc/sys/fs/pipe-max-size
_F_SETPIPE_SZ = 1031


@dataclass(slots=True)
class _Frame:
    data: memoryview
    runs: int = 0  # records the frame carries (0 for control frames)
    flush_id: int | None = None
    started: bool = False  # its first byte went to the writer


_ZERO = tuple(0 for _ in RecorderStats.__dataclass_fields__)


class WriterProcessError(RuntimeError):
    """The writer process could not be started."""


class ProcessRecorder(RecorderLifecycle):
    """The ``TelemetryRecorder`` interface, with the writing done in a child process."""

    defers_fingerprints = True  # the writer process completes pending runs

    def __init__(self, config: TelemetryConfig) -> None:
        self._config = config
        self._batch_size, self._max_queue = config.batch_size, config.max_queue
        self._interval_s = config.flush_interval_s
        self._lock = threading.Lock()
        self._items: list[_wire.Record] = []
        self._backlog: deque[_Frame] = deque()
        self._waiting = 0  # records in ``_items`` and the backlog
        self._submitted = self._refused = self._lost = self._unsampled = 0
        self._sampling_rate = config.sampling_rate
        self._sent = 0  # records whose frame went (at least in part) to the current writer
        self._sent_flushes: list[int] = []  # flush requests the current writer was sent
        self._base: tuple[int, ...] = _ZERO  # the last counters of writers that died
        self._current: tuple[int, ...] = _ZERO  # the current writer's last report
        self._closed = False
        self._last_ship = time.monotonic()
        self._last_refusal_log = -math.inf
        self._flush_id = 0
        self._flushes: dict[int, threading.Event] = {}
        self._closed_reply = threading.Event()
        self._log = log.bind(backend="process")
        self._process: subprocess.Popen[bytes] | None = None
        self._service: threading.Thread | None = None  # with the writer, at the first use
        self._last_start = -math.inf
        atexit.register(self.close)

    @property
    def enabled(self) -> bool:
        """Always true: a disabled config opens a plain disabled ``TelemetryRecorder``."""
        return True

    # -- request path -----------------------------------------------------------------------

    def submit(self, run: RunTelemetry | PendingRun) -> None:
        """Queue a finished run; never blocks on I/O, refuses (counted) when full or closed."""
        if self._sampling_rate < 1.0 and not trace_sampled(trace_id_of(run), self._sampling_rate):
            with self._lock:
                self._unsampled += 1  # decided here as the writer would, so never encoded
            return
        with self._lock:
            if not self._closed and self._waiting < self._max_queue and self._writer_up_locked():
                self._submitted += 1
                self._waiting += 1
                self._items.append(run)
                if len(self._items) >= self._batch_size:
                    self._ship_locked()
                return
            self._refused += 1
        self._warn_refused(1)

    def submit_feedback(self, records: Sequence[FeedbackRecord]) -> int:
        """Queue scores with the runs; how many were taken."""
        return self._take(list(records))

    def _take(self, records: Sequence[_wire.Record]) -> int:
        with self._lock:
            writable = not self._closed and self._writer_up_locked()
            room = max(self._max_queue - self._waiting, 0) if writable else 0
            taken = list(records[:room])
            self._refused += len(records) - len(taken)
            self._submitted += len(taken)
            self._waiting += len(taken)
            self._items.extend(taken)
            if len(self._items) >= self._batch_size:
                self._ship_locked()
        if len(taken) < len(records):
            self._warn_refused(len(records) - len(taken))
        return len(taken)

    def _writer_up_locked(self) -> bool:
        """Start the writer process and the service thread at the first record (so a client
        that never records anything, such as a CLI command's, starts no process); False while
        it cannot be started (retried at most once a second, the error logged each time)."""
        if self._service is not None:
            return True
        if time.monotonic() - self._last_start < _RESTART_MIN_INTERVAL_S:
            return False
        try:
            self._start_writer()
        except WriterProcessError as error:
            self._log.error("telemetry.writer_process_unavailable", error=str(error))
            return False
        self._service = threading.Thread(
            target=self._serve, name="spark-telemetry-shipper", daemon=True
        )
        self._service.start()
        return True

    def _warn_refused(self, count: int) -> None:
        now = time.monotonic()
        if now - self._last_refusal_log >= _REFUSAL_LOG_INTERVAL_S:
            self._last_refusal_log = now
            self._log.warning("telemetry.runs_refused", refused=count, closed=self._closed)

    def _ship_locked(self) -> None:
        """Encode the waiting records as one frame and write what the pipe takes now."""
        items, self._items = self._items, []
        self._last_ship = time.monotonic()
        if not items:
            return
        payload, refused = _wire.encode_records(items)
        if refused:
            self._waiting -= len(refused)
            self._submitted -= len(refused)
            self._refused += len(refused)
            self._log.warning("telemetry.records_unencodable", refused=len(refused))
        carried = len(items) - len(refused)
        if carried:
            self._queue_frame(_wire.frame(_wire.RECORDS, payload), carried)

    def _queue_frame(self, data: bytes, runs: int = 0, flush_id: int | None = None) -> None:
        self._backlog.append(_Frame(memoryview(data), runs, flush_id))
        self._push_locked()

    def _push_locked(self) -> None:
        """Write backlog frames until the pipe is full (non-blocking)."""
        process = self._process
        if process is None or process.stdin is None:
            return
        fd = process.stdin.fileno()
        while self._backlog:
            frame = self._backlog[0]
            try:
                written = os.write(fd, frame.data)
            except BlockingIOError:
                return
            except OSError:
                return  # the writer is gone: the service thread counts and restarts
            if not frame.started:
                frame.started = True  # from now on the writer owns what it carries
                self._sent += frame.runs
                self._waiting -= frame.runs
                if frame.flush_id is not None:
                    self._sent_flushes.append(frame.flush_id)
            frame.data = frame.data[written:]
            if frame.data:
                return
            self._backlog.popleft()

    # -- control ----------------------------------------------------------------------------

    @property
    def stats(self) -> RecorderStats:
        """This process's counters with the writer's last report (``flush`` refreshes it)."""
        with self._lock:
            child = RecorderStats(*_plus(self._base, self._current))
            refused = self._refused + child.refused
            submitted = self._submitted - child.refused - child.unsampled
            abandoned = child.abandoned + self._lost
            return RecorderStats(
                submitted=submitted,
                written=child.written,
                dropped=refused + child.failed + abandoned,
                refused=refused,
                failed=child.failed,
                abandoned=abandoned,
                batches=child.batches,
                pending=submitted - child.written - child.failed - abandoned,
                spans_written=child.spans_written,
                write_errors=child.write_errors,
                unsampled=child.unsampled + self._unsampled,
                feedback_written=child.feedback_written,
            )

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every run submitted before this call is written (or given up); False if
        ``timeout`` seconds passed first."""
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        marker = threading.Event()
        with self._lock:
            if self._closed:
                return self._closed_reply.wait(timeout)
            if not self._writer_up_locked():
                return not self._items and not self._backlog  # nothing taken is unwritten
            self._ship_locked()
            self._flush_id += 1
            self._flushes[self._flush_id] = marker
            self._queue_frame(
                _wire.frame(_wire.FLUSH, _wire.encode_value(self._flush_id)),
                flush_id=self._flush_id,
            )
        if not self._push_all(deadline):
            return False
        return marker.wait(None if deadline == math.inf else max(deadline - time.monotonic(), 0))

    def _push_all(self, deadline: float) -> bool:
        """Write the whole backlog, waiting for room in the pipe until ``deadline``; whether it
        all went. (The service thread pushes only every ``flush_interval_s``, so that it never
        waits for this process's GIL more often than that.)"""
        while True:
            with self._lock:
                self._push_locked()
                process, pending = self._process, bool(self._backlog)
            if not pending:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or process is None or process.stdin is None:
                return False
            try:
                select.select([], [process.stdin.fileno()], [], min(remaining, self._interval_s))
            except (OSError, ValueError):
                return False

    def close(self, timeout: float | None = None) -> None:
        """Write what is queued and stop the writer process; later submits are refused.

        The writer gets ``timeout`` seconds (default ``close_timeout_s``) for the database,
        then abandons (and counts) what is left, as ``TelemetryRecorder.close`` does."""
        wait_s = self._config.close_timeout_s if timeout is None else timeout
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._service is None:  # never started: nothing was taken
                self._closed_reply.set()
                atexit.unregister(self.close)
                return
            self._ship_locked()
            self._queue_frame(_wire.frame(_wire.CLOSE, _wire.encode_value(wait_s)))
        atexit.unregister(self.close)
        self._push_all(time.monotonic() + wait_s)
        if not self._closed_reply.wait(wait_s + ABANDON_GRACE_S + _RESTART_MIN_INTERVAL_S):
            with self._lock:
                markers = self._abandon_locked("the writer process did not answer the close")
            for marker in markers:
                marker.set()
        self._stop_writer()
        if self._service is not None:
            self._service.join(ABANDON_GRACE_S)
        self._log.info("telemetry.recorder_closed", **asdict(self.stats))

    # -- writer process ---------------------------------------------------------------------

    def _start_writer(self) -> None:
        self._last_start = time.monotonic()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "spark.telemetry.writer_process"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
            )
        except OSError as exc:
            raise WriterProcessError(f"cannot start the telemetry writer process: {exc}") from exc
        assert process.stdin is not None and process.stdout is not None
        try:
            import fcntl

            fcntl.fcntl(process.stdin.fileno(), _F_SETPIPE_SZ, _PIPE_BYTES)
        except (ImportError, OSError):
            pass  # the default pipe size only means smaller writes
        os.set_blocking(process.stdin.fileno(), False)
        self._process, self._sent, self._sent_flushes = process, 0, []
        self._backlog.appendleft(
            _Frame(memoryview(_wire.frame(_wire.INIT, self._config.model_dump_json().encode())), 0)
        )
        self._push_locked()

    def _stop_writer(self) -> None:
        process = self._process
        if process is None:
            return
        try:
            process.wait(ABANDON_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _serve(self) -> None:
        """Ship what waited ``flush_interval_s``, push the backlog, read the writer's replies."""
        replies = bytearray()
        while True:
            process = self._process
            if process is None or process.stdout is None or process.stdin is None:
                return
            out_fd = process.stdout.fileno()
            try:
                readable, _, _ = select.select([out_fd], [], [], self._interval_s)
            except (OSError, ValueError):  # a descriptor closed under us by close
                return
            if self._backlog or self._items:
                with self._lock:
                    self._push_locked()
                    if self._items and time.monotonic() - self._last_ship >= self._interval_s:
                        self._ship_locked()
            if not readable:
                continue
            chunk = os.read(out_fd, 1 << 16)
            if not chunk:
                if self._closed_reply.is_set() or not self._writer_died():
                    return
                replies.clear()
                continue
            replies.extend(chunk)
            for kind, payload in _wire.read_frames(replies):
                self._on_reply(kind, payload)

    def _on_reply(self, kind: bytes, payload: bytes) -> None:
        flush_id, counters = _wire.decode_value(payload)
        with self._lock:
            self._current = tuple(counters)
            markers = self._answered_locked(flush_id)
        for marker in markers:
            marker.set()
        if kind == _wire.CLOSED:
            self._closed_reply.set()

    def _answered_locked(self, flush_id: int | None) -> list[threading.Event]:
        """The markers of the flushes up to ``flush_id`` (the writer answers in order)."""
        if flush_id is None:
            return []
        self._sent_flushes = [i for i in self._sent_flushes if i > flush_id]
        done = [i for i in self._flushes if i <= flush_id]
        return [self._flushes.pop(i) for i in done]

    def _writer_died(self) -> bool:
        """Count what the dead writer held as abandoned and start another; False when closing
        (nothing to restart for)."""
        process = self._process
        code = process.wait() if process is not None else None
        with self._lock:
            markers = self._abandon_locked(f"the writer process exited with code {code}")
            closing = self._closed
        for marker in markers:
            marker.set()
        if closing:
            self._closed_reply.set()
            return False
        wait_s = self._last_start + _RESTART_MIN_INTERVAL_S - time.monotonic()
        if wait_s > 0:
            time.sleep(wait_s)
        with self._lock:
            self._start_writer()
        return True

    def _abandon_locked(self, reason: str) -> list[threading.Event]:
        """Count what the current writer was sent and did not account for as abandoned (and,
        when closing, what was never sent); the markers of the flushes it will never answer."""
        current = RecorderStats(*self._current)
        accounted = (
            current.written + current.failed + current.abandoned + current.refused
        ) + current.unsampled
        lost = max(self._sent - accounted, 0)
        if self._backlog and self._backlog[0].started:  # cut off mid-frame
            self._backlog.popleft()
        if self._closed:  # never sent, and no writer will come for it
            unsent = sum(frame.runs for frame in self._backlog) + len(self._items)
            lost += unsent
            self._waiting -= unsent
            self._backlog.clear()
            self._items = []
        self._lost += lost
        self._base, self._current, self._sent = _plus(self._base, self._current), _ZERO, 0
        if lost:
            self._log.error("telemetry.writer_process_lost_runs", runs=lost, reason=reason)
        markers = [self._flushes.pop(i) for i in self._sent_flushes if i in self._flushes]
        self._sent_flushes = []
        if self._closed:
            markers += list(self._flushes.values())
            self._flushes.clear()
        return markers


def _plus(left: tuple[int, ...], right: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(a + b for a, b in zip(left, right, strict=True))


__all__ = ["ProcessRecorder", "WriterProcessError"]
