"""``spark history``: the attempts with their full records and the learned patterns, as text
and as JSON, narrowed by the query flags."""

from __future__ import annotations

import json

import pytest

from spark.cli import main
from spark.experience import ExperienceStore
from spark.rsi.hypotheses import AddCache, SetPrompt
from tests.experience.test_attempt_records import _pair


@pytest.fixture
def store(sqlite_database_url: str, monkeypatch: pytest.MonkeyPatch) -> ExperienceStore:
    """A store holding two attempts on g1 (a cache on an LLM node, a prompt on a router) and
    patterns extracted from them; the CLI reads the same database."""
    monkeypatch.setenv("SPARK_DATABASE_URL", sqlite_database_url)
    experience = ExperienceStore(sqlite_database_url)
    experience.record_attempt(*_pair(AddCache(node_id="classify", ttl_s=60), cycle=1))
    experience.record_attempt(
        *_pair(SetPrompt(node_id="route", prompt="be brief"), cycle=2, node_type="router")
    )
    experience.extract_learned_patterns()
    return experience


def test_history_text_shows_the_full_record(
    store: ExperienceStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """The text lists each attempt with its rationale, change, diff summary, statistics with
    interval, deployment steps, monitoring and review, then the patterns."""
    assert main(["history", "g1"]) == 0
    out = capsys.readouterr().out

    assert "2 attempt(s) on graph 'g1'" in out
    assert "cycle 1 shipped: add_cache on classify" in out
    assert "rationale: the same inputs come back" in out
    assert "diff: 1 node changed" in out
    assert "latency (primary): -0.25 [-0.31, -0.18] p=0.001 n=200/200" in out
    assert "deployment: g1:c1:v-cand canary deployed" in out
    assert "set_candidate share 0.05 by rsi: canary" in out
    assert "monitoring: shipped (checks: healthy, healthy)" in out
    assert "review: approved by bob: fine" in out
    assert "touches: classify (llm, depth 1, fan-out 2)" in out
    assert "no success pattern or anti-pattern learned yet" in out


def test_history_filters_and_json(
    store: ExperienceStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--node-type router --json`` prints one object holding only the prompt attempt's full
    record, and the graph's patterns with their ids."""
    assert main(["history", "g1", "--node-type", "router", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)

    assert [a["attempt"]["cycle"] for a in data["attempts"]] == [2]
    record = data["attempts"][0]["record"]
    assert record["hypothesis"]["changes"][0]["op"] == "set_prompt"
    assert record["test"]["metrics"][0]["ci_high"] == -0.18
    assert record["diff"]["unified"].startswith("--- g1@base")
    assert {p["pattern_id"] for p in data["patterns"]} >= {"g1|repeated_inputs|set_prompt|router"}


def test_history_of_nothing_says_so(
    store: ExperienceStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """A filter that matches nothing says so instead of printing an empty list."""
    assert main(["history", "g1", "--change-kind", "parallelize"]) == 0
    assert "no attempt recorded for graph 'g1'" in capsys.readouterr().out


def test_history_of_an_unknown_graph_is_an_error(
    store: ExperienceStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """A graph neither registered nor with any attempt (a typo) is refused by name, not shown
    as an empty history."""
    assert main(["history", "no-such-graph"]) != 0
    assert "no-such-graph" in capsys.readouterr().err
