"""The Spark RSI exception hierarchy.

::

    SparkError                      base of everything raised on purpose
    ├── SparkMisuseError            the caller asked for something impossible; never retry
    │   ├── InvalidGraphSpecError   a graph spec fails validation (names the field and node)
    │   ├── UnknownGraphError       no graph registered under that id
    │   ├── UnknownVersionError     no version stored under that id
    │   ├── UnknownNodeTypeError    a node type is missing from the node registry
    │   ├── InvalidChangeError      a change operation cannot apply to the spec
    │   ├── InvalidInputError       statistical or request input is unusable (NaN, empty arm...)
    │   ├── InvalidWorkflowInputError  an RSIWorkflow input does not validate (names each field)
    │   ├── LoopAlreadyRunningError  another workflow already runs the graph's RSI loop
    │   ├── ConfigurationError      a setting is invalid or missing (bad SPARK_GENERATOR, no key)
    │   │   └── MissingDependencyError  an optional SDK is not installed (names the extra)
    │   └── ModelRequestError       an LLM provider refused the request as written (400, 401, 404)
    ├── SparkRuntimeError           something failed while running; may be transient
    │   ├── NodeExecutionError      a node raised after its retries
    │   ├── NodeTimeoutError        a node exceeded its timeout
    │   ├── TransientNodeError      a node failure worth retrying (raised by node implementations)
    │   ├── GeneratorUnavailableError  an LLM generator got no usable answer and has no fallback
    │   ├── ModelUnavailableError   an LLM call failed in a way a retry may cure (5xx, timeout)
    │   │   └── ModelRateLimitError the provider answered 429
    │   ├── RoutingUnavailableError  routing cannot be read and no earlier copy may stand in
    │   └── TelemetryBusyError  a purge could not lock the telemetry tables in time; retry later
    └── ReplayRefusedError          offline replay would repeat a real side effect

Activities turn ``SparkMisuseError`` into a non-retryable Temporal ``ApplicationError`` whose
``type`` is the class name, so a workflow fails at once with an actionable message.
Business outcomes (rejected, inconclusive, rolled back) are return values, never exceptions.
"""

from __future__ import annotations


class SparkError(Exception):
    """Base class of every error Spark raises on purpose."""


class SparkMisuseError(SparkError):
    """The request can never succeed as written; retrying will not help."""


class InvalidGraphSpecError(SparkMisuseError):
    """A graph spec failed validation."""


class UnknownGraphError(SparkMisuseError):
    """No graph is registered under the given id."""


class UnknownVersionError(SparkMisuseError):
    """No graph version is stored under the given id."""


class UnknownNodeTypeError(SparkMisuseError):
    """A node references a type that the node registry does not hold."""


class InvalidChangeError(SparkMisuseError):
    """A change operation does not apply to the graph spec it targets."""


class InvalidInputError(SparkMisuseError, ValueError):
    """Input data (samples, requests, parameters) is unusable."""


class LoopAlreadyRunningError(SparkMisuseError):
    """Another workflow (under any id) already runs the RSI loop of the graph."""


class InvalidWorkflowInputError(SparkMisuseError):
    """An RSIWorkflow input does not validate. Deliberately not a ``ValueError``: pydantic lets it
    out of a validator unwrapped, so the workflow can declare it a failure type and fail a start
    with bad input at once instead of retrying its first task forever."""


class ConfigurationError(SparkMisuseError):
    """A setting is invalid or a required one (such as an API key) is missing."""


class MissingDependencyError(ConfigurationError):
    """An optional dependency is not installed; the message names the extra that brings it."""


class ModelRequestError(SparkMisuseError):
    """An LLM provider refused the request as written (bad request, key, model or permission)."""

    def __init__(self, message: str, *, provider: str, model: str, status_code: int) -> None:
        super().__init__(message)
        self.provider, self.model, self.status_code = provider, model, status_code


class SparkRuntimeError(SparkError):
    """A failure while executing a graph; may be transient."""


class NodeExecutionError(SparkRuntimeError):
    """A node failed after exhausting its retries."""

    def __init__(self, node_id: str, error_type: str, message: str) -> None:
        super().__init__(f"node {node_id!r} failed with {error_type}: {message}")
        self.node_id = node_id
        self.error_type = error_type


class NodeTimeoutError(SparkRuntimeError):
    """A node exceeded its configured timeout."""


class TransientNodeError(SparkRuntimeError):
    """Raised by node implementations for failures that a retry may cure."""


class GeneratorUnavailableError(SparkRuntimeError):
    """A model-backed hypothesis generator got no usable answer and has no fallback."""


class ModelUnavailableError(SparkRuntimeError):
    """An LLM call failed in a way a retry may cure: 5xx, timeout, connection, overload."""

    def __init__(
        self, message: str, *, provider: str, model: str, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.provider, self.model, self.status_code = provider, model, status_code


class ModelRateLimitError(ModelUnavailableError):
    """The LLM provider answered 429 (rate or quota limit)."""


class RoutingUnavailableError(SparkRuntimeError):
    """The routing store cannot be reached and this client holds no usable earlier copy."""


class TelemetryBusyError(SparkRuntimeError):
    """A telemetry maintenance step (a retention purge) could not lock its tables in time
    because other sessions hold them (a long query, an idle transaction); nothing was changed,
    run it again later."""


class ReplayRefusedError(SparkError):
    """Offline replay cannot run without repeating a real side effect."""
