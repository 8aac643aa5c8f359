"""Power and energy: per-chip power as a linear function of utilisation, energy per token, kWh, CO2.

Power model (Fan, Weber and Barroso, "Power Provisioning for a Warehouse-sized Computer", ISCA
2007, section 4: power grows linearly with utilisation between idle and busy):

    P(u) = P_idle + (P_max - P_idle) * u,   0 <= u <= 1

- P_max is the chip's TDP (`Chip.tdp_w`: the board power the vendor rates, e.g. 700 W for H100
  SXM), or the user's `--power CHIP=W`. Where no vendor publishes one (Trainium, TPUs) it is
  unknown, and so are the chip's power, energy, kWh, CO2 and perf/W: never a guess.
- P_idle is `Chip.idle_w` where the catalog has it, else `idle_fraction * P_max`. The default
  fraction `DEFAULT_IDLE_FRACTION = 0.2` is a modelling assumption, not a published figure (no
  catalogued chip publishes its idle power); `--idle-fraction` replaces it for every chip. A
  ratio of two chips' perf/W depends on it only through the `power_draw` factor of `compare`.
- u is the compute-busy fraction of the training step: the share of the step time the chip runs
  kernels (forward, backward, recompute, optimizer: `busy_fraction`), the rest being exposed
  communication and the pipeline bubble, during which the chip mostly waits. MFU is not used: a
  chip running memory-bound or padded kernels is busy and draws near its rated power while its
  MFU is low, so MFU would understate the power.

Energy per token = P(u) / (tokens/s per chip) (every chip draws power for the whole step); kWh
to train T tokens = chips * P(u) * time / 3.6e6; CO2 = kWh * grid intensity (gCO2/kWh) / 1000.

Left out: host CPUs, memory, NICs, switches and cooling (a datacentre PUE), power capping and
clock throttling, and the power of communication itself (charged at the chip's idle level).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from twofold.errors import InputError
from twofold.hardware.types import Chip

__all__ = [
    "BUSY_TERMS",
    "DEFAULT_IDLE_FRACTION",
    "PowerModel",
    "busy_fraction",
    "check_fraction",
    "co2_kg",
    "energy_kwh",
    "energy_per_token_j",
    "power_model_for",
]

# Assumed idle power as a fraction of TDP where the catalog has no idle figure (module docstring).
DEFAULT_IDLE_FRACTION = 0.2
# Breakdown terms during which the chip runs kernels (u in the module docstring); shared with the
# vectorised layout search (`search.objectives`) so both use one definition.
BUSY_TERMS: tuple[str, ...] = ("compute_forward", "compute_backward", "compute_recompute", "optimizer")
JOULES_PER_KWH = 3.6e6


@dataclass(frozen=True, kw_only=True, slots=True)
class PowerModel:
    """One chip's power between idle and its maximum, with where each figure comes from."""

    chip: str
    tdp_w: float | None
    idle_w: float | None
    tdp_source: Literal["catalog", "user", "unknown"]
    idle_source: Literal["catalog", "assumed", "unknown"]
    idle_fraction: float | None  # P_idle / P_max actually used

    def power_w(self, utilisation: float) -> float | None:
        """P(u) in watts (module docstring); None when the chip's maximum power is unknown."""
        if self.tdp_w is None or self.idle_w is None:
            return None
        u = min(max(float(utilisation), 0.0), 1.0)
        return self.idle_w + (self.tdp_w - self.idle_w) * u

    def to_dict(self) -> dict[str, object]:
        return {
            "tdp_w": self.tdp_w,
            "idle_w": self.idle_w,
            "tdp_source": self.tdp_source,
            "idle_source": self.idle_source,
            "idle_fraction": self.idle_fraction,
        }


def check_fraction(field: str, value: float) -> float:
    """A fraction in [0, 1), validated at the boundary."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(field, value, "must be a number in [0, 1)")
    if not 0.0 <= float(value) < 1.0:
        raise InputError(field, value, "must be in [0, 1): idle power is below the maximum")
    return float(value)


def power_model_for(
    chip: Chip, *, overrides_w: Mapping[str, float] | None = None, idle_fraction: float | None = None
) -> PowerModel:
    """The power model of `chip`: maximum from `overrides_w[chip.id]` or the catalog TDP; idle from
    `idle_fraction` (when given, for every chip), else the catalog's idle figure, else
    `DEFAULT_IDLE_FRACTION` of the maximum."""
    tdp: float | None
    if overrides_w and chip.id in overrides_w:
        tdp, tdp_source = float(overrides_w[chip.id]), "user"
    elif chip.tdp_w is not None:
        tdp, tdp_source = float(chip.tdp_w), "catalog"
    else:
        tdp, tdp_source = None, "unknown"
    if idle_fraction is not None:
        idle_fraction = check_fraction("idle_fraction", idle_fraction)
    if tdp is None:
        return PowerModel(
            chip=chip.id,
            tdp_w=None,
            idle_w=None,
            tdp_source="unknown",
            idle_source="unknown",
            idle_fraction=None,
        )
    if idle_fraction is None and chip.idle_w is not None and chip.idle_w < tdp:
        idle, idle_source = float(chip.idle_w), "catalog"
    else:
        idle, idle_source = (
            tdp * (DEFAULT_IDLE_FRACTION if idle_fraction is None else idle_fraction),
            "assumed",
        )
    return PowerModel(
        chip=chip.id,
        tdp_w=tdp,
        idle_w=idle,
        tdp_source=tdp_source,  # type: ignore[arg-type]
        idle_source=idle_source,  # type: ignore[arg-type]
        idle_fraction=idle / tdp,
    )


def busy_fraction(breakdown: Mapping[str, float], step_time_s: float) -> float:
    """Utilisation u: the share of the step the chip runs kernels (compute and optimizer terms of
    the estimate's breakdown, which sums to the step time)."""
    if step_time_s <= 0:
        return 0.0
    busy = sum(float(breakdown.get(term, 0.0)) for term in BUSY_TERMS)
    return min(max(busy / step_time_s, 0.0), 1.0)


def energy_per_token_j(power_w: float | None, tokens_per_s_per_chip: float) -> float | None:
    """Joules per trained token: chip power / per-chip throughput (None if power is unknown)."""
    if power_w is None or tokens_per_s_per_chip <= 0:
        return None
    return power_w / tokens_per_s_per_chip


def energy_kwh(power_w: float | None, chips: int, seconds: float) -> float | None:
    """kWh drawn by `chips` chips at `power_w` each for `seconds` (None if power is unknown)."""
    if power_w is None:
        return None
    return power_w * chips * seconds / JOULES_PER_KWH


def co2_kg(kwh: float | None, grid_gco2_per_kwh: float | None) -> float | None:
    """kg CO2 for `kwh` at a grid intensity in gCO2/kWh (None if either is unknown)."""
    if kwh is None or grid_gco2_per_kwh is None:
        return None
    return kwh * grid_gco2_per_kwh / 1000.0
