"""The graph runtime: scheduling, conditions, policies in spans, failures, replay, telemetry."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from spark.errors import InvalidInputError, ReplayRefusedError, UnknownNodeTypeError
from spark.graphs import GraphRuntime, NodeContext, NodeRegistry, node
from spark.telemetry.models import PendingRun, RunTelemetry
from tests.graphs.helpers import ListSink, ManualClock, make_spec


def _register_constant(registry: NodeRegistry, name: str, output: dict[str, Any]) -> None:
    async def constant(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        return dict(output)

    constant.__qualname__ = f"constant_{name}"
    registry.register(name, constant)


def _spans_by_node(run: RunTelemetry) -> dict[str, Any]:
    return {span.node_id: span for span in run.spans}


async def test_independent_branches_run_concurrently(
    registry: NodeRegistry, runtime: GraphRuntime
) -> None:
    """Two branches after the entry overlap: both start before either finishes."""
    events: list[str] = []

    @node("branch", registry=registry)
    async def branch(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        events.append(f"start:{ctx.node_id}")
        await asyncio.sleep(0.02)
        events.append(f"end:{ctx.node_id}")
        return {ctx.node_id: True}

    _register_constant(registry, "entry", {})
    spec = make_spec(
        [
            {"id": "a", "type": "entry"},
            {"id": "left", "type": "branch"},
            {"id": "right", "type": "branch"},
        ],
        [("a", "left"), ("a", "right")],
    )

    result = await runtime.run(spec, {}, version_id="v1")

    assert result.ok
    assert sorted(events[:2]) == ["start:left", "start:right"]


async def test_join_waits_for_every_predecessor(
    registry: NodeRegistry, runtime: GraphRuntime
) -> None:
    """A join node starts only after all its predecessors and sees all their outputs."""

    @node("slow_writer", registry=registry)
    async def slow_writer(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        await asyncio.sleep(ctx.config.params["delay_s"])
        return {ctx.node_id: ctx.config.params["delay_s"]}

    @node("join", registry=registry)
    async def join(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        return {"seen": sorted(inputs)}

    _register_constant(registry, "entry", {})
    spec = make_spec(
        [
            {"id": "a", "type": "entry"},
            {
                "id": "fast",
                "type": "slow_writer",
                "outputs": ["fast"],
                "config": {"params": {"delay_s": 0.001}},
            },
            {
                "id": "slow",
                "type": "slow_writer",
                "outputs": ["slow"],
                "config": {"params": {"delay_s": 0.02}},
            },
            {"id": "j", "type": "join", "inputs": ["fast", "slow"]},
        ],
        [("a", "fast"), ("a", "slow"), ("fast", "j"), ("slow", "j")],
    )

    result = await runtime.run(spec, {}, version_id="v1")

    assert result.outputs["seen"] == ["fast", "slow"]


async def test_conditional_edges_choose_a_branch_and_skips_propagate(
    registry: NodeRegistry, runtime: GraphRuntime, sink: ListSink
) -> None:
    """Only the branch whose condition holds runs; nodes below a skipped branch are skipped."""
    _register_constant(registry, "classify", {"label": "billing"})
    _register_constant(registry, "billing", {"team": "billing"})
    _register_constant(registry, "tech", {"team": "tech"})
    _register_constant(registry, "escalate", {"escalated": True})
    spec = make_spec(
        [
            {"id": "classify", "type": "classify"},
            {"id": "billing", "type": "billing"},
            {"id": "tech", "type": "tech"},
            {"id": "escalate", "type": "escalate"},
        ],
        [
            {
                "source": "classify",
                "target": "billing",
                "condition": {"field": "label", "value": "billing"},
            },
            {
                "source": "classify",
                "target": "tech",
                "condition": {"field": "label", "value": "tech"},
            },
            ("tech", "escalate"),
        ],
    )

    result = await runtime.run(spec, {}, version_id="v1")

    assert result.node_statuses == {
        "classify": "ok",
        "billing": "ok",
        "tech": "skipped",
        "escalate": "skipped",
    }
    assert result.outputs == {"label": "billing", "team": "billing"}
    spans = _spans_by_node(sink.runs[0])
    assert spans["escalate"].status == "skipped" and spans["escalate"].attempts == 0


async def test_join_runs_when_one_incoming_edge_is_active(
    registry: NodeRegistry, runtime: GraphRuntime
) -> None:
    """A join below one taken and one skipped branch still runs (any active edge suffices)."""
    _register_constant(registry, "route", {"route": "left"})
    _register_constant(registry, "left", {"left": 1})
    _register_constant(registry, "right", {"right": 1})
    _register_constant(registry, "merge", {"merged": True})
    spec = make_spec(
        [
            {"id": "route", "type": "route"},
            {"id": "left", "type": "left"},
            {"id": "right", "type": "right"},
            {"id": "merge", "type": "merge"},
        ],
        [
            {"source": "route", "target": "left", "condition": {"field": "route", "value": "left"}},
            {
                "source": "route",
                "target": "right",
                "condition": {"field": "route", "value": "right"},
            },
            ("left", "merge"),
            ("right", "merge"),
        ],
    )

    result = await runtime.run(spec, {}, version_id="v1")

    assert result.node_statuses["right"] == "skipped"
    assert result.node_statuses["merge"] == "ok"


async def test_nodes_read_only_their_declared_inputs(
    registry: NodeRegistry, runtime: GraphRuntime
) -> None:
    """A node declaring inputs sees only those fields; one declaring none sees the whole state."""
    seen: dict[str, list[str]] = {}

    @node("spy", registry=registry)
    async def spy(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        seen[ctx.node_id] = sorted(inputs)
        return {f"{ctx.node_id}_done": True}

    spec = make_spec(
        [{"id": "narrow", "type": "spy", "inputs": ["text"]}, {"id": "wide", "type": "spy"}],
        [("narrow", "wide")],
        inputs=["text", "user"],
    )

    result = await runtime.run(spec, {"text": "hi", "user": "u1"}, version_id="v1")

    assert seen == {"narrow": ["text"], "wide": ["narrow_done", "text", "user"]}
    assert result.outputs == {"narrow_done": True, "wide_done": True}


async def test_retries_recover_and_the_span_counts_attempts(
    registry: NodeRegistry, runtime: GraphRuntime, sink: ListSink
) -> None:
    """A node failing twice with ``retries=2`` succeeds; its span records 3 attempts."""
    calls: list[int] = []

    @node("flaky", registry=registry)
    async def flaky(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        calls.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError("try again")
        return {"ok": True}

    spec = make_spec([{"id": "f", "type": "flaky", "config": {"retries": 2, "backoff_s": 0.001}}])

    result = await runtime.run(spec, {}, version_id="v1")

    assert result.ok and calls == [1, 2, 3]
    span = sink.runs[0].spans[0]
    assert (span.status, span.attempts, span.error_type) == ("ok", 3, None)


async def test_timeout_fails_the_run_with_node_timeout_error(
    registry: NodeRegistry, runtime: GraphRuntime, sink: ListSink
) -> None:
    """A node exceeding ``timeout_s`` fails the run; the span and result name the error type."""

    @node("hang", registry=registry)
    async def hang(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        await asyncio.sleep(5)
        return {}

    spec = make_spec([{"id": "h", "type": "hang", "config": {"timeout_s": 0.01}}])

    result = await runtime.run(spec, {}, version_id="v1")

    assert (result.status, result.error_type, result.failed_node_id) == (
        "error",
        "NodeTimeoutError",
        "h",
    )
    assert sink.runs[0].spans[0].error_type == "NodeTimeoutError"


async def test_cache_hits_within_ttl_and_misses_after(
    registry: NodeRegistry, sink: ListSink, clock: ManualClock
) -> None:
    """Same inputs within ``cache_ttl_s`` reuse the answer; after the TTL the node runs again."""
    calls: list[str] = []

    @node("lookup", registry=registry)
    async def lookup(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        calls.append(inputs["q"])
        return {"answer": inputs["q"].upper()}

    runtime = GraphRuntime(registry, sink, clock=clock)
    spec = make_spec(
        [{"id": "l", "type": "lookup", "inputs": ["q"], "config": {"cache_ttl_s": 60}}],
        inputs=["q"],
    )

    first = await runtime.run(spec, {"q": "x"}, version_id="v1")
    clock.advance(30)
    second = await runtime.run(spec, {"q": "x"}, version_id="v1")
    clock.advance(31)
    await runtime.run(spec, {"q": "x"}, version_id="v1")

    assert first.outputs == second.outputs == {"answer": "X"}
    assert [run.spans[0].cache_hit for run in sink.runs] == [False, True, False]
    assert calls == ["x", "x"]


async def test_cache_is_keyed_by_version(registry: NodeRegistry, runtime: GraphRuntime) -> None:
    """A different version never reads another version's cached answer."""
    calls: list[str] = []

    @node("count", registry=registry)
    async def count(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        calls.append(ctx.version_id)
        return {"n": len(calls)}

    spec = make_spec([{"id": "c", "type": "count", "config": {"cache_ttl_s": 60}}])

    await runtime.run(spec, {}, version_id="v1")
    await runtime.run(spec, {}, version_id="v2")

    assert calls == ["v1", "v2"]


async def test_fallback_answers_after_retries(
    registry: NodeRegistry, runtime: GraphRuntime, sink: ListSink
) -> None:
    """When the primary exhausts its retries the fallback type answers with the same inputs."""

    @node("primary", registry=registry)
    async def primary(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        raise ConnectionError("down")

    @node("cheap", registry=registry)
    async def cheap(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        return {"answer": f"cheap:{inputs['q']}"}

    spec = make_spec(
        [
            {
                "id": "p",
                "type": "primary",
                "inputs": ["q"],
                "config": {"retries": 1, "backoff_s": 0.001, "fallback": "cheap"},
            }
        ],
        inputs=["q"],
    )

    result = await runtime.run(spec, {"q": "x"}, version_id="v1")

    assert result.ok and result.outputs == {"answer": "cheap:x"}
    assert sink.runs[0].spans[0].attempts == 3


async def test_node_failure_fails_the_run_without_raising(
    registry: NodeRegistry, runtime: GraphRuntime, sink: ListSink
) -> None:
    """A failing node ends the run with status error; downstream and in-flight nodes are skipped."""
    finished: list[str] = []

    @node("boom", registry=registry)
    async def boom(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        await asyncio.sleep(0.005)  # let the sibling branch start first
        raise ValueError("bad data")

    @node("slow", registry=registry)
    async def slow(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        await asyncio.sleep(5)
        finished.append(ctx.node_id)
        return {}

    _register_constant(registry, "entry", {})
    _register_constant(registry, "after", {"after": True})
    spec = make_spec(
        [
            {"id": "a", "type": "entry"},
            {"id": "boom", "type": "boom"},
            {"id": "slow", "type": "slow"},
            {"id": "after", "type": "after"},
        ],
        [("a", "boom"), ("a", "slow"), ("boom", "after")],
    )

    result = await runtime.run(spec, {}, version_id="v1")

    assert (result.status, result.error_type, result.failed_node_id) == (
        "error",
        "ValueError",
        "boom",
    )
    assert result.error_message is not None and "'boom'" in result.error_message
    assert "bad data" in result.error_message
    assert result.node_statuses == {
        "a": "ok",
        "boom": "error",
        "slow": "skipped",
        "after": "skipped",
    }
    assert finished == []
    spans = _spans_by_node(sink.runs[0])
    assert spans["slow"].error_type == "CancelledError"
    assert sink.runs[0].trace.status == "error" and sink.runs[0].trace.error_type == "ValueError"


async def test_no_node_starts_after_the_run_failed(
    registry: NodeRegistry, runtime: GraphRuntime
) -> None:
    """A sibling made ready in the same step as a failure is skipped, never started."""
    started: list[str] = []

    @node("fail_now", registry=registry)
    async def fail_now(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        raise ValueError("at once")

    @node("record_start", registry=registry)
    async def record_start(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        started.append(ctx.node_id)
        return {}

    _register_constant(registry, "entry", {})
    spec = make_spec(
        [
            {"id": "a", "type": "entry"},
            {"id": "fail", "type": "fail_now"},
            {"id": "sibling", "type": "record_start"},
        ],
        [("a", "fail"), ("a", "sibling")],
    )

    result = await runtime.run(spec, {}, version_id="v1")

    assert result.node_statuses["sibling"] == "skipped"
    assert started == []


def _replay_spec() -> Any:
    return make_spec(
        [
            {"id": "draft", "type": "draft", "inputs": ["to"], "outputs": ["body"]},
            {
                "id": "send",
                "type": "send_email",
                "tags": ["side_effects"],
                "inputs": ["body"],
                "outputs": ["message_id"],
            },
            {"id": "log", "type": "log_sent", "inputs": ["message_id"]},
        ],
        [("draft", "send"), ("send", "log")],
        inputs=["to"],
    )


def _register_email_nodes(registry: NodeRegistry, sent: list[str]) -> None:
    @node("send_email", registry=registry)
    async def send_email(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        sent.append(inputs["body"])
        return {"message_id": "m-live"}

    _register_constant(registry, "draft", {"body": "hello"})
    _register_constant(registry, "log_sent", {"logged": True})


async def test_live_run_records_side_effect_output(
    registry: NodeRegistry, runtime: GraphRuntime, sink: ListSink
) -> None:
    """Outside replay a side-effect node runs and its output is kept on its span, others' not."""
    sent: list[str] = []
    _register_email_nodes(registry, sent)

    await runtime.run(_replay_spec(), {"to": "a@b.c"}, version_id="v1")

    spans = _spans_by_node(sink.runs[0])
    assert sent == ["hello"]
    assert json.loads(spans["send"].output_json) == {"message_id": "m-live"}
    assert spans["draft"].output_json is None


async def test_replay_reuses_recorded_side_effect_outputs(
    registry: NodeRegistry, runtime: GraphRuntime
) -> None:
    """In replay a side-effect node is not executed; its recorded output flows downstream."""
    sent: list[str] = []
    _register_email_nodes(registry, sent)

    result = await runtime.run(
        _replay_spec(),
        {"to": "a@b.c"},
        version_id="v1",
        routing_arm="replay",
        replay_outputs={"send": {"message_id": "m-recorded"}},
    )

    assert sent == []
    assert result.ok and result.outputs["message_id"] == "m-recorded"


async def test_replay_without_recorded_output_is_refused(
    registry: NodeRegistry, runtime: GraphRuntime, sink: ListSink
) -> None:
    """Replay with no recorded output for a reached side-effect node raises, naming the node."""
    sent: list[str] = []
    _register_email_nodes(registry, sent)

    with pytest.raises(ReplayRefusedError, match="'send'"):
        await runtime.run(_replay_spec(), {"to": "a@b.c"}, version_id="v1", replay_outputs={})

    assert sent == []
    assert sink.runs == []


async def test_replay_does_not_need_side_effect_types_registered(
    runtime: GraphRuntime, registry: NodeRegistry
) -> None:
    """A replay worker without the side-effect implementations can still replay."""
    _register_constant(registry, "draft", {"body": "hello"})
    _register_constant(registry, "log_sent", {"logged": True})

    result = await runtime.run(
        _replay_spec(), {"to": "x"}, version_id="v1", replay_outputs={"send": {"message_id": "m"}}
    )

    assert result.ok


async def test_unknown_node_type_is_misuse_naming_type_and_node(runtime: GraphRuntime) -> None:
    """Running a spec with an unregistered type raises before anything runs."""
    spec = make_spec([{"id": "summarize", "type": "llm_summary"}])

    with pytest.raises(UnknownNodeTypeError, match=r"'llm_summary'.*'summarize'"):
        await runtime.run(spec, {}, version_id="v1")


async def test_unknown_fallback_type_is_misuse(
    registry: NodeRegistry, runtime: GraphRuntime
) -> None:
    """A fallback type missing from the registry is reported up front with its node."""
    _register_constant(registry, "main", {})
    spec = make_spec([{"id": "m", "type": "main", "config": {"fallback": "ghost"}}])

    with pytest.raises(UnknownNodeTypeError, match=r"'ghost'.*'m'"):
        await runtime.run(spec, {}, version_id="v1")


async def test_missing_inputs_are_listed(
    registry: NodeRegistry, runtime: GraphRuntime, sink: ListSink
) -> None:
    """A request lacking declared graph inputs raises ``InvalidInputError`` listing them."""
    _register_constant(registry, "main", {})
    spec = make_spec([{"id": "m", "type": "main"}], inputs=["text", "user_id", "locale"])

    with pytest.raises(InvalidInputError, match=r"\['user_id', 'locale'\]"):
        await runtime.run(spec, {"text": "hi"}, version_id="v1")

    assert sink.runs == []


async def test_sink_receives_one_run_with_trace_and_spans(
    registry: NodeRegistry, runtime: GraphRuntime, sink: ListSink
) -> None:
    """Each run is submitted once: spans in node order, usage summed into the trace cost."""

    @node("llm", registry=registry)
    async def llm(inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        ctx.report_usage(tokens=100, cost=0.002)
        ctx.report_usage(tokens=20, cost=0.001)
        return {ctx.node_id: "done"}

    first = {"id": "first", "type": "llm", "inputs": ["q"], "tags": ["deterministic"]}
    spec = make_spec([first, {"id": "second", "type": "llm"}], [("first", "second")], inputs=["q"])

    result = await runtime.run(
        spec,
        {"q": "hi"},
        version_id="v7",
        routing_arm="candidate",
        routing_key="user-1",
        trace_id="t1",
    )

    assert len(sink.runs) == 1
    trace, spans = sink.runs[0].trace, sink.runs[0].spans
    assert [span.node_id for span in spans] == ["first", "second"]
    assert {span.trace_id for span in spans} == {"t1"} == {result.trace_id}
    assert (spans[0].tokens, spans[0].cost) == (120, pytest.approx(0.003))
    assert trace.cost == pytest.approx(0.006) == result.cost
    assert result.tokens == 240
    assert (trace.version_id, trace.routing_arm, trace.routing_key) == ("v7", "candidate", "user-1")
    assert trace.inputs_json == '{"q":"hi"}'
    assert trace.input_fingerprint == spans[0].input_fingerprint is not None
    assert spans[1].input_fingerprint is None  # not a node a cache could serve: not measured


async def test_a_failing_sink_does_not_fail_the_run(registry: NodeRegistry) -> None:
    """Telemetry problems are logged, never raised into the request path."""

    class BrokenSink:
        def submit(self, run: RunTelemetry | PendingRun) -> None:
            raise RuntimeError("disk full")

    _register_constant(registry, "main", {"x": 1})
    runtime = GraphRuntime(registry, BrokenSink())

    result = await runtime.run(make_spec([{"id": "m", "type": "main"}]), {}, version_id="v1")

    assert result.ok and result.outputs == {"x": 1}
