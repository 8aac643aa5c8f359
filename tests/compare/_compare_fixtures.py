"""What-if chips for the compare and claim tests: a catalog chip with everything doubled."""

from __future__ import annotations

from dataclasses import replace

from twofold.compare import Target, target_from
from twofold.cost import profile_for
from twofold.cost.calibration import shipped_calibration
from twofold.hardware.catalog import get_chip, system_for
from twofold.hardware.types import Chip, System


def doubled(name: str, *, links: bool, serving: bool = False) -> tuple[Chip, System]:
    """`name` with 2x dense peaks and HBM bandwidth and half the per-op overhead (so every kernel
    time halves), in a copy of its system; `links` also doubles link bandwidth and halves latency
    (so every communication time halves too). Same calibration profile as the original chip in
    training, or with `serving`, in serving (which leaves out the eager per-op overhead factor)."""
    chip = get_chip(name)
    system = system_for(chip)
    calibration = shipped_calibration()
    if serving:
        calibration = calibration.with_factors(op_overhead_factor=1.0)
    profile = profile_for(chip, calibration)
    fast = replace(
        chip,
        id=f"{chip.id}-2x",
        aliases=(),
        bf16_dense_tflops=2 * chip.bf16_dense_tflops,
        fp8_dense_tflops=None if chip.fp8_dense_tflops is None else 2 * chip.fp8_dense_tflops,
        hbm_bandwidth_tb_s=2 * chip.hbm_bandwidth_tb_s,
        calibration=replace(profile, op_overhead_s=profile.op_overhead_s / 2),
        default_system=f"{system.id}-2x",
    )
    levels = system.levels
    if links:
        levels = tuple(
            replace(lv, bandwidth_gb_s_per_chip=2 * lv.bandwidth_gb_s_per_chip, latency_us=lv.latency_us / 2)
            for lv in levels
        )
    return fast, replace(system, id=f"{system.id}-2x", aliases=(), chip_id=fast.id, levels=levels)


def doubled_target(name: str, *, links: bool, serving: bool = False) -> Target:
    chip, system = doubled(name, links=links, serving=serving)
    return target_from(chip, system)
