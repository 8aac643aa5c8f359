"""Invariants of the single-chip cost model, over random chips, profiles and GEMM shapes (hypothesis).

What is asserted, precisely:
- time is finite and >= 0 for every op, and >= the fixed overhead;
- scaling the chip's HBM bandwidth by f >= 1 never increases any op's time;
- scaling every peak by f >= 1 never increases any op's time;
- a GEMM never runs faster than peak * gemm_efficiency (padding only ever adds work);
- for fixed n, k, batch, a GEMM's time (with its bytes growing with m) is non-decreasing in m,
  exactly (no "up to quantization" slack: the padded work is a step function that never steps
  down, because the tile with the least padding is a minimum of non-decreasing functions and the
  ramp adds a constant), up to 1e-12 relative float rounding.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from cost_fixtures import gemm
from hypothesis import given, settings
from hypothesis import strategies as st

from twofold.cost import CalibrationProfile, op_time_terms, op_times_s
from twofold.hardware.types import Chip
from twofold.workload.ops import Op


@st.composite
def chips(draw: st.DrawFn) -> Chip:
    architecture = draw(st.sampled_from(["gpu", "systolic", "cpu"]))
    return Chip(
        id="prop",
        name="prop",
        vendor="test",
        family="test",
        bf16_dense_tflops=draw(st.floats(0.1, 5000.0)),
        fp8_dense_tflops=draw(st.floats(0.1, 10000.0)),
        hbm_capacity_gib=1.0,
        hbm_bandwidth_tb_s=draw(st.floats(0.01, 20.0)),
        architecture=architecture,
        compute_units=draw(st.one_of(st.none(), st.integers(1, 200))),
        systolic_array_dim=draw(st.sampled_from([None, 64, 128, 256])),
        matrix_units=draw(st.one_of(st.none(), st.integers(1, 16))),
    )


@st.composite
def profiles(draw: st.DrawFn) -> CalibrationProfile:
    fraction = st.floats(0.05, 1.0)
    tiles = st.lists(
        st.tuples(st.sampled_from([32, 64, 128, 256]), st.sampled_from([32, 64, 128, 256])),
        min_size=1,
        max_size=3,
    )
    return CalibrationProfile(
        chip_id="prop",
        gemm_efficiency={"bf16": draw(fraction)},
        gemm_half_flops=draw(st.sampled_from([0.0, 1e6, 1e9])),
        memory_efficiency=draw(fraction),
        attention_efficiency=draw(fraction),
        op_overhead_s=draw(st.sampled_from([0.0, 1e-6, 1e-5])),
        gemm_tiles=tuple(draw(tiles)),
        systolic_moving_tile=draw(st.sampled_from([128, 512])),
    )


dim = st.integers(1, 20000)


@st.composite
def op_lists(draw: st.DrawFn) -> list[Op]:
    ops = [
        gemm(
            draw(dim),
            draw(dim),
            draw(dim),
            batch=draw(st.integers(1, 8)),
            dtype=draw(st.sampled_from(["bf16", "fp8"])),
        )
    ]
    q = draw(st.integers(1, 8192))
    ops.append(
        Op(
            name="attn",
            kind="attention",
            phase="forward",
            flops=4.0 * q * q * 128,
            bytes_read=float(6 * q * 128),
            bytes_written=float(2 * q * 128),
            dims={"batch": 1, "heads": 1, "kv_heads": 1, "q_len": q, "kv_len": q, "head_dim": 128},
            causal=draw(st.booleans()),
        )
    )
    for kind in ("norm", "elementwise", "optimizer"):
        ops.append(
            Op(
                name=kind,
                kind=kind,  # type: ignore[arg-type]
                phase="forward",
                flops=draw(st.floats(0.0, 1e12)),
                bytes_read=draw(st.floats(0.0, 1e11)),
                bytes_written=draw(st.floats(0.0, 1e11)),
            )
        )
    return ops


def _scaled_peaks(chip: Chip, factor: float) -> Chip:
    return replace(
        chip,
        bf16_dense_tflops=chip.bf16_dense_tflops * factor,
        fp8_dense_tflops=chip.fp8_dense_tflops * factor,
    )


@settings(max_examples=150, deadline=None)
@given(chip=chips(), profile=profiles(), ops=op_lists())
def test_times_are_finite_non_negative_and_at_least_the_overhead(
    chip: Chip, profile: CalibrationProfile, ops: list[Op]
) -> None:
    t = op_times_s(ops, chip, profile)
    assert np.all(np.isfinite(t))
    assert np.all(t >= profile.op_overhead_s)


@settings(max_examples=150, deadline=None)
@given(chip=chips(), profile=profiles(), ops=op_lists(), factor=st.floats(1.0, 100.0))
def test_more_bandwidth_is_never_slower(
    chip: Chip, profile: CalibrationProfile, ops: list[Op], factor: float
) -> None:
    faster = replace(chip, hbm_bandwidth_tb_s=chip.hbm_bandwidth_tb_s * factor)
    assert np.all(op_times_s(ops, faster, profile) <= op_times_s(ops, chip, profile) * (1 + 1e-12))


@settings(max_examples=150, deadline=None)
@given(chip=chips(), profile=profiles(), ops=op_lists(), factor=st.floats(1.0, 100.0))
def test_more_peak_is_never_slower(
    chip: Chip, profile: CalibrationProfile, ops: list[Op], factor: float
) -> None:
    faster = _scaled_peaks(chip, factor)
    assert np.all(op_times_s(ops, faster, profile) <= op_times_s(ops, chip, profile) * (1 + 1e-12))


@settings(max_examples=150, deadline=None)
@given(chip=chips(), profile=profiles(), m=dim, n=dim, k=dim, batch=st.integers(1, 8))
def test_gemm_never_beats_peak_times_efficiency(
    chip: Chip, profile: CalibrationProfile, m: int, n: int, k: int, batch: int
) -> None:
    op = gemm(m, n, k, batch=batch)
    compute_s = op_time_terms([op], chip, profile).compute_s[0]
    assert compute_s >= op.flops / (chip.bf16_dense_tflops * 1e12 * profile.gemm_efficiency["bf16"]) * (
        1 - 1e-12
    )


@settings(max_examples=150, deadline=None)
@given(
    chip=chips(), profile=profiles(), m=dim, extra=st.integers(1, 5000), n=dim, k=dim, batch=st.integers(1, 4)
)
def test_gemm_time_is_non_decreasing_in_m(
    chip: Chip, profile: CalibrationProfile, m: int, extra: int, n: int, k: int, batch: int
) -> None:
    small, large = op_times_s([gemm(m, n, k, batch=batch), gemm(m + extra, n, k, batch=batch)], chip, profile)
    assert large >= small * (1 - 1e-12)
