"""`economics.billing`: whole instances and whole capacity-block days.

References: the rule written out by hand (ceil(chips / unit) * unit chips; seconds as run, or
capacity blocks in whole days from 1 to 14 and whole weeks beyond, AWS EC2 User Guide, "Capacity
Blocks for ML"), and the instance sizes the catalog quotes (trn1.32xlarge: 16 chips, p5.48xlarge: 8,
tpu-v5litepod-1: 1).
"""

from __future__ import annotations

import math

import pytest

from twofold.economics.billing import billed_chips, billed_cost_usd, billed_seconds, billing_unit_chips
from twofold.economics.prices import price_for
from twofold.errors import InputError
from twofold.hardware.catalog import get_chip, system_for

DAY_S = 86400.0


@pytest.mark.parametrize(
    ("chips", "unit", "paid"), [(1, 8, 8), (8, 8, 8), (9, 8, 16), (1, 1, 1), (17, 16, 32)]
)
def test_billed_chips_rounds_up_to_whole_instances(chips: int, unit: int, paid: int) -> None:
    assert billed_chips(chips, unit) == paid


@pytest.mark.parametrize(
    ("chip", "kind", "unit"), [("trn1", "on-demand", 16), ("h100", "on-demand", 8), ("tpu-v5e", "spot", 1)]
)
def test_billing_unit_is_the_quoted_instance(chip: str, kind: str, unit: int) -> None:
    c = get_chip(chip)
    system = system_for(c, None)
    assert billing_unit_chips(system, price_for(system, c, None, kind)) == unit


@pytest.mark.parametrize(
    ("chip", "system", "usd_per_hour"),
    [
        ("tpu-v5e", None, 1.2),  # tpu-v5litepod-1: a 1-chip slice, though the pod's node is 8 chips
        ("trn1", "trn1.2xlarge", 1.34375),  # prices_power.yaml / hardware_research.yaml trn1 notes
        ("h100", "p5.4xlarge", 6.88),  # hardware_research.yaml: p5.4xlarge (1x H100) also $6.88/h
    ],
)
def test_one_chip_runs_on_one_chip_instances_bill_one_chip(
    chip: str, system: str | None, usd_per_hour: float
) -> None:
    c = get_chip(chip)
    s = system_for(c, system)
    price = price_for(s, c, None, "on-demand")
    assert billing_unit_chips(s, price) == 1
    assert billed_cost_usd(price, s, 1, 1800.0) == pytest.approx(usd_per_hour / 2)


def test_a_user_price_is_billed_by_the_systems_node() -> None:
    c = get_chip("h100")
    system = system_for(c, None)
    price = price_for(system, c, {"h100": 2.0}, "on-demand")
    assert billing_unit_chips(system, price) == system.node_chips == 8
    # One H100 for 90 minutes at $2/chip-h on an 8-GPU node: 8 chips x 1.5 h x 2.
    assert billed_cost_usd(price, system, 1, 5400.0) == pytest.approx(8 * 1.5 * 2.0)


@pytest.mark.parametrize(
    ("seconds", "days"),
    [(60.0, 1), (DAY_S, 1), (DAY_S + 1, 2), (14 * DAY_S, 14), (15 * DAY_S, 21), (22 * DAY_S, 28)],
)
def test_capacity_blocks_are_billed_in_whole_days_then_weeks(seconds: float, days: int) -> None:
    assert billed_seconds(seconds, "capacity-block") == days * DAY_S


@pytest.mark.parametrize("kind", ["on-demand", "spot", "committed-1y"])
def test_other_kinds_are_billed_per_second(kind: str) -> None:
    assert billed_seconds(1234.5, kind) == 1234.5


def test_unknown_price_gives_no_cost_and_bad_input_is_refused() -> None:
    c = get_chip("l4")
    system = system_for(c, None)
    assert billed_cost_usd(price_for(system, c, None, "on-demand"), system, 1, 3600.0) is None
    with pytest.raises(InputError, match="chips"):
        billed_chips(0, 8)
    with pytest.raises(InputError, match="seconds"):
        billed_seconds(math.inf, "spot")
