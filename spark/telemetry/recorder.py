"""The telemetry recorder: the runtime's ``TelemetrySink``, writing in batches off the request path.

``submit`` only appends to an in-memory queue (under a lock held for a few hundred nanoseconds);
daemon writer threads drain it in batches through the store's bulk writers. One thread by
default; on a server database (``writers=2``, what ``TelemetryConfig`` picks for PostgreSQL) a
second one formats and sends its batch while the server works through the other's, so the
client's and the server's cores both work (one thread leaves each idle about half the time).
Batches then commit in any order; a ``flush`` still returns only once every batch taken before
it has been written or given up.

Database outages lose nothing within the bound. A write that fails because the database cannot
be reached is retried with capped exponential backoff (``retry_initial_s`` doubling up to
``retry_max_s``) for as long as the outage lasts, while ``submit`` keeps queueing: at most
``max_queue`` runs are held in memory, the batch being retried included. A batch the database
*rejects* (anything but a connection failure) is retried ``write_attempts`` times, then split in
halves written on their own, so only the runs it rejects alone are given up.

``stats.dropped`` is the one figure of runs that will never be written: refused at submit (queue
full or recorder closed), rejected by the database, or abandoned when ``close`` has waited
``close_timeout_s`` for a database that is still away. Each kind is logged with its count.

Feedback scores (``submit_feedback``) take the same road: queued with the runs (in the same
bound), written in the same batches, retried through an outage, counted in the same counters
(``stats.feedback_written`` says how many of ``written`` were scores), and covered by ``flush``.

The writer also does the work the request path skipped: the runtime hands a sink that
``defers_fingerprints`` a ``PendingRun`` and the writer builds its trace record, inputs JSON,
fingerprints and span ids before writing (``spark.telemetry.fingerprints``).
"""

from __future__ import annotations

import asyncio
import atexit
import math
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from types import TracebackType
from typing import Protocol, Self, cast

import structlog
import tenacity

from spark.telemetry._bulk import is_connection_failure
from spark.telemetry.fingerprints import complete_run
from spark.telemetry.models import FeedbackRecord, PendingRun, RunTelemetry
from spark.telemetry.sampling import trace_sampled

log = structlog.get_logger(__name__)

_ABANDONED = object()  # a write attempt that found the batch abandoned by close
ABANDON_GRACE_S = 1.0  # after abandoning, how long close waits for the writer to leave
_JOIN_SLICE_S = 0.05  # how often close wakes the writers again while it waits for them


class RunWriter(Protocol):
    """What the recorder writes through: ``TelemetryStore``, or a stand-in in tests."""

    backend: str

    def write_runs(self, runs: Sequence[RunTelemetry]) -> None:
        """Persist a batch of runs; may be retried with the same batch."""
        ...


class FeedbackWriter(Protocol):
    """What the recorder writes scores through (``TelemetryStore.write_feedback``)."""

    def write_feedback(self, records: Sequence[FeedbackRecord]) -> None:
        """Persist a batch of scores in one transaction."""
        ...


Record = RunTelemetry | PendingRun | FeedbackRecord  # what the queue holds, besides flush markers


class Recorder(Protocol):
    """What ``TelemetryConfig.open_recorder`` returns: a ``TelemetryRecorder`` (writer threads)
    or a ``spark.telemetry.process_recorder.ProcessRecorder`` (a writer process)."""

    defers_fingerprints: bool

    @property
    def enabled(self) -> bool:
        """Whether this recorder writes anywhere."""
        ...

    @property
    def stats(self) -> RecorderStats:
        """Its counters."""
        ...

    def submit(self, run: RunTelemetry | PendingRun) -> None:
        """Queue a finished run; never blocks."""
        ...

    def submit_feedback(self, records: Sequence[FeedbackRecord]) -> int:
        """Queue scores; how many were taken."""
        ...

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is written or given up."""
        ...

    async def aflush(self) -> bool:
        """``flush`` from async code."""
        ...

    def close(self, timeout: float | None = None) -> None:
        """Write what is queued and stop."""
        ...

    async def aclose(self) -> None:
        """``close`` from async code."""
        ...

    def __enter__(self) -> Recorder: ...

    async def __aenter__(self) -> Recorder: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class RecorderStats:
    """Counters of a recorder, in records: runs and feedback scores (``spans_written`` in spans,
    ``write_errors`` in attempts, ``feedback_written`` the scores among ``written``).

    ``submitted + refused == written + dropped + pending`` at every snapshot;
    ``dropped == refused + failed + abandoned``.
    """

    submitted: int
    written: int
    dropped: int
    refused: int
    failed: int
    abandoned: int
    batches: int
    pending: int
    spans_written: int
    write_errors: int
    unsampled: int = 0  # runs not kept by trace sampling (never submitted, never dropped)
    feedback_written: int = 0


class RecorderLifecycle(ABC):
    """The async and context-manager forms of a recorder's ``flush`` and ``close``, shared by
    ``TelemetryRecorder`` and ``ProcessRecorder`` (which implement the two)."""

    @abstractmethod
    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every run submitted so far is written or given up on."""

    @abstractmethod
    def close(self, timeout: float | None = None) -> None:
        """Write what is pending and stop."""

    async def aflush(self) -> bool:
        """``flush`` from async code, waiting in a worker thread (bound it with
        ``asyncio.timeout``)."""
        return await asyncio.to_thread(self.flush)

    async def aclose(self) -> None:
        """``close`` from async code, waiting in a worker thread."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


class TelemetryRecorder(RecorderLifecycle):
    """Queues finished runs (and feedback scores) and writes them in batches from a background
    thread.

    ``store`` is usually a ``TelemetryStore``; ``None`` makes a disabled recorder that ignores
    every run. With ``sampling_rate`` below 1 only the runs whose trace ``trace_sampled`` keeps
    are queued, stamped with the rate (``stats.unsampled`` counts the others). Close it (or use it as a context manager) to write what is still queued; an
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
        retry_initial_s: float = 0.1,
        retry_max_s: float = 5.0,
        close_timeout_s: float = 10.0,
        sampling_rate: float = 1.0,
        writers: int = 1,
    ) -> None:
        if writers < 1:
            raise ValueError(f"writers must be at least 1, got {writers!r}")
        self._store = store
        self._feedback_written = 0
        self._sampling_rate = sampling_rate
        self._unsampled = 0
        self._batch_size = batch_size
        self._max_queue = max_queue
        self._flush_interval_s = flush_interval_s
        self._capture_inputs = capture_inputs
        self._drop_warning_interval_s = drop_warning_interval_s
        self._write_attempts = write_attempts
        self._retry_initial_s, self._retry_max_s = retry_initial_s, retry_max_s
        self._close_timeout_s = close_timeout_s
        self._queue: deque[Record | threading.Event] = deque()
        self._in_flight = self._in_flight_spans = 0  # runs (spans) of the batches being written
        self._in_flight_abandoned = False
        self._next_batch = 0  # the number the next batch taken gets
        self._open_batches: set[int] = set()  # batches taken and not yet written or given up
        self._flush_markers: list[tuple[int, threading.Event]] = []  # (last batch before, marker)
        self._lock, self._wake, self._give_up = (
            threading.Lock(),
            threading.Event(),
            threading.Event(),
        )
        self._pending = self._submitted = self._refused = self._failed = self._abandoned = 0
        self._written = self._batches = self._spans_written = self._write_errors = 0
        self._closed, self._last_drop_warning = False, -math.inf
        self._outage_since: float | None = None
        self._log = log.bind(backend=store.backend if store else "disabled")
        self._threads = self._start_writers(writers) if store is not None else []

    defers_fingerprints = True  # the runtime leaves input hashing to the writer thread

    # -- request path -----------------------------------------------------------------------

    def submit(self, run: RunTelemetry | PendingRun) -> None:
        """Queue a finished run for writing; O(1), never blocks on I/O, refuses (counted) if full."""
        if self._store is None:
            return
        kept = self._sampled(run)
        if kept is None:
            return
        with self._lock:
            if self._pending < self._max_queue and not self._closed:
                self._pending += 1
                self._submitted += 1
                self._queue.append(kept)
                if len(self._queue) == self._batch_size:
                    self._wake.set()
                return
            self._refused += 1
        self._warn_dropped()

    def submit_feedback(self, records: Sequence[FeedbackRecord]) -> int:
        """Queue scores for writing with the runs; how many were taken (the rest are refused,
        counted, because the queue is full or the recorder closed)."""
        if self._store is None:
            return 0
        with self._lock:
            room = 0 if self._closed else max(self._max_queue - self._pending, 0)
            taken = records[:room]
            self._pending += len(taken)
            self._submitted += len(taken)
            self._refused += len(records) - len(taken)
            self._queue.extend(taken)
            if len(self._queue) >= self._batch_size:
                self._wake.set()
        if len(taken) < len(records):
            self._warn_dropped()
        return len(taken)

    @property
    def enabled(self) -> bool:
        """Whether this recorder writes anywhere (a disabled one ignores everything)."""
        return self._store is not None

    def _sampled(self, run: RunTelemetry | PendingRun) -> RunTelemetry | PendingRun | None:
        """The run stamped with the sampling rate, or None (counted) when its trace is not kept."""
        rate = self._sampling_rate
        if rate >= 1.0:
            return run
        if not trace_sampled(trace_id_of(run), rate):
            with self._lock:
                self._unsampled += 1
            return None
        if isinstance(run, PendingRun):
            return replace(run, sampling_rate=rate)
        return replace(run, trace=run.trace._replace(sampling_rate=rate))

    # -- control ----------------------------------------------------------------------------

    @property
    def stats(self) -> RecorderStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return RecorderStats(
                submitted=self._submitted,
                written=self._written,
                dropped=self._refused + self._failed + self._abandoned,
                refused=self._refused,
                failed=self._failed,
                abandoned=self._abandoned,
                batches=self._batches,
                pending=self._pending,
                spans_written=self._spans_written,
                write_errors=self._write_errors,
                unsampled=self._unsampled,
                feedback_written=self._feedback_written,
            )

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every run submitted before this call is written (or given up); False if
        ``timeout`` seconds passed first. Without a timeout it waits out a database outage."""
        if not self._threads:
            return True
        marker = threading.Event()
        with self._lock:
            closed = self._closed
            if not closed:
                self._queue.append(marker)
        if closed:  # the writers drain the queue on their way out
            return self._join_writers(timeout)
        self._wake.set()
        return marker.wait(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Write what is queued and stop the writer; later submits are refused (and counted).

        Waits at most ``timeout`` seconds (default ``close_timeout_s``) for the database to take
        the queue. Whatever is still unwritten then is abandoned: counted in ``dropped``, logged
        as ``telemetry.runs_abandoned``. Close then returns within ``ABANDON_GRACE_S`` more, even
        if the writer is stuck in a database call (a batch that still lands is recounted as
        written).
        """
        with self._lock:
            already_closed, self._closed = self._closed, True
        if not self._threads or already_closed:
            return
        atexit.unregister(self.close)
        self._wake.set()
        if not self._join_writers(self._close_timeout_s if timeout is None else timeout):
            self._abandon_pending()
            self._join_writers(ABANDON_GRACE_S)
        self._log.info("telemetry.recorder_closed", **asdict(self.stats))

    def _join_writers(self, timeout: float | None) -> bool:
        """Wait for every writer thread to end, ``timeout`` seconds at most in all; whether
        they all did."""
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        while any(thread.is_alive() for thread in self._threads):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            # Wake them again each time round: with several writers, one may clear the wake-up
            # meant for another that was still writing, which would then sleep a whole
            # flush interval before it saw the recorder closed.
            self._wake.set()
            for thread in self._threads:
                thread.join(min(_JOIN_SLICE_S, max(deadline - time.monotonic(), 0.0)))
        return True

    # -- writer thread ----------------------------------------------------------------------

    def _start_writers(self, count: int) -> list[threading.Thread]:
        threads = [
            threading.Thread(
                target=self._run,
                name="spark-telemetry-writer" if count == 1 else f"spark-telemetry-writer-{n}",
                daemon=True,
            )
            for n in range(1, count + 1)
        ]
        for thread in threads:
            thread.start()
        atexit.register(self.close)
        return threads

    def _run(self) -> None:
        while not self._give_up.is_set():
            self._wake.wait(self._flush_interval_s)
            self._wake.clear()
            closing = self._closed  # read before draining: whatever was queued before is drained
            self._drain()
            if closing:
                return

    def _drain(self) -> None:
        while self._queue and not self._give_up.is_set():
            batch, taken = self._take_batch()
            try:  # whatever happens to the batch, no flush may wait on it for ever
                runs = [self._completed(item) for item in taken]
                if runs:
                    self._write(runs)
            finally:
                self._batch_done(batch)

    def _take_batch(self) -> tuple[int, list[Record]]:
        """The next batch's number and up to ``batch_size`` records (still to complete), stopping
        at a flush marker, which ``_batch_done`` sets once this batch and every one taken before
        it are done.

        The batch stays counted in ``pending`` (it is still in memory) until written or given up.
        """
        runs: list[Record] = []
        with self._lock:
            batch, self._next_batch = self._next_batch, self._next_batch + 1
            self._open_batches.add(batch)
            while self._queue and len(runs) < self._batch_size:
                item = self._queue.popleft()
                if isinstance(item, threading.Event):
                    self._flush_markers.append((batch, item))
                    break
                runs.append(item)
            if not self._in_flight:
                self._in_flight_abandoned = False
            self._in_flight += len(runs)
            self._in_flight_spans += _span_count(runs)
        return batch, runs

    def _batch_done(self, batch: int) -> None:
        """Set the flush markers that waited for nothing but ``batch`` and older batches."""
        with self._lock:
            self._open_batches.discard(batch)
            oldest_open = min(self._open_batches, default=self._next_batch)
            ready = [marker for after, marker in self._flush_markers if after < oldest_open]
            self._flush_markers = [
                (after, marker) for after, marker in self._flush_markers if after >= oldest_open
            ]
        for marker in ready:
            marker.set()

    def _completed(self, item: Record) -> Record:
        """A pending run completed (and inputs stripped if not captured)."""
        if isinstance(item, FeedbackRecord):
            return item
        run = complete_run(item)
        return run if self._capture_inputs else _without_inputs(run)

    def _write(self, runs: list[Record]) -> None:
        """Write ``runs``: through an outage for as long as it lasts, a rejection a few times,
        waiting with capped exponential backoff between attempts (tenacity) until ``close``
        gives up on the batch."""
        rejections = 0

        def attempt() -> Exception | object | None:
            nonlocal rejections
            if self._give_up.is_set():
                return _ABANDONED  # close abandoned this batch and everything queued
            error = self._try_write(runs)
            if error is not None and not is_connection_failure(error):
                rejections += 1
            return error

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_result(lambda outcome: isinstance(outcome, Exception)),
            stop=lambda _state: rejections >= self._write_attempts,
            wait=tenacity.wait_exponential(multiplier=self._retry_initial_s, max=self._retry_max_s),
            sleep=self._wait_or_give_up,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        outcome = retrying(attempt)
        if outcome is None:
            self._settle(runs, written=True)
        elif isinstance(outcome, Exception):
            self._split_rejected(runs, outcome)

    def _wait_or_give_up(self, seconds: float) -> None:
        """Sleep between attempts; ``close`` giving up on the batch ends the wait at once."""
        self._give_up.wait(seconds)

    def _split_rejected(self, runs: list[Record], error: Exception) -> None:
        """Keep what the database accepts of a batch it keeps rejecting: each half is written on
        its own, down to the single runs it rejects, which alone are given up."""
        if len(runs) == 1:
            self._give_up_rejected(runs, error)
            return
        middle = len(runs) // 2
        for half in (runs[:middle], runs[middle:]):
            if not self._give_up.is_set():
                self._write(half)

    def _try_write(self, runs: list[Record]) -> Exception | None:
        """One write attempt; the error it failed with, or None."""
        assert self._store is not None  # only an enabled recorder has a writer thread
        traces = [item for item in runs if isinstance(item, RunTelemetry)]
        scores = [item for item in runs if isinstance(item, FeedbackRecord)]
        try:
            if traces:
                self._store.write_runs(traces)
            if scores:
                cast(FeedbackWriter, self._store).write_feedback(scores)
        except Exception as exc:  # the writer thread must survive any database failure
            self._note_write_error(runs, exc)
            return exc
        return None

    def _note_write_error(self, runs: list[Record], exc: Exception) -> None:
        """Count the failed attempt; log an outage once when it starts, other errors each time."""
        with self._lock:
            self._write_errors += 1
            pending = self._pending
        details = {"runs": len(runs), "pending": pending, "error_type": type(exc).__name__}
        if not is_connection_failure(exc):
            self._log.warning("telemetry.write_rejected", **details, error=str(exc)[:200])
        elif self._outage_since is None:
            self._outage_since = time.monotonic()
            self._log.warning(
                "telemetry.store_unavailable",
                **details,
                error=str(exc)[:200],
                max_queue=self._max_queue,
                retry_max_s=self._retry_max_s,
            )

    def _settle(self, runs: list[Record], *, written: bool) -> None:
        """Count ``runs`` of the batch in flight as written, or as failed (rejected)."""
        count, spans = len(runs), _span_count(runs)
        scores = sum(isinstance(item, FeedbackRecord) for item in runs)
        with self._lock:
            self._in_flight -= count
            self._in_flight_spans -= spans
            if not self._in_flight_abandoned:
                self._pending -= count
            elif written:  # close counted them as abandoned, yet they landed
                self._abandoned -= count
            else:
                return  # already counted as abandoned
            if written:
                self._written, self._spans_written = (
                    self._written + count,
                    self._spans_written + spans,
                )
                self._batches += 1
                self._feedback_written += scores
            else:
                self._failed += count
        if written:
            self._note_recovered()

    def _note_recovered(self) -> None:
        if self._outage_since is None:
            return
        outage_s, self._outage_since = time.monotonic() - self._outage_since, None
        self._log.info(
            "telemetry.store_recovered", outage_s=round(outage_s, 3), **asdict(self.stats)
        )

    def _give_up_rejected(self, runs: list[Record], error: Exception) -> None:
        self._settle(runs, written=False)
        self._log.error(
            "telemetry.run_rejected"
            if isinstance(runs[0], RunTelemetry)
            else "telemetry.feedback_rejected",
            trace_id=trace_id_of(runs[0]),
            failed=self.stats.failed,
            attempts=self._write_attempts,
            error_type=type(error).__name__,
            error=str(error)[:200],
        )

    def _abandon_pending(self) -> None:
        """Give up on every run still in memory (close timed out with the database away)."""
        with self._lock:
            self._give_up.set()
            queued = [item for item in self._queue if not isinstance(item, threading.Event)]
            markers = [item for item in self._queue if isinstance(item, threading.Event)]
            markers += [marker for _after, marker in self._flush_markers]
            self._flush_markers = []
            self._queue.clear()
            count = len(queued) + self._in_flight
            spans = _span_count(queued) + self._in_flight_spans
            self._in_flight_abandoned = self._in_flight > 0
            self._pending -= count
            self._abandoned += count
        for marker in markers:
            marker.set()
        self._log.error(
            "telemetry.runs_abandoned",
            runs=count,
            spans=spans,
            reason="closed while the database was unreachable",
            close_timeout_s=self._close_timeout_s,
        )

    def _warn_dropped(self) -> None:
        now = time.monotonic()
        if now - self._last_drop_warning < self._drop_warning_interval_s:
            return
        self._last_drop_warning = now
        self._log.warning(
            "telemetry.runs_dropped",
            refused=self._refused,
            dropped=self._refused + self._failed + self._abandoned,
            max_queue=self._max_queue,
            closed=self._closed,
        )


def _without_inputs(run: RunTelemetry) -> RunTelemetry:
    return replace(run, trace=run.trace._replace(inputs_json=None))


def _span_count(records: list[Record]) -> int:
    return sum(
        len(item.spans) if isinstance(item, RunTelemetry) else item.span_count
        for item in records
        if not isinstance(item, FeedbackRecord)
    )


def trace_id_of(record: Record) -> str:
    """The trace id of a queued run or score."""
    return record.trace.trace_id if isinstance(record, RunTelemetry) else record.trace_id
