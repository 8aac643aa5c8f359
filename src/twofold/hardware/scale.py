"""How far a system scales: its documented levels, and the assumed network some systems carry.

A system whose outermost level is bounded (`domain_chips` set: an Inferentia2 instance's 12-chip
torus, a TPU v6e pod's 256-chip ICI torus) has no documented way to reach a chip beyond that
domain, so `check_scale` refuses such a chip count, naming the system and its limit: pricing the
extra chips at the in-domain bandwidth would be a silent invention. A system may instead carry an
*assumed* scale-out level (`TopologyLevel.assumed`, YAML `assumed: true`, with a note saying what
is assumed): estimates beyond the inner domains then use it, and `scale_notes` states it in the
estimate's notes (and so in the JSON and the report).
"""

from __future__ import annotations

from twofold.errors import InputError
from twofold.hardware.types import System, TopologyLevel

__all__ = ["assumed_levels", "check_scale", "scale_limit", "scale_notes"]


def scale_limit(system: System) -> int | None:
    """The most chips the system's levels can connect: the outermost level's domain, None when the
    outermost level is an unbounded network (documented or assumed)."""
    if not system.levels:
        return 1
    return system.levels[-1].domain_chips


def check_scale(system: System, chips: int) -> None:
    """Refuse `chips` beyond the system's largest domain when it documents no scale-out network."""
    limit = scale_limit(system)
    if limit is not None and chips > limit:
        outer = system.levels[-1].name if system.levels else "no interconnect"
        raise InputError(
            "chips",
            chips,
            f"{system.id} has no documented scale-out network: its largest domain ({outer}) holds {limit} "
            f"chips; pick a system with a network level (chip@system, --system) or at most {limit} chips",
        )


def assumed_levels(system: System, chips: int) -> tuple[TopologyLevel, ...]:
    """The assumed levels a group of `chips` reaches (those whose inner domain it exceeds)."""
    out = []
    inner = 1
    for level in system.levels:
        if level.assumed and chips > inner:
            out.append(level)
        inner = level.domain_chips or inner
    return tuple(out)


def scale_notes(system: System, chips: int) -> tuple[str, ...]:
    """One labelled note per assumed level the estimate uses (empty when none)."""
    return tuple(
        f"ASSUMED scale-out network on {system.id}: {lv.name} at {lv.bandwidth_gb_s_per_chip:g} GB/s per "
        f"chip, {lv.latency_us:g} us (not a documented figure: {lv.note})"
        for lv in assumed_levels(system, chips)
    )
