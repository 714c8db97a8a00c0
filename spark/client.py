"""The production client: register graphs, run requests on the routed version, attach feedback,
and drive the graph's RSI workflow on Temporal.

::

    client = SparkClient.from_env()
    client.register_graph(spec, node_modules=["myapp.nodes"])
    result = await client.run("support-triage", {"ticket": "..."}, routing_key="cust-42")
    client.feedback(result.trace_id, score=0.9)
    await client.start_improvement("support-triage")
    status = await client.status("support-triage")

Routing is read through a short-lived cache (never a database read per request); telemetry is
written off the request path by a batched recorder.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from spark.errors import InvalidInputError, LoopAlreadyRunningError
from spark.graphs.registry import NodeRegistry, default_registry
from spark.graphs.runtime import GraphRuntime, RunResult
from spark.graphs.spec import GraphSpec
from spark.registry import RegistryStore, RoutingStore
from spark.registry.loops import LoopLeaseStore
from spark.registry.routing import StalePolicy
from spark.registry.versions import GraphVersion
from spark.routed_config import RoutedNodeConfig, routed_node_config
from spark.rsi.contracts import (
    ReviewAck,
    ReviewRequest,
    RollbackAck,
    RollbackRequest,
    RSISettings,
    RSIStatus,
    RSIWorkflowInput,
    describe_errors,
)
from spark.serving import VersionRouter
from spark.settings import SparkSettings
from spark.telemetry import RecorderStats, TelemetryConfig, TelemetryStore
from spark.telemetry.feedback import FeedbackLike, checked_feedback, feedback_records
from spark.telemetry.recorder import Recorder
from spark.temporal import RSI_WORKFLOW, connect, rsi_workflow_id


class SparkClient:
    """One per process; thread-safe for concurrent ``run`` calls on one event loop.

    Requests keep being served through a database outage: routing comes from the last table
    read (see ``RoutingCache``: ``routing_max_stale_s``, ``routing_on_stale``) and telemetry
    queues in memory up to ``telemetry.max_queue`` runs until the database returns
    (``telemetry_dropped`` counts every run that could not be kept). ``telemetry`` overrides the
    recorder settings (it should point at ``settings.database_url``).
    """

    def __init__(
        self,
        settings: SparkSettings | None = None,
        *,
        nodes: NodeRegistry | None = None,
        routing_ttl_s: float = 1.0,
        routing_max_stale_s: float = 600.0,
        routing_on_stale: StalePolicy = "serve",
        telemetry: TelemetryConfig | None = None,
        temporal: Client | None = None,
    ) -> None:
        self.settings = settings or SparkSettings.from_env()
        url = self.settings.database_url
        self.registry = RegistryStore(url)
        self.routing = RoutingStore(url)
        self.telemetry = TelemetryStore(url)
        self._router = VersionRouter(
            self.registry,
            self.routing,
            routing_ttl_s=routing_ttl_s,
            routing_max_stale_s=routing_max_stale_s,
            routing_on_stale=routing_on_stale,
        )
        config = telemetry or TelemetryConfig.from_url(
            url, writer_process=self.settings.telemetry_writer_process
        )
        self._recorder: Recorder = config.open_recorder()
        self._nodes = nodes or default_registry()
        self._runtime = GraphRuntime(self._nodes, sink=self._recorder)
        self._temporal = temporal

    @classmethod
    def from_env(cls) -> SparkClient:
        """A client configured from ``SPARK_*`` / ``TEMPORAL_*`` environment variables."""
        return cls(SparkSettings.from_env())

    # ----- graphs and requests -----

    def register_graph(
        self, spec: GraphSpec, node_modules: list[str], owner: str | None = None
    ) -> GraphVersion:
        """Register a graph with the modules holding its node implementations; idempotent.

        Every node type must resolve in those modules (``UnknownNodeTypeError`` names the
        missing type and node), so the worker can later replay production's own code.
        """
        self._nodes.load_modules(node_modules)
        self._nodes.check_spec(spec)
        return self.registry.register_graph(spec, node_modules, owner=owner)

    async def run(
        self,
        graph_id: str,
        inputs: dict[str, Any],
        *,
        routing_key: str | None = None,
        version_id: str | None = None,
    ) -> RunResult:
        """Run one request on the version routing picks (or on ``version_id`` when given)."""
        if version_id is not None:
            spec = self._router.spec(version_id)
            return await self._runtime.run(
                spec, inputs, version_id=version_id, routing_key=routing_key
            )
        routed = self._router.route(graph_id, routing_key)
        return await self._runtime.run(
            routed.spec,
            inputs,
            version_id=routed.version_id,
            routing_arm=routed.arm,
            routing_key=routing_key,
        )

    def node_config(
        self, graph_id: str, node_id: str, *, routing_key: str | None = None
    ) -> RoutedNodeConfig:
        """For an application that runs its own code (instrumented with OpenTelemetry, see
        ``spark.otlp``): the version routed to this request (sticky per ``routing_key``), its
        arm, and ``node_id``'s configuration in it (model, retries, timeout, prompt...). Read
        through the same routing cache as ``run``; tag the request's spans with
        ``result.span_attributes()`` so its telemetry is attributed to that version."""
        return routed_node_config(self._router, graph_id, node_id, routing_key)

    def routing_age_s(self, graph_id: str) -> float | None:
        """Seconds since this client last read ``graph_id``'s routing from the store (None:
        never); above ``routing_ttl_s`` only while the store cannot be reached."""
        return self._router.age_s(graph_id)

    def feedback(
        self, trace_id: str, score: float, label: str | None = None, source: str = "user"
    ) -> None:
        """Attach a quality score to a run. Queued and written with the telemetry, in batches
        off the request path (``flush`` waits for it; a full queue refuses it, counted in
        ``telemetry_dropped``); ``InvalidInputError`` for a non-finite score."""
        self.feedback_many([checked_feedback(trace_id, score, label, source)])

    def feedback_many(self, scores: Iterable[FeedbackLike]) -> int:
        """Attach many scores at once (bulk labels): ``Feedback`` models or ``(trace_id,
        score)`` pairs, all checked before any is queued. Returns how many were queued; the rest
        were refused (queue full or client closed) and are counted in ``telemetry_dropped``."""
        records = feedback_records(scores)
        if not self._recorder.enabled:  # telemetry off: write them now, as before
            self.telemetry.write_feedback(records)
            return len(records)
        return self._recorder.submit_feedback(records)

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every run and score so far is written (through an outage unless ``timeout``
        seconds pass first: then False)."""
        return self._recorder.flush(timeout)

    def close(self) -> None:
        """Flush and stop the telemetry writer, waiting at most the recorder's
        ``close_timeout_s`` for an unreachable database (what it never took is counted)."""
        self._recorder.close()

    @property
    def telemetry_dropped(self) -> int:
        """Every run whose telemetry will never be written: refused because the queue was full
        or the client closed, rejected by the database, or abandoned at close while the
        database was away."""
        return self._recorder.stats.dropped

    @property
    def telemetry_stats(self) -> RecorderStats:
        """The telemetry recorder's counters (written, pending, dropped and its parts)."""
        return self._recorder.stats

    # ----- the RSI workflow -----

    async def temporal(self) -> Client:
        """The Temporal client (connected on first use)."""
        if self._temporal is None:
            self._temporal = await connect(self.settings)
        return self._temporal

    async def start_improvement(
        self,
        graph_id: str,
        *,
        continuous: bool = False,
        max_cycles: int | None = None,
        settings: dict[str, Any] | None = None,
        replace_running: bool = False,
        memo: dict[str, str] | None = None,
    ) -> WorkflowHandle[Any, RSIStatus]:
        """Start the graph's RSI workflow (id ``rsi-<graph_id>``).

        A running loop for the graph makes this fail (one loop per graph), unless
        ``replace_running`` asks to terminate it first. ``memo`` adds human context (such as
        the graph's version label) to the workflow's memo.
        """
        self.registry.get_graph(graph_id)
        self._check_settings(graph_id, settings or {})
        inp = RSIWorkflowInput(
            graph_id=graph_id, continuous=continuous, max_cycles=max_cycles, settings=settings or {}
        )
        workflow_memo = {**(memo or {}), **self._memo(graph_id)}
        client = await self.temporal()
        await self._refuse_second_loop(client, graph_id)
        return await client.start_workflow(
            RSI_WORKFLOW,
            inp,
            id=rsi_workflow_id(graph_id),
            task_queue=self.settings.task_queue,
            result_type=RSIStatus,
            static_summary=f"RSI loop for graph {graph_id}",
            memo=workflow_memo,
            id_conflict_policy=(
                WorkflowIDConflictPolicy.TERMINATE_EXISTING
                if replace_running
                else WorkflowIDConflictPolicy.FAIL
            ),
        )

    async def _refuse_second_loop(self, client: Client, graph_id: str) -> None:
        """One loop per graph: refuse when another workflow id holds the graph's loop lease
        and still runs (the loop's own id is guarded by the id conflict policy)."""
        holder = LoopLeaseStore(self.settings.database_url).holder(graph_id)
        if holder is None or holder.workflow_id == rsi_workflow_id(graph_id):
            return
        try:
            described = await client.get_workflow_handle(holder.workflow_id).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return
            raise
        if described.status == WorkflowExecutionStatus.RUNNING:
            raise LoopAlreadyRunningError(
                f"graph {graph_id!r} already has a running RSI loop: workflow "
                f"{holder.workflow_id!r}; stop it before starting another"
            )

    def _memo(self, graph_id: str) -> dict[str, Any]:
        """Human context shown with the workflow in the Web UI: the graph, its owner, the
        version the loop starts from."""
        active = self.routing.get(graph_id).active_version_id
        metadata = self.registry.get_version(active).spec.metadata
        memo: dict[str, Any] = {"graph_id": graph_id, "started_from_version": active}
        for key in ("owner", "description"):
            if isinstance(metadata.get(key), str):
                memo[key] = metadata[key]
        return memo

    def _check_settings(self, graph_id: str, overrides: dict[str, Any]) -> None:
        """Refuse bad settings before a workflow starts (the workflow would fail on them)."""
        active = self.routing.get(graph_id).active_version_id
        defaults = self.registry.get_version(active).spec.metadata.get("rsi", {})
        try:
            RSISettings.model_validate({**defaults, **overrides})
        except ValidationError as exc:
            problems = describe_errors(exc.errors(include_url=False))
            raise InvalidInputError(
                f"invalid RSI settings for graph {graph_id!r}: {problems}"
            ) from exc

    async def handle(self, graph_id: str) -> WorkflowHandle[Any, RSIStatus]:
        """The handle of the graph's RSI workflow (latest run)."""
        client = await self.temporal()
        return client.get_workflow_handle(rsi_workflow_id(graph_id), result_type=RSIStatus)

    async def status(self, graph_id: str) -> RSIStatus:
        """The ``status`` query of the graph's RSI workflow."""
        handle = await self.handle(graph_id)
        return await handle.query("status", result_type=RSIStatus)

    async def rollback(self, graph_id: str, reason: str, actor: str = "operator") -> None:
        """Signal a rollback of the version the loop deployed (recorded by the server even while
        no worker runs; see ``request_rollback`` for an answer)."""
        handle = await self.handle(graph_id)
        await handle.signal("rollback", RollbackRequest(reason=reason, actor=actor))

    async def request_rollback(
        self, graph_id: str, reason: str, actor: str = "operator"
    ) -> RollbackAck:
        """Ask for a rollback and get an answer: which deployment it undoes and the version it
        restores. Raises ``WorkflowUpdateFailedError`` (its cause says why) when the loop has
        nothing to roll back. Needs a running worker, unlike ``rollback``."""
        handle = await self.handle(graph_id)
        request = RollbackRequest(reason=reason, actor=actor)
        return await handle.execute_update("request_rollback", request, result_type=RollbackAck)

    async def pause(self, graph_id: str) -> None:
        """Signal the loop to stop at its next phase boundary."""
        await (await self.handle(graph_id)).signal("pause")

    async def resume(self, graph_id: str) -> None:
        """Signal the loop to continue after a pause."""
        await (await self.handle(graph_id)).signal("resume")

    async def review(
        self,
        graph_id: str,
        *,
        approve: bool,
        reviewer: str,
        comment: str = "",
        hypothesis_id: str | None = None,
    ) -> ReviewAck:
        """Approve or reject the high-risk hypothesis awaiting review; returns which hypothesis
        the decision was recorded for. Raises ``WorkflowUpdateFailedError`` (its cause says why)
        when no review is open or ``hypothesis_id`` names another hypothesis."""
        handle = await self.handle(graph_id)
        request = ReviewRequest(
            approve=approve, reviewer=reviewer, comment=comment, hypothesis_id=hypothesis_id
        )
        return await handle.execute_update("review", request, result_type=ReviewAck)
