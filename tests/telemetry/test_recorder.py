"""The telemetry recorder: batching off the request path, flush, overflow counting, failures."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from structlog.testing import capture_logs

from spark.db import get_engine
from spark.telemetry import RunTelemetry, TelemetryConfig, TelemetryRecorder, TelemetryStore
from tests.telemetry import factories


class FakeWriter:
    """A stand-in store that records batches, can be held shut, and can fail on purpose."""

    backend = "fake"

    def __init__(self, failures: int = 0, error: Exception | None = None) -> None:
        self.open = threading.Event()
        self.open.set()
        self.entered = threading.Event()
        self.failures = failures
        self.error = error or ConnectionError("database went away")
        self.batches: list[list[RunTelemetry]] = []

    def write_runs(self, runs: Sequence[RunTelemetry]) -> None:
        """Wait until open, fail while failures remain, else keep the batch."""
        self.entered.set()
        assert self.open.wait(10)
        if self.failures:
            self.failures -= 1
            raise self.error
        self.batches.append(list(runs))


def fast_recorder(writer: FakeWriter, **kw: Any) -> TelemetryRecorder:
    """A recorder retrying every few milliseconds (backoff 1 ms doubling to 20 ms)."""
    options: dict[str, Any] = {"retry_initial_s": 0.001, "retry_max_s": 0.02} | kw
    return TelemetryRecorder(writer, flush_interval_s=0.01, **options)


@pytest.fixture
def writer() -> FakeWriter:
    """A fake writer that accepts every batch."""
    return FakeWriter()


@pytest.fixture
def stuck_recorder(writer: FakeWriter) -> Iterator[TelemetryRecorder]:
    """A recorder whose writer is blocked inside a write of one run (queue bound 5)."""
    writer.open.clear()
    recorder = TelemetryRecorder(writer, max_queue=5, flush_interval_s=0.01)
    recorder.submit(factories.run())
    assert writer.entered.wait(5)
    yield recorder
    writer.open.set()
    recorder.close()


def test_recorder_writes_in_batches_and_flush_waits(database_url: str) -> None:
    """Runs reach the database in batches of at most batch_size; flush returns once all are in."""
    store = TelemetryStore(database_url)
    with TelemetryRecorder(store, batch_size=10, flush_interval_s=60) as recorder:
        for _ in range(35):
            recorder.submit(factories.run(n_spans=3))
        assert recorder.flush(timeout=10)
        stats = recorder.stats
    assert (stats.submitted, stats.written, stats.spans_written, stats.pending) == (35, 35, 105, 0)
    assert 4 <= stats.batches <= 6
    assert store.count_traces("g") == 35


def test_batches_never_exceed_batch_size(writer: FakeWriter) -> None:
    """A backlog is cut into batch_size pieces, in submission order."""
    with TelemetryRecorder(writer, batch_size=4, flush_interval_s=60) as recorder:
        runs = [factories.run(0) for _ in range(10)]
        for run in runs:
            recorder.submit(run)
        assert recorder.flush(timeout=5)
    assert max(len(batch) for batch in writer.batches) <= 4
    assert [run for batch in writer.batches for run in batch] == runs


def test_submit_never_blocks_while_the_writer_is_stuck(stuck_recorder: TelemetryRecorder) -> None:
    """With the database write hung, thousands of submits still return at once."""
    started = time.perf_counter()
    for _ in range(5_000):
        stuck_recorder.submit(factories.run(0))
    assert time.perf_counter() - started < 0.5


def test_overflow_is_dropped_counted_and_warned_once(
    stuck_recorder: TelemetryRecorder, writer: FakeWriter
) -> None:
    """Past max_queue runs held in memory (the one being written included), runs are refused
    and counted as dropped, with one rate-limited warning."""
    with capture_logs() as logs:
        for _ in range(20):
            stuck_recorder.submit(factories.run(0))
    stats = stuck_recorder.stats
    assert (stats.pending, stats.dropped, stats.refused) == (5, 16, 16)
    warnings = [e for e in logs if e["event"] == "telemetry.runs_dropped"]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"
    writer.open.set()
    assert stuck_recorder.flush(timeout=5)
    assert stuck_recorder.stats.written == 5


def test_flush_times_out_while_the_writer_is_stuck(stuck_recorder: TelemetryRecorder) -> None:
    """flush reports False when the timeout passes before earlier runs are written."""
    stuck_recorder.submit(factories.run(0))
    assert stuck_recorder.flush(timeout=0.05) is False


def test_failed_writes_are_retried_with_the_same_batch() -> None:
    """A transient database failure is retried, and the batch is written once it recovers."""
    writer = FakeWriter(failures=1)
    with TelemetryRecorder(writer, flush_interval_s=60) as recorder:
        recorder.submit(factories.run(0))
        assert recorder.flush(timeout=5)
        assert (recorder.stats.written, recorder.stats.failed) == (1, 0)


def test_a_batch_the_database_keeps_rejecting_is_counted_as_dropped() -> None:
    """A batch rejected (not a connection failure) write_attempts times is given up, counted in
    failed and in dropped, and logged; the writer lives on."""
    writer = FakeWriter(failures=2, error=ValueError("value out of range"))
    with capture_logs() as logs, fast_recorder(writer, write_attempts=2) as recorder:
        recorder.submit(factories.run(0))
        assert recorder.flush(timeout=5)
        recorder.submit(factories.run(0))
        assert recorder.flush(timeout=5)
        stats = recorder.stats
        assert (stats.failed, stats.dropped, stats.written, stats.pending) == (1, 1, 1, 0)
    assert [e["log_level"] for e in logs if e["event"] == "telemetry.run_rejected"] == ["error"]


class PoisonWriter(FakeWriter):
    """A writer rejecting every batch that holds one of the ``poison`` trace ids."""

    def __init__(self, poison: set[str]) -> None:
        super().__init__()
        self.poison = poison

    def write_runs(self, runs: Sequence[RunTelemetry]) -> None:
        """Reject the batch if it holds a poisoned run, else keep it."""
        if any(run.trace.trace_id in self.poison for run in runs):
            raise ValueError("invalid byte sequence for encoding UTF8: 0x00")
        self.batches.append(list(runs))


def test_one_bad_run_costs_only_itself_not_its_batch() -> None:
    """A batch rejected for one run's content is split until the bad run stands alone: the
    other runs are written, only the bad one is counted as failed and dropped."""
    runs = [factories.run(1) for _ in range(40)]
    writer = PoisonWriter({runs[13].trace.trace_id, runs[31].trace.trace_id})
    with fast_recorder(writer, batch_size=40, write_attempts=1) as recorder:
        for run in runs:
            recorder.submit(run)
        assert recorder.flush(timeout=10)
        stats = recorder.stats
    stored = {run.trace.trace_id for batch in writer.batches for run in batch}
    assert stored == {run.trace.trace_id for run in runs} - writer.poison
    assert (stats.written, stats.failed, stats.dropped, stats.pending) == (38, 2, 2, 0)


def test_connection_failures_are_retried_past_write_attempts_with_capped_backoff() -> None:
    """An outage is waited out however many attempts it takes: nothing is given up or dropped,
    and one outage warning and one recovery line are logged, not one per attempt."""
    writer = FakeWriter(failures=12)
    with capture_logs() as logs, fast_recorder(writer, write_attempts=2) as recorder:
        for _ in range(3):
            recorder.submit(factories.run(1))
        assert recorder.flush(timeout=10)
        stats = recorder.stats
    assert (stats.written, stats.dropped, stats.write_errors) == (3, 0, 12)
    events = [e["event"] for e in logs]
    assert events.count("telemetry.store_unavailable") == 1
    assert events.count("telemetry.store_recovered") == 1


def test_close_abandons_and_counts_what_an_unreachable_database_never_took() -> None:
    """With the database still away, close returns after close_timeout_s; every run it could not
    write is counted as abandoned and dropped, and one log line says how many."""
    writer = FakeWriter(failures=10**9)
    recorder = fast_recorder(writer, close_timeout_s=0.3)
    for _ in range(7):
        recorder.submit(factories.run(2))
    with capture_logs() as logs:
        recorder.close()
    stats = recorder.stats
    assert (stats.abandoned, stats.dropped, stats.written, stats.pending) == (7, 7, 0, 0)
    (line,) = [e for e in logs if e["event"] == "telemetry.runs_abandoned"]
    assert (line["runs"], line["spans"], line["log_level"]) == (7, 14, "error")
    assert recorder.flush(timeout=1)


def test_close_is_bounded_even_when_a_database_call_hangs(writer: FakeWriter) -> None:
    """A write stuck inside the database call does not hold close past its timeout and grace;
    if that batch lands afterwards it is recounted as written, never counted twice."""
    writer.open.clear()
    recorder = fast_recorder(writer, close_timeout_s=0.1)
    recorder.submit(factories.run(0))
    assert writer.entered.wait(5)
    recorder.submit(factories.run(0))
    recorder.close()
    assert (recorder.stats.abandoned, recorder.stats.pending) == (2, 0)
    writer.open.set()
    assert recorder.flush(timeout=5)
    stats = recorder.stats
    assert (stats.written, stats.abandoned, stats.dropped) == (1, 1, 1)


def test_counters_always_add_up() -> None:
    """submitted + refused == written + dropped + pending, through overflow, outage and close."""
    writer = FakeWriter(failures=5)
    recorder = fast_recorder(writer, max_queue=20, batch_size=6)
    for _ in range(50):
        recorder.submit(factories.run(0))
        stats = recorder.stats
        assert stats.submitted + stats.refused == stats.written + stats.dropped + stats.pending
    recorder.close()
    stats = recorder.stats
    assert stats.submitted + stats.refused == stats.written + stats.dropped
    assert (stats.written, stats.refused, stats.pending) == (
        stats.submitted,
        50 - stats.submitted,
        0,
    )


def test_close_writes_what_is_queued_then_drops_later_runs(writer: FakeWriter) -> None:
    """Closing drains the queue; a run submitted afterwards is dropped and counted."""
    recorder = TelemetryRecorder(writer, flush_interval_s=60)
    for _ in range(3):
        recorder.submit(factories.run(0))
    recorder.close()
    recorder.submit(factories.run(0))
    assert (recorder.stats.written, recorder.stats.dropped) == (3, 1)
    assert recorder.flush(timeout=1)


def test_capture_inputs_false_strips_inputs_before_writing(writer: FakeWriter) -> None:
    """With capture_inputs off, traces are stored without their request inputs."""
    with TelemetryRecorder(writer, capture_inputs=False) as recorder:
        recorder.submit(factories.run(1, inputs_json='{"secret": 1}'))
    (batch,) = writer.batches
    assert batch[0].trace.inputs_json is None
    assert len(batch[0].spans) == 1


def test_disabled_config_gives_a_recorder_that_ignores_runs() -> None:
    """A disabled recorder starts no thread, opens no database and counts nothing."""
    config = TelemetryConfig.from_url("sqlite:////nonexistent/dir/t.db", enabled=False)
    with config.open_recorder() as recorder:
        recorder.submit(factories.run())
        assert recorder.flush()
    assert recorder.stats.submitted == recorder.stats.dropped == 0


async def test_aflush_and_aclose_from_async_code(database_url: str) -> None:
    """The async flush and close wait in a thread and leave every run written."""
    config = TelemetryConfig.from_url(database_url, batch_size=7)
    async with config.open_recorder() as recorder:
        for _ in range(50):
            recorder.submit(factories.run(2))
        assert await recorder.aflush()
        assert config.open_store().count_traces("g") == 50
    assert recorder.stats.written == 50


def test_a_database_missing_the_schema_rejects_instead_of_wedging_the_writer(
    sqlite_database_url: str,
) -> None:
    """SQLite reports a missing table as OperationalError, like a locked file: that is a
    rejection (it would fail the same way for ever), so the runs are counted as failed and
    flush returns, instead of being retried as an outage while flush never returns."""
    store = TelemetryStore(sqlite_database_url)
    with get_engine(sqlite_database_url).begin() as connection:
        connection.exec_driver_sql("ALTER TABLE spark_spans RENAME TO spark_spans_elsewhere")
    with fast_recorder(store, write_attempts=2) as recorder:  # type: ignore[arg-type]
        recorder.submit(factories.run(n_spans=2))
        assert recorder.flush(timeout=10)
        stats = recorder.stats
    assert (stats.failed, stats.dropped, stats.written, stats.pending) == (1, 1, 0, 0)
