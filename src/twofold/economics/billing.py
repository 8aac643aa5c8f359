"""Billing: what a run of N chips for T seconds is charged, in whole instances and whole blocks.

A cloud rents instances, not chips. Rule: a run on `chips` chips pays for
`ceil(chips / unit) * unit` chips, where `unit` (`billing_unit_chips`) is the instance the price
was quoted for (`PriceQuote.instance_chips`: 16 for trn1.32xlarge, 8 for p5.48xlarge, 1 for a
tpu-v5litepod-1), else the system's node (`System.node_chips`, "the unit you rent"), which is also
the unit of a user's `--price`. So one Trainium1 chip on the catalog's trn1.32xlarge pays for 16;
a smaller instance counts only where the catalog has it (as its own system or quote), never from a
note.

Time is billed per second of the run (AWS and Google Cloud bill on-demand and spot instances per
second), except AWS EC2 Capacity Blocks for ML, which are reserved in whole days: 1 to 14 days in
1-day steps, longer ones in 7-day steps up to 182 days (AWS EC2 User Guide, "Capacity Blocks for
ML", durations), paid whether the run uses them or not.

Left out: per-second minimums (60 s on AWS), the instance-count steps of capacity blocks (1 to 64
instances in powers of two), the start-up time of instances and jobs, and that a spot instance may
be interrupted (a spot run's time assumes none).
"""

from __future__ import annotations

import math

from twofold.economics.prices import Price, cost_usd
from twofold.errors import InputError
from twofold.hardware.types import System
from twofold.units import SECONDS_PER_DAY

__all__ = ["billed_chips", "billed_cost_usd", "billed_seconds", "billing_unit_chips"]

# AWS Capacity Blocks for ML: 1-14 days in 1-day steps, then 7-day steps (module docstring).
CAPACITY_BLOCK_DAILY_MAX_DAYS = 14
CAPACITY_BLOCK_WEEKLY_STEP_DAYS = 7


def billing_unit_chips(system: System, price: Price) -> int:
    """Chips per billed instance: the quoted instance's chips for a catalog price, else the
    system's node (a user price, or a quote that does not say)."""
    if price.source == "catalog":
        quoted = system.price(price.kind).instance_chips
        if quoted:
            return int(quoted)
    return max(int(system.node_chips), 1)


def billed_chips(chips: int, unit: int) -> int:
    """Chips paid for: `chips` rounded up to whole instances of `unit` chips."""
    if chips < 1 or unit < 1:
        raise InputError("chips", chips, f"must be a positive integer (billing unit {unit})")
    return math.ceil(chips / unit) * unit


def billed_seconds(seconds: float, kind: str) -> float:
    """Seconds paid for: the run's own for per-second kinds; whole days (1-14), then whole weeks,
    for a capacity block (module docstring)."""
    if not math.isfinite(seconds) or seconds < 0:
        raise InputError("seconds", seconds, "must be a finite non-negative time")
    if kind != "capacity-block":
        return seconds
    days = max(math.ceil(seconds / SECONDS_PER_DAY - 1e-9), 1)
    if days > CAPACITY_BLOCK_DAILY_MAX_DAYS:
        step = CAPACITY_BLOCK_WEEKLY_STEP_DAYS
        days = math.ceil(days / step) * step
    return days * SECONDS_PER_DAY


def billed_cost_usd(price: Price, system: System, chips: int, seconds: float) -> float | None:
    """Dollars a run of `chips` chips for `seconds` is billed on `system` at `price`: whole
    instances for the billed time (module docstring); None if the price is unknown."""
    unit = billing_unit_chips(system, price)
    return cost_usd(price, billed_chips(chips, unit), billed_seconds(seconds, price.kind))
