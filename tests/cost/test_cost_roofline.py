"""Roofline and GEMM mechanics, each against a hand derivation written in the test."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from cost_fixtures import CPU, H100, TRN2, gemm, profile

from twofold.cost import op_time_terms, op_times_s, ops_time_s, time_breakdown
from twofold.errors import InputError
from twofold.workload.ops import Op


def test_memory_bound_op_is_bytes_over_achievable_bandwidth_plus_overhead() -> None:
    norm = Op(name="norm", kind="norm", phase="forward", flops=5e8, bytes_read=1e9, bytes_written=5e8)
    p = profile(memory_efficiency=0.9, op_overhead_s=5e-6)
    expected = 1.5e9 / (3.35e12 * 0.9) + 5e-6
    assert op_times_s([norm], H100, p)[0] == pytest.approx(expected, rel=1e-12)


def test_large_square_gemm_on_h100_reaches_peak_times_efficiency() -> None:
    # m = 132 * 128 rows: 132 * 128 tiles of 128 x 128 fill exactly 128 waves on 132 SMs, so
    # nothing is padded and the GEMM runs at peak * gemm_efficiency.
    op = gemm(132 * 128, 16384, 8192)
    terms = op_time_terms([op], H100, profile(gemm_efficiency={"bf16": 0.803}))
    assert terms.compute_s[0] > terms.memory_s[0]
    assert op.flops / terms.time_s[0] == pytest.approx(989e12 * 0.803, rel=1e-12)


def test_tile_quantization_m129_costs_twice_m128() -> None:
    # One 128 x 128 tile shape; n gives 4 * 132 column tiles: m=128 -> 528 tiles = 4 waves,
    # m=129 -> 2 row tiles -> 1056 tiles = 8 waves: twice the time for 0.8% more work.
    p = profile(gemm_tiles=((128, 128),))
    n = 4 * 132 * 128
    t128, t129 = op_time_terms([gemm(128, n, 4096), gemm(129, n, 4096)], H100, p).compute_s
    assert t129 / t128 == pytest.approx(2.0, rel=1e-12)


def test_wave_quantization_133_tiles_take_two_waves_on_132_sms() -> None:
    p = profile(gemm_tiles=((128, 128),))
    ops = [gemm(128, 132 * 128, 8192), gemm(128, 133 * 128, 8192)]
    t132, t133 = op_time_terms(ops, H100, p).compute_s
    # 132 tiles: one wave, full utilisation. 133 tiles: 2 waves of 132 SMs, utilisation 133/264.
    assert t132 == pytest.approx(ops[0].flops / (989e12 * 0.8), rel=1e-12)
    assert t133 == pytest.approx(ops[1].flops / (989e12 * 0.8 * 133 / 264), rel=1e-12)


def test_gpu_picks_the_tile_with_least_padding() -> None:
    # m=256, n=128*66: with 128x128 tiles 2*66 = 132 tiles (one full wave); with 128x256 tiles
    # 2*33 = 66 tiles (one wave, half the SMs idle). The 128x128 choice wastes nothing.
    op = gemm(256, 128 * 66, 4096)
    both = profile(gemm_tiles=((128, 256), (128, 128)))
    assert op_time_terms([op], H100, both).compute_s[0] == pytest.approx(op.flops / (989e12 * 0.8), rel=1e-12)


def test_systolic_k129_pads_contracting_dim_to_two_array_blocks() -> None:
    one_core = replace(TRN2, matrix_units=1)
    t128, t129 = op_time_terms([gemm(512, 128, 128), gemm(512, 128, 129)], one_core, profile()).compute_s
    assert t128 == pytest.approx(2 * 512 * 128 * 128 / (667e12 * 0.8), rel=1e-12)
    assert t129 / t128 == pytest.approx(2.0, rel=1e-12)


def test_systolic_stationary_dim_n_is_padded_too() -> None:
    one_core = replace(TRN2, matrix_units=1)
    t128, t130 = op_time_terms([gemm(512, 128, 256), gemm(512, 130, 256)], one_core, profile()).compute_s
    assert t130 / t128 == pytest.approx(2.0, rel=1e-12)


def test_systolic_fill_drain_per_moving_pass() -> None:
    # A pass of m rows through a 128-wide array costs m + 128 cycles; the best shape (512-row
    # passes) costs 640 per 512 rows and is what gemm_efficiency measures. So m=128 runs at
    # (128/256) / (512/640) = 0.625 of the large-GEMM rate.
    one_core = replace(TRN2, matrix_units=1)
    op = gemm(128, 128, 128)
    t = op_time_terms([op], one_core, profile()).compute_s[0]
    assert t == pytest.approx(op.flops / (667e12 * 0.8 * 0.625), rel=1e-12)
    # m=1024 is two full passes: no loss relative to the best shape.
    big = gemm(1024, 128, 128)
    assert op_time_terms([big], one_core, profile()).compute_s[0] == pytest.approx(
        big.flops / (667e12 * 0.8), rel=1e-12
    )


def test_systolic_work_spreads_over_matrix_units_in_waves() -> None:
    # 9 (n block, m pass) work items on 8 arrays take 2 waves: utilisation 9/16.
    op = gemm(512, 9 * 128, 128)
    t = op_time_terms([op], TRN2, profile()).compute_s[0]
    assert t == pytest.approx(op.flops / (667e12 * 0.8 * 9 / 16), rel=1e-12)


def test_cpu_ramp_gemm_of_half_flops_runs_at_half_efficiency() -> None:
    op = gemm(64, 64, 64)
    p = profile(gemm_efficiency={"fp32": 0.6}, gemm_half_flops=op.flops)
    t = op_time_terms([replace(op, dtype="fp32")], CPU, p).compute_s[0]
    assert t == pytest.approx(op.flops / (1e12 * 0.6 * 0.5), rel=1e-12)


def _attention(causal: bool, s: int, useful: float | None = None) -> Op:
    flops = 4.0 * 2 * 32 * s * s * 128  # QK^T and PV: 2 GEMMs of 2*b*h*s*s*d FLOPs each
    return Op(
        name="attn",
        kind="attention",
        phase="forward",
        flops=flops,
        bytes_read=0.0,
        bytes_written=0.0,
        dims={"batch": 2, "heads": 32, "kv_heads": 8, "q_len": s, "kv_len": s, "head_dim": 128},
        causal=causal,
        useful_flops=useful,
    )


def test_causal_attention_costs_the_unmasked_share_of_the_scores() -> None:
    s = 4096
    p = profile()
    full, causal = op_times_s([_attention(False, s), _attention(True, s)], H100, p)
    assert full == pytest.approx(_attention(False, s).flops / (989e12 * 0.8 * 0.7), rel=1e-12)
    # Row i of a causal s x s mask keeps i+1 entries: s(s+1)/2 of s^2.
    assert causal / full == pytest.approx((s + 1) / (2 * s), rel=1e-12)


def test_attention_uses_useful_flops_when_the_graph_gives_them() -> None:
    op = _attention(True, 2048, useful=1e11)
    assert op_times_s([op], H100, profile())[0] == pytest.approx(1e11 / (989e12 * 0.8 * 0.7), rel=1e-12)


def test_fp8_uses_fp8_peak_and_falls_back_to_the_bf16_fraction() -> None:
    op = gemm(132 * 128, 16384, 8192, dtype="fp8")
    t = op_time_terms([op], H100, profile()).compute_s[0]
    assert t == pytest.approx(op.flops / (1979e12 * 0.8), rel=1e-12)
    with_fp8 = profile(gemm_efficiency={"bf16": 0.8, "fp8": 0.7})
    assert op_time_terms([op], H100, with_fp8).compute_s[0] == pytest.approx(op.flops / (1979e12 * 0.7))


def test_precision_the_chip_lacks_is_an_input_error() -> None:
    with pytest.raises(InputError, match="precision"):
        op_times_s([gemm(128, 128, 128, dtype="fp4")], H100, profile())


def test_ops_time_multiplies_by_count_and_breakdown_adds_up() -> None:
    ops = [
        gemm(4096, 4096, 4096, count=3),
        Op(name="n", kind="norm", phase="forward", flops=0.0, bytes_read=1e9, bytes_written=1e9, count=2),
        _attention(True, 2048),
    ]
    p = profile(op_overhead_s=1e-5)
    per_op = op_times_s(ops, H100, p)
    total = ops_time_s(ops, H100, p)
    assert total == pytest.approx(3 * per_op[0] + 2 * per_op[1] + per_op[2], rel=1e-12)
    parts = time_breakdown(ops, H100, p)
    assert parts["gemm"] == pytest.approx(3 * per_op[0])
    assert parts["norm"] == pytest.approx(2 * per_op[1])
    assert parts["gemm"] + parts["norm"] + parts["attention"] == pytest.approx(parts["total"])
    assert parts["memory_bound"] == pytest.approx(2 * per_op[1])
    assert parts["compute_bound"] + parts["memory_bound"] == pytest.approx(total)
    assert parts["overhead"] == pytest.approx(6 * 1e-5)


def test_empty_op_list_costs_nothing() -> None:
    assert ops_time_s([], H100, profile()) == 0.0
    assert time_breakdown([], H100, profile())["total"] == 0.0


def test_gemm_without_shape_is_charged_its_flops() -> None:
    op = Op(name="g", kind="gemm", phase="forward", flops=1e12, bytes_read=0.0, bytes_written=0.0)
    assert op_times_s([op], H100, profile())[0] == pytest.approx(1e12 / (989e12 * 0.8))
    assert math.isfinite(op_times_s([op], TRN2, profile())[0])


def test_public_surface_is_sorted_and_resolves() -> None:
    import twofold.cost as cost

    assert cost.__all__ == sorted(cost.__all__)
    assert all(getattr(cost, name) is not None for name in cost.__all__)
