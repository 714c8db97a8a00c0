"""``RSIMetaGraph``: the original description's Python API, backed by the graph's ``RSIWorkflow``.

::

    rsi = RSIMetaGraph(
        config=RSIMetaGraphConfig(graph_id="support-triage", max_hypotheses=3, auto_deploy=False),
        experience_db=ExperienceDatabase(),
    )
    summary = await rsi.run(target_graph=graph)        # one cycle; its CycleSummary
    handle = await rsi.run_continuous(interval_seconds=3600, max_iterations=None)

Nothing runs in this process: ``run`` registers the target graph (as ``spark register`` does) and
starts the graph's ``RSIWorkflow`` (``rsi-<graph_id>``) through ``SparkClient``, on the Temporal
server and task queue of the Spark settings; a worker (``python worker.py``) runs the cycle. The
configuration becomes the workflow's settings (``spark.rsi.meta_graph_config``).

``model`` (an ``OpenAIModel`` / ``AnthropicModel``, or a ``HypothesisModel``) picks the LLM that
generates this loop's hypotheses: only its provider and model name travel, in the workflow's
settings (``hypothesis_model``); the worker calls it with its own ``OPENAI_API_KEY`` /
``ANTHROPIC_API_KEY`` and base URL, and fails the cycle with a ``ConfigurationError`` naming the
variable when it has none. Without ``model`` the worker's generator (``SPARK_GENERATOR``) runs.

``graph_version`` is the user's label for the version: a version id (``v-`` and 16 hex digits)
must be the one routing serves; any other label is recorded in the workflow's memo
(``graph_version_label``). Telemetry, registry and experience live in one database, so a target
graph whose telemetry goes to another database than the loop's is refused.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog
from sqlalchemy.engine import make_url
from temporalio.client import Client, WorkflowHandle

from spark.client import SparkClient
from spark.db import normalize_url
from spark.errors import ConfigurationError, UnknownVersionError
from spark.experience.database import ExperienceDatabase
from spark.graphs.api import Graph, SpecNode
from spark.graphs.registry import impl_module
from spark.graphs.spec import GraphSpec
from spark.models.base import ChatModel
from spark.rsi.contracts import CycleSummary, HypothesisModel, RSIStatus
from spark.rsi.meta_graph_config import RSIMetaGraphConfig
from spark.settings import SparkSettings

log = structlog.get_logger(__name__)

TargetGraph = Graph | GraphSpec
VERSION_ID = re.compile(r"v-[0-9a-f]{16}")


class RSIMetaGraph:
    """Runs the improvement loop of ``config.graph_id`` on Temporal, one cycle or continuously.

    ``settings`` (default: the environment, as ``SparkClient.from_env``) say where Temporal and
    the database are; ``temporal_address`` and ``task_queue`` override them, ``temporal`` gives
    a connected client. The database is ``experience_db``'s when ``settings`` are not given;
    the worker must use the same one."""

    def __init__(
        self,
        config: RSIMetaGraphConfig,
        experience_db: ExperienceDatabase | None = None,
        model: ChatModel | HypothesisModel | None = None,
        *,
        settings: SparkSettings | None = None,
        temporal: Client | None = None,
        temporal_address: str | None = None,
        task_queue: str | None = None,
    ) -> None:
        self.config = config
        self.hypothesis_model = _hypothesis_model(model)
        self.settings = _settings(settings, experience_db, temporal_address, task_queue)
        self.experience_db = experience_db or ExperienceDatabase(self.settings.database_url)
        self._temporal = temporal
        self._client: SparkClient | None = None

    @property
    def client(self) -> SparkClient:
        """The production client the loop is driven through (created on first use)."""
        if self._client is None:
            self._client = SparkClient(self.settings, temporal=self._temporal)
        return self._client

    async def run(
        self, target_graph: TargetGraph | None = None, *, node_modules: list[str] | None = None
    ) -> CycleSummary:
        """Run one improvement cycle and return its summary (waits for reviews it needs)."""
        handle = await self.start(target_graph, node_modules=node_modules)
        status = await handle.result()
        return status.history[-1]

    run_once = run

    async def start(
        self, target_graph: TargetGraph | None = None, *, node_modules: list[str] | None = None
    ) -> WorkflowHandle[Any, RSIStatus]:
        """Start one improvement cycle and return its workflow handle (query ``status``,
        signal ``approve_review``, await ``result()``)."""
        await self._prepare(target_graph, node_modules)
        return await self.client.start_improvement(
            self.config.graph_id, settings=self._overrides(), memo=self._memo()
        )

    async def run_continuous(
        self,
        interval_seconds: float = 3_600.0,
        max_iterations: int | None = None,
        *,
        target_graph: TargetGraph | None = None,
        node_modules: list[str] | None = None,
    ) -> WorkflowHandle[Any, RSIStatus]:
        """Start the continuous loop: a cycle every ``interval_seconds``, ``max_iterations``
        cycles (None: until stopped). Returns the workflow handle; ``result()`` waits for the
        last cycle, durably (the loop survives this process)."""
        await self._prepare(target_graph, node_modules)
        overrides = {**self._overrides(), "interval_s": interval_seconds}
        return await self.client.start_improvement(
            self.config.graph_id,
            continuous=True,
            max_cycles=max_iterations,
            settings=overrides,
            memo=self._memo(),
        )

    async def close(self) -> None:
        """Flush and stop the client's telemetry writer."""
        if self._client is not None:
            await asyncio.to_thread(self._client.close)
            self._client = None

    async def __aenter__(self) -> RSIMetaGraph:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # ----- before a start -----

    def _overrides(self) -> dict[str, Any]:
        """The workflow's settings: the configuration's, and the model that generates."""
        overrides = self.config.setting_overrides()
        if self.hypothesis_model is not None:
            overrides["hypothesis_model"] = self.hypothesis_model.model_dump()
        return overrides

    def _memo(self) -> dict[str, str]:
        """The version label the user gave (shown with the workflow in the Web UI)."""
        label = self.config.graph_version
        return (
            {} if label is None or VERSION_ID.fullmatch(label) else {"graph_version_label": label}
        )

    async def _prepare(self, target: TargetGraph | None, node_modules: list[str] | None) -> None:
        """Register the target graph when given, then check the version the loop would improve."""
        if target is not None:
            _check_same_database(target, self.settings.database_url)
            spec, modules = _registration(target, node_modules)
            if spec.id != self.config.graph_id:
                raise ConfigurationError(
                    f"RSIMetaGraphConfig.graph_id {self.config.graph_id!r} is not the target "
                    f"graph's id {spec.id!r}: build it with graph_id={self.config.graph_id!r} so "
                    "its telemetry is recorded under the id the loop analyzes"
                )
            version = await asyncio.to_thread(self.client.register_graph, spec, modules)
            log.info("rsi_target_registered", graph_id=spec.id, version_id=version.version_id)
        await asyncio.to_thread(self._check_version)

    def _check_version(self) -> None:
        """``graph_version``, when it is a version id, must be the version routing serves (a
        label such as ``"1.0.0"`` is only recorded)."""
        wanted = self.config.graph_version
        if wanted is None or not VERSION_ID.fullmatch(wanted):
            return
        active = self.client.routing.get(self.config.graph_id).active_version_id
        if wanted == active:
            return
        try:
            self.client.registry.get_version(wanted)
        except UnknownVersionError:
            raise ConfigurationError(
                f"RSIMetaGraphConfig.graph_version {wanted!r} looks like a version id but no "
                f"such version is stored; graph {self.config.graph_id!r} serves {active!r}"
            ) from None
        raise ConfigurationError(
            f"RSIMetaGraphConfig.graph_version {wanted!r} is not the version graph "
            f"{self.config.graph_id!r} serves ({active!r}); the loop improves the served one"
        )


def _hypothesis_model(model: ChatModel | HypothesisModel | None) -> HypothesisModel | None:
    """Provider and model name of ``model`` (its key stays where it is)."""
    if model is None or isinstance(model, HypothesisModel):
        return model
    if isinstance(model, ChatModel):
        return HypothesisModel(provider=model.provider, model=model.model)
    raise ConfigurationError(
        f"RSIMetaGraph(model=...) takes an OpenAIModel, AnthropicModel or HypothesisModel, "
        f"not {type(model).__name__}"
    )


def _check_same_database(target: TargetGraph, database_url: str) -> None:
    """Telemetry, registry and experience share one database: refuse a target graph whose
    telemetry is recorded elsewhere (the loop would analyze none of it)."""
    telemetry_url = getattr(getattr(target, "telemetry_config", None), "database_url", None)
    if isinstance(telemetry_url, str) and not same_database(telemetry_url, database_url):
        raise ConfigurationError(
            f"graph {target.id!r} records telemetry in {telemetry_url!r} but the loop uses "
            f"{database_url!r}: Spark keeps telemetry, registry and experience in one database; "
            "give ExperienceDatabase (or SPARK_DATABASE_URL) the telemetry's database"
        )


def same_database(a: str, b: str) -> bool:
    """Whether two SQLAlchemy URLs name the same database (SQLite paths compared resolved)."""
    url_a, url_b = make_url(normalize_url(a)), make_url(normalize_url(b))
    if url_a.get_backend_name() == url_b.get_backend_name() == "sqlite":
        return _sqlite_path(url_a.database) == _sqlite_path(url_b.database)
    return url_a == url_b


def _sqlite_path(database: str | None) -> str:
    """A SQLite database's resolved file path (``:memory:`` as itself)."""
    if not database or database == ":memory:":
        return ":memory:"
    return str(Path(database).resolve())


def _settings(
    settings: SparkSettings | None,
    experience_db: ExperienceDatabase | None,
    temporal_address: str | None,
    task_queue: str | None,
) -> SparkSettings:
    """The Spark settings, with the experience database's URL and the connection overrides."""
    updates: dict[str, Any] = {}
    if temporal_address is not None:
        updates["temporal_address"] = temporal_address
    if task_queue is not None:
        updates["task_queue"] = task_queue
    if settings is None:
        settings = SparkSettings.from_env()
        if experience_db is not None:
            updates["database_url"] = experience_db.database_url
    elif experience_db is not None and experience_db.database_url != settings.database_url:
        raise ConfigurationError(
            f"experience_db is at {experience_db.database_url!r} but settings.database_url is "
            f"{settings.database_url!r}: the loop records experience in the Spark database"
        )
    return settings.model_copy(update=updates)


def _registration(
    target: TargetGraph, node_modules: list[str] | None
) -> tuple[GraphSpec, list[str]]:
    """The spec to register and the modules holding its node implementations."""
    if isinstance(target, GraphSpec):
        if not node_modules:
            raise ConfigurationError(
                f"registering GraphSpec {target.id!r} needs node_modules=[...] (the modules "
                "holding its node implementations), as spark register --node-module does"
            )
        return target, node_modules
    return target.to_spec(), node_modules or _node_modules_of(target)


def _node_modules_of(graph: Graph) -> list[str]:
    """The modules defining the graph's node implementations, so the worker can import them."""
    modules = set()
    for node in graph.nodes:
        if isinstance(node, SpecNode):
            modules.add(impl_module(graph.registry.get(node.node_type, node_id=node.id)))
        else:
            modules.add(type(node).__module__)
    return sorted(modules)
