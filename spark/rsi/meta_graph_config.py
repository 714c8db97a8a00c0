"""``RSIMetaGraphConfig``: the original description's configuration, mapped onto ``RSISettings``.

Every field of the original has a counterpart; each becomes an override of the graph's
``RSIWorkflow`` settings (``spark.rsi.contracts.RSISettings``):

========================  ==========================================================
original field            here
========================  ==========================================================
graph_id                  the registered graph the loop improves (workflow ``rsi-<id>``)
graph_version             a label of the served version (e.g. "1.0.0"), recorded in the
                          workflow's memo (``graph_version_label``); a version id
                          (``v-`` + 16 hex digits): the loop refuses to start unless that
                          version is the one served; None (default): no label
analysis_window_hours     ``analysis_window_s`` (hours x 3600)
max_hypotheses            ``max_hypotheses`` (1 to 20: a cycle with none tests nothing)
hypothesis_types          ``change_kinds`` (see ``spark.rsi.hypothesis_types``); None
                          (default, where the original had prompt_optimization only): any
enable_pattern_learning   ``use_patterns``
deployment_strategy       ``strategy`` (direct, canary, blue_green, gradual)
auto_deploy               ``auto_deploy``: False makes every validated change wait for a
                          reviewer (``approve_review`` signal, ``spark review``)
enable_mock_mode          refused when True: there is no mock mode on Temporal; tests run the
                          real workflow on the time-skipping server
========================  ==========================================================

``settings`` takes any other ``RSISettings`` override (``ab_mode``, ``min_traces``...).
A field that does not validate raises ``ConfigurationError`` naming it.
"""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)

from spark.errors import ConfigurationError
from spark.rsi.contracts import (
    MAX_DURATION_S,
    DeployStrategy,
    check_setting_overrides,
    describe_errors,
)
from spark.rsi.hypothesis_types import HypothesisType, change_kinds_for

HOUR_S = 3_600.0

# The RSISettings fields that a config field of their own sets (not through ``settings``).
MAPPED_SETTINGS = (
    "analysis_window_s",
    "max_hypotheses",
    "change_kinds",
    "use_patterns",
    "strategy",
    "auto_deploy",
)


class RSIMetaGraphConfig(BaseModel):
    """What ``RSIMetaGraph`` improves and how (the original description's fields)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    graph_id: str = Field(min_length=1, max_length=256)
    graph_version: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="a label of the served version; a version id must be the served one",
    )
    analysis_window_hours: float = Field(default=24.0, gt=0, le=MAX_DURATION_S / HOUR_S)
    max_hypotheses: int = Field(default=3, ge=1, le=20)
    hypothesis_types: list[HypothesisType] | None = Field(
        default=None, min_length=1, description="None: every type a change operation implements"
    )
    enable_pattern_learning: bool = True
    deployment_strategy: DeployStrategy = "direct"
    auto_deploy: bool = True
    enable_mock_mode: bool = Field(
        default=False, description="refused when True: the loop always runs on Temporal"
    )
    settings: dict[str, Any] = Field(
        default_factory=dict, description="other RSISettings overrides (ab_mode, min_traces...)"
    )

    @model_validator(mode="wrap")
    @classmethod
    def _refuse_as_misuse(
        cls, data: Any, handler: ModelWrapValidatorHandler[RSIMetaGraphConfig]
    ) -> RSIMetaGraphConfig:
        try:
            return handler(data)
        except ValidationError as exc:
            problems = describe_errors(exc.errors(include_url=False))
            raise ConfigurationError(f"invalid RSIMetaGraphConfig: {problems}") from None

    @field_validator("hypothesis_types")
    @classmethod
    def _implemented(cls, types: list[HypothesisType] | None) -> list[HypothesisType] | None:
        if types is not None:
            change_kinds_for(types)  # ValueError naming the types nothing implements
        return types

    @field_validator("enable_mock_mode")
    @classmethod
    def _no_mock_mode(cls, enabled: bool) -> bool:
        if enabled:
            raise ValueError(
                "there is no mock mode on Temporal: the loop runs the real workflow (test it on "
                "the time-skipping server, with the rules generator, which needs no model key)"
            )
        return enabled

    @field_validator("settings")
    @classmethod
    def _known_settings(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        clashing = sorted(set(overrides) & set(MAPPED_SETTINGS))
        if clashing:
            raise ValueError(f"set {', '.join(clashing)} through its own config field")
        check_setting_overrides(overrides)
        return overrides

    def setting_overrides(self) -> dict[str, Any]:
        """The ``RSISettings`` overrides this configuration stands for (``RSIWorkflowInput``'s
        ``settings``)."""
        overrides = {
            **self.settings,
            "analysis_window_s": self.analysis_window_hours * HOUR_S,
            "max_hypotheses": self.max_hypotheses,
            "use_patterns": self.enable_pattern_learning,
            "strategy": self.deployment_strategy,
            "auto_deploy": self.auto_deploy,
        }
        if self.hypothesis_types is not None:  # None leaves the graph's own restriction, if any
            overrides["change_kinds"] = change_kinds_for(self.hypothesis_types)
        return overrides
