"""The description's Python snippets (``rsi-overview.md``), extracted at test time and executed as
written, with their imports, against the project: a real node, a worker with the real activities
on the time-skipping server and the same SQLite database, and ``OPENAI_API_KEY`` /
``OPENAI_BASE_URL`` pointing at the loopback LLM server, so the loop's own ``gpt-4o`` generator
really calls it.

The snippets leave ``my_node`` undefined (a real node here) and run on a shared namespace, in
order, one top-level statement at a time (top-level ``await`` allowed). Two things happen between
statements, neither changing what a statement does: after the production runs the test waits
until their telemetry is in the database (the recorder flushes on its own interval), and the
time-skipping server's clock is unlocked while ``rsi_graph.run`` awaits its cycle (a client the
snippet builds itself does not unlock it, as the test environment's client would)."""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.testservice.v1 import LockTimeSkippingRequest, UnlockTimeSkippingRequest
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import ActivityDeps, build_activities
from spark import temporal
from spark.db import sqlite_url
from spark.graphs import Node
from spark.rsi.contracts import CycleSummary, RSIStatus
from spark.settings import SparkSettings
from spark.telemetry import TelemetryStore
from tests.conftest import register_search_attributes
from tests.llm_server import LoopbackLLMServer, sdk_base_url, serve_llm
from workflows.rsi import RSIWorkflow

ROOT = Path(__file__).resolve().parents[2]
DESCRIPTION = ROOT.parent / "shared" / "seed" / "rsi-overview.md"
FIXTURE = ROOT / "tests" / "fixtures" / "rsi-overview.md"
GRAPH_ID = "production_workflow"  # the snippet's RSIMetaGraphConfig(graph_id=...)
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


class ProductionStep(Node):
    """The snippets' ``my_node``: a one-node production graph answering every request."""

    async def process(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"answer": "ok"}


def python_blocks(markdown: str) -> list[str]:
    """The ```python blocks of a Markdown document, in order."""
    return PYTHON_BLOCK.findall(markdown)


def statements(block: str) -> Iterator[tuple[str, Any]]:
    """Each top-level statement of ``block``: its source and its code (top-level await ok)."""
    tree = ast.parse(block)
    for node in tree.body:
        module = ast.Module(body=[node], type_ignores=[])
        code = compile(module, "<rsi-overview.md>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        yield ast.get_source_segment(block, node) or "", code


async def execute(code: Any, namespace: dict[str, Any]) -> None:
    """Run one compiled statement in ``namespace``, awaiting it when it awaits."""
    result = eval(code, namespace)
    if inspect.iscoroutine(result):
        await result


@asynccontextmanager
async def time_unlocked(env: WorkflowEnvironment) -> AsyncIterator[None]:
    """Let the time-skipping server skip time while the block runs."""
    await env.client.test_service.unlock_time_skipping(UnlockTimeSkippingRequest())
    try:
        yield
    finally:
        await env.client.test_service.lock_time_skipping(LockTimeSkippingRequest())


async def wait_for_traces(database_url: str, count: int) -> int:
    """The graph's trace count once it reaches ``count`` (the recorder flushes on its own)."""
    store = TelemetryStore(database_url)
    for _ in range(200):
        found = await asyncio.to_thread(store.count_traces, GRAPH_ID)
        if found >= count:
            return found
        await asyncio.sleep(0.05)
    return found


class Harness:
    """What the snippets run against: the server, the worker's queue, the database, the LLM."""

    def __init__(self, env: WorkflowEnvironment, database_url: str, llm: LoopbackLLMServer):
        self.env, self.database_url, self.llm = env, database_url, llm
        self.started: list[WorkflowHandle[Any, RSIStatus]] = []

    async def run_snippets(self, blocks: list[str]) -> dict[str, Any]:
        """Execute every block on one namespace; returns what they defined."""
        namespace: dict[str, Any] = {
            "__name__": "rsi_overview",
            "my_node": ProductionStep(id=GRAPH_ID, outputs=["answer"]),
        }
        for block in blocks:
            for source, code in statements(block):
                await self.run_statement(source, code, namespace)
        return namespace

    async def run_statement(self, source: str, code: Any, namespace: dict[str, Any]) -> None:
        if "rsi_graph.run(" in source:
            async with time_unlocked(self.env):
                await execute(code, namespace)
            return
        await execute(code, namespace)
        if source.startswith("for i in range(100)"):
            namespace["__traces__"] = await wait_for_traces(self.database_url, 100)


@asynccontextmanager
async def running_harness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database: str
) -> AsyncIterator[Harness]:
    """A time-skipping server, a worker (rules as its own generator) on a fresh queue and the
    database the snippet names (``database``, relative to the working directory ``tmp_path``),
    the loopback LLM server; the environment points at all three. Loops the test hands to
    ``Harness.started`` are terminated at the end."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(temporal.test_server_path()),
        plugins=[temporal.SparkPlugin()],
    )
    await register_search_attributes(env.client)
    database_url = sqlite_url(tmp_path / database)
    queue = uuid.uuid4().hex
    with serve_llm(LoopbackLLMServer()) as llm:
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("SPARK_GENERATOR", raising=False)
        monkeypatch.setenv("TEMPORAL_ADDRESS", env.client.service_client.config.target_host)
        monkeypatch.setenv("SPARK_TASK_QUEUE", queue)
        monkeypatch.setenv("SPARK_DATABASE_URL", database_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", sdk_base_url("openai", llm.url))
        deps = ActivityDeps.from_database_url(database_url, settings=SparkSettings.from_env())
        worker = Worker(
            env.client, task_queue=queue, workflows=[RSIWorkflow], activities=build_activities(deps)
        )
        harness = Harness(env, database_url, llm)
        try:
            async with worker:
                yield harness
                for handle in harness.started:
                    await handle.terminate(reason="test over")
        finally:
            await env.shutdown()


async def close_snippet_objects(namespace: dict[str, Any]) -> None:
    """Close what the snippets opened (they leave it open, as a notebook would)."""
    await namespace["rsi_graph"].close()
    await namespace["production_graph"].close()
    await namespace["experience_db"].close()


def test_the_fixture_copy_is_the_description() -> None:
    """tests/fixtures/rsi-overview.md is the description itself (when the original is here)."""
    if DESCRIPTION.exists():
        assert FIXTURE.read_text() == DESCRIPTION.read_text()
    blocks = python_blocks(FIXTURE.read_text())
    assert len(blocks) == 3 and "RSIMetaGraph(" in blocks[2]


async def test_the_description_snippets_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every python block of the description runs with its imports as written: the production
    graph records its telemetry, RSIMetaGraph.run returns the cycle's summary after the loop's
    gpt-4o generator was called, and run_continuous returns the handle of a running loop."""
    async with running_harness(tmp_path, monkeypatch, "telemetry.db") as harness:
        namespace = await harness.run_snippets(python_blocks(FIXTURE.read_text()))
        loop = namespace["results"]
        harness.started.append(loop)
        await check_cycle_and_loop(harness, namespace, loop)
        await close_snippet_objects(namespace)


async def test_the_readme_quick_start_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's RSIMetaGraph block (next to the client script) runs as written on the
    worker's database: one cycle with the loop's gpt-4o generator, then a running loop."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Using it") :]
    blocks = [block for block in python_blocks(section) if "RSIMetaGraph(" in block]
    assert len(blocks) == 1
    async with running_harness(tmp_path, monkeypatch, ".spark/spark.db") as harness:
        namespace = await harness.run_snippets(blocks)
        loop = namespace["handle"]
        harness.started.append(loop)
        await check_cycle_and_loop(harness, namespace, loop)
        await close_snippet_objects(namespace)


async def check_cycle_and_loop(
    harness: Harness, namespace: dict[str, Any], loop: WorkflowHandle[Any, RSIStatus]
) -> None:
    """The telemetry of the 100 runs was recorded; the cycle's summary says why it proposed
    nothing after asking gpt-4o (whose answer was no hypothesis); the loop runs, labelled."""
    summary = namespace["result"]
    assert namespace["__traces__"] == 100
    assert isinstance(summary, CycleSummary) and summary.cycle == 1
    assert summary.outcome == "no_hypothesis", summary.reasons
    generator_calls = [r for r in harness.llm.requests if r.body.get("response_format")]
    assert [r.body["model"] for r in generator_calls] == ["gpt-4o"]
    assert isinstance(loop, WorkflowHandle) and loop.id == f"rsi-{GRAPH_ID}"
    status = await loop.query("status", result_type=RSIStatus)
    described = await loop.describe()
    assert status.graph_id == GRAPH_ID
    assert described.status == WorkflowExecutionStatus.RUNNING
    assert (await described.memo())["graph_version_label"] == "1.0.0"
