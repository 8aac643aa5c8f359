"""Prices per chip-hour from the catalog or the user; unknown stays None (never zero)."""

from __future__ import annotations

import pytest

from twofold.economics.prices import (
    cost_usd,
    parse_chip_values,
    price_for,
    tokens_per_usd,
    usd_per_million_tokens,
)
from twofold.errors import InputError
from twofold.hardware.catalog import get_chip, system_for


def test_h100_catalog_price_is_instance_price_over_gpus() -> None:
    # SkyPilot AWS catalog: p5.48xlarge on-demand $55.04/h for 8 H100 (hardware_research.yaml).
    chip = get_chip("h100")
    price = price_for(system_for(chip), chip)
    assert price.source == "catalog"
    assert price.usd_per_chip_hour == pytest.approx(55.04 / 8, abs=0.005)
    assert "55.04" in price.note


def test_unpublished_price_is_unknown_with_reason() -> None:
    chip = get_chip("trn2")
    price = price_for(system_for(chip), chip)
    assert price.usd_per_chip_hour is None and price.source == "unknown"
    assert "trn2.48xlarge" in price.note
    assert usd_per_million_tokens(price, 1000.0) is None
    assert tokens_per_usd(price, 1000.0) is None
    assert cost_usd(price, 64, 3600.0) is None


def test_user_price_overrides_by_alias() -> None:
    values = parse_chip_values(["trainium2=2.5", "h100=4,tpu-v5p=3"], "price", "USD per chip-hour")
    assert values == {"trn2": 2.5, "h100": 4.0, "tpu-v5p": 3.0}
    chip = get_chip("trn2")
    price = price_for(system_for(chip), chip, values)
    assert price.usd_per_chip_hour == 2.5 and price.source == "user"


@pytest.mark.parametrize(
    "text", ["trn2", "trn2=", "=3", "trn2=abc", "trn2=0", "trn2=-1", "trn2=inf", "nochip9=1"]
)
def test_bad_price_flags_are_input_errors(text: str) -> None:
    with pytest.raises(InputError):
        parse_chip_values([text], "price", "USD per chip-hour")


def test_cost_figures_by_hand() -> None:
    chip = get_chip("h100")
    price = price_for(system_for(chip), chip, {"h100": 3.6})  # $3.6/h = $0.001/s
    # 1000 tokens/s per chip: $1e-6 per token = $1 per million tokens; 3.6e6 tokens per dollar.
    assert usd_per_million_tokens(price, 1000.0) == pytest.approx(1.0)
    assert tokens_per_usd(price, 1000.0) == pytest.approx(1e6)
    assert cost_usd(price, 8, 7200.0) == pytest.approx(3.6 * 8 * 2)
