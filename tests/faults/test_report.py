"""The fault matrix's BENCHMARKS table is built from the trials as recorded."""

from __future__ import annotations

import json

from tests.faults.report import table


def _trial(fault: str, **extra: object) -> str:
    trial = {
        "fault": fault,
        "completed": True,
        "outcome": "shipped",
        "hit": True,
        "duplicates": 0,
        "runs_lost": 0,
        "dropped": 0,
        "recovery_s": 4.0,
        "exposure_s": 9.0,
        "cap_s": 12.0,
        "exposure_bound_s": 17.0,
    }
    return json.dumps(trial | extra)


def test_one_row_per_fault_with_sums_and_the_worst_trial() -> None:
    """Trials of one fault are summed (duplicates, runs lost) and the longest stall and
    exposure are reported; a trial without a window shows a dash."""
    lines = [
        _trial("kill_at_x"),
        _trial("kill_at_x", duplicates=1, runs_lost=3, dropped=3, recovery_s=16.5, exposure_s=20.0),
        _trial("outage", exposure_s=None, recovery_s=None, outcome="invalid_test"),
    ]
    rows = table(lines).splitlines()
    assert rows[2] == "| kill_at_x | 2 | 2 | shipped | 2 | 1 | 3 (3) | 16.5 | 20.0 (12.0 / 17.0) |"
    assert rows[3] == "| outage | 1 | 1 | invalid_test | 1 | 0 | 0 (0) | - | - |"
