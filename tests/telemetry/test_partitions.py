"""PostgreSQL's day partitions of traces and spans: where rows land, retention by dropping
partitions, the default partition, concurrent creators, and migration 0011 with data."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from spark.db import get_engine, normalize_url
from spark.errors import TelemetryBusyError
from spark.migrations import runner
from spark.telemetry import RunTelemetry, TelemetryStore, _bulk, partitions
from spark.telemetry.partitions import DAY_SECONDS, partition_name
from tests.telemetry import factories

DAY0 = int(factories.T0 // DAY_SECONDS)  # 2023-11-14
START = DAY0 * DAY_SECONDS


def _where(url: str, table: str) -> dict[str, int]:
    """Rows of ``table`` per partition (the physical table each row is stored in)."""
    sql = f"SELECT tableoid::regclass::text, count(*) FROM {table} GROUP BY 1"
    with get_engine(url).connect() as conn:
        return {str(name): int(n) for name, n in conn.execute(text(sql))}


def _partitions(url: str, table: str) -> set[str]:
    sql = "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = to_regclass(:t)"
    with get_engine(url).connect() as conn:
        return {str(name) for (name,) in conn.execute(text(sql), {"t": table})}


def _count(url: str, table: str) -> int:
    with get_engine(url).connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def _run_at(started_at: float, n_spans: int = 2) -> RunTelemetry:
    return factories.run(n_spans=n_spans, started_at=started_at)


def test_writes_land_in_the_partition_of_their_day(postgres_database_url: str) -> None:
    """Runs over three days are stored in those days' partitions, a span past midnight in the
    next day's, and today's and tomorrow's partitions exist before any row of theirs."""
    url = postgres_database_url
    runs = [_run_at(START + day * DAY_SECONDS + 10) for day in range(3)]
    late = factories.trace(started_at=START + DAY_SECONDS - 1)
    runs.append(RunTelemetry(late, [factories.span(late, started_at=START + DAY_SECONDS + 1)]))
    TelemetryStore(url).write_runs(runs)

    assert _where(url, "spark_traces") == {
        partition_name("spark_traces", DAY0): 2,
        partition_name("spark_traces", DAY0 + 1): 1,
        partition_name("spark_traces", DAY0 + 2): 1,
    }
    assert _where(url, "spark_spans") == {
        partition_name("spark_spans", DAY0): 2,
        partition_name("spark_spans", DAY0 + 1): 3,
        partition_name("spark_spans", DAY0 + 2): 2,
    }
    today = int(time.time() // DAY_SECONDS)
    expected = {DAY0, DAY0 + 1, DAY0 + 2, today, today + 1}
    for table in partitions.TABLES:
        names = {partition_name(table, day) for day in expected} | {f"{table}_default"}
        assert _partitions(url, table) == names


def test_rows_far_ahead_go_to_the_default_partition_and_move_when_their_day_comes(
    postgres_database_url: str,
) -> None:
    """A run dated ten days ahead creates no partition: it is stored in the default partition.
    When its day comes within reach, creating the day's partition moves it there."""
    url = postgres_database_url
    ahead = time.time() + 10 * DAY_SECONDS
    run = _run_at(ahead, n_spans=3)
    TelemetryStore(url).write_runs([run])
    assert _where(url, "spark_spans") == {"spark_spans_default": 3}
    assert _where(url, "spark_traces") == {"spark_traces_default": 1}

    day = int(ahead // DAY_SECONDS)
    rows = _bulk.trace_rows([run]), _bulk.span_rows([run])
    partitions.DayPartitions(get_engine(url)).ensure(*rows, now=ahead - DAY_SECONDS)
    assert _where(url, "spark_spans") == {partition_name("spark_spans", day): 3}
    assert _where(url, "spark_traces") == {partition_name("spark_traces", day): 1}


def test_start_times_of_no_day_are_stored_in_the_default_partition(
    postgres_database_url: str,
) -> None:
    """Runs started before 1970 or at an infinite time create no partition and are stored."""
    url = postgres_database_url
    TelemetryStore(url).write_runs([_run_at(-5.0e9), _run_at(float("inf"))])
    assert _where(url, "spark_spans") == {"spark_spans_default": 4}


def test_a_writer_that_missed_a_purge_stores_into_the_default_partition(
    postgres_database_url: str,
) -> None:
    """A writer still believing in a day another process purged loses nothing: the rows go to
    the default partition, and the next writer to create that day moves them into it."""
    url = postgres_database_url
    writer, purger = TelemetryStore(url), TelemetryStore(url)
    writer.write_runs([_run_at(START + 10)])
    purger.purge_older_than(START + DAY_SECONDS)
    writer.write_runs([_run_at(START + 20, n_spans=4)])
    assert _where(url, "spark_spans") == {"spark_spans_default": 4}

    TelemetryStore(url).write_runs([_run_at(START + 30, n_spans=1)])
    assert _where(url, "spark_spans") == {partition_name("spark_spans", DAY0): 5}
    assert _where(url, "spark_traces") == {partition_name("spark_traces", DAY0): 2}


def test_purge_drops_the_days_before_the_cutoff_and_deletes_the_rest(database_url: str) -> None:
    """Retention removes exactly the rows started before the cutoff, counted per table, with
    the feedback of their traces, on both databases; PostgreSQL drops the partitions of whole
    days before it and keeps the day holding it (rows after the cutoff untouched)."""
    store = TelemetryStore(database_url)
    runs = [_run_at(START + day * DAY_SECONDS + offset) for day in range(3) for offset in (10, 500)]
    runs.append(_run_at(START - 400 * DAY_SECONDS, n_spans=3))  # a day long before all others
    store.write_runs(runs)
    for run in runs[:3]:
        store.add_feedback(run.trace.trace_id, 1.0)
    store.add_feedback(runs[-2].trace.trace_id, 0.5)  # day 2, after the cutoff: kept

    counts = store.purge_older_than(START + 2 * DAY_SECONDS + 100)

    assert (counts.traces, counts.spans, counts.feedback) == (6, 13, 3)
    assert (_count(database_url, "spark_traces"), _count(database_url, "spark_spans")) == (1, 2)
    assert _count(database_url, "spark_feedback") == 1
    if store.is_postgres:
        assert _where(database_url, "spark_spans") == {partition_name("spark_spans", DAY0 + 2): 2}
        for table in partitions.TABLES:
            days = {partitions.day_of_name(name) for name in _partitions(database_url, table)}
            assert min(day for day in days if day is not None) == DAY0 + 2


def test_purge_within_the_oldest_day_drops_nothing(postgres_database_url: str) -> None:
    """A cutoff inside the oldest day deletes its earlier rows and leaves its partition."""
    url = postgres_database_url
    store = TelemetryStore(url)
    store.write_runs([_run_at(START + 10), _run_at(START + 500)])
    counts = store.purge_older_than(START + 100)
    assert (counts.traces, counts.spans) == (1, 2)
    assert _where(url, "spark_spans") == {partition_name("spark_spans", DAY0): 2}


def _at_once(workers: int, work: Callable[[int], Any]) -> list[BaseException]:
    """Run ``work(i)`` in ``workers`` threads released together; the exceptions raised."""
    barrier, failures = threading.Barrier(workers), []

    def body(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def test_concurrent_creators_of_the_same_partitions_all_succeed(
    postgres_database_url: str,
) -> None:
    """Four connections creating the same day partitions at the same moment all succeed (a
    creator that loses the race finds the partition made), day after day."""
    url = postgres_database_url
    engine = create_engine(normalize_url(url), pool_size=4)
    get_engine(url)  # migrated
    try:
        for day in range(DAY0, DAY0 + 6):

            def create(_i: int, day: int = day) -> None:
                with engine.connect() as conn:
                    driver = conn.connection.driver_connection
                    for table in partitions.TABLES:
                        partitions.create_partition(driver, table, day)  # type: ignore[arg-type]

            assert _at_once(4, create) == []
            assert partition_name("spark_spans", day) in _partitions(url, "spark_spans")
    finally:
        engine.dispose()


def test_concurrent_first_writes_into_a_new_day_all_succeed(postgres_database_url: str) -> None:
    """Four stores writing the first runs of the same day at once all store them, in the day's
    partition."""
    url = postgres_database_url
    stores = [TelemetryStore(url) for _ in range(4)]
    assert _at_once(4, lambda i: stores[i].write_runs([_run_at(START + i, n_spans=2)])) == []
    assert _where(url, "spark_spans") == {partition_name("spark_spans", DAY0): 8}


def test_trace_key_holds_the_start_time_on_postgres_only(database_url: str) -> None:
    """A partitioned table's primary key must hold the partition key: PostgreSQL's traces are
    keyed by (trace_id, started_at), SQLite's by trace_id, and a retried trace is still
    recognised (same id, same start)."""
    store = TelemetryStore(database_url)
    run = _run_at(START + 10)
    store.write_runs([run])
    store.write_runs([run, _run_at(START + 20)])
    assert (_count(database_url, "spark_traces"), _count(database_url, "spark_spans")) == (2, 4)
    with get_engine(database_url).connect() as conn:
        key = inspect(conn).get_pk_constraint("spark_traces")["constrained_columns"]
    assert key == (["trace_id", "started_at"] if store.is_postgres else ["trace_id"])


def test_upgrade_from_0010_partitions_every_row_and_downgrade_keeps_them(
    postgres_database_url: str,
) -> None:
    """Migration 0011 moves every trace and span of a 0010 database into its day's partition
    (a row dated far ahead into the default one), and going back to 0010 keeps them all."""
    url = postgres_database_url
    engine = create_engine(normalize_url(url))
    ahead = time.time() + 30 * DAY_SECONDS
    runs = [_run_at(START + day * DAY_SECONDS, n_spans=2) for day in (0, 0, 1, 5)]
    runs.append(_run_at(ahead, n_spans=1))
    try:
        with engine.begin() as conn:
            command.upgrade(runner.alembic_config(conn), "0010")
            _insert(conn, runs)
        get_engine(url)  # upgrades to the head
        assert _count(url, "spark_traces") == 5 and _count(url, "spark_spans") == 9
        assert _where(url, "spark_spans") == {
            partition_name("spark_spans", DAY0): 4,
            partition_name("spark_spans", DAY0 + 1): 2,
            partition_name("spark_spans", DAY0 + 5): 2,
            "spark_spans_default": 1,
        }
        with engine.begin() as conn:
            runner.downgrade(conn, "0010")
            assert conn.scalar(text("SELECT count(*) FROM spark_spans")) == 9
            assert conn.scalar(text("SELECT count(*) FROM spark_traces")) == 5
            assert inspect(conn).get_pk_constraint("spark_traces")["constrained_columns"] == [
                "trace_id"
            ]
    finally:
        engine.dispose()


def _insert(conn: Any, runs: list[RunTelemetry]) -> None:
    driver = conn.connection.driver_connection
    with driver.cursor() as cursor:
        for table, columns, rows in (
            ("spark_traces", _bulk.TRACE_COLUMNS, _bulk.trace_rows(runs)),
            ("spark_spans", _bulk.SPAN_COLUMNS, _bulk.span_rows(runs)),
        ):
            marks = ", ".join(["%s"] * len(columns))
            cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


@pytest.mark.parametrize("name", ["spark_spans_p2023111", "spark_rollups_p20231114", "x"])
def test_only_partition_names_have_a_day(name: str) -> None:
    """Retention drops only tables named as day partitions."""
    assert partitions.day_of_name(name) is None
    assert partitions.day_of_name("spark_spans_p20231114") == DAY0


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _holding_the_span_table(url: str) -> Any:
    """A session with a transaction left open after reading the span table: it holds the
    table's ACCESS SHARE lock until it ends (a long query or an idle BI session)."""
    engine = create_engine(normalize_url(url))
    conn = engine.connect()
    conn.execute(text("SELECT count(*) FROM spark_spans"))
    return conn


def _in_thread(work: Callable[[], Any], wait_s: float) -> list[Any]:
    """Run ``work`` in a thread; what it returned or raised, if it ended within ``wait_s``."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(work())
        except Exception as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(wait_s)
    return outcome


def test_a_locked_table_defers_the_new_partition_and_writes_go_on(
    postgres_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session holding the span table cannot stall the writers: the new day's partition
    waits for its lock only ``LOCK_TIMEOUT_MS``, the batch is stored in the default partition
    meanwhile, and a later write, once the lock is free, makes the partition and moves it."""
    url = postgres_database_url
    monkeypatch.setattr(partitions, "LOCK_TIMEOUT_MS", 200)
    store, clock = TelemetryStore(url), _Clock()
    store._partitions = partitions.DayPartitions(get_engine(url), clock=clock)
    holder = _holding_the_span_table(url)
    try:
        outcome = _in_thread(lambda: store.write_runs([_run_at(START + 10)]), wait_s=60)
        assert outcome == [None]  # written while the other session still holds the table
    finally:
        holder.close()
    assert _where(url, "spark_spans") == {"spark_spans_default": 2}

    store.write_runs([_run_at(START + 20)])  # within RETRY_AFTER_S: no new attempt
    assert _where(url, "spark_spans") == {"spark_spans_default": 4}
    clock.now += partitions.RETRY_AFTER_S
    store.write_runs([_run_at(START + 30)])
    assert _where(url, "spark_spans") == {partition_name("spark_spans", DAY0): 6}
    assert _where(url, "spark_traces") == {partition_name("spark_traces", DAY0): 3}


def test_writes_into_existing_partitions_ignore_a_locked_table(
    postgres_database_url: str,
) -> None:
    """A new writer process finding its days' partitions made already takes no table lock."""
    url = postgres_database_url
    TelemetryStore(url).write_runs([_run_at(START + 10)])
    holder = _holding_the_span_table(url)
    try:
        fresh = TelemetryStore(url)
        outcome = _in_thread(lambda: fresh.write_runs([_run_at(START + 20)]), wait_s=60)
        assert outcome == [None]
        assert fresh._partitions is not None and DAY0 in fresh._partitions._known
    finally:
        holder.close()
    assert _where(url, "spark_spans") == {partition_name("spark_spans", DAY0): 4}


def test_a_purge_that_cannot_lock_the_tables_fails_clearly_and_deletes_nothing(
    postgres_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dropping partitions needs both tables to itself: while another session holds them the
    purge gives up after ``PURGE_LOCK_TIMEOUT_MS`` with ``TelemetryBusyError`` instead of
    queueing every writer behind it, and deletes nothing; run again later, it purges."""
    url = postgres_database_url
    monkeypatch.setattr(partitions, "PURGE_LOCK_TIMEOUT_MS", 200)
    store = TelemetryStore(url)
    store.write_runs([_run_at(START + 10), _run_at(START + DAY_SECONDS + 10)])
    holder = _holding_the_span_table(url)
    try:
        [outcome] = _in_thread(lambda: store.purge_older_than(START + DAY_SECONDS), wait_s=60)
        assert isinstance(outcome, TelemetryBusyError)
        assert "run it again later" in str(outcome)
    finally:
        holder.close()
    assert _count(url, "spark_spans") == 4
    assert store.purge_older_than(START + DAY_SECONDS).spans == 2
