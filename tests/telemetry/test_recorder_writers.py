"""Several writer threads: batches written at once, each run once, flush and close still exact."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
from structlog.testing import capture_logs

from spark.telemetry import RunTelemetry, TelemetryConfig, TelemetryRecorder
from tests.telemetry import factories


class GatedWriter:
    """A stand-in store that keeps every batch, notes how many writes run at once, and can
    hold the writes of chosen batches (by the trace id of their first run) until released."""

    backend = "fake"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.batches: list[list[RunTelemetry]] = []
        self.running = self.most_at_once = 0
        self.held: dict[str, threading.Event] = {}
        self.entered: dict[str, threading.Event] = {}

    def hold(self, trace_id: str) -> None:
        self.held[trace_id] = threading.Event()
        self.entered[trace_id] = threading.Event()

    def write_runs(self, runs: Sequence[RunTelemetry]) -> None:
        first = runs[0].trace.trace_id
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            if first in self.held:
                self.entered[first].set()
                assert self.held[first].wait(10)
            with self.lock:
                self.batches.append(list(runs))
        finally:
            with self.lock:
                self.running -= 1


def test_two_writers_write_batches_at_once_and_every_run_once() -> None:
    """With writers=2 two batches are in the database call together; every run submitted is
    written exactly once and the counters add up."""
    writer = GatedWriter()
    runs = [factories.run(2) for _ in range(40)]
    writer.hold(runs[0].trace.trace_id)
    with TelemetryRecorder(writer, batch_size=5, flush_interval_s=0.01, writers=2) as recorder:
        for run in runs:
            recorder.submit(run)
        assert writer.entered[runs[0].trace.trace_id].wait(5)
        # the first batch is held inside the database call: the other writer goes on alone
        deadline = time.monotonic() + 10
        while sum(map(len, writer.batches)) < 35 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert writer.most_at_once == 2
        writer.held[runs[0].trace.trace_id].set()
        assert recorder.flush(timeout=10)
        stats = recorder.stats
    written = [run.trace.trace_id for batch in writer.batches for run in batch]
    assert sorted(written) == sorted(run.trace.trace_id for run in runs)
    assert (stats.written, stats.spans_written, stats.pending, stats.dropped) == (40, 80, 0, 0)
    assert stats.batches == len(writer.batches) and all(len(b) <= 5 for b in writer.batches)


def test_flush_waits_for_a_batch_the_other_writer_took_earlier() -> None:
    """A flush marker drained by one writer is set only once every batch taken before it, by
    any writer, is written: flush means every run submitted before it is in the database."""
    writer = GatedWriter()
    slow, later = factories.run(1), factories.run(1)
    writer.hold(slow.trace.trace_id)
    recorder = TelemetryRecorder(writer, batch_size=1, flush_interval_s=0.01, writers=2)
    try:
        recorder.submit(slow)
        assert writer.entered[slow.trace.trace_id].wait(5)
        recorder.submit(later)
        deadline = time.monotonic() + 10
        while not writer.batches and time.monotonic() < deadline:
            time.sleep(0.005)
        assert [batch[0].trace.trace_id for batch in writer.batches] == [later.trace.trace_id]
        assert not recorder.flush(timeout=0.3)  # `later` is written; `slow` is not
        writer.held[slow.trace.trace_id].set()
        assert recorder.flush(timeout=5)
        assert recorder.stats.written == 2
    finally:
        writer.held[slow.trace.trace_id].set()
        recorder.close()


def test_close_abandons_the_batches_of_every_writer_once() -> None:
    """Both writers stuck in the database call: close gives up on both batches and the queue,
    counted once; a batch that lands afterwards is recounted as written."""
    writer = GatedWriter()
    first, second, queued = factories.run(0), factories.run(0), factories.run(0)
    writer.hold(first.trace.trace_id)
    writer.hold(second.trace.trace_id)
    recorder = TelemetryRecorder(
        writer, batch_size=1, flush_interval_s=0.01, writers=2, close_timeout_s=0.1
    )
    recorder.submit(first)
    recorder.submit(second)
    assert writer.entered[first.trace.trace_id].wait(5)
    assert writer.entered[second.trace.trace_id].wait(5)
    recorder.submit(queued)
    recorder.close()
    stats = recorder.stats
    assert (stats.abandoned, stats.dropped, stats.pending, stats.written) == (3, 3, 0, 0)
    writer.held[first.trace.trace_id].set()
    writer.held[second.trace.trace_id].set()
    assert recorder.flush(timeout=5)
    stats = recorder.stats
    assert (stats.written, stats.abandoned, stats.dropped) == (2, 1, 1)
    assert stats.submitted == stats.written + stats.dropped + stats.pending


def test_close_ends_every_writer_even_one_busy_when_it_was_woken() -> None:
    """One writer is inside a write when close wakes them; the other takes the wake-up and
    leaves. The busy one must still leave as soon as its write ends, not sleep out its flush
    interval: close ends with every writer gone and nothing abandoned."""
    writer = GatedWriter()
    held = factories.run(1)
    writer.hold(held.trace.trace_id)
    recorder = TelemetryRecorder(
        writer, batch_size=1, flush_interval_s=3600, writers=2, close_timeout_s=30
    )
    recorder.submit(held)
    recorder.flush(timeout=0)  # wake a writer: the batch is taken and held
    assert writer.entered[held.trace.trace_id].wait(5)
    closing = threading.Thread(target=recorder.close)
    with capture_logs() as logs:
        closing.start()
        time.sleep(0.2)  # the idle writer has taken close's wake-up and left
        writer.held[held.trace.trace_id].set()
        closing.join(timeout=20)
    assert not closing.is_alive()
    assert not any(thread.is_alive() for thread in recorder._threads)
    assert not [e for e in logs if e["event"] == "telemetry.runs_abandoned"]
    assert (recorder.stats.written, recorder.stats.abandoned) == (1, 0)


def test_writers_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="writers must be at least 1"):
        TelemetryRecorder(GatedWriter(), writers=0)


def test_config_picks_two_writers_on_postgres_and_one_on_sqlite() -> None:
    """The default is two threads where the server takes concurrent writers, one on SQLite;
    an explicit ``writers`` wins."""
    assert TelemetryConfig.from_url("postgresql://u@h/db").writer_threads == 2
    assert TelemetryConfig.from_url("sqlite:///t.db").writer_threads == 1
    assert TelemetryConfig.from_url("postgresql://u@h/db", writers=1).writer_threads == 1
    assert TelemetryConfig.from_url("sqlite:///t.db", writers=3).writer_threads == 3


def test_two_writers_into_the_real_database_store_each_run_once(database_url: str) -> None:
    """Through the real store (SQLite serialises the two; PostgreSQL takes them at once): every
    trace and span is stored once and the rollups count each once."""
    config = TelemetryConfig.from_url(database_url, batch_size=7, writers=2)
    with config.open_recorder() as recorder:
        for _ in range(60):
            recorder.submit(factories.run(3))
        assert recorder.flush(timeout=30)
    store = config.open_store()
    assert store.count_traces("g") == 60
    store.seal_rollups(now=float("inf"))
    by_node = {stats.node_id: stats.count for stats in store.node_stats("g", source="rollups")}
    exact = {stats.node_id: stats.count for stats in store.node_stats("g", source="exact")}
    assert by_node == exact
    assert sum(exact.values()) == 180
