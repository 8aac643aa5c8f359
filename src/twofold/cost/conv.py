"""Convolution compute time: the implicit GEMM a convolution runs as, priced like any GEMM.

`workload.imported.conv_as_gemm(op)` maps each convolution pass (forward, input gradient, weight
gradient) to `groups` independent `(m x k) @ (k x n)` GEMMs (implicit GEMM: Chetlur et al. 2014,
"cuDNN: Efficient Primitives for Deep Learning", arXiv 1410.0759, section 3; NVIDIA CUTLASS,
"Implicit GEMM Convolution", https://github.com/NVIDIA/cutlass/blob/main/media/docs/implicit_gemm_convolution.md).
The groups run as one batched GEMM, so the padded work is that of `cost.gemm` with
`batch = groups`: tile and wave quantization on GPUs (`gpu_padded_flops`), array padding of the
contracting `k` and stationary `n` dimensions plus fill/drain on systolic arrays
(`systolic_padded_flops`; Trainium and TPUs lower convolutions to the same matmul with `k` =
C_in/g * kh * kw contracting), plus the profile's per-GEMM ramp (`ramp_flops`), at the chip's
GEMM rate (peak x `gemm_efficiency`):

    t_compute = ramp(F_pad(m, n, k, batch=groups)) / (peak * gemm_efficiency)

Convolutions whose GEMM has a dimension below `MIN_MATRIX_DIM` (depthwise: C_in/g = 1, so
k = kh*kw = 9 for 3x3, and n or m = 1 in the gradients) cannot use the matrix units: cuDNN runs
them as direct kernels on the CUDA cores, Neuron and XLA on the vector engines, where they are
memory-bound (arithmetic intensity of a few FLOPs per byte). They get no compute term here, and
the roofline prices them from their bytes.

Left out: the im2col/col2im traffic of explicit lowering (implicit GEMM never materialises it),
Winograd and FFT algorithms (fewer multiplies for 3x3 convolutions), the halo re-reads of the
input tile, and channel-last vs channel-first layout conversions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from twofold.cost.gemm import gpu_padded_flops, ramp_flops, systolic_padded_flops
from twofold.cost.profile import CalibrationProfile
from twofold.hardware.types import Chip
from twofold.workload.imported import conv_as_gemm
from twofold.workload.ops import Op

__all__ = ["MIN_MATRIX_DIM", "conv_compute_s"]

# The smallest GEMM dimension the matrix units take without padding it away: the k (and m) of
# NVIDIA's bf16 MMA instruction m16n8k16 (PTX ISA, "Matrix Shape" of mma.sync). Below it a
# convolution is priced as the memory-bound kernel it runs as.
MIN_MATRIX_DIM = 16


def conv_compute_s(
    ops: Sequence[Op], chip: Chip, profile: CalibrationProfile, idx: np.ndarray, rates: np.ndarray
) -> np.ndarray:
    """Compute seconds of the convolutions `ops[idx]` at `rates` FLOP/s (module docstring)."""
    shapes = [conv_as_gemm(ops[i]) for i in idx]
    m, n, k, groups = (np.array([s[d] for s in shapes], dtype=float) for d in ("m", "n", "k", "groups"))
    work = 2.0 * groups * m * n * k
    if chip.architecture == "gpu":
        padded = gpu_padded_flops(m, n, k, groups, sms=chip.compute_units or 1, tiles=profile.gemm_tiles)
    elif chip.architecture == "systolic" and chip.systolic_array_dim:
        padded = systolic_padded_flops(
            m,
            n,
            k,
            groups,
            array_dim=chip.systolic_array_dim,
            units=chip.matrix_units or chip.compute_units or 1,
            moving_tile=profile.systolic_moving_tile,
        )
    else:
        padded = work
    padded = np.maximum(padded, work)
    matrix = np.minimum(np.minimum(m, n), k) >= MIN_MATRIX_DIM
    return np.where(matrix & (work > 0), ramp_flops(padded, profile.gemm_half_flops) / rates, 0.0)
