"""The structure report: each parallelizable group's expected gain, run and cost shares."""

from __future__ import annotations

import pytest

from spark.rsi.analysis import analyze, describe_structure, makespan_ms
from tests.rsi.builders import healthy_node_stats, node_stats, support_spec, version_stats

CHAIN = ["classify", "fetch_account", "fetch_history"]


def test_a_group_on_the_critical_path_saves_all_but_its_slowest_member() -> None:
    """classify/fetch_account/fetch_history at 100/200/300 ms run side by side: 300 ms saved."""
    weights = {"ingest": 20.0, "classify": 100.0, "fetch_account": 200.0, "fetch_history": 300.0}
    weights |= {"draft": 30.0, "notify": 20.0, "audit": 20.0}
    structure = describe_structure(support_spec(), weights)
    (group,) = [g for g in structure.parallel_groups if g.nodes == CHAIN]
    assert group.saved_ms == pytest.approx(300.0)
    assert group.gain == pytest.approx(300.0 / structure.critical_path_ms, abs=1e-4)


def test_groups_without_latency_data_save_nothing() -> None:
    """Without telemetry every group is listed with a gain of 0."""
    structure = describe_structure(support_spec(), {})
    assert [g.nodes for g in structure.parallel_groups] == structure.parallelizable_chains
    assert all(g.gain == 0.0 and g.saved_ms == 0.0 for g in structure.parallel_groups)


def test_makespan_waits_for_every_predecessor() -> None:
    """The run lasts its heaviest path: draft waits for the whole chain, then the slower leaf."""
    weights = {"ingest": 1.0, "classify": 2.0, "fetch_account": 3.0, "fetch_history": 4.0}
    weights |= {"draft": 5.0, "notify": 6.0, "audit": 7.0}
    assert makespan_ms(support_spec(), weights) == pytest.approx(1 + 2 + 3 + 4 + 5 + 7)


def test_analysis_reports_how_often_each_node_ran_and_its_cost_share() -> None:
    """A node without stats never ran (share 0); cost shares sum to one."""
    stats = [s for s in healthy_node_stats() if s.node_id != "notify"]
    stats = [s for s in stats if s.node_id != "draft"] + [
        node_stats("draft", total_cost=3.0),
        node_stats("audit", count=100, total_cost=1.0),
    ]
    stats = [s for s in stats if not (s.node_id == "audit" and s.total_cost == 0.0)]
    report = analyze(support_spec(), stats, version_stats())
    assert report.structure.node_run_share["notify"] == 0.0
    assert report.structure.node_run_share["audit"] == pytest.approx(0.5)
    shares = {n: s for n, s in report.structure.node_cost_share.items() if s > 0}
    assert shares == {"audit": 0.25, "draft": 0.75}
