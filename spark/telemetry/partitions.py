"""PostgreSQL: traces and spans partitioned by UTC day of ``started_at`` (migration 0011).

Telemetry is append-only and expires by age, so each table is split into one partition per UTC
day, ``spark_spans_p20261126`` holding ``[day start, next day start)`` in epoch seconds, plus a
DEFAULT partition (``spark_spans_default``) so that no row is ever refused. Retention drops the
partitions that end by its cutoff (a catalog update) instead of deleting their rows one by one.

The write path creates the partitions of a batch's days before it COPies (``DayPartitions``):
one short transaction per new day and table, remembered per writer so the common case costs a
set lookup. Days more than ``FUTURE_DAYS`` ahead of the clock, or before 1970, get no partition (a
skewed or corrupt timestamp must not create tables): their rows land in the default partition. Creating
a partition whose range the default partition already holds rows of fails in PostgreSQL; those
rows are then moved into the new partition in the same transaction that attaches it. A writer
whose list of partitions is stale (another process purged a day) loses nothing either: rows of
a dropped day go to the default partition. SQLite is not partitioned.

Creating a partition locks its parent table exclusively, and PostgreSQL queues every later
reader and writer of the table behind a lock request that waits: one long query or one session
left idle in a transaction would stall all telemetry for as long as it lasts. Partition DDL
therefore waits at most ``LOCK_TIMEOUT_MS`` for its lock; if it gets none, the writer goes on
writing (a row of a day without its partition is stored in the default partition, and moved
when the partition is made) and tries again ``RETRY_AFTER_S`` later. Today's and tomorrow's
partitions are made a day ahead, so a busy moment rarely sends a row to the default partition.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import numpy as np
import psycopg
import structlog
from sqlalchemy.engine import Engine

log = structlog.get_logger(__name__)

DAY_SECONDS = 86_400
FUTURE_DAYS = 1
"""Partitions are created up to this many days after today (UTC); later rows go to DEFAULT."""
LOCK_TIMEOUT_MS = 1_000
"""The longest partition DDL waits for its table's lock before giving up for now."""
RETRY_AFTER_S = 60.0
"""How long a writer whose partition DDL gave up waits before trying again."""
PURGE_LOCK_TIMEOUT_MS = 5_000
"""The longest a purge waits to lock both tables before failing with ``TelemetryBusyError``."""
TABLES = ("spark_traces", "spark_spans")
"""The partitioned tables, in the order every writer writes them (and purges lock them)."""
_STARTED_AT = {"spark_traces": 3, "spark_spans": 6}
"""Index of ``started_at`` in the bulk writers' row tuples (``TRACE_COLUMNS``, ``SPAN_COLUMNS``)."""
_PARTITION = re.compile(r"^(spark_traces|spark_spans)_p(\d{8})$")


def partition_name(table: str, day: int) -> str:
    """The name of ``table``'s partition for UTC day number ``day`` (days since the epoch)."""
    return f"{table}_p{datetime.fromtimestamp(day * DAY_SECONDS, UTC):%Y%m%d}"


def default_name(table: str) -> str:
    """The name of ``table``'s DEFAULT partition."""
    return f"{table}_default"


def day_of_name(name: str) -> int | None:
    """The day number of a partition named by ``partition_name``, None for any other name."""
    match = _PARTITION.match(name)
    if match is None:
        return None
    day = datetime.strptime(match.group(2), "%Y%m%d").replace(tzinfo=UTC)
    return int(day.timestamp()) // DAY_SECONDS


def batch_days(traces: Sequence[Sequence[Any]], spans: Sequence[Sequence[Any]]) -> set[int]:
    """The UTC day numbers the rows start in (NumPy, no bytecode per row; a start time that
    is not finite has no day and is stored in the default partition)."""
    days: set[int] = set()
    for rows, column in (
        (traces, _STARTED_AT["spark_traces"]),
        (spans, _STARTED_AT["spark_spans"]),
    ):
        if rows:
            started = np.fromiter(map(itemgetter(column), rows), np.float64, len(rows))
            started = started[np.isfinite(started)]
            days.update(np.unique(np.floor(started / DAY_SECONDS)).astype(np.int64).tolist())
    return days


class DayPartitions:
    """The day partitions one writer knows exist, creating the missing ones on demand."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.monotonic) -> None:
        self._engine = engine
        self._known: set[int] = set()
        self._clock = clock
        self._retry_at = -math.inf

    def ensure(
        self, traces: Sequence[Sequence[Any]], spans: Sequence[Sequence[Any]], now: float | None
    ) -> None:
        """Make sure both tables have a partition for each day the rows start in, up to
        ``FUTURE_DAYS`` after today (``now``: the clock), and for today and tomorrow, so the
        day's first batch after midnight usually finds its partition made."""
        today = int((time.time() if now is None else now) // DAY_SECONDS)
        wanted = {today, today + 1} | batch_days(traces, spans)
        missing = sorted(day for day in wanted - self._known if 0 <= day <= today + FUTURE_DAYS)
        if missing and self._clock() >= self._retry_at:
            self._create(missing)

    def forget(self, days: Iterable[int]) -> None:
        """Days whose partitions were dropped (a purge)."""
        self._known.difference_update(days)

    def _create(self, days: list[int]) -> None:
        pooled = self._engine.raw_connection()
        try:
            connection: Any = pooled.driver_connection
            for day in days:
                if not all(create_partition(connection, table, day) for table in TABLES):
                    self._retry_at = self._clock() + RETRY_AFTER_S
                    return
                self._known.add(day)
        finally:
            pooled.close()


def create_partition(connection: psycopg.Connection[Any], table: str, day: int) -> bool:
    """Create ``table``'s partition for ``day`` in a transaction of its own; a partition made
    meanwhile by another writer is fine; rows of the day in the default partition are moved.
    False when the table's lock could not be had within ``LOCK_TIMEOUT_MS`` (or the move
    failed): nothing changed, try again later."""
    low, high = day * DAY_SECONDS, (day + 1) * DAY_SECONDS
    name = partition_name(table, day)
    try:
        _limit_lock_wait(connection)
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table}"
            f" FOR VALUES FROM ({low}) TO ({high})"
        )
        connection.commit()
    except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
        connection.rollback()  # another writer created it between our check and our insert
    except psycopg.errors.LockNotAvailable:
        connection.rollback()
        log.warning(
            "telemetry.partition_deferred",
            partition=name,
            reason="the table is locked by another session (a long query or an idle transaction)",
            lock_timeout_ms=LOCK_TIMEOUT_MS,
            retry_after_s=RETRY_AFTER_S,
        )
        return False
    except psycopg.errors.CheckViolation:
        connection.rollback()  # the default partition holds rows of the day
        return _move_from_default(connection, table, name, low, high)
    return True


def _limit_lock_wait(executor: Any, milliseconds: int | None = None) -> None:
    """Let the statements of the transaction now beginning (on a psycopg connection or cursor)
    wait ``milliseconds`` (default ``LOCK_TIMEOUT_MS``) at most for a lock
    (``LockNotAvailable`` then)."""
    timeout = LOCK_TIMEOUT_MS if milliseconds is None else milliseconds
    executor.execute(f"SET LOCAL lock_timeout = {int(timeout)}")


def _move_from_default(
    connection: psycopg.Connection[Any], table: str, name: str, low: int, high: int
) -> bool:
    """Make the partition from the default partition's rows of ``[low, high)``, then attach it.

    Writers of the default partition wait for the lock (the move is rare and small: rows
    written while their day was too far ahead). If it fails (another writer raced us, or the
    lock could not be had in time), the rows stay where they are, which loses nothing; this
    writer tries again ``RETRY_AFTER_S`` later."""
    default = default_name(table)
    try:
        _limit_lock_wait(connection)
        connection.execute(f"LOCK TABLE {default} IN EXCLUSIVE MODE")
        connection.execute(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS)")
        moved = connection.execute(
            f"WITH moved AS (DELETE FROM {default} WHERE started_at >= {low}"
            f" AND started_at < {high} RETURNING *) INSERT INTO {name} SELECT * FROM moved"
        ).rowcount
        connection.execute(
            f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ({low}) TO ({high})"
        )
        connection.commit()
        log.info("telemetry.partition_moved_from_default", partition=name, rows=moved)
    except psycopg.Error as exc:
        connection.rollback()
        log.warning(
            "telemetry.partition_not_created",
            partition=name,
            error_type=type(exc).__name__,
            retry_after_s=RETRY_AFTER_S,
        )
        return False
    return True


def old_partitions(cursor: Any, cutoff: float) -> dict[str, list[tuple[str, int]]]:
    """The day partitions that end by ``cutoff``, per table, for a purge to drop in the
    caller's transaction. If there are any, both tables are locked first, in the writers'
    order: dropping a partition locks its table, and taking the two locks one at a time could
    deadlock with a writer holding the other. The list is read again under the locks (another
    purge may have dropped some meanwhile). Waiting more than ``PURGE_LOCK_TIMEOUT_MS`` for
    the locks raises ``psycopg.errors.LockNotAvailable`` (the purge deletes nothing)."""
    if not any(droppable_partitions(cursor, table, cutoff) for table in TABLES):
        return {}
    _limit_lock_wait(cursor, PURGE_LOCK_TIMEOUT_MS)  # see the module doc
    cursor.execute(f"LOCK TABLE {', '.join(TABLES)} IN ACCESS EXCLUSIVE MODE")
    return {table: droppable_partitions(cursor, table, cutoff) for table in TABLES}


def droppable_partitions(cursor: Any, table: str, cutoff: float) -> list[tuple[str, int]]:
    """``table``'s day partitions that end by ``cutoff``: (name, day), oldest first."""
    cursor.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = to_regclass(%s)",
        (table,),
    )
    days = ((str(name), day_of_name(str(name))) for (name,) in cursor.fetchall())
    return sorted(
        (
            (name, day)
            for name, day in days
            if day is not None and (day + 1) * DAY_SECONDS <= cutoff
        ),
        key=lambda item: item[1],
    )


def drop_partitions(cursor: Any, partitions: Sequence[tuple[str, int]]) -> int:
    """Drop ``partitions`` (in the caller's transaction); how many rows they held."""
    rows = 0
    for name, _day in partitions:
        cursor.execute(f"SELECT count(*) FROM {name}")
        rows += int(cursor.fetchone()[0])
        cursor.execute(f"DROP TABLE {name}")
    return rows
