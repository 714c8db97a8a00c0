"""The telemetry recorder: the runtime's ``TelemetrySink``, writing in batches off the request path.

``submit`` only appends to an in-memory queue (under a lock held for a few hundred nanoseconds);
a daemon writer thread drains it in batches through the store's bulk writers. When the queue is
full, runs are dropped and counted (``stats.dropped``) with a rate-limited warning: never silently.
"""

from __future__ import annotations

import asyncio
import atexit
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from types import TracebackType
from typing import Protocol

import structlog

from spark.telemetry.models import RunTelemetry

log = structlog.get_logger(__name__)


class RunWriter(Protocol):
    """What the recorder writes through: ``TelemetryStore``, or a stand-in in tests."""

    backend: str

    def write_runs(self, runs: Sequence[RunTelemetry]) -> None:
        """Persist a batch of runs; may be retried with the same batch."""
        ...


@dataclass(frozen=True, slots=True)
class RecorderStats:
    """Counters of a recorder, in runs (``spans_written`` in spans)."""

    submitted: int
    written: int
    dropped: int
    failed: int
    batches: int
    pending: int
    spans_written: int


class TelemetryRecorder:
    """Queues finished runs and writes them in batches from a background thread.

    ``store`` is usually a ``TelemetryStore``; ``None`` makes a disabled recorder that ignores
    every run. Close it (or use it as a context manager) to write what is still queued; an
    unclosed recorder is closed at interpreter exit.
    """

    def __init__(
        self,
        store: RunWriter | None,
        *,
        batch_size: int = 500,
        flush_interval_s: float = 0.5,
        max_queue: int = 100_000,
        capture_inputs: bool = True,
        drop_warning_interval_s: float = 10.0,
        write_attempts: int = 3,
    ) -> None:
        self._store = store
        self._batch_size = batch_size
        self._max_queue = max_queue
        self._flush_interval_s = flush_interval_s
        self._capture_inputs = capture_inputs
        self._drop_warning_interval_s = drop_warning_interval_s
        self._write_attempts = write_attempts
        self._queue: deque[RunTelemetry | threading.Event] = deque()
        self._lock, self._wake = threading.Lock(), threading.Event()
        self._pending = self._submitted = self._dropped = 0
        self._written = self._failed = self._batches = self._spans_written = 0
        self._closed, self._last_drop_warning = False, -math.inf
        self._log = log.bind(backend=store.backend if store else "disabled")
        self._thread = self._start_writer() if store is not None else None

    # -- request path -----------------------------------------------------------------------

    def submit(self, run: RunTelemetry) -> None:
        """Queue a finished run for writing; O(1), never blocks on I/O, drops (counted) if full."""
        if self._store is None:
            return
        with self._lock:
            if self._pending < self._max_queue and not self._closed:
                self._pending += 1
                self._submitted += 1
                self._queue.append(run)
                if self._pending == self._batch_size:
                    self._wake.set()
                return
            self._dropped += 1
        self._warn_dropped()

    # -- control ----------------------------------------------------------------------------

    @property
    def stats(self) -> RecorderStats:
        """A snapshot of the counters."""
        return RecorderStats(
            submitted=self._submitted,
            written=self._written,
            dropped=self._dropped,
            failed=self._failed,
            batches=self._batches,
            pending=self._pending,
            spans_written=self._spans_written,
        )

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every run submitted before this call is written (or given up after
        retries); False if ``timeout`` seconds passed first."""
        if self._thread is None:
            return True
        marker = threading.Event()
        with self._lock:
            if self._closed:
                self._thread.join(timeout)
                return not self._thread.is_alive()
            self._queue.append(marker)
        self._wake.set()
        return marker.wait(timeout)

    async def aflush(self) -> bool:
        """``flush`` from async code, waiting in a worker thread (bound it with
        ``asyncio.timeout``)."""
        return await asyncio.to_thread(self.flush)

    def close(self, timeout: float | None = None) -> None:
        """Write what is queued, stop the writer; later submits are dropped (and counted)."""
        with self._lock:
            already_closed, self._closed = self._closed, True
        if self._thread is None or already_closed:
            return
        atexit.unregister(self.close)
        self._wake.set()
        self._thread.join(timeout)
        self._log.info("telemetry.recorder_closed", **asdict(self.stats))

    async def aclose(self) -> None:
        """``close`` from async code, waiting in a worker thread."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> TelemetryRecorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> TelemetryRecorder:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- writer thread ----------------------------------------------------------------------

    def _start_writer(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="spark-telemetry-writer", daemon=True)
        thread.start()
        atexit.register(self.close)
        return thread

    def _run(self) -> None:
        while True:
            self._wake.wait(self._flush_interval_s)
            self._wake.clear()
            closing = self._closed  # read before draining: whatever was queued before is drained
            self._drain()
            if closing:
                return

    def _drain(self) -> None:
        while self._queue:
            runs, markers = self._take_batch()
            if runs:
                self._write(runs)
            for marker in markers:
                marker.set()

    def _take_batch(self) -> tuple[list[RunTelemetry], list[threading.Event]]:
        """Up to ``batch_size`` runs, stopping at a flush marker so it is set right after them."""
        runs: list[RunTelemetry] = []
        markers: list[threading.Event] = []
        while self._queue and len(runs) < self._batch_size:
            item = self._queue.popleft()
            if isinstance(item, RunTelemetry):
                runs.append(item)
            else:
                markers.append(item)
                break
        with self._lock:
            self._pending -= len(runs)
        return runs, markers

    def _write(self, runs: list[RunTelemetry]) -> None:
        if not self._capture_inputs:
            runs = [_without_inputs(run) for run in runs]
        for attempt in range(1, self._write_attempts + 1):
            if self._try_write(runs, attempt):
                return
            if attempt < self._write_attempts:
                time.sleep(0.1 * 2**attempt)
        self._failed += len(runs)
        self._log.error("telemetry.batch_lost", runs=len(runs), failed=self._failed)

    def _try_write(self, runs: list[RunTelemetry], attempt: int) -> bool:
        assert self._store is not None  # only an enabled recorder has a writer thread
        try:
            self._store.write_runs(runs)
        except Exception as exc:  # the writer thread must survive any database failure
            self._log.warning(
                "telemetry.write_failed",
                attempt=attempt,
                runs=len(runs),
                error_type=type(exc).__name__,
                error=str(exc)[:200],
            )
            return False
        self._count_written(runs)
        return True

    def _count_written(self, runs: list[RunTelemetry]) -> None:
        self._written += len(runs)
        self._spans_written += sum(len(run.spans) for run in runs)
        self._batches += 1

    def _warn_dropped(self) -> None:
        now = time.monotonic()
        if now - self._last_drop_warning < self._drop_warning_interval_s:
            return
        self._last_drop_warning = now
        self._log.warning(
            "telemetry.runs_dropped",
            dropped=self._dropped,
            max_queue=self._max_queue,
            closed=self._closed,
        )


def _without_inputs(run: RunTelemetry) -> RunTelemetry:
    return RunTelemetry(replace(run.trace, inputs_json=None), run.spans)
