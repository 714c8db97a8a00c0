"""The public scenario format: one YAML or JSON file describing a graph to try the loop on.

A scenario bundles the graph spec, the simulated behaviour of each node, the input
distribution, the owner's objective, the live traffic rate, RSI setting overrides and,
optionally, the best change known by construction (the *oracle*)::

    name: flaky-classifier
    graph: {id: triage, entry: classify, nodes: [...], edges: [...], inputs: [ticket]}
    objective: {weights: {error_rate: 1.0, latency: 0.25}, constraints: []}
    models: {big: {cost_per_call: 0.01}, small: {cost_per_call: 0.001}}
    behaviour:
      classify:
        latency: {median_ms: 20, sigma: 0.3}
        transient_error_rate: 0.3
        quality: {default: 0.9, by_model: {small: 0.85}}
    inputs: {fields: {ticket: {pool: 200, draw: zipf, s: 1.1}}}
    traffic: {rps: 40}
    settings: {ab_max_window_s: 40}
    oracle: [{op: set_config, node_id: classify, values: {retries: 2}}]

``load_scenario`` validates the file; errors name the file and the field
(``behaviour.classify.latency.median_ms: ...``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from spark.errors import InvalidGraphSpecError, InvalidInputError
from spark.graphs.spec import GraphSpec, parse_graph_spec
from spark.rsi.hypotheses import ChangeOp
from spark.rsi.objectives import Objective


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Latency(_Strict):
    """Service time of one call: ``lognormal`` around ``median_ms`` (log-spread ``sigma``) or
    ``fixed`` at ``median_ms``. ``varies: call`` draws it afresh for every call (a retry may be
    fast); ``varies: input`` fixes it by the node's inputs (a slow input is slow on every
    attempt, like a large document)."""

    distribution: Literal["lognormal", "fixed"] = "lognormal"
    median_ms: float = Field(ge=0, le=60_000)
    sigma: float = Field(default=0.25, ge=0, le=3)
    varies: Literal["call", "input"] = "call"


class Cost(_Strict):
    """What one call costs when the node's model is not in the scenario's ``models``:
    ``per_call`` plus ``per_1k_tokens`` x ``tokens`` / 1000."""

    per_call: float = Field(default=0.0, ge=0)
    per_1k_tokens: float = Field(default=0.0, ge=0)
    tokens: int = Field(default=0, ge=0)


class PromptRule(_Strict):
    """A prompt containing ``contains`` moves the node's quality by ``delta`` (clipped to [0, 1])."""

    contains: str = Field(min_length=1)
    delta: float = Field(ge=-1, le=1)


class Quality(_Strict):
    """Mean quality (0-1) of the node's output: ``by_model`` for the configured model, else
    ``default``; the first matching ``by_prompt`` rule adjusts it; each call draws from a Beta
    distribution with that mean when ``spread`` > 0 (its standard deviation, roughly)."""

    default: float = Field(default=1.0, ge=0, le=1)
    by_model: dict[str, float] = Field(default_factory=dict)
    by_prompt: list[PromptRule] = Field(default_factory=list)
    spread: float = Field(default=0.0, ge=0, le=0.5)

    @model_validator(mode="after")
    def _model_qualities_in_range(self) -> Quality:
        bad = {m: q for m, q in self.by_model.items() if not 0 <= q <= 1}
        if bad:
            raise ValueError(f"by_model qualities must lie in [0, 1], got {bad}")
        return self


class Staleness(_Strict):
    """The truth behind the node's output changes every ``truth_changes_every_s`` seconds; an
    output computed before the latest change (a cached one) scores ``stale_quality``."""

    truth_changes_every_s: float = Field(gt=0)
    stale_quality: float = Field(default=0.0, ge=0, le=1)


class RateLimit(_Strict):
    """From cycle ``from_cycle`` of the loop on, each call also fails with ``error_rate``
    (a transient ``RateLimitError``: a retry after a backoff may pass)."""

    from_cycle: int = Field(ge=1)
    error_rate: float = Field(gt=0, le=1)


class Behaviour(_Strict):
    """How one simulated node behaves; every field has a harmless default."""

    latency: Latency = Field(default_factory=lambda: Latency(median_ms=5.0))
    transient_error_rate: float = Field(default=0.0, ge=0, le=1)
    persistent_error_rate: float = Field(default=0.0, ge=0, le=1)
    cost: Cost = Field(default_factory=Cost)
    quality: Quality | None = None
    stale: Staleness | None = None
    rate_limit: RateLimit | None = None


class Model(_Strict):
    """A model a node can be configured with: its price and how it changes latency."""

    cost_per_call: float = Field(default=0.0, ge=0)
    cost_per_1k_tokens: float = Field(default=0.0, ge=0)
    latency_factor: float = Field(default=1.0, gt=0, le=100)


class FieldDraw(_Strict):
    """One input field: values ``<field>-0`` ... ``<field>-<pool-1>`` (or the given ``values``),
    drawn ``uniform`` or ``zipf`` (rank r with weight 1 / r**s) so some requests repeat."""

    pool: int | None = Field(default=None, ge=1, le=1_000_000)
    values: list[Any] | None = None
    draw: Literal["uniform", "zipf"] = "uniform"
    s: float = Field(default=1.1, gt=0, le=5)

    @model_validator(mode="after")
    def _pool_or_values(self) -> FieldDraw:
        if (self.pool is None) == (self.values is None):
            raise ValueError("give exactly one of pool or values")
        if self.values is not None and not self.values:
            raise ValueError("values must not be empty")
        return self


class Inputs(_Strict):
    """The request distribution: each declared graph input drawn independently; ``routing_field``
    (default: the first field) is the routing key."""

    fields: dict[str, FieldDraw] = Field(min_length=1)
    routing_field: str | None = None


class Traffic(_Strict):
    """Live traffic while the loop runs, warm-up before it starts, and the fresh requests each
    version is measured on afterwards."""

    rps: float = Field(default=30.0, gt=0, le=500)
    warmup_requests: int = Field(default=300, ge=0, le=100_000)
    fresh_requests: int = Field(default=300, ge=20, le=100_000)
    concurrency: int = Field(default=16, ge=1, le=256)


class Scenario(_Strict):
    """A whole scenario file."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    graph: GraphSpec
    objective: Objective = Field(default_factory=Objective)
    models: dict[str, Model] = Field(default_factory=dict)
    behaviour: dict[str, Behaviour] = Field(default_factory=dict)
    types: dict[str, Behaviour] = Field(
        default_factory=dict,
        description="behaviour of node types that only run as a fallback or replacement",
    )
    inputs: Inputs
    traffic: Traffic = Field(default_factory=Traffic)
    settings: dict[str, Any] = Field(default_factory=dict)
    oracle: list[ChangeOp] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        _check_consistency(self)
        return self

    def spec(self) -> GraphSpec:
        """The graph spec with the objective in ``metadata["objective"]`` and the RSI settings
        overrides in ``metadata["rsi"]``."""
        metadata = dict(self.graph.metadata)
        metadata["objective"] = self.objective.model_dump(mode="json")
        metadata["rsi"] = {**dict(metadata.get("rsi") or {}), **self.settings}
        return self.graph.model_copy(update={"metadata": metadata})

    def routing_field(self) -> str:
        """The input field used as the routing key."""
        return self.inputs.routing_field or next(iter(self.inputs.fields))


def _check_consistency(scenario: Scenario) -> None:
    """Cross-field checks: behaviours name real nodes, inputs cover the graph's inputs."""
    node_ids = {node.id for node in scenario.graph.nodes}
    unknown = sorted(set(scenario.behaviour) - node_ids)
    if unknown:
        raise ValueError(f"behaviour: unknown node id(s) {unknown}; nodes are {sorted(node_ids)}")
    missing = sorted(set(scenario.graph.inputs) - set(scenario.inputs.fields))
    if missing:
        raise ValueError(f"inputs.fields: graph input(s) {missing} have no distribution")
    routing = scenario.inputs.routing_field
    if routing is not None and routing not in scenario.inputs.fields:
        raise ValueError(f"inputs.routing_field: {routing!r} is not one of inputs.fields")


def parse_scenario(data: Any, source: str = "<scenario>") -> Scenario:
    """Validate decoded scenario data; ``InvalidInputError`` names ``source`` and each field."""
    if not isinstance(data, dict):
        raise InvalidInputError(f"{source}: a scenario is a mapping, got {type(data).__name__}")
    if isinstance(data.get("graph"), dict):
        try:
            parse_graph_spec(data["graph"])
        except InvalidGraphSpecError as exc:
            raise InvalidInputError(f"{source}: graph: {exc}") from exc
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError(f"{source}: {describe_errors(exc)}") from exc


def describe_errors(exc: ValidationError) -> str:
    """``field.path: message`` for each error, joined by ``; ``."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"{where}: {err['msg']}")
    return "invalid scenario: " + "; ".join(parts)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a ``.yaml``/``.yml`` or ``.json`` scenario file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot read scenario file {str(file)!r}: {exc}") from exc
    return parse_scenario(_decode(text, file), source=str(file))


def _decode(text: str, file: Path) -> Any:
    try:
        if file.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidInputError(f"{file}: not valid {file.suffix or 'YAML'}: {exc}") from exc
