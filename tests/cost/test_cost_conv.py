"""Convolution pricing (`cost.conv`, via the roofline's dispatch) against hand derivations of the
implicit GEMM (Chetlur et al. 2014, cuDNN, section 3) on a GPU and a systolic array."""

from __future__ import annotations

import pytest
from cost_fixtures import H100, TRN2, gemm, profile

from twofold.cost import op_time_terms
from twofold.workload.imported import conv_op


def conv(
    *, batch: int, c_in: int, c_out: int, out: tuple[int, int], kernel: int, groups: int = 1, role: int = 0
) -> object:
    x = batch * c_in * (out[0] * out[1]) * 2.0  # same-padded, stride 1: input as large as output
    w = c_out * (c_in // groups) * kernel * kernel * 2.0
    y = batch * c_out * out[0] * out[1] * 2.0
    return conv_op(
        "conv",
        phase="forward",
        role=role,
        batch=batch,
        in_channels=c_in,
        out_channels=c_out,
        out_spatial=out,
        kernel=(kernel, kernel),
        groups=groups,
        dtype="bf16",
        bytes_read=x + w,
        bytes_written=y,
    )


def test_gpu_forward_conv_fills_one_wave_of_tiles() -> None:
    # 33 images x 32x16 outputs: m = 16,896 = 132 x 128, n = C_out = 128, k = 64 x 3 x 3 = 576.
    # 128x128 tiles: 132 tiles = one full wave on 132 SMs, so the padded work is the work:
    # t = 2 m n k / (989e12 x 0.8).
    op = conv(batch=33, c_in=64, c_out=128, out=(32, 16), kernel=3)
    terms = op_time_terms([op], H100, profile())
    expected = 2 * 16896 * 128 * 576 / (989e12 * 0.8)
    assert terms.compute_s[0] == pytest.approx(expected, rel=1e-12)
    assert terms.compute_bound[0]


def test_grouped_conv_costs_its_batched_gemm() -> None:
    # groups = 4: four GEMMs of m = 8 x 28 x 28, n = 256/4, k = 256/4 x 3 x 3, run as one batch.
    op = conv(batch=8, c_in=256, c_out=256, out=(28, 28), kernel=3, groups=4)
    twin = gemm(8 * 28 * 28, 64, 64 * 9, batch=4)
    got = op_time_terms([op, twin], H100, profile()).compute_s
    assert got[0] == pytest.approx(got[1], rel=1e-12)


@pytest.mark.parametrize("role", [0, 1, 2])
def test_depthwise_conv_is_priced_from_its_bytes(role: int) -> None:
    # Depthwise 3x3: per group C_in = C_out = 1, so k = 9 (forward), k = 1 (input gradient),
    # m = 1 (weight gradient): no matrix unit; the time is the traffic over 0.9 x 3.35 TB/s.
    op = conv(batch=16, c_in=96, c_out=96, out=(56, 56), kernel=3, groups=96, role=role)
    terms = op_time_terms([op], H100, profile())
    assert terms.compute_s[0] == 0.0
    moved = op.bytes_read + op.bytes_written
    assert terms.time_s[0] == pytest.approx(moved / (3.35e12 * 0.9), rel=1e-12)


def test_systolic_conv_pads_the_contracting_dimension_to_the_array() -> None:
    # Trainium2-like: 8 arrays of 128 x 128, moving tile 512. m = 4 x 32 x 32 = 4096 rows,
    # n = 128. The stem's k = 3 x 3 x 3 = 27 is padded to one 128-deep pass, so the work charged
    # is 128/27 of the useful work: F_pad = 8 tiles (1 wave on 8 units) x 1 k-block x
    # (512 + 128) cycles x 2 x 128^2 x 512/640 = 2 x 4096 x 128 x 128.
    stem = conv(batch=4, c_in=3, c_out=128, out=(32, 32), kernel=3)
    wide = conv(batch=4, c_in=128, c_out=128, out=(32, 32), kernel=3)  # k = 1152 = 9 x 128
    got = op_time_terms([stem, wide], TRN2, profile()).compute_s
    rate = 667e12 * 0.8
    assert got[0] == pytest.approx(2 * 4096 * 128 * 128 / rate, rel=1e-12)
    assert got[1] == pytest.approx(2 * 4096 * 128 * 1152 / rate, rel=1e-12)
