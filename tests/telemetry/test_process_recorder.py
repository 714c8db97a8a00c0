"""The writer process (``TelemetryConfig.writer_process``): what the wire carries, what lands in
the database, and the counters through refusals, a writer that dies, and close."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from sqlalchemy import text

from spark.db import get_engine
from spark.telemetry import FeedbackRecord, RunTelemetry, TelemetryConfig, TelemetryRecorder, _wire
from spark.telemetry.fingerprints import complete_run
from spark.telemetry.models import PendingRun
from spark.telemetry.process_recorder import ProcessRecorder
from spark.telemetry.recorder import Recorder
from spark.telemetry.sampling import trace_sampled
from tests.telemetry import factories


def _counts(url: str) -> tuple[int, int, int]:
    with get_engine(url).connect() as conn:
        return (
            conn.execute(text("SELECT count(*) FROM spark_traces")).scalar_one(),
            conn.execute(text("SELECT count(DISTINCT span_id) FROM spark_spans")).scalar_one(),
            conn.execute(text("SELECT count(*) FROM spark_feedback")).scalar_one(),
        )


def _balanced(recorder: Recorder) -> None:
    stats = recorder.stats
    assert stats.submitted + stats.refused == stats.written + stats.dropped + stats.pending
    assert stats.dropped == stats.refused + stats.failed + stats.abandoned


class _Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("this object refuses to be pickled")


def test_wire_carries_each_kind_of_record_unchanged() -> None:
    pending = factories.pending_run({"n0": {"q": "a"}, "n1": {"q": ["x", 1]}}, {"q": "a"})
    run = factories.run(3)
    score = FeedbackRecord("trace-1", 0.5, 1_700_000_000.0, label="good", source="grader")
    payload, refused = _wire.encode_records([pending, run, score])
    assert refused == []
    decoded = _wire.decode_records(payload)
    assert decoded == [pending, run, score]
    assert isinstance(decoded[0], PendingRun) and isinstance(decoded[1], RunTelemetry)


def test_wire_completes_a_run_whose_inputs_marshal_cannot_carry() -> None:
    """A node input holding a datetime: the run is completed before it is encoded, so the
    writer gets the same fingerprint the thread writer would have computed."""
    when = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    pending = factories.pending_run({"n0": {"at": when}}, {"q": "a"})
    expected = complete_run(factories.pending_run({"n0": {"at": when}}, {"q": "a"}))
    payload, refused = _wire.encode_records([pending])
    (decoded,) = _wire.decode_records(payload)
    assert refused == []
    assert isinstance(decoded, RunTelemetry)
    assert decoded.spans[0].input_fingerprint == expected.spans[0].input_fingerprint is not None
    assert decoded.trace.inputs_json == expected.trace.inputs_json


def test_wire_pickles_a_field_marshal_refuses_and_refuses_what_nothing_carries() -> None:
    odd = factories.run(1)
    odd.spans[0] = odd.spans[0]._replace(error_type=dt.date(2026, 1, 1))  # type: ignore[arg-type]
    bad = factories.run(1)
    bad.spans[0] = bad.spans[0]._replace(error_type=_Unpicklable())  # type: ignore[arg-type]
    good = factories.run(1)
    payload, refused = _wire.encode_records([odd, bad, good])
    assert refused == [bad]
    assert _wire.decode_records(payload) == [odd, good]


def test_frames_are_read_only_when_complete() -> None:
    data = _wire.frame(_wire.FLUSH, _wire.encode_value(7)) + _wire.frame(_wire.CLOSE, b"xy")
    buffer = bytearray(data[:-1])
    assert [(kind, _wire.decode_value(body)) for kind, body in _wire.read_frames(buffer)] == [
        (_wire.FLUSH, 7)
    ]
    buffer.extend(data[-1:])
    assert list(_wire.read_frames(buffer)) == [(_wire.CLOSE, b"xy")]
    assert buffer == bytearray()


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_runs_and_scores_land_through_the_writer_process(
    database: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(f"{database}_database_url")
    config = TelemetryConfig.from_url(url, writer_process=True, batch_size=7)
    pending = [factories.pending_run({"n0": {"q": i}, "n1": {}}, {"q": i}) for i in range(20)]
    runs = [factories.run(2) for _ in range(5)]
    with config.open_recorder() as recorder:
        assert isinstance(recorder, ProcessRecorder)
        submitted: list[RunTelemetry | PendingRun] = [*pending, *runs]
        for run in submitted:
            recorder.submit(run)
        assert recorder.submit_feedback([FeedbackRecord("t", 1.0, 1.0)]) == 1
        assert recorder.flush(30)
        stats = recorder.stats
        _balanced(recorder)
    assert (stats.written, stats.pending, stats.dropped, stats.feedback_written) == (26, 0, 0, 1)
    assert stats.spans_written == 20 * 2 + 5 * 2
    assert _counts(url) == (25, 50, 1)
    with get_engine(url).connect() as conn:
        fingerprints = conn.execute(
            text("SELECT count(input_fingerprint) FROM spark_spans WHERE node_id = 'n0'")
        ).scalar_one()
    assert fingerprints == 20  # completed by the writer process, as the thread would


def test_a_recorder_that_records_nothing_starts_no_process(sqlite_database_url: str) -> None:
    """A client that only reads (a CLI command's) never spawns the writer: nothing starts
    until the first run, and closing an unused recorder is immediate."""
    config = TelemetryConfig.from_url(sqlite_database_url, writer_process=True)
    recorder = config.open_recorder()
    assert isinstance(recorder, ProcessRecorder)
    assert recorder._process is None and recorder._service is None
    recorder.close()
    assert recorder._process is None and recorder.flush(1)
    assert recorder.stats.submitted == 0

    used = config.open_recorder()
    assert isinstance(used, ProcessRecorder)
    try:
        used.submit(factories.run(1))
        assert used._process is not None  # started by the first run
        assert used.flush(30) and used.stats.written == 1
    finally:
        used.close()


def test_a_writer_process_that_cannot_start_refuses_and_counts_until_it_can(
    sqlite_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the process cannot be started, runs and scores are refused and counted (the
    request path never sees the error); the start is tried again once a second has passed."""

    def no_process(*args: Any, **kwargs: Any) -> Any:
        raise OSError("no more processes")

    config = TelemetryConfig.from_url(sqlite_database_url, writer_process=True)
    recorder = config.open_recorder()
    assert isinstance(recorder, ProcessRecorder)
    try:
        with monkeypatch.context() as patched:
            patched.setattr(subprocess, "Popen", no_process)
            recorder.submit(factories.run(1))
            assert recorder.submit_feedback([FeedbackRecord("t", 1.0, 1.0)]) == 0
            assert recorder._process is None
            assert (recorder.stats.refused, recorder.stats.dropped) == (2, 2)
        recorder.submit(factories.run(1))  # within a second of the failure: not tried again
        assert recorder._process is None and recorder.stats.refused == 3
        recorder._last_start -= 1.0  # the second has passed
        recorder.submit(factories.run(1))
        assert recorder._process is not None
        assert recorder.flush(30)
        assert (recorder.stats.written, recorder.stats.refused) == (1, 3)
    finally:
        recorder.close()
    assert _counts(sqlite_database_url)[0] == 1


def test_runs_beyond_max_queue_are_refused_and_counted(sqlite_database_url: str) -> None:
    config = TelemetryConfig.from_url(
        sqlite_database_url, writer_process=True, batch_size=1000, max_queue=5
    )
    recorder = config.open_recorder()
    try:
        for _ in range(8):
            recorder.submit(factories.run(1))
        assert recorder.flush(30)
        stats = recorder.stats
        assert (stats.written, stats.refused, stats.dropped, stats.pending) == (5, 3, 3, 0)
    finally:
        recorder.close()
    recorder.submit(factories.run(1))  # closed: refused too
    assert recorder.stats.refused == 4
    assert _counts(sqlite_database_url)[0] == 5


def test_a_writer_process_that_dies_is_counted_and_replaced(sqlite_database_url: str) -> None:
    config = TelemetryConfig.from_url(sqlite_database_url, writer_process=True, batch_size=2)
    recorder = config.open_recorder()
    assert isinstance(recorder, ProcessRecorder)
    try:
        for _ in range(4):
            recorder.submit(factories.run(1))
        assert recorder.flush(30)
        first = recorder._process
        assert first is not None
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        deadline = time.monotonic() + 15
        while recorder._process is first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert recorder._process is not first  # a new writer took over
        for _ in range(3):
            recorder.submit(factories.run(1))
        assert recorder.flush(30)
        stats = recorder.stats
        _balanced(recorder)
        assert (stats.written, stats.pending, stats.dropped) == (7, 0, 0)
    finally:
        recorder.close()
    assert _counts(sqlite_database_url)[0] == 7


def test_runs_a_dead_writer_held_are_abandoned_not_lost_silently(
    sqlite_database_url: str,
) -> None:
    """Runs sent to a writer that dies before writing them are counted as abandoned."""
    config = TelemetryConfig.from_url(
        sqlite_database_url, writer_process=True, batch_size=3, flush_interval_s=30
    )
    recorder = config.open_recorder()
    assert isinstance(recorder, ProcessRecorder)
    try:
        assert recorder.flush(30)  # the writer is up
        process = recorder._process
        assert process is not None
        os.kill(process.pid, signal.SIGSTOP)  # frozen: it reads nothing more
        for _ in range(3):
            recorder.submit(factories.run(1))  # one frame, into the pipe
        os.kill(process.pid, signal.SIGKILL)
        assert recorder.flush(30)
        stats = recorder.stats
        _balanced(recorder)
        assert (stats.abandoned, stats.written, stats.pending) == (3, 0, 0)
    finally:
        recorder.close()


def test_a_disabled_config_opens_the_plain_disabled_recorder() -> None:
    config = TelemetryConfig(database_url="sqlite://", enabled=False, writer_process=True)
    recorder = config.open_recorder()
    assert isinstance(recorder, TelemetryRecorder) and not recorder.enabled


def test_close_with_a_writer_that_does_not_answer_is_bounded_and_counts_everything(
    sqlite_database_url: str,
) -> None:
    """A frozen writer: close returns after its timeout (plus the grace), and every run sent
    to the writer or still waiting here is counted as abandoned."""
    config = TelemetryConfig.from_url(
        sqlite_database_url, writer_process=True, batch_size=2, flush_interval_s=30
    )
    recorder = config.open_recorder()
    assert isinstance(recorder, ProcessRecorder)
    assert recorder.flush(30)
    process = recorder._process
    assert process is not None
    os.kill(process.pid, signal.SIGSTOP)
    for _ in range(5):  # two frames of two go to the pipe, one run waits here
        recorder.submit(factories.run(1))
    started = time.monotonic()
    recorder.close(timeout=0.5)
    assert time.monotonic() - started < 10
    stats = recorder.stats
    _balanced(recorder)
    assert (stats.abandoned, stats.written, stats.pending) == (5, 0, 0)
    assert process.poll() is not None  # killed, not left behind


def test_sampling_is_decided_before_encoding_and_counted(sqlite_database_url: str) -> None:
    config = TelemetryConfig.from_url(sqlite_database_url, writer_process=True, sampling_rate=0.5)
    runs = [factories.run(1) for _ in range(200)]
    kept = [run for run in runs if trace_sampled(run.trace.trace_id, 0.5)]
    with config.open_recorder() as recorder:
        for run in runs:
            recorder.submit(run)
        assert recorder.flush(30)
        stats = recorder.stats
        _balanced(recorder)
    assert 0 < len(kept) < 200
    assert (stats.written, stats.unsampled, stats.submitted) == (
        len(kept),
        200 - len(kept),
        len(kept),
    )
    with get_engine(sqlite_database_url).connect() as conn:
        stored = set(conn.execute(text("SELECT trace_id FROM spark_traces")).scalars())
        rates = set(conn.execute(text("SELECT sampling_rate FROM spark_traces")).scalars())
    assert stored == {run.trace.trace_id for run in kept}
    assert rates == {0.5}  # stamped by the writer's recorder, as with the thread


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"hello\n", b"input ended inside a frame"),
        (_wire.frame(_wire.RECORDS, b"xy"), b"before the configuration frame"),
    ],
)
def test_the_writer_process_refuses_input_no_recorder_sent(data: bytes, message: bytes) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "spark.telemetry.writer_process"],
        input=data,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert message in done.stderr and b"Traceback" not in done.stderr


async def test_the_environment_turns_the_writer_process_on_for_a_client(
    monkeypatch: pytest.MonkeyPatch, sqlite_database_url: str
) -> None:
    """``SPARK_TELEMETRY_WRITER_PROCESS=1``: a ``SparkClient`` writes its runs through the child
    process, and they are stored; an unreadable value is refused naming the variable."""
    from examples.support_triage.graph import NODE_MODULES, build_spec
    from spark.client import SparkClient
    from spark.errors import ConfigurationError
    from spark.settings import SparkSettings

    monkeypatch.setenv("SPARK_DATABASE_URL", sqlite_database_url)
    monkeypatch.setenv("SPARK_TELEMETRY_WRITER_PROCESS", "1")
    client = SparkClient(SparkSettings.from_env())
    try:
        assert isinstance(client._recorder, ProcessRecorder)
        client.register_graph(build_spec("env-graph", classify_failure_rate=0.0), NODE_MODULES)
        for i in range(5):
            ticket = {"ticket": f"my parcel {i} is late", "customer_id": f"c{i}"}
            await client.run("env-graph", ticket, routing_key=f"c{i}")
        client.flush()
        assert _counts(sqlite_database_url)[0] == 5
    finally:
        client.close()
    monkeypatch.setenv("SPARK_TELEMETRY_WRITER_PROCESS", "sometimes")
    with pytest.raises(ConfigurationError, match="SPARK_TELEMETRY_WRITER_PROCESS"):
        SparkSettings.from_env()
