"""The original description's hypothesis types, as sets of this project's change operations.

The description names a hypothesis by its ``HypothesisType``; here a hypothesis is a list of typed
change operations (``spark.rsi.hypotheses``). A type covers the operations below, and a hypothesis
belongs to a set of types when every one of its operations is covered:

=====================  =====================================================
hypothesis type        change operations
=====================  =====================================================
prompt_optimization    ``set_prompt``
parameter_tuning       ``set_config`` (retries, timeout, model...), ``add_fallback``
node_replacement       ``replace_node``
edge_modification      ``add_edge``, ``remove_edge``, ``reroute_edge``
parallelization        ``parallelize``
caching                ``add_cache``
tool_addition, custom  none: no generator proposes them and no operation applies them
=====================  =====================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

HypothesisType = Literal[
    "prompt_optimization",
    "parameter_tuning",
    "node_replacement",
    "edge_modification",
    "parallelization",
    "caching",
    "tool_addition",
    "custom",
]

CHANGE_KINDS_BY_TYPE: dict[HypothesisType, tuple[str, ...]] = {
    "prompt_optimization": ("set_prompt",),
    "parameter_tuning": ("set_config", "add_fallback"),
    "node_replacement": ("replace_node",),
    "edge_modification": ("add_edge", "remove_edge", "reroute_edge"),
    "parallelization": ("parallelize",),
    "caching": ("add_cache",),
    "tool_addition": (),
    "custom": (),
}

HYPOTHESIS_TYPE_OF_CHANGE: dict[str, HypothesisType] = {
    kind: hypothesis_type
    for hypothesis_type, kinds in CHANGE_KINDS_BY_TYPE.items()
    for kind in kinds
}
"""The hypothesis type each change operation belongs to (the inverse of the table above)."""


def change_kinds_for(types: Iterable[HypothesisType]) -> list[str]:
    """The change operations the hypothesis ``types`` cover, in a stable order.

    Raises ``ValueError`` naming each type that no change operation implements."""
    types = list(types)
    unsupported = [t for t in types if not CHANGE_KINDS_BY_TYPE[t]]
    if unsupported:
        raise ValueError(
            f"no change operation implements {', '.join(map(repr, unsupported))}; supported: "
            + ", ".join(repr(t) for t, kinds in CHANGE_KINDS_BY_TYPE.items() if kinds)
        )
    return sorted({kind for t in types for kind in CHANGE_KINDS_BY_TYPE[t]})


def hypothesis_types_of(change_kinds: Iterable[str]) -> list[HypothesisType]:
    """The hypothesis types a hypothesis made of ``change_kinds`` belongs to."""
    return [t for t, kinds in CHANGE_KINDS_BY_TYPE.items() if set(change_kinds) & set(kinds)]
