"""Prices: on-demand USD per chip-hour of a system, from the catalog or supplied by the user.

The catalog's `System.price_usd_per_chip_hour` is the on-demand instance price divided by the
chips in the instance, with region, date and source in `System.price_note` (figures from
`shared/data/hardware_research.yaml`, mostly the SkyPilot AWS catalog snapshot). Where no price is
published (Trainium2, TPUs, AMD platforms) the price is `None` and stays `None`: every figure
derived from it (dollars, perf/$) is reported as unknown, never as zero. The user supplies one
with `--price trn2=USD` (USD per chip-hour).

Left out: committed-use, reserved and spot prices (the catalog carries on-demand prices only; the
research file's spot quotes are in the price notes), storage, networking and support charges, and
price differences between regions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from twofold.errors import InputError
from twofold.hardware.types import Chip, System

__all__ = [
    "Price",
    "cost_usd",
    "parse_chip_values",
    "price_for",
    "tokens_per_usd",
    "usd_per_million_tokens",
]

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True, kw_only=True)
class Price:
    """USD per chip-hour (None: unknown), where it comes from, and the catalog's note."""

    usd_per_chip_hour: float | None
    source: Literal["catalog", "user", "unknown"]
    note: str

    def to_dict(self) -> dict[str, object]:
        return {"usd_per_chip_hour": self.usd_per_chip_hour, "source": self.source, "note": self.note}


def price_for(system: System, chip: Chip, overrides: Mapping[str, float] | None = None) -> Price:
    """The price of one chip-hour of `system`: the user's override for the chip id, else the
    catalog's on-demand price, else unknown (None, with the catalog's reason)."""
    if overrides and chip.id in overrides:
        return Price(usd_per_chip_hour=float(overrides[chip.id]), source="user", note="supplied with --price")
    if system.price_usd_per_chip_hour is not None:
        return Price(
            usd_per_chip_hour=float(system.price_usd_per_chip_hour),
            source="catalog",
            note=f"{system.id}: {system.price_note}".strip(),
        )
    reason = system.price_note or "no published price"
    return Price(usd_per_chip_hour=None, source="unknown", note=f"{system.id}: {reason}")


def parse_chip_values(items: Iterable[str], field: str, unit: str) -> dict[str, float]:
    """Parse `CHIP=VALUE` pairs (repeated flags or comma-separated) into {chip id: value}.

    The chip may be any id or alias (`trainium2=2.5` sets trn2); values must be finite and
    positive, since a zero price or power would turn "unknown" into a free or powerless chip.
    """
    from twofold.hardware.catalog import get_chip

    out: dict[str, float] = {}
    for item in items:
        for part in str(item).split(","):
            text = part.strip()
            if not text:
                continue
            name, sep, raw = text.partition("=")
            if not sep or not name.strip() or not raw.strip():
                raise InputError(field, text, f"must be CHIP={unit}, e.g. trn2=2.5")
            try:
                value = float(raw)
            except ValueError:
                raise InputError(field, text, f"{raw.strip()!r} is not a number ({unit})") from None
            if not math.isfinite(value) or value <= 0:
                raise InputError(field, text, f"must be a finite positive number of {unit}")
            out[get_chip(name.strip()).id] = value
    return out


def usd_per_million_tokens(price: Price, tokens_per_s_per_chip: float) -> float | None:
    """Dollars per million trained tokens: price per chip-second / tokens per chip-second * 1e6.

    Every chip is billed for the whole step whether it computes or waits, so the per-chip
    throughput (system tokens/s divided by chips) is the right denominator.
    """
    if price.usd_per_chip_hour is None or tokens_per_s_per_chip <= 0:
        return None
    return price.usd_per_chip_hour / SECONDS_PER_HOUR / tokens_per_s_per_chip * 1e6


def tokens_per_usd(price: Price, tokens_per_s_per_chip: float) -> float | None:
    """Perf per dollar: tokens one dollar of chip time trains (None if the price is unknown)."""
    if price.usd_per_chip_hour is None:
        return None
    return tokens_per_s_per_chip * SECONDS_PER_HOUR / price.usd_per_chip_hour


def cost_usd(price: Price, chips: int, seconds: float) -> float | None:
    """Dollars for `chips` chips over `seconds` (None if the price is unknown)."""
    if price.usd_per_chip_hour is None:
        return None
    return price.usd_per_chip_hour * chips * seconds / SECONDS_PER_HOUR
