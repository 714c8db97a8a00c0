"""The price table: list prices, snapshot names, overrides, and no made-up cost."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from spark.models.pricing import LIST_PRICES, ModelPrice, PriceTable, TokenUsage

USAGE = TokenUsage(prompt_tokens=900, completion_tokens=120)


def test_cost_is_tokens_times_the_list_price_per_million() -> None:
    """gpt-4o-mini at $0.15 / $0.60 per million: 900 in and 120 out cost $0.000207."""
    assert PriceTable().cost("gpt-4o-mini", USAGE) == pytest.approx(
        (900 * 0.15 + 120 * 0.60) / 1_000_000
    )


@pytest.mark.parametrize(
    ("snapshot", "undated"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
    ],
)
def test_a_dated_snapshot_is_priced_as_its_undated_name(snapshot: str, undated: str) -> None:
    """A provider's dated or -latest name costs what its undated model costs."""
    assert PriceTable().price_of(snapshot) == LIST_PRICES[undated]


def test_a_similar_but_different_model_is_not_priced_by_prefix() -> None:
    """gpt-4o-audio-preview is not gpt-4o: no price rather than a wrong one."""
    assert PriceTable().price_of("gpt-4o-audio-preview") is None


def test_an_unknown_model_costs_none_and_warns_once() -> None:
    """No price is invented for an unknown model; the warning names it, once per table."""
    table = PriceTable()
    with capture_logs() as logs:
        assert table.cost("my-finetune", USAGE) is None
        assert table.cost("my-finetune", USAGE) is None
    warnings = [entry for entry in logs if entry["event"] == "llm.price_unknown"]
    assert [(w["log_level"], w["model"]) for w in warnings] == [("warning", "my-finetune")]


def test_set_overrides_a_list_price_and_prices_a_new_model() -> None:
    """User prices win over the list and add models the list lacks."""
    table = PriceTable()
    table.set("gpt-4o", input_per_mtok=1.0, output_per_mtok=2.0)
    table.set("my-finetune", input_per_mtok=10.0, output_per_mtok=0.0)
    assert table.cost("gpt-4o", USAGE) == pytest.approx((900 * 1.0 + 120 * 2.0) / 1e6)
    assert table.cost("my-finetune", USAGE) == pytest.approx(900 * 10.0 / 1e6)
    assert PriceTable().price_of("gpt-4o") == LIST_PRICES["gpt-4o"]


def test_a_table_without_list_prices_knows_only_its_own() -> None:
    """include_list_prices=False: only the given prices."""
    table = PriceTable(
        {"m": ModelPrice(input_per_mtok=1, output_per_mtok=1)}, include_list_prices=False
    )
    assert table.price_of("gpt-4o") is None
    assert table.cost("m", USAGE) == pytest.approx(1020 / 1e6)


def test_negative_prices_are_refused() -> None:
    """A price below zero is a typo, not a discount."""
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        PriceTable().set("m", input_per_mtok=-1.0, output_per_mtok=1.0)
