"""Cost and energy: prices per chip-hour, per-chip power against utilisation, energy and CO2."""

from twofold.economics.power import (
    DEFAULT_IDLE_FRACTION,
    PowerModel,
    busy_fraction,
    co2_kg,
    energy_kwh,
    energy_per_token_j,
    power_model_for,
)
from twofold.economics.prices import (
    PRICE_KINDS,
    PRICE_QUALITIES,
    Price,
    check_min_quality,
    cost_usd,
    parse_chip_values,
    price_for,
    tokens_per_usd,
    usd_per_million_tokens,
)

__all__ = [
    "DEFAULT_IDLE_FRACTION",
    "PRICE_KINDS",
    "PRICE_QUALITIES",
    "PowerModel",
    "Price",
    "busy_fraction",
    "check_min_quality",
    "co2_kg",
    "cost_usd",
    "energy_kwh",
    "energy_per_token_j",
    "parse_chip_values",
    "power_model_for",
    "price_for",
    "tokens_per_usd",
    "usd_per_million_tokens",
]
