"""Prices: USD per chip-hour of a system, of one published kind, from the catalog or the user.

Kinds (`hardware.types.PRICE_KINDS`): `on-demand` (list price), `capacity-block` (AWS EC2 Capacity
Blocks for ML: instances reserved ahead for a fixed period, a committed price) and `spot`
(interruptible, a market price at the time of the snapshot). Each catalog price is the quoted
instance price divided by its chips, with instance, region, date and source (`System.prices`,
figures from `shared/data/hardware_research.yaml`: the SkyPilot AWS catalog snapshot and a mirror of
the AWS Capacity Blocks pricing page). Where no price of the chosen kind is published the price is
`None` and stays `None`: it never falls back to another kind, and every figure derived from it
(dollars, perf/$) is reported as unknown, never as zero. The user supplies one with
`--price trn2=USD` (USD per chip-hour), which wins over the catalog for any kind.

Every catalog quote carries its provider and a quality grade (`PRICE_QUALITIES`: A vendor-derived, B
reputable secondary, C a single third-party value; `shared/data/prices_power.md`). The grade is the
quote's own and is shown next to every dollar figure; `min_quality` makes a weaker quote unknown
(never a stronger quote of another kind or provider in its place). A user price has grade "user".

Left out: savings plans, reserved-instance and committed-use discounts (not in the sources),
storage, networking and support charges, and price differences between regions (each quote is for
the one region it names; a capacity block may be quoted in a different region than on-demand).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from twofold.errors import InputError
from twofold.hardware.types import PRICE_KINDS, PRICE_QUALITIES, Chip, System
from twofold.units import SECONDS_PER_HOUR

__all__ = [
    "PRICE_KINDS",
    "PRICE_QUALITIES",
    "Price",
    "check_min_quality",
    "cost_usd",
    "parse_chip_values",
    "price_for",
    "tokens_per_usd",
    "usd_per_million_tokens",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class Price:
    """USD per chip-hour of one kind (None: unknown), where it comes from, and the quote's details.

    `source` is "catalog", "user" (`--price`) or "unknown"; `region`, `as_of` (publication or
    snapshot date, "" = not recorded), `valid_until`, `instance` and `sources` (catalog source keys)
    describe a catalog quote and are empty otherwise.
    """

    usd_per_chip_hour: float | None
    source: Literal["catalog", "user", "unknown"]
    note: str
    kind: str = "on-demand"
    region: str = ""
    as_of: str = ""
    valid_until: str = ""
    instance: str = ""
    sources: tuple[str, ...] = ()
    provider: str = ""
    quality: str = ""  # A, B, C (catalog), "user" (--price), "" (unknown)

    def to_dict(self) -> dict[str, object]:
        return {
            "usd_per_chip_hour": self.usd_per_chip_hour,
            "source": self.source,
            "kind": self.kind,
            "quality": self.quality or None,
            "provider": self.provider,
            "region": self.region,
            "as_of": self.as_of,
            "valid_until": self.valid_until,
            "instance": self.instance,
            "sources": list(self.sources),
            "note": self.note,
        }


def check_min_quality(value: str | None) -> str | None:
    """`--min-quality`: None (every grade) or one of `PRICE_QUALITIES`, validated at the boundary."""
    if value is None:
        return None
    grade = str(value).strip().upper()
    if grade not in PRICE_QUALITIES:
        raise InputError("min_quality", value, f"must be one of {', '.join(PRICE_QUALITIES)}")
    return grade


def price_for(
    system: System,
    chip: Chip,
    overrides: Mapping[str, float] | None = None,
    kind: str = "on-demand",
    min_quality: str | None = None,
) -> Price:
    """The price of one chip-hour of `system` of one `kind`: the user's override for the chip id,
    else the catalog's published price of that kind if its grade is at least `min_quality`, else
    unknown (None, with the reason; no fallback to another kind or grade, since a spot or reserved
    price is not an on-demand one and a C quote is no B quote)."""
    if kind not in PRICE_KINDS:
        raise InputError("price_kind", kind, f"must be one of {', '.join(PRICE_KINDS)}")
    min_quality = check_min_quality(min_quality)
    if overrides and chip.id in overrides:
        return Price(
            usd_per_chip_hour=float(overrides[chip.id]),
            source="user",
            note=f"supplied with --price (used as the {kind} price)",
            kind=kind,
            quality="user",
        )
    quote = system.price(kind)
    if (
        quote.usd_per_chip_hour is not None
        and min_quality is not None
        and PRICE_QUALITIES.index(quote.quality) > PRICE_QUALITIES.index(min_quality)
    ):
        return Price(
            usd_per_chip_hour=None,
            source="unknown",
            note=(
                f"{system.id}: the only {kind} price is grade {quote.quality}, weaker than "
                f"--min-quality {min_quality} (excluded, not replaced)"
            ),
            kind=kind,
        )
    if quote.usd_per_chip_hour is not None:
        return Price(
            usd_per_chip_hour=float(quote.usd_per_chip_hour),
            source="catalog",
            note=f"{system.id}: {quote.describe()}",
            kind=kind,
            region=quote.region,
            as_of=quote.as_of,
            valid_until=quote.valid_until,
            instance=quote.instance,
            sources=quote.sources,
            provider=quote.provider,
            quality=quote.quality,
        )
    reason = quote.note or f"no published {kind} price"
    return Price(usd_per_chip_hour=None, source="unknown", note=f"{system.id}: {reason}", kind=kind)


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
