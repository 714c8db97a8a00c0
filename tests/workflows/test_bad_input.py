"""Bad input never wedges a loop: it fails the workflow at once, naming the field, before any
activity runs (issue 8, items 1 and 2)."""

from __future__ import annotations

import uuid

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowFailureError
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.planning import effective_settings
from spark.errors import InvalidInputError, InvalidWorkflowInputError
from spark.rsi.contracts import (
    MAX_DURATION_S,
    MAX_REVIEW_TIMEOUT_S,
    RSISettings,
    RSIWorkflowInput,
)
from spark.temporal import RSI_WORKFLOW
from tests.workflows.fakes import FakeRSI
from workflows.rsi import RSIWorkflow


def cli_input(text: str) -> RawValue:
    """The payload ``temporal workflow start --input TEXT`` sends: the JSON text as is."""
    return RawValue(Payload(metadata={"encoding": b"json/plain"}, data=text.encode()))


async def start_raw(env: WorkflowEnvironment, fake: FakeRSI, text: str) -> ApplicationError:
    """Start RSIWorkflow with a raw JSON input and return the failure it ends with."""
    queue = uuid.uuid4().hex
    async with Worker(
        env.client, task_queue=queue, workflows=[RSIWorkflow], activities=fake.activities()
    ):
        handle = await env.client.start_workflow(
            RSI_WORKFLOW, cli_input(text), id=f"rsi-bad-{uuid.uuid4().hex[:8]}", task_queue=queue
        )
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"graph_id": 5}', "graph_id"),
        ("{}", "graph_id"),
        ('{"graph": "x"}', "graph"),
        ('"a string"', "input"),
        ('{"graph_id": "g", "max_cycles": -1}', "max_cycles"),
        (
            '{"graph_id": "g", "settings": {"ab_mode": "replay", "stage_hold_s": 1e15}}',
            "stage_hold_s",
        ),
        ('{"graph_id": "g", "settings": {"monitor_window_s": 1e16}}', "monitor_window_s"),
        (
            '{"graph_id": "g", "settings": {"ab_min_window_s": 1e15, "ab_max_window_s": 1e15}}',
            "ab_max_window_s",
        ),
        ('{"graph_id": "g", "settings": {"no_such_setting": 1}}', "no_such_setting"),
    ],
)
async def test_undecodable_start_input_fails_the_workflow_at_once_naming_the_field(
    time_skipping_env: WorkflowEnvironment, text: str, field: str
) -> None:
    """What `temporal workflow start --input` sends, when it does not validate, fails the
    workflow (not its task, which would retry forever) with InvalidWorkflowInputError naming the
    field; no activity ran, so nothing was routed."""
    fake = FakeRSI()
    cause = await start_raw(time_skipping_env, fake, text)
    assert cause.type == "InvalidWorkflowInputError"
    assert field in cause.message
    assert fake.calls == []


async def test_valid_raw_input_still_runs_a_cycle(time_skipping_env: WorkflowEnvironment) -> None:
    """The same raw path with good input runs the cycle to its end."""
    fake, queue = FakeRSI(), uuid.uuid4().hex
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[RSIWorkflow],
        activities=fake.activities(),
    ):
        handle = await time_skipping_env.client.start_workflow(
            RSI_WORKFLOW,
            cli_input('{"graph_id": "g", "settings": {"ab_mode": "replay"}}'),
            id=f"rsi-good-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
        )
        result = await handle.result()
    assert result["history"][-1]["outcome"] == "shipped"


@pytest.mark.parametrize(
    "overrides",
    [
        {"stage_hold_s": 1e15},
        {"monitor_window_s": 1e16},
        {"ab_min_window_s": 1e15, "ab_max_window_s": 1e15},
        {"interval_s": MAX_DURATION_S * 2},
        {"analysis_window_s": float("inf")},
        {"review_timeout_s": MAX_REVIEW_TIMEOUT_S + 1},
        {"routing_propagation_s": 1e9},
        {"min_traces": 10**12},
        {"min_health_traces": 10**12},
        {"rollout_steps": [i / 100 for i in range(1, 60)]},
        {"stage_hold_s": float("nan")},
    ],
)
def test_every_duration_and_count_has_an_upper_bound(overrides: dict[str, object]) -> None:
    """Settings a timer or a loop would choke on are refused, naming the field."""
    with pytest.raises(ValueError, match=next(iter(overrides))):
        RSISettings.model_validate(overrides)


def test_longest_allowed_waits_fit_a_timer() -> None:
    """The bounds themselves are waits Python and Temporal can represent."""
    from datetime import timedelta

    assert timedelta(seconds=MAX_REVIEW_TIMEOUT_S) > timedelta(seconds=MAX_DURATION_S)
    settings = RSISettings(
        stage_hold_s=MAX_DURATION_S,
        monitor_window_s=MAX_DURATION_S,
        interval_s=MAX_DURATION_S,
        review_timeout_s=MAX_REVIEW_TIMEOUT_S,
        ab_min_window_s=MAX_DURATION_S,
        ab_max_window_s=MAX_DURATION_S,
    )
    assert settings.stage_hold_s == MAX_DURATION_S


def test_graph_metadata_beyond_bounds_is_refused_by_the_plan() -> None:
    """A graph whose own ``rsi`` metadata holds an unbounded value is refused by the plan activity
    (non-retryable InvalidInputError), before anything is routed."""
    with pytest.raises(InvalidInputError, match="stage_hold_s"):
        effective_settings({"stage_hold_s": 1e15}, {})


def test_client_side_input_errors_are_typed_misuse() -> None:
    """Building a bad input in Python raises the same typed error, naming the field."""
    with pytest.raises(InvalidWorkflowInputError, match="max_cycles"):
        RSIWorkflowInput(graph_id="g", max_cycles=-1)
