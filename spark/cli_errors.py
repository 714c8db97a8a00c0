"""The ``spark`` command's one error path: every failure a command can meet (our own misuse
errors, Temporal's RPC, workflow and update errors, an unreachable server or database) becomes
one plain sentence on stderr and an exit code, never a traceback."""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import (
    WorkflowFailureError,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from spark.errors import SparkMisuseError, SparkRuntimeError
from spark.temporal import rsi_workflow_id

EXIT_MISUSE = 2
"""The request itself is wrong (unknown graph, bad settings, refused review): fix the command."""
EXIT_FAILED = 1
"""The request was right but could not be carried out (server unreachable, loop ended)."""

HANDLED: tuple[type[BaseException], ...] = (
    SparkMisuseError,
    SparkRuntimeError,
    ValidationError,
    WorkflowAlreadyStartedError,
    WorkflowUpdateFailedError,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowFailureError,
    RPCError,
    SQLAlchemyError,
    ConnectionError,
    RuntimeError,
)
"""The exception types ``explain`` turns into a message."""


def explain(exc: BaseException, command: str, graph: str | None) -> tuple[str, int]:
    """A plain sentence for ``exc`` raised by ``spark <command> <graph>``, and the exit code."""
    workflow = rsi_workflow_id(graph) if graph else "the RSI workflow"
    if isinstance(exc, SparkMisuseError):
        return str(exc), EXIT_MISUSE
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors()
        )
        return f"invalid input: {problems}", EXIT_MISUSE
    if isinstance(exc, WorkflowAlreadyStartedError):
        return (
            f"graph {graph!r} already has a running RSI loop ({workflow}); see "
            f"`spark status {graph}`, or stop it before starting another",
            EXIT_MISUSE,
        )
    if isinstance(exc, WorkflowUpdateFailedError):
        return f"{command} refused: {_cause(exc)}", EXIT_MISUSE
    if isinstance(exc, WorkflowQueryRejectedError | WorkflowQueryFailedError):
        return f"{workflow} did not answer the {command} query: {exc}", EXIT_FAILED
    if isinstance(exc, WorkflowFailureError):
        return f"{workflow} failed: {_cause(exc)}", EXIT_FAILED
    if isinstance(exc, RPCError):
        return _explain_rpc(exc, command, graph, workflow)
    if isinstance(exc, SQLAlchemyError):
        return f"the database cannot be reached ({type(exc).__name__}): {exc}", EXIT_FAILED
    if isinstance(exc, RuntimeError) and "connect" in str(exc).lower():
        return f"cannot reach the Temporal server: {exc}", EXIT_FAILED
    return f"{type(exc).__name__}: {exc}", EXIT_FAILED


def _explain_rpc(exc: RPCError, command: str, graph: str | None, workflow: str) -> tuple[str, int]:
    """Temporal's RPC refusals, in the terms of the graph's loop."""
    if exc.status == RPCStatusCode.NOT_FOUND:
        if "completed" in exc.message.lower() or "closed" in exc.message.lower():
            return (
                f"the RSI loop of graph {graph!r} ({workflow}) has already ended, so there is "
                f"nothing to {_VERBS.get(command, command)}; `spark status {graph}` shows how "
                "it ended, "
                f"`spark start {graph}` starts a new one",
                EXIT_MISUSE,
            )
        return (
            f"no RSI loop has run for graph {graph!r} (no workflow {workflow}); "
            f"start one with `spark start {graph}`",
            EXIT_MISUSE,
        )
    if exc.status == RPCStatusCode.DEADLINE_EXCEEDED:
        return (
            f"{workflow} did not answer the {command} in time: is a worker running on its task "
            "queue (`make dev` runs one)?",
            EXIT_FAILED,
        )
    if exc.status == RPCStatusCode.UNAVAILABLE:
        return f"cannot reach the Temporal server: {exc.message}", EXIT_FAILED
    return f"Temporal refused {command} ({exc.status.name}): {exc.message}", EXIT_FAILED


_VERBS = {"rollback": "roll back"}


def _cause(exc: WorkflowUpdateFailedError | WorkflowFailureError) -> str:
    """The innermost message of a failure chain (the workflow's own words)."""
    cause: BaseException = exc
    while cause.__cause__ is not None:
        cause = cause.__cause__
    return str(cause) or type(cause).__name__
