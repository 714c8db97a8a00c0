"""The fault suite with real processes (issue 8, "Also hold"): a real dev server, a real
``worker.py`` and live traffic; the worker SIGKILLed at every activity and timer of a cycle, the
Temporal server restarted mid-window, a database outage under traffic on both databases.

Every trial asserts the same invariants (``harness.assert_trial_holds``): the cycle completes,
each routing change, deployment and experience record exists once, no run is lost within the
buffer bound and the counters say so, and the window's exposure stays within its cap.

One representative trial (the worker killed while the online window waits between looks) runs
with the normal suite; the whole matrix is marked ``faults_full`` and run by ``make faults``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from spark.db import sqlite_url
from tests.faults import harness
from tests.faults.outage import DatabaseOutage

pytestmark = pytest.mark.devserver
FULL = pytest.mark.faults_full


async def test_worker_killed_between_window_looks_keeps_every_invariant(tmp_path: Path) -> None:
    """SIGKILL the worker while the online window waits for its next look (live traffic is
    split): a new worker finishes the cycle; one routing change per step, one deployment, one
    experience record; every run served is stored; the window routes no longer than its cap."""
    result = await harness.run_trial(
        tmp_path,
        sqlite_url(tmp_path / "spark.db"),
        "kill_at_window_look",
        harness.kill_at_timer("ab_testing"),
    )
    assert result.hit, "the worker was never killed during the window"
    harness.assert_trial_holds(result)


@FULL
@pytest.mark.timeout(600)
@pytest.mark.parametrize("activity", harness.ACTIVITIES)
async def test_worker_killed_at_each_activity(tmp_path: Path, activity: str) -> None:
    """SIGKILL the worker while ``activity`` runs on it; the cycle completes and every
    invariant holds (a short activity may finish before the kill lands: ``hit`` says which)."""
    result = await harness.run_trial(
        tmp_path,
        sqlite_url(tmp_path / "spark.db"),
        f"kill_at_{activity}",
        harness.kill_at_activity(activity),
    )
    harness.assert_trial_holds(result)


@FULL
@pytest.mark.timeout(600)
@pytest.mark.parametrize("timer", sorted(harness.TIMERS))
async def test_worker_killed_at_each_timer(tmp_path: Path, timer: str) -> None:
    """SIGKILL the worker while the cycle waits on a window look, a rollout stage's hold or a
    monitoring check; the cycle completes and every invariant holds."""
    result = await harness.run_trial(
        tmp_path,
        sqlite_url(tmp_path / "spark.db"),
        f"kill_at_{timer}",
        harness.kill_at_timer(harness.TIMERS[timer]),
    )
    assert result.hit, f"the worker was never killed at {timer}"
    harness.assert_trial_holds(result)


@FULL
@pytest.mark.timeout(600)
@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
async def test_temporal_server_restarted_mid_window(tmp_path: Path, kill: bool) -> None:
    """Stop the dev server (SIGTERM or SIGKILL) while the online window runs and start it on the
    same database file and port: the worker and the client reconnect, the cycle completes and
    every invariant holds."""
    fault = f"server_restart_{'sigkill' if kill else 'sigterm'}"
    result = await harness.run_trial(
        tmp_path, sqlite_url(tmp_path / "spark.db"), fault, harness.restart_server(kill)
    )
    assert result.hit, "the server was never restarted during the window"
    harness.assert_trial_holds(result)


@FULL
@pytest.mark.timeout(600)
async def test_database_outage_under_traffic(tmp_path: Path, database: DatabaseOutage) -> None:
    """Take the database away for 10 s while the online window runs under traffic (the worker
    and the client share it): serving goes on from the cached routing, telemetry waits in the
    buffer and is written after, the cycle completes and every invariant holds."""
    fault = f"database_outage_{database.backend}"
    result = await harness.run_trial(
        tmp_path, database.url, fault, harness.database_outage(database, 10.0)
    )
    assert result.hit, "the outage never happened during the window"
    harness.assert_trial_holds(result)
