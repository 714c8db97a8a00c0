"""A tiny scenario through ``run_scenario`` on the real workflow (private dev server + worker)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from spark.scenarios.model import parse_scenario
from spark.scenarios.runner import run_scenario
from tests.scenarios.helpers import scenario_data

FAST_SETTINGS = {
    "min_traces": 30,
    "replay_sample": 20,
    "monitor_window_s": 2,
    "monitor_checks": 1,
    "min_health_traces": 10,
    "interval_s": 1,
    "analysis_window_s": 3600,
    "ab_mode": "replay_then_online",
    "ab_looks": 2,
    "ab_min_window_s": 2,
    "ab_max_window_s": 4,
    "routing_propagation_s": 0.5,
    "review_timeout_s": 30,
}


def _tiny(tmp_path: Path) -> Path:
    data = scenario_data(
        settings=FAST_SETTINGS,
        traffic={"rps": 25, "warmup_requests": 80, "fresh_requests": 40},
        oracle=[{"op": "set_config", "node_id": "fetch", "values": {"retries": 3, "backoff_s": 0}}],
        # failures dominate: the oracle (retries curing ~88% of them) beats the original
        objective={"weights": {"error_rate": 1.0, "latency": 0.05, "cost": 0.05}},
    )
    data["behaviour"]["fetch"]["transient_error_rate"] = 0.5
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.timeout(240)
async def test_a_scenario_runs_on_the_real_workflow_and_reports_every_version(
    tmp_path: Path,
) -> None:
    """One cycle of the real loop runs under live traffic; the report holds that cycle, the
    lineage from the original, every version and the oracle measured on the same fresh
    requests (with quality from the simulation), and the oracle's cure shows in its figures."""
    scenario = parse_scenario(json.loads(_tiny(tmp_path).read_text()))
    report = await run_scenario(scenario, cycles=1, seed=5, emit=lambda _line: None)
    assert [c.cycle for c in report.cycles] == [1]
    assert report.lineage[0] == report.before.version_id
    assert report.live_requests > 0
    assert report.oracle is not None and report.oracle.runs == 40
    assert report.before.mean_quality is not None
    assert report.oracle.success_rate > report.before.success_rate
    assert report.oracle_fraction is not None and 0 <= report.oracle_fraction <= 1
    assert report.wrong_changes_count == 0


def test_the_cli_refuses_an_invalid_scenario_with_exit_code_2(tmp_path: Path) -> None:
    """``spark bench run`` on an invalid file prints the field at fault and exits 2."""
    bad = tmp_path / "bad.json"
    data = scenario_data()
    data["traffic"] = {"rps": -1}
    bad.write_text(json.dumps(data))
    done = subprocess.run(
        [sys.executable, "-m", "spark.cli", "bench", "run", str(bad), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "traffic.rps" in done.stderr
