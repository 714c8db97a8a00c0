"""The research-brief scenario: real traffic through the real runtime on SQLite must lead the
rule-based generator to the cheaper model and the parallel searches, and both must apply."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from examples.research_brief.graph import GRAPH_ID, NODE_MODULES, build_spec
from examples.research_brief.traffic import make_request
from spark.client import SparkClient
from spark.db import dispose_engine, sqlite_url
from spark.graphs.runtime import GraphRuntime
from spark.graphs.spec import GraphSpec
from spark.registry.versions import GraphVersion
from spark.rsi.analysis import DiagnosticReport, analyze
from spark.rsi.changes import apply_changes
from spark.rsi.generator import RuleBasedGenerator
from spark.rsi.hypotheses import Hypothesis, SetConfig, touched_nodes
from spark.rsi.validation import validate_hypothesis
from spark.settings import SparkSettings

REQUESTS = 250
MIN_TRACES = 100


@dataclass(frozen=True)
class Diagnosed:
    """The registered version, its diagnosis and the generator's proposals."""

    client: SparkClient
    version: GraphVersion
    report: DiagnosticReport
    hypotheses: list[Hypothesis]


async def _send(client: SparkClient, count: int, rng: random.Random) -> None:
    gate = asyncio.Semaphore(32)

    async def one() -> None:
        request = make_request(rng)
        async with gate:
            await client.run(GRAPH_ID, request, routing_key=request["requester"])

    await asyncio.gather(*(one() for _ in range(count)))
    client.flush()


@pytest.fixture(scope="module")
async def diagnosed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Diagnosed]:
    """Register the graph on a fresh SQLite store, send production traffic, diagnose it."""
    url = sqlite_url(tmp_path_factory.mktemp("research") / "spark.db")
    client = SparkClient(SparkSettings(database_url=url))
    version = client.register_graph(build_spec(), NODE_MODULES)
    await _send(client, REQUESTS, random.Random())
    node_stats = client.telemetry.node_stats(GRAPH_ID, version.version_id)
    version_stats = client.telemetry.version_stats(GRAPH_ID, version.version_id)
    report = analyze(version.spec, node_stats, version_stats, min_traces=MIN_TRACES)
    hypotheses = RuleBasedGenerator().generate(
        report, version.spec, base_version_id=version.version_id
    )
    yield Diagnosed(client, version, report, hypotheses)
    client.close()
    dispose_engine(url)


def _proposals(hypotheses: list[Hypothesis]) -> set[tuple[str, str]]:
    """(change kind, nodes touched, sorted and joined by '+') of every change."""
    return {
        (change.op, "+".join(sorted(touched_nodes(change))))
        for hypothesis in hypotheses
        for change in hypothesis.changes
    }


def test_traffic_is_diagnosed_as_costly_model_and_sequential_chain(diagnosed: Diagnosed) -> None:
    """Nothing fails or repeats; the cost sits in summarize and the searches form a chain."""
    report = diagnosed.report
    assert report.sufficient_data and report.run_error_rate == 0.0
    kinds = {(b.kind, b.node_id) for b in report.bottlenecks}
    assert ("cost", "summarize") in kinds
    assert not report.bottlenecks_of("errors")
    assert report.structure.parallelizable_chains == [["search_web", "search_papers"]]


def test_generator_proposes_cheaper_model_then_parallel_searches(diagnosed: Diagnosed) -> None:
    """Exactly two proposals, best first: the cheaper model for summarize, then the searches
    in parallel; no retry, cache or timeout (nothing fails, repeats or has a heavy tail)."""
    assert [h.diagnosis.split(":")[0] for h in diagnosed.hypotheses] == [
        "costly_model",
        "sequential_chain",
    ]
    assert _proposals(diagnosed.hypotheses) == {
        ("set_config", "summarize"),
        ("parallelize", "search_papers+search_web"),
    }
    swap = diagnosed.hypotheses[0].changes[0]
    assert isinstance(swap, SetConfig) and swap.values == {"model": "small-llm"}


def test_validation_approves_both_and_asks_review_for_the_rewiring(diagnosed: Diagnosed) -> None:
    """Both pass the static checks; only the parallelization (4 nodes rewired) needs review."""
    verdicts = [validate_hypothesis(diagnosed.version.spec, h) for h in diagnosed.hypotheses]
    assert [v.approved for v in verdicts] == [True, True]
    assert [v.requires_review for v in verdicts] == [False, True]


async def test_applied_changes_give_a_valid_spec_that_runs_cheaper(diagnosed: Diagnosed) -> None:
    """All proposals applied together give a spec whose runs succeed at a lower cost."""
    changes = [change for h in diagnosed.hypotheses for change in h.changes]
    candidate = apply_changes(diagnosed.version.spec, changes)
    assert sorted(candidate.predecessors("summarize")) == ["search_papers", "search_web"]
    assert candidate.node("summarize").config.model == "small-llm"
    base_cost = await _mean_cost(diagnosed.version.spec, "base")
    candidate_cost = await _mean_cost(candidate, "candidate")
    assert candidate_cost < base_cost


async def _mean_cost(spec: GraphSpec, version_id: str, runs: int = 20) -> float:
    """Mean cost of ``runs`` successful runs of ``spec`` (no telemetry sink)."""
    runtime, rng = GraphRuntime(), random.Random()
    results = await asyncio.gather(
        *(runtime.run(spec, make_request(rng), version_id=version_id) for _ in range(runs))
    )
    assert all(r.ok and r.node_statuses["publish"] == "ok" for r in results)
    return sum(r.cost for r in results) / runs
