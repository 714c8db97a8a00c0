"""Requests drawn from a scenario's input distribution (with the repeats it declares)."""

from __future__ import annotations

import itertools
import random
from typing import Any

from spark.scenarios.model import FieldDraw, Inputs


class InputSampler:
    """Draws requests: each field independently, uniform or Zipf over its pool of values."""

    def __init__(self, inputs: Inputs, rng: random.Random) -> None:
        self.rng = rng
        self._fields = {name: _Field(name, draw) for name, draw in inputs.fields.items()}

    def draw(self) -> dict[str, Any]:
        """One request."""
        return {name: field.draw(self.rng) for name, field in self._fields.items()}

    def draw_many(self, count: int) -> list[dict[str, Any]]:
        """``count`` requests."""
        return [self.draw() for _ in range(count)]


class _Field:
    """One field's values and their cumulative weights."""

    def __init__(self, name: str, draw: FieldDraw) -> None:
        self.values: list[Any] = (
            list(draw.values)
            if draw.values is not None
            else [f"{name}-{i}" for i in range(draw.pool or 1)]
        )
        weights = [
            1.0 / (rank**draw.s) if draw.draw == "zipf" else 1.0
            for rank in range(1, len(self.values) + 1)
        ]
        self.cumulative = list(itertools.accumulate(weights))

    def draw(self, rng: random.Random) -> Any:
        return rng.choices(self.values, cum_weights=self.cumulative, k=1)[0]
