"""The request path does only the work someone needs: fingerprints only for a cache or a sink,
no timeout scope for a node without a timeout, a chain scheduled in one task (issue 11)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from spark.graphs import GraphRuntime, NodeContext, NodeRegistry, node, parse_graph_spec
from spark.graphs import runtime as runtime_module
from spark.graphs.policies import input_fingerprint
from spark.telemetry import TelemetryRecorder
from spark.telemetry.fingerprints import complete_run
from spark.telemetry.models import PENDING_SPAN_FIELDS, PENDING_SPAN_WIDTH, PendingRun, RunTelemetry
from spark.telemetry.sampling import trace_sampled
from tests.graphs.helpers import ListSink, make_spec
from tests.telemetry import factories


class DeferringSink:
    """A sink that takes runs with their fingerprints left to compute (as the recorder does)."""

    defers_fingerprints = True

    def __init__(self) -> None:
        self.runs: list[PendingRun] = []

    def submit(self, run: RunTelemetry | PendingRun) -> None:
        """Keep ``run``, which must be pending."""
        assert isinstance(run, PendingRun)
        self.runs.append(run)


@pytest.fixture
def counted_fingerprints(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every value the runtime fingerprints on the request path."""
    calls: list[Any] = []

    def counting(value: Any) -> str | None:
        calls.append(value)
        return input_fingerprint(value)

    monkeypatch.setattr(runtime_module, "input_fingerprint", counting)
    return calls


def _register_step(registry: NodeRegistry) -> None:
    @node("step", registry=registry)
    async def step(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        return {ctx.node_id: inputs.get("q")}


def _chain(registry: NodeRegistry, length: int, tags: tuple[str, ...] = (), **config: Any) -> Any:
    _register_step(registry)
    ids = [f"n{i}" for i in range(length)]
    nodes = [
        {"id": i, "type": "step", "inputs": ["q"], "config": config, "tags": list(tags)}
        for i in ids
    ]
    return make_spec(nodes, list(itertools.pairwise(ids)), inputs=["q"])


async def test_no_fingerprint_without_a_cache_or_a_sink(
    registry: NodeRegistry, counted_fingerprints: list[Any]
) -> None:
    """Telemetry off and no cached node: nothing is hashed, the run still succeeds."""
    result = await GraphRuntime(registry).run(_chain(registry, 3), {"q": "x"}, version_id="v1")

    assert result.ok and result.outputs == {"n0": "x", "n1": "x", "n2": "x"}
    assert counted_fingerprints == []


async def test_a_cached_node_is_fingerprinted_for_its_cache_key(
    registry: NodeRegistry, counted_fingerprints: list[Any]
) -> None:
    """Without a sink, only the cache needs the fingerprint: one per executed cached node."""
    runtime = GraphRuntime(registry)
    spec = _chain(registry, 2, cache_ttl_s=60)

    await runtime.run(spec, {"q": "x"}, version_id="v1")
    assert len(counted_fingerprints) == 2
    assert len(runtime.cache) == 2


async def test_a_deferring_sink_gets_the_inputs_and_the_writer_hashes_them(
    registry: NodeRegistry, counted_fingerprints: list[Any]
) -> None:
    """A sink that defers fingerprints costs the request no hashing, no span ids and no trace
    record; completing the pending run mints the ids and gives the very trace and fingerprints
    an eager sink gets on the request path."""
    spec = _chain(registry, 3, tags=("deterministic",))
    deferring, eager = DeferringSink(), ListSink()

    await GraphRuntime(registry, deferring).run(spec, {"q": "x"}, version_id="v1", trace_id="t")
    assert counted_fingerprints == []
    await GraphRuntime(registry, eager).run(spec, {"q": "x"}, version_id="v1", trace_id="t")
    assert len(counted_fingerprints) == 3

    (deferred,), (hashed,) = deferring.runs, eager.runs
    assert isinstance(deferred, PendingRun) and isinstance(hashed, RunTelemetry)
    pending_spans = [
        dict(
            zip(
                PENDING_SPAN_FIELDS, deferred.span_fields[at : at + PENDING_SPAN_WIDTH], strict=True
            )
        )
        for at in range(0, len(deferred.span_fields), PENDING_SPAN_WIDTH)
    ]
    assert [span["node_id"] for span in pending_spans] == ["n0", "n1", "n2"]
    assert {span["input_fingerprint"] for span in pending_spans} == {None}
    completed = complete_run(deferred)  # completes the deferred run's spans in place
    assert len({span.span_id for span in completed.spans} - {""}) == 3
    assert completed.trace.input_fingerprint == hashed.trace.input_fingerprint is not None
    assert [s.input_fingerprint for s in completed.spans] == [
        s.input_fingerprint for s in hashed.spans
    ]
    assert completed.trace.inputs_json == hashed.trace.inputs_json == '{"q":"x"}'
    timing = {"started_at", "duration_ms"}
    assert _fields(completed.trace, timing) == _fields(hashed.trace, timing)
    minted = timing | {"span_id"}
    assert [_fields(s, minted) for s in completed.spans] == [
        _fields(s, minted) for s in hashed.spans
    ]


@pytest.mark.parametrize("sink_type", [DeferringSink, ListSink])
@pytest.mark.parametrize(
    ("tags", "config", "measured"),
    [
        ((), {}, False),  # the default for LLM and tool nodes: no cache may serve them
        (("deterministic", "side_effects"), {}, False),
        (("deterministic",), {}, True),
        ((), {"cache_ttl_s": 60}, True),  # cached already: its key is the fingerprint
    ],
)
async def test_only_nodes_a_cache_could_serve_are_fingerprinted(
    registry: NodeRegistry,
    counted_fingerprints: list[Any],
    sink_type: type[ListSink],
    tags: tuple[str, ...],
    config: dict[str, Any],
    measured: bool,
) -> None:
    """The repeat statistic feeds only the cache proposal, so telemetry hashes the inputs of a
    node tagged ``deterministic`` without ``side_effects``, or cached, and of no other node,
    whether the sink hashes on the request path or defers it to its writer."""
    sink = sink_type()
    spec = _chain(registry, 2, tags=tags, **config)

    await GraphRuntime(registry, sink).run(spec, {"q": "x"}, version_id="v1", trace_id="t")

    (run,) = sink.runs
    spans = complete_run(run).spans
    fingerprints = [span.input_fingerprint for span in spans]
    assert all(fingerprints) if measured else fingerprints == [None, None]
    hashed_on_request = measured and (sink_type is ListSink or "cache_ttl_s" in config)
    assert len(counted_fingerprints) == (2 if hashed_on_request else 0)


def _fields(record: Any, leaving_out: set[str]) -> dict[str, Any]:
    return {k: v for k, v in record._asdict().items() if k not in leaving_out}


async def test_a_run_without_capture_is_completed_unchanged() -> None:
    """``complete_run`` leaves a run that was already hashed as it is."""
    run = factories.run(2, input_fingerprint="fp")
    assert complete_run(run) is run


def _counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[Any]:
    calls: list[Any] = []
    original: Callable[..., Any] = getattr(asyncio, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(asyncio, name, counting)
    return calls


async def test_only_nodes_with_a_timeout_enter_a_timeout_scope(
    registry: NodeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Of three nodes, the one with ``timeout_s`` is the only call wrapped in asyncio.timeout;
    the one with retries and the plain one are not."""
    scopes = _counting(monkeypatch, "timeout")
    _register_step(registry)
    spec = make_spec(
        [
            {"id": "plain", "type": "step", "inputs": ["q"]},
            {"id": "retried", "type": "step", "inputs": ["q"], "config": {"retries": 2}},
            {"id": "bounded", "type": "step", "inputs": ["q"], "config": {"timeout_s": 5}},
        ],
        [("plain", "retried"), ("retried", "bounded")],
        inputs=["q"],
    )

    result = await GraphRuntime(registry).run(spec, {"q": "x"}, version_id="v1")

    assert result.ok
    assert scopes == [(5.0,)]


async def test_a_node_timeout_still_fails_the_run(registry: NodeRegistry) -> None:
    """A node with neither retries nor fallback (the one-call path) is still bounded by
    ``timeout_s``: the run fails with NodeTimeoutError and the next node never starts."""

    @node("hang", registry=registry)
    async def hang(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        await asyncio.sleep(30)
        return {}

    _register_step(registry)
    spec = make_spec(
        [{"id": "h", "type": "hang", "config": {"timeout_s": 0.01}}, {"id": "s", "type": "step"}],
        [("h", "s")],
    )

    result = await GraphRuntime(registry).run(spec, {}, version_id="v1")

    assert (result.status, result.error_type, result.failed_node_id) == (
        "error",
        "NodeTimeoutError",
        "h",
    )
    assert result.node_statuses == {"h": "error", "s": "skipped"}


async def test_cancelling_the_caller_cancels_a_node_of_its_chain(registry: NodeRegistry) -> None:
    """The entry's chain runs in the caller's task: cancelling the caller cancels the running
    node (its cleanup runs, the next node never starts) and the caller sees CancelledError."""
    started, cleaned_up = asyncio.Event(), []

    @node("wait", registry=registry)
    async def wait(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        started.set()
        try:
            await asyncio.sleep(30)
        finally:
            cleaned_up.append(ctx.node_id)
        return {}

    _register_step(registry)
    sink = ListSink()
    spec = make_spec([{"id": "w", "type": "wait"}, {"id": "s", "type": "step"}], [("w", "s")])
    run = asyncio.create_task(GraphRuntime(registry, sink).run(spec, {}, version_id="v1"))
    await started.wait()
    run.cancel()

    with pytest.raises(asyncio.CancelledError):
        await run
    assert cleaned_up == ["w"] and sink.runs == []


async def test_a_failing_entry_chain_skips_the_rest(registry: NodeRegistry) -> None:
    """A node of the entry's chain that raises fails the run there: the nodes after it are
    skipped, and its error is the run's."""

    @node("bad", registry=registry)
    async def bad(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        raise KeyError("missing")

    _register_step(registry)
    spec = make_spec(
        [{"id": "a", "type": "step"}, {"id": "b", "type": "bad"}, {"id": "c", "type": "step"}],
        [("a", "b"), ("b", "c")],
    )

    result = await GraphRuntime(registry).run(spec, {}, version_id="v1")

    assert (result.status, result.error_type, result.failed_node_id) == ("error", "KeyError", "b")
    assert result.node_statuses == {"a": "ok", "b": "error", "c": "skipped"}


async def test_a_chain_runs_in_the_callers_task_and_branches_in_their_own(
    registry: NodeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chain of five nodes from one entry costs no task (it runs in the caller's); a fan-out
    to two branches adds one per branch; two entries start in a task each."""
    tasks = _counting(monkeypatch, "create_task")
    chain = _chain(registry, 5)

    result = await GraphRuntime(registry).run(chain, {"q": "x"}, version_id="v1")
    assert result.ok and tasks == []

    fan_out = make_spec(
        [{"id": i, "type": "step", "inputs": ["q"]} for i in ("a", "b", "c")],
        [("a", "b"), ("a", "c")],
        inputs=["q"],
    )
    result = await GraphRuntime(registry).run(fan_out, {"q": "x"}, version_id="v1")
    assert result.ok and len(tasks) == 2

    tasks.clear()
    two_entries = parse_graph_spec(
        {
            "id": "two-entries",
            "entry": "a",
            "entry_nodes": ["a", "b"],
            "nodes": [{"id": i, "type": "step", "inputs": ["q"]} for i in ("a", "b")],
            "edges": [],
            "inputs": ["q"],
        }
    )
    result = await GraphRuntime(registry).run(two_entries, {"q": "x"}, version_id="v1")
    assert result.ok and len(tasks) == 2


class BatchWriter:
    """A writer keeping the batches the recorder hands it."""

    backend = "memory"

    def __init__(self) -> None:
        self.runs: list[RunTelemetry] = []

    def write_runs(self, runs: Sequence[RunTelemetry]) -> None:
        """Keep ``runs``."""
        self.runs.extend(runs)


def test_the_recorder_hashes_deferred_inputs_even_for_a_sampled_trace() -> None:
    """Through trace sampling (which re-stamps the trace) the capture survives: the writer
    fills in the span's fingerprint from the inputs the node ran on."""
    trace_id = next(f"t{i}" for i in range(1000) if trace_sampled(f"t{i}", 0.5))
    run = factories.pending_run({"n0": {"q": 1}}, {"q": 1}, trace_id=trace_id)
    writer = BatchWriter()
    with TelemetryRecorder(writer, sampling_rate=0.5) as recorder:
        recorder.submit(run)
        assert recorder.flush(timeout=10)

    (written,) = writer.runs
    assert written.trace.sampling_rate == 0.5
    assert written.spans[0].input_fingerprint == input_fingerprint({"q": 1}) is not None
    assert written.trace.inputs_json == '{"q":1}'


async def test_replay_keeps_the_request_inputs_when_the_caller_changes_them_after(
    registry: NodeRegistry,
) -> None:
    """The trace's inputs JSON is the request's, whenever the writer completes the run: inputs
    holding a list are serialised on the request path, scalar inputs are read from the
    runtime's own copy; changing the caller's objects after the run changes neither."""
    spec = _chain(registry, 2)
    sink = DeferringSink()
    runtime = GraphRuntime(registry, sink)
    scalar: dict[str, Any] = {"q": "x", "n": 1}
    nested: dict[str, Any] = {"q": "x", "tags": ["a"]}

    await runtime.run(spec, scalar, version_id="v1")
    await runtime.run(spec, nested, version_id="v1")
    scalar["q"], scalar["extra"] = "changed", True
    nested["q"] = "changed"
    nested["tags"].append("b")

    later, now = sink.runs
    assert later.inputs_json is None and now.inputs_json == '{"q":"x","tags":["a"]}'
    assert complete_run(later).trace.inputs_json == '{"n":1,"q":"x"}'
    assert complete_run(now).trace.inputs_json == '{"q":"x","tags":["a"]}'


async def test_a_node_type_registered_again_is_used_by_the_next_run(
    registry: NodeRegistry,
) -> None:
    """Implementations are resolved once per spec and kept; registering a type again (a module
    reload) reaches the next run of the same spec object."""

    async def answer(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        return {"answer": 1}

    registry.register("answer", answer)
    spec = make_spec([{"id": "a", "type": "answer"}])
    runtime = GraphRuntime(registry)
    assert (await runtime.run(spec, {}, version_id="v1")).outputs == {"answer": 1}

    async def reloaded(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        return {"answer": 2}

    reloaded.__qualname__ = answer.__qualname__  # the same definition, as a module reload makes
    registry.register("answer", reloaded)
    assert (await runtime.run(spec, {}, version_id="v1")).outputs == {"answer": 2}
