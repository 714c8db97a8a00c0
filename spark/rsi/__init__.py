"""RSI logic as plain functions and models: analysis, hypotheses, validation, testing, learning.

Nothing here imports Temporal but the description's API (``RSIMetaGraph``), imported lazily;
activities call into this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spark.experience.database import ExperienceDatabase
    from spark.rsi.meta_graph import RSIMetaGraph
    from spark.rsi.meta_graph_config import RSIMetaGraphConfig

# The description's API (``from spark.rsi import RSIMetaGraph, ...``), imported on first use:
# ``RSIMetaGraph`` drives Temporal through ``SparkClient``, which the pure modules of this
# package (imported by workflows and activities) must not pull in.
_LAZY = {
    "RSIMetaGraph": "spark.rsi.meta_graph",
    "RSIMetaGraphConfig": "spark.rsi.meta_graph_config",
    "ExperienceDatabase": "spark.experience.database",
}
__all__ = ["ExperienceDatabase", "RSIMetaGraph", "RSIMetaGraphConfig"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
