"""Power model P(u) = idle + (TDP - idle) * u, energy, kWh and CO2, against hand derivations."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twofold.economics.power import (
    DEFAULT_IDLE_FRACTION,
    busy_fraction,
    co2_kg,
    energy_kwh,
    energy_per_token_j,
    power_model_for,
)
from twofold.errors import InputError
from twofold.hardware.catalog import get_chip


def test_h100_power_is_linear_between_assumed_idle_and_tdp() -> None:
    # H100 SXM TDP 700 W (catalog, NVIDIA datasheet); idle = 0.2 x 700 = 140 W by assumption.
    pm = power_model_for(get_chip("h100"))
    assert pm.tdp_w == 700.0 and pm.tdp_source == "catalog"
    assert pm.idle_source == "assumed" and pm.idle_fraction == pytest.approx(DEFAULT_IDLE_FRACTION)
    assert pm.power_w(0.0) == pytest.approx(140.0)
    assert pm.power_w(1.0) == pytest.approx(700.0)
    assert pm.power_w(0.5) == pytest.approx(140.0 + 560.0 * 0.5)


def test_idle_fraction_override_applies() -> None:
    pm = power_model_for(get_chip("h100"), idle_fraction=0.1)
    assert pm.power_w(0.0) == pytest.approx(70.0)
    assert pm.power_w(0.25) == pytest.approx(70.0 + 630.0 * 0.25)


def test_trainium_power_is_unknown_never_zero() -> None:
    pm = power_model_for(get_chip("trn2"))  # AWS publishes no Trainium power
    assert pm.tdp_w is None and pm.idle_w is None and pm.tdp_source == "unknown"
    assert pm.power_w(0.7) is None
    assert energy_per_token_j(pm.power_w(0.7), 1000.0) is None
    assert energy_kwh(None, 64, 3600.0) is None
    assert co2_kg(None, 400.0) is None


def test_user_supplied_power_for_trainium() -> None:
    pm = power_model_for(get_chip("trn2"), overrides_w={"trn2": 500.0})
    assert pm.tdp_source == "user" and pm.power_w(1.0) == pytest.approx(500.0)
    assert pm.power_w(0.0) == pytest.approx(100.0)


@pytest.mark.parametrize("bad", [1.0, -0.1, math.nan, 2])
def test_idle_fraction_is_validated(bad: float) -> None:
    with pytest.raises(InputError, match="idle_fraction"):
        power_model_for(get_chip("h100"), idle_fraction=bad)


@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0), st.floats(0.0, 0.99))
def test_power_is_monotone_and_bounded(u1: float, u2: float, idle: float) -> None:
    pm = power_model_for(get_chip("b200"), idle_fraction=idle)
    lo, hi = sorted((u1, u2))
    assert pm.idle_w <= pm.power_w(lo) <= pm.power_w(hi) <= pm.tdp_w + 1e-9


def test_busy_fraction_counts_kernels_not_communication() -> None:
    breakdown = {
        "compute_forward": 2.0,
        "compute_backward": 4.0,
        "compute_recompute": 1.0,
        "tp": 1.5,
        "bubble": 1.0,
        "optimizer": 0.5,
    }
    assert busy_fraction(breakdown, 10.0) == pytest.approx(7.5 / 10.0)


def test_energy_and_co2_by_hand() -> None:
    # 500 W per chip at 1000 tokens/s per chip: 0.5 J per token.
    assert energy_per_token_j(500.0, 1000.0) == pytest.approx(0.5)
    # 8 chips x 500 W x 3600 s = 14.4 MJ = 4 kWh; at 400 gCO2/kWh that is 1.6 kg.
    kwh = energy_kwh(500.0, 8, 3600.0)
    assert kwh == pytest.approx(4.0)
    assert co2_kg(kwh, 400.0) == pytest.approx(1.6)
