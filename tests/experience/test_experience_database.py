"""ExperienceDatabase: the description's query API in SQL over the experience store, on SQLite
and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from spark.experience import Attempt, ExperienceStore
from spark.experience.database import ExperienceDatabase, database_url_of
from spark.experience.store import Outcome


def _attempt(graph_id: str, cycle: int, kinds: list[str], outcome: Outcome) -> Attempt:
    return Attempt(
        graph_id=graph_id,
        cycle=cycle,
        base_version_id="v-base",
        hypothesis_id=f"h-{graph_id}-{cycle}",
        title=f"{'+'.join(kinds)} #{cycle}",
        diagnosis_kind="errors",
        change_kinds=kinds,
        primary_metric="error_rate",
        risk="low",
        outcome=outcome,
    )


@pytest.fixture
async def experience_db(database_url: str) -> ExperienceDatabase:
    """Five attempts on two graphs (retries, caches, prompts, edges) and their patterns."""
    store = ExperienceStore(database_url)
    for attempt in [
        _attempt("a", 1, ["set_config"], "shipped"),
        _attempt("a", 2, ["set_config"], "rejected_test"),
        _attempt("a", 3, ["add_cache"], "rolled_back"),
        _attempt("b", 1, ["set_prompt"], "rejected_review"),
        _attempt("b", 2, ["add_edge", "remove_edge"], "inconclusive"),
    ]:
        store.record_attempt(attempt)
    store.extract_patterns()
    db = ExperienceDatabase(database_url)
    await db.initialize()
    return db


async def test_query_hypotheses_filters_by_graph_type_and_deployment(
    experience_db: ExperienceDatabase,
) -> None:
    """Graph, hypothesis type (through change kinds) and deployed filter in SQL; newest first."""
    by_graph = await experience_db.query_hypotheses(graph_id="a")
    assert [a.cycle for a in by_graph] == [3, 2, 1]
    tuning = await experience_db.query_hypotheses(hypothesis_type="parameter_tuning")
    assert {a.hypothesis_id for a in tuning} == {"h-a-1", "h-a-2"}
    edges = await experience_db.query_hypotheses(hypothesis_type="edge_modification")
    assert [a.hypothesis_id for a in edges] == ["h-b-2"]
    deployed = await experience_db.query_hypotheses(deployed=True)
    assert {a.hypothesis_id for a in deployed} == {"h-a-1", "h-a-3"}
    kept_out = await experience_db.query_hypotheses(graph_id="b", deployed=False, limit=1)
    assert [a.hypothesis_id for a in kept_out] == ["h-b-2"]
    assert await experience_db.query_hypotheses(hypothesis_type="tool_addition") == []


async def test_pattern_queries_rank_by_success_rate(experience_db: ExperienceDatabase) -> None:
    """Successful patterns best first, failure patterns worst first, query_patterns by rate."""
    successful = await experience_db.query_successful_patterns()
    assert [p.change_kind for p in successful] == ["set_config"]
    failing = await experience_db.query_failure_patterns()
    rates = [p.success_rate for p in failing]
    assert len(failing) == 5 and rates == sorted(rates) and rates[0] < rates[-1]
    assert failing[-1].change_kind == "set_config"
    assert [p.change_kind for p in await experience_db.query_patterns()] == ["set_config"]
    caching = await experience_db.query_failure_patterns(hypothesis_type="caching")
    assert [p.change_kind for p in caching] == ["add_cache"]
    assert await experience_db.query_patterns(hypothesis_type="caching") == []


async def test_stats_count_attempts_patterns_and_types(experience_db: ExperienceDatabase) -> None:
    """get_stats counts attempts, deployed and tested ones, patterns and attempts per type."""
    stats = await experience_db.get_stats()
    assert (stats.total_hypotheses, stats.deployed_count, stats.tested_count) == (5, 2, 4)
    assert stats.total_patterns == 5
    assert stats.hypothesis_types == {
        "parameter_tuning": 2,
        "caching": 1,
        "prompt_optimization": 1,
        "edge_modification": 1,
    }


def test_a_path_is_a_sqlite_file_and_a_url_is_kept(tmp_path: Path) -> None:
    """A path becomes a SQLite URL; a PostgreSQL URL keeps its database."""
    assert database_url_of(tmp_path / "x.db") == f"sqlite:///{tmp_path / 'x.db'}"
    assert database_url_of("postgresql://u@h/db").endswith("@h/db")
