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
    price = price_for(system_for(chip, "trn2-ultraserver"), chip)  # no UltraServer price found
    assert price.usd_per_chip_hour is None and price.source == "unknown"
    assert "trn2-ultraserver" in price.note
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


def test_price_kind_selects_the_published_quote() -> None:
    # AWS Capacity Blocks for ML (mirror, 2024-12): p5.48xlarge $39.33/h for 8 H100 in us-east-1,
    # valid until 2025-01-01 (hardware_research.yaml, nvidia-h100-sxm price.capacity_block).
    chip = get_chip("h100")
    price = price_for(system_for(chip), chip, kind="capacity-block")
    assert price.source == "catalog" and price.kind == "capacity-block"
    assert price.usd_per_chip_hour == pytest.approx(39.33 / 8, rel=1e-12)
    d = price.to_dict()
    assert (d["region"], d["as_of"], d["valid_until"]) == ("us-east-1", "2024-12", "2025-01-01")
    assert d["sources"] == ["aws-capacity-blocks-mirror"]
    # Spot: trn2.48xlarge $23.06/h for 16 chips in us-east-2 (SkyPilot snapshot).
    trn2 = get_chip("trn2")
    spot = price_for(system_for(trn2), trn2, kind="spot")
    assert spot.usd_per_chip_hour == pytest.approx(23.06 / 16, rel=1e-12) and spot.region == "us-east-2"


def test_missing_kind_is_unknown_not_another_kind() -> None:
    trn2 = get_chip("trn2")  # has a spot price, no capacity-block or on-demand one
    price = price_for(system_for(trn2), trn2, kind="capacity-block")
    assert price.usd_per_chip_hour is None and price.source == "unknown" and price.kind == "capacity-block"
    assert "capacity-block" in price.note and usd_per_million_tokens(price, 1000.0) is None
    h100 = get_chip("h100")  # has on-demand and capacity-block, no spot
    assert price_for(system_for(h100), h100, kind="spot").usd_per_chip_hour is None


def test_user_price_wins_over_every_kind() -> None:
    chip = get_chip("h100")
    price = price_for(system_for(chip), chip, {"h100": 3.0}, kind="capacity-block")
    assert price.usd_per_chip_hour == 3.0 and price.source == "user" and price.kind == "capacity-block"
    with pytest.raises(InputError):
        price_for(system_for(chip), chip, kind="reserved")


def test_a_c_price_is_never_shown_as_b() -> None:
    """prices_power.yaml grades the trn2.48xlarge on-demand price C (one hand-entered page)."""
    chip = get_chip("trn2")
    price = price_for(system_for(chip), chip)
    assert price.quality == "C" and price.to_dict()["quality"] == "C"
    assert price_for(system_for(chip), chip, min_quality="C").quality == "C"


def test_min_quality_makes_a_weaker_price_unknown_not_replaced() -> None:
    """--min-quality B: trn2 has only a C on-demand price, so it is unknown (its A spot price and
    any other chip's B price are never used in its place); an A price passes."""
    trn2 = get_chip("trn2")
    price = price_for(system_for(trn2), trn2, min_quality="B")
    assert price.usd_per_chip_hour is None and price.source == "unknown" and price.quality == ""
    assert "grade C" in price.note and "--min-quality B" in price.note
    assert usd_per_million_tokens(price, 1000.0) is None
    h100 = get_chip("h100")
    assert price_for(system_for(h100), h100, min_quality="A").quality == "A"
    # a user price is the user's, whatever the grade asked for
    assert price_for(system_for(trn2), trn2, {"trn2": 2.0}, min_quality="A").quality == "user"
    with pytest.raises(InputError):
        price_for(system_for(h100), h100, min_quality="D")
