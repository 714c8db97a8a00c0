"""Strategies for hostile input: any JSON value, and near-misses of our real models."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from spark.rsi.contracts import RSISettings, RSIWorkflowInput

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, -1, 1e15, 1e16, 1e300, 2**63, "", "x", "1e15"])
    | st.text(max_size=12)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def near_miss(fields: list[str], values: st.SearchStrategy[Any] = JSON) -> st.SearchStrategy[Any]:
    """Dicts over a model's real field names (and a stray one), holding any JSON value."""
    keys = st.sampled_from([*fields, "graph", "stage_hold", "unknown_field"])
    return st.dictionaries(keys, values, max_size=6)


SETTING_FIELDS = sorted(RSISettings.model_fields)
INPUT_FIELDS = sorted(RSIWorkflowInput.model_fields)
SETTINGS_OVERRIDES = near_miss(SETTING_FIELDS)
WORKFLOW_INPUTS = (
    JSON
    | near_miss(INPUT_FIELDS, JSON | SETTINGS_OVERRIDES)
    | st.fixed_dictionaries(
        {"graph_id": st.text(max_size=4) | JSON, "settings": SETTINGS_OVERRIDES}
    )
)
