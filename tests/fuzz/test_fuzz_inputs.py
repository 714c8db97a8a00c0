"""Fuzzing every boundary a user or operator can type into: workflow inputs, settings, graph
specs, change operations and message payloads. Every bad input gets a typed error with a clear
message; nothing valid can hold a wait a timer cannot represent; nothing is half-applied."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter, ValidationError

from examples.support_triage.graph import build_spec
from spark.errors import InvalidChangeError, InvalidGraphSpecError, InvalidWorkflowInputError
from spark.graphs.spec import GraphSpec, parse_graph_spec
from spark.rsi.changes import apply_changes
from spark.rsi.contracts import (
    ReviewDecision,
    ReviewRequest,
    RollbackRequest,
    RSISettings,
    RSIWorkflowInput,
)
from spark.rsi.hypotheses import ChangeOp
from tests.fuzz.strategies import (
    INPUT_FIELDS,
    JSON,
    SETTING_FIELDS,
    SETTINGS_OVERRIDES,
    WORKFLOW_INPUTS,
)

DURATIONS = [name for name in SETTING_FIELDS if name.endswith("_s")]
BASE_SPEC = build_spec()


def _decode_as_the_worker_does(value: Any) -> RSIWorkflowInput:
    """What the pydantic data converter does with ``temporal workflow start --input``."""
    text = json.dumps(value, allow_nan=True)
    return TypeAdapter(RSIWorkflowInput).validate_json(text)


@given(WORKFLOW_INPUTS)
def test_workflow_input_decodes_or_fails_typed_naming_a_field(value: Any) -> None:
    """Any start input either decodes, with every override in bounds, or raises
    InvalidWorkflowInputError naming a field; never a bare ValidationError or a crash."""
    try:
        decoded = _decode_as_the_worker_does(value)
    except InvalidWorkflowInputError as exc:
        message = str(exc)
        assert message.startswith("invalid RSIWorkflow input: ")
        assert any(name in message for name in [*INPUT_FIELDS, *SETTING_FIELDS, "input", "graph"])
        return
    RSISettings.model_validate({**decoded.settings, "ab_min_window_s": 1, "ab_max_window_s": 2})


@given(SETTINGS_OVERRIDES)
def test_settings_are_refused_or_every_wait_fits_a_timer(overrides: dict[str, Any]) -> None:
    """Settings validate to durations a Temporal timer can hold, or are refused naming fields."""
    try:
        settings = RSISettings.model_validate(overrides)
    except ValidationError as exc:
        assert all(error["loc"] or error["type"] == "value_error" for error in exc.errors())
        return
    for name in DURATIONS:
        seconds = getattr(settings, name)
        assert math.isfinite(seconds) and seconds <= 90 * 86_400
        assert timedelta(seconds=seconds) <= timedelta(days=90)


@given(st.text(max_size=40) | JSON.map(lambda v: json.dumps(v, allow_nan=True)))
def test_spec_text_parses_or_raises_invalid_graph_spec_error(text: str) -> None:
    """Any text given as a spec parses or raises InvalidGraphSpecError; nothing else."""
    try:
        spec = parse_graph_spec(text)
    except InvalidGraphSpecError as exc:
        assert str(exc).startswith("invalid graph spec")
        return
    assert isinstance(spec, GraphSpec)


NODE_IDS = st.sampled_from([n.id for n in BASE_SPEC.nodes] + ["ghost", ""])
FIELDS = st.sampled_from(["ticket", "text", "category", "reply", "nowhere"])


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "id": NODE_IDS,
                "type": st.sampled_from(["t", ""]),
                "inputs": st.lists(FIELDS, max_size=3),
                "outputs": st.lists(FIELDS, max_size=3),
            }
        ),
        min_size=1,
        max_size=6,
    ),
    st.lists(st.tuples(NODE_IDS, NODE_IDS), max_size=8),
    st.lists(NODE_IDS, max_size=3),
)
def test_spec_structures_parse_or_raise_invalid_graph_spec_error(
    nodes: list[dict[str, Any]], edges: list[tuple[str, str]], entry_nodes: list[str]
) -> None:
    """Random node and edge sets (duplicates, cycles, unknown ends, missing fields) and entry
    node lists (unknown, repeated, with incoming edges) are refused with InvalidGraphSpecError,
    or form a valid spec."""
    data = {
        "id": "fuzz",
        "entry": nodes[0]["id"],
        "entry_nodes": entry_nodes,
        "inputs": ["ticket"],
        "nodes": nodes,
        "edges": [{"source": s, "target": t} for s, t in edges],
    }
    try:
        parse_graph_spec(data)
    except InvalidGraphSpecError as exc:
        assert "invalid graph spec" in str(exc)


CHANGE = st.fixed_dictionaries(
    {
        "op": st.sampled_from(
            [
                "set_prompt",
                "set_config",
                "replace_node",
                "add_edge",
                "remove_edge",
                "reroute_edge",
                "parallelize",
                "add_cache",
                "add_fallback",
            ]
        ),
        "node_id": NODE_IDS,
        "source": NODE_IDS,
        "target": NODE_IDS,
        "new_target": NODE_IDS,
        "node_ids": st.lists(NODE_IDS, min_size=2, max_size=3),
        "prompt": st.text(min_size=1, max_size=5),
        "values": st.dictionaries(
            st.sampled_from(["retries", "timeout_s", "model"]), JSON, min_size=1, max_size=2
        ),
        "new_type": st.sampled_from(["support.classify", "x"]),
        "ttl_s": st.floats(min_value=1, max_value=1e6),
        "fallback_type": st.sampled_from(["support.classify", "y"]),
    }
)
CHANGE_ADAPTER: TypeAdapter[ChangeOp] = TypeAdapter(ChangeOp)


def _op(raw: dict[str, Any]) -> ChangeOp:
    """Keep only the fields the drawn op takes."""
    model = {
        "set_prompt": ["node_id", "prompt"],
        "set_config": ["node_id", "values"],
        "replace_node": ["node_id", "new_type"],
        "add_edge": ["source", "target"],
        "remove_edge": ["source", "target"],
        "reroute_edge": ["source", "target", "new_target"],
        "parallelize": ["node_ids"],
        "add_cache": ["node_id", "ttl_s"],
        "add_fallback": ["node_id", "fallback_type"],
    }[raw["op"]]
    return CHANGE_ADAPTER.validate_python({"op": raw["op"], **{k: raw[k] for k in model}})


@given(st.lists(CHANGE, min_size=1, max_size=3))
def test_change_operations_apply_wholly_or_raise_invalid_change_error(
    raws: list[dict[str, Any]],
) -> None:
    """Random change lists give a valid new spec or InvalidChangeError; the base spec is never
    touched (nothing half-applied)."""
    before = BASE_SPEC.canonical_json()
    try:
        changes = [_op(raw) for raw in raws]
    except ValidationError:
        return  # refused at the boundary, typed
    try:
        changed = apply_changes(BASE_SPEC, changes)
    except InvalidChangeError as exc:
        assert str(exc)
    else:
        assert parse_graph_spec(changed.model_dump()) == changed
    assert BASE_SPEC.canonical_json() == before


@pytest.mark.parametrize("model", [RollbackRequest, ReviewDecision, ReviewRequest])
@given(payload=JSON)
def test_message_payloads_validate_or_fail_typed(model: type[BaseModel], payload: Any) -> None:
    """Signal and update payloads either validate or raise ValidationError (which the workflow
    turns into a refusal listed in status); nothing else."""
    try:
        model.model_validate({} if payload is None else payload)
    except ValidationError as exc:
        assert exc.errors()
