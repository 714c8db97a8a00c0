"""What an LLM call costs: list prices per model, in US dollars per million tokens.

::

    default_prices().set("my-finetune", input_per_mtok=0.30, output_per_mtok=1.20)
    default_prices().cost("gpt-4o-mini", TokenUsage(prompt_tokens=900, completion_tokens=120))

A model the table does not know costs ``None`` (and one warning per model is logged), never a
guessed number. A dated snapshot (``gpt-4o-2024-08-06``, ``claude-3-5-haiku-20241022``) or a
``-latest`` alias is priced as its undated name unless the table lists it itself.

The built-in figures are the providers' published standard-tier list prices as of 2025; prompt
caching and batch discounts are not applied, so a cost is an upper bound when they are used.
Prices change: override them with ``PriceTable.set`` (or pass your own table to a model).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping

import structlog
from pydantic import BaseModel, ConfigDict, Field

log = structlog.get_logger(__name__)

TOKENS_PER_UNIT = 1_000_000
_SNAPSHOT_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


class TokenUsage(BaseModel):
    """Tokens of one call (or a sum of calls), as the provider counted them."""

    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


class ModelPrice(BaseModel):
    """The price of one model: US dollars per million input and output tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_per_mtok: float = Field(ge=0.0, allow_inf_nan=False)
    output_per_mtok: float = Field(ge=0.0, allow_inf_nan=False)

    def cost(self, usage: TokenUsage) -> float:
        """Dollars for ``usage`` at this price."""
        spent = usage.prompt_tokens * self.input_per_mtok
        spent += usage.completion_tokens * self.output_per_mtok
        return spent / TOKENS_PER_UNIT


def _price(input_per_mtok: float, output_per_mtok: float) -> ModelPrice:
    return ModelPrice(input_per_mtok=input_per_mtok, output_per_mtok=output_per_mtok)


LIST_PRICES: Mapping[str, ModelPrice] = {
    # OpenAI
    "gpt-4o": _price(2.50, 10.00),
    "gpt-4o-mini": _price(0.15, 0.60),
    "gpt-4.1": _price(2.00, 8.00),
    "gpt-4.1-mini": _price(0.40, 1.60),
    "gpt-4.1-nano": _price(0.10, 0.40),
    "gpt-4-turbo": _price(10.00, 30.00),
    "gpt-3.5-turbo": _price(0.50, 1.50),
    "o1": _price(15.00, 60.00),
    "o3-mini": _price(1.10, 4.40),
    "o4-mini": _price(1.10, 4.40),
    # Anthropic
    "claude-3-haiku": _price(0.25, 1.25),
    "claude-3-opus": _price(15.00, 75.00),
    "claude-3-5-haiku": _price(0.80, 4.00),
    "claude-3-5-sonnet": _price(3.00, 15.00),
    "claude-3-7-sonnet": _price(3.00, 15.00),
    "claude-sonnet-4": _price(3.00, 15.00),
    "claude-opus-4": _price(15.00, 75.00),
    "claude-opus-4-1": _price(15.00, 75.00),
}
"""Published standard-tier list prices (USD per million tokens) as of 2025."""


class PriceTable:
    """Model prices, starting from ``LIST_PRICES`` (unless ``include_list_prices=False``)."""

    def __init__(
        self,
        prices: Mapping[str, ModelPrice] | None = None,
        *,
        include_list_prices: bool = True,
    ) -> None:
        self._prices: dict[str, ModelPrice] = dict(LIST_PRICES) if include_list_prices else {}
        self._prices.update(prices or {})
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def set(self, model: str, *, input_per_mtok: float, output_per_mtok: float) -> None:
        """Price ``model`` (replacing any earlier price)."""
        self._prices[model] = _price(input_per_mtok, output_per_mtok)

    def price_of(self, model: str) -> ModelPrice | None:
        """The price of ``model``, else of its undated name; ``None`` when unknown."""
        price = self._prices.get(model)
        if price is None:
            price = self._prices.get(_SNAPSHOT_SUFFIX.sub("", model))
        return price

    def cost(self, model: str, usage: TokenUsage) -> float | None:
        """Dollars for ``usage`` on ``model``; ``None`` (and a warning, once) when unpriced."""
        price = self.price_of(model)
        if price is None:
            self._warn_unpriced(model)
            return None
        return price.cost(usage)

    def _warn_unpriced(self, model: str) -> None:
        with self._lock:
            if model in self._warned:
                return
            self._warned.add(model)
        log.warning(
            "llm.price_unknown",
            model=model,
            hint="cost not recorded; add it with default_prices().set(model, ...)",
        )


_DEFAULT_PRICES = PriceTable()


def default_prices() -> PriceTable:
    """The process-wide price table models use unless given their own."""
    return _DEFAULT_PRICES
