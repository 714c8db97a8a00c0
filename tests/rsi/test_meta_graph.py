"""The description's Python API (RSIMetaGraph, RSIMetaGraphConfig, ExperienceDatabase) on a real
RSIWorkflow: the time-skipping server, a worker with the real activities, a SQLite database."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import ActivityDeps, build_activities
from examples.support_triage.graph import NODE_MODULES, build_spec
from examples.support_triage.traffic import make_ticket
from spark.errors import ConfigurationError
from spark.experience import ExperienceStore
from spark.graphs import Graph
from spark.graphs.registry import default_registry
from spark.models.openai import OpenAIModel
from spark.rsi import ExperienceDatabase, RSIMetaGraph, RSIMetaGraphConfig
from spark.rsi.contracts import ReviewDecision, RSIStatus
from spark.rsi.llm_generator import generator_for_model
from spark.settings import SparkSettings
from spark.telemetry import TelemetryConfig
from tests.integration.scenario import FAST_RSI
from workflows.rsi import RSIWorkflow


class Setup:
    """A production graph with telemetry in ``db_path``, a worker on ``queue``, and the
    connection RSIMetaGraph needs."""

    def __init__(self, env: WorkflowEnvironment, db_path: Path, queue: str) -> None:
        self.env, self.db_path, self.queue = env, db_path, queue

    def meta_graph(self, config: RSIMetaGraphConfig) -> RSIMetaGraph:
        """The description's constructor, on the test server and queue."""
        experience_db = ExperienceDatabase(self.db_path)
        return RSIMetaGraph(
            config=config,
            experience_db=experience_db,
            temporal=self.env.client,
            task_queue=self.queue,
        )


@pytest.fixture
async def setup(time_skipping_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Setup]:
    """A worker with the real activities on this test's SQLite database and its own queue."""
    db_path = tmp_path / "spark.db"
    queue = uuid.uuid4().hex
    deps = ActivityDeps.from_database_url(ExperienceDatabase(db_path).database_url)
    worker = Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[RSIWorkflow],
        activities=build_activities(deps),
    )
    async with worker:
        yield Setup(time_skipping_env, db_path, queue)


async def production_graph(db_path: Path, graph_id: str, requests: int = 250) -> Graph:
    """Step 1 of the description: a telemetry-enabled graph and its runs; its one clear
    bottleneck is a flaky classifier (the knowledge-base lookup is fast, so retrying the
    classifier, a low-risk change, is what ranks first)."""
    default_registry().load_modules(NODE_MODULES)
    spec = build_spec(graph_id, classify_failure_rate=0.25, kb_latency_ms=5.0, rsi=FAST_RSI)
    telemetry_config = TelemetryConfig.create_sqlite(db_path)
    graph = Graph.from_spec(spec, telemetry_config=telemetry_config)
    rng = random.Random(11)
    tickets = [make_ticket(rng) for _ in range(requests)]
    for start in range(0, requests, 25):
        await asyncio.gather(*(graph.run(t) for t in tickets[start : start + 25]))
    await graph.close()
    return graph


async def wait_for_phase(handle: WorkflowHandle[Any, RSIStatus], phase: str) -> RSIStatus:
    """The status once the workflow reaches ``phase``."""
    for _ in range(600):
        status = await handle.query("status", result_type=RSIStatus)
        if status.phase == phase:
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached phase {phase!r}")


async def test_description_snippet_runs_a_cycle(setup: Setup) -> None:
    """The quick start: telemetry, ExperienceDatabase, RSIMetaGraphConfig, RSIMetaGraph.run
    returns the shipped cycle's summary, and the experience database holds the attempt."""
    graph = await production_graph(setup.db_path, "mg-snippet")
    experience_db = ExperienceDatabase(setup.db_path)
    await experience_db.initialize()
    rsi_config = RSIMetaGraphConfig(
        graph_id="mg-snippet",
        analysis_window_hours=1,
        max_hypotheses=3,
        enable_pattern_learning=True,
        deployment_strategy="direct",
        auto_deploy=True,
    )
    async with RSIMetaGraph(
        config=rsi_config,
        experience_db=experience_db,
        temporal=setup.env.client,
        task_queue=setup.queue,
    ) as rsi_graph:
        result = await rsi_graph.run(target_graph=graph)
        active = rsi_graph.client.routing.get("mg-snippet").active_version_id
    assert result.outcome == "shipped", result.reasons
    assert result.candidate_version_id == active != graph.version_id
    attempts = await experience_db.query_hypotheses(graph_id="mg-snippet", deployed=True)
    assert [(a.outcome, a.change_kinds, a.risk) for a in attempts] == [
        ("shipped", ["set_config"], "low")
    ]
    stats = await experience_db.get_stats()
    assert (stats.total_hypotheses, stats.deployed_count) == (1, 1)
    assert stats.hypothesis_types == {"parameter_tuning": 1}
    await experience_db.close()


async def test_auto_deploy_off_makes_a_low_risk_change_wait_for_review(setup: Setup) -> None:
    """With auto_deploy=False the same low-risk change waits for a reviewer before any candidate
    exists; approving it ships it."""
    graph = await production_graph(setup.db_path, "mg-review")
    config = RSIMetaGraphConfig(graph_id="mg-review", analysis_window_hours=1, auto_deploy=False)
    async with setup.meta_graph(config) as rsi:
        handle = await rsi.start(target_graph=graph)
        waiting = await wait_for_phase(handle, "awaiting_review")
        await handle.signal("approve_review", ReviewDecision(reviewer="ann"))
        final = await handle.result()
    assert waiting.awaiting_review and waiting.candidate_version_id is None
    assert waiting.hypothesis_title is not None and "retr" in waiting.hypothesis_title.lower()
    assert final.history[-1].outcome == "shipped", final.history[-1].reasons
    attempts = ExperienceStore(rsi.settings.database_url).attempts("mg-review")
    assert [(a.outcome, a.risk) for a in attempts] == [("shipped", "low")]


async def test_hypothesis_types_restrict_what_is_proposed(setup: Setup) -> None:
    """Limited to node replacements, the graph whose only answer is a retry change gets no
    proposal at all: nothing is proposed, tried or recorded."""
    graph = await production_graph(setup.db_path, "mg-types")
    config = RSIMetaGraphConfig(
        graph_id="mg-types", analysis_window_hours=1, hypothesis_types=["node_replacement"]
    )
    async with setup.meta_graph(config) as rsi:
        summary = await rsi.run(target_graph=graph)
    assert summary.outcome == "no_hypothesis", summary.reasons
    store = ExperienceStore(rsi.settings.database_url)
    assert store.proposals("mg-types") == [] and store.attempts("mg-types") == []


async def test_run_continuous_returns_a_handle_whose_loop_runs_max_iterations(
    setup: Setup,
) -> None:
    """run_continuous starts the durable loop and returns its handle; it runs exactly
    max_iterations cycles, the interval between them on a durable timer."""
    graph = await production_graph(setup.db_path, "mg-loop", requests=80)
    config = RSIMetaGraphConfig(
        graph_id="mg-loop", analysis_window_hours=1, hypothesis_types=["node_replacement"]
    )
    async with setup.meta_graph(config) as rsi:
        handle = await rsi.run_continuous(
            interval_seconds=600, max_iterations=2, target_graph=graph
        )
        final = await handle.result()
    assert [c.cycle for c in final.history] == [1, 2]
    assert {c.outcome for c in final.history} == {"no_hypothesis"}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_hypotheses", 0, "greater than or equal to 1"),
        ("hypothesis_types", ["tool_addition"], "no change operation implements 'tool_addition'"),
        ("hypothesis_types", ["config_change"], "Input should be"),
        ("deployment_strategy", "big_bang", "Input should be"),
        ("analysis_window_hours", 0, "greater than 0"),
        ("enable_mock_mode", True, "no mock mode on Temporal"),
        ("settings", {"strategy": "canary"}, "through its own config field"),
        ("settings", {"min_traces": 0}, "min_traces"),
        ("unknown_field", 1, "Extra inputs are not permitted"),
    ],
)
def test_config_validation_names_the_field(field: str, value: object, message: str) -> None:
    """A bad configuration field raises ConfigurationError naming the field and the problem."""
    with pytest.raises(ConfigurationError) as error:
        RSIMetaGraphConfig.model_validate({"graph_id": "g", field: value})
    assert f"{field}" in str(error.value) and message in str(error.value)


def test_config_maps_onto_the_workflow_settings() -> None:
    """Each original field becomes its RSISettings override (hypothesis types as change kinds)."""
    config = RSIMetaGraphConfig(
        graph_id="g",
        analysis_window_hours=2,
        max_hypotheses=4,
        hypothesis_types=["prompt_optimization", "caching"],
        enable_pattern_learning=False,
        deployment_strategy="canary",
        auto_deploy=False,
        settings={"ab_mode": "replay"},
    )
    assert config.setting_overrides() == {
        "ab_mode": "replay",
        "analysis_window_s": 7200.0,
        "max_hypotheses": 4,
        "change_kinds": ["add_cache", "set_prompt"],
        "use_patterns": False,
        "strategy": "canary",
        "auto_deploy": False,
    }


def test_a_model_that_is_not_a_chat_model_is_refused(tmp_path: Path) -> None:
    """model=... takes a spark.models chat model (or a HypothesisModel); anything else is
    refused, never silently ignored."""
    with pytest.raises(ConfigurationError, match="takes an OpenAIModel, AnthropicModel"):
        RSIMetaGraph(
            config=RSIMetaGraphConfig(graph_id="g"),
            experience_db=ExperienceDatabase(tmp_path / "x.db"),
            model=object(),  # type: ignore[arg-type]
        )


def test_a_model_travels_as_provider_and_name_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """model=OpenAIModel(...) becomes the workflow setting hypothesis_model: provider and model
    name, never the API key."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-never-in-history")
    rsi = RSIMetaGraph(
        config=RSIMetaGraphConfig(graph_id="g", graph_version="1.0.0"),
        experience_db=ExperienceDatabase(tmp_path / "x.db"),
        model=OpenAIModel(model_id="gpt-4o"),
    )
    overrides = rsi._overrides()
    assert overrides["hypothesis_model"] == {"provider": "openai", "model": "gpt-4o"}
    assert "sk-secret" not in repr(overrides)
    assert rsi._memo() == {"graph_version_label": "1.0.0"}


def test_worker_without_the_providers_key_names_the_variable() -> None:
    """A loop asking for an Anthropic model on a worker with no ANTHROPIC_API_KEY fails with a
    ConfigurationError naming the variable (no fallback to another generator)."""
    settings = SparkSettings(openai_api_key="sk-test", anthropic_api_key=None)
    with pytest.raises(ConfigurationError, match="set ANTHROPIC_API_KEY on the worker"):
        generator_for_model(settings, "anthropic", "claude-3-5-haiku-latest")
    generator = generator_for_model(settings, "openai", "gpt-4o")
    assert generator.source == "llm:openai:gpt-4o"
    generator.close()


async def test_graph_version_label_is_recorded_and_a_foreign_id_refused(setup: Setup) -> None:
    """graph_version "1.0.0" is a label: the cycle starts and the workflow memo records it; a
    version id that is not the served one is refused before anything starts."""
    graph = await production_graph(setup.db_path, "mg-label", requests=40)
    config = RSIMetaGraphConfig(
        graph_id="mg-label", graph_version="1.0.0", hypothesis_types=["node_replacement"]
    )
    async with setup.meta_graph(config) as rsi:
        handle = await rsi.start(target_graph=graph)
        memo = await (await handle.describe()).memo()
        await handle.result()
    assert memo["graph_version_label"] == "1.0.0" and memo["graph_id"] == "mg-label"
    foreign = RSIMetaGraphConfig(graph_id="mg-label", graph_version="v-0123456789abcdef")
    async with setup.meta_graph(foreign) as rsi:
        with pytest.raises(ConfigurationError, match="no such version is stored"):
            await rsi.start()


async def test_target_graph_recording_telemetry_elsewhere_is_refused(tmp_path: Path) -> None:
    """Telemetry, registry and experience share one database: a target graph whose telemetry
    goes to another database than the loop's is refused, naming both."""
    spec = build_spec("g", rsi=FAST_RSI)
    graph = Graph.from_spec(spec, telemetry_config=TelemetryConfig.create_sqlite(tmp_path / "t.db"))
    rsi = RSIMetaGraph(
        config=RSIMetaGraphConfig(graph_id="g"), experience_db=ExperienceDatabase(tmp_path / "x.db")
    )
    with pytest.raises(ConfigurationError, match=r"records telemetry in .*t\.db.* but the loop"):
        await rsi.run(target_graph=graph)
    assert rsi._client is None


async def test_target_graph_with_another_id_is_refused(tmp_path: Path) -> None:
    """The loop analyzes config.graph_id's telemetry: a target graph of another id is refused
    before anything is registered or started."""
    spec = build_spec("other-id", rsi=FAST_RSI)
    rsi = RSIMetaGraph(
        config=RSIMetaGraphConfig(graph_id="g"), experience_db=ExperienceDatabase(tmp_path / "x.db")
    )
    with pytest.raises(ConfigurationError, match="graph_id 'g' is not the target graph's id"):
        await rsi.run(target_graph=Graph.from_spec(spec))
    assert rsi._client is None
