"""GEMM work as the hardware executes it: padded FLOPs on GPUs and systolic arrays.

A GEMM `[batch x] (m x k) @ (k x n)` performs F = 2*batch*m*n*k useful FLOPs, but a chip executes
whole tiles, whole waves of tiles and whole array passes. Each function here returns the padded
FLOPs F_pad >= F that the chip spends; the cost model then charges
t = (F_pad + F_half) / (peak * gemm_efficiency). `gemm_efficiency` is what a chip reaches on its
best-shaped GEMMs (the MAMF rows), so every mechanism is normalised to cost nothing on such shapes:
F_pad == F whenever the dimensions divide the tiles and the tiles fill whole waves.

All functions are vectorised over NumPy arrays of ops (float64 arrays of equal shape).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "SKINNY_GEMM_ROWS",
    "gpu_padded_flops",
    "ramp_flops",
    "skinny_padded_flops",
    "systolic_padded_flops",
]

# Rows (tokens, m) below which a GPU GEMM is priced as a GEMV / split-K kernel by serving
# profiles (`skinny_padded_flops`): useful FLOPs, no padding of m to a tile nor of tiles to a wave.
# Why: with few rows the arithmetic intensity 2mnk / (2nk bytes) ~ m FLOP/byte is far below the
# ridge point of every GPU (H100 bf16: ~990 TFLOP/s / 3.35 TB/s ~ 300), so the kernel streams the
# weight at bandwidth whatever the tile; libraries dispatch kernels that keep every SM busy on such
# shapes (cuBLAS GEMV and split-K heuristics; CUTLASS `GemmSplitKParallel` and stream-K, Osama et
# al., "Stream-K", PPoPP 2023, arXiv 2301.03598; TensorRT-LLM's CUDA-core GEMM for decode batches).
# 64: below it every candidate tile (`cost.profile.gemm_tiles`, 128 rows high) would be more than
# half padding. An assumption anchored on those kernels, not a measured crossover.
SKINNY_GEMM_ROWS = 64


def _ceil_div(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    return np.ceil(a / b)


def gpu_padded_flops(
    m: np.ndarray,
    n: np.ndarray,
    k: np.ndarray,
    batch: np.ndarray,
    *,
    sms: int,
    tiles: Sequence[tuple[int, int]],
) -> np.ndarray:
    """Padded FLOPs of a GEMM on a GPU: tile quantization and wave quantization.

    Derivation (NVIDIA, "Matrix Multiplication Background User's Guide", sections "Tile
    Quantization" and "Wave Quantization",
    https://docs.nvidia.com/deeplearning/performance/dl-performance-matrix-multiplication/):
    the output is cut into tiles of tm x tn, one thread block per tile, so
    `tiles = batch * ceil(m/tm) * ceil(n/tn)`; the SMs run them in `waves = ceil(tiles/SMs)`,
    and every wave lasts as long as one full tile, busy or not. The chip therefore spends
    `F_pad = waves * SMs * tm * tn * 2k`, and utilisation is `F / F_pad =
    batch*m*n / (waves * SMs * tm * tn)`. The library picks the tile per shape; we charge the
    candidate with the least padded work (cuBLAS heuristics approximate this).

    Left out: padding of k to the MMA instruction depth and alignment rules (k is taken as is);
    split-K and stream-K kernels that rebalance partial waves; tile-size-dependent efficiency
    (a 64x64 tile reuses data less than 256x128); L2 effects. These are what the calibrated
    `gemm_efficiency` and `gemm_half_flops` absorb.
    """
    sms = max(int(sms), 1)
    best = np.full(m.shape, np.inf)
    for tm, tn in tiles:
        n_tiles = batch * _ceil_div(m, tm) * _ceil_div(n, tn)
        waves = _ceil_div(n_tiles, sms)
        best = np.minimum(best, waves * sms * tm * tn * 2.0 * k)
    return best


def skinny_padded_flops(m: np.ndarray, n: np.ndarray, k: np.ndarray, batch: np.ndarray) -> np.ndarray:
    """Padded FLOPs of a GEMM run by a GEMV, split-K or stream-K kernel (serving's decode GEMMs).

    Derivation: below `SKINNY_GEMM_ROWS` rows the kernel is a GEMV or split-K GEMM that spreads the
    k dimension over every SM, so it spends the useful F = 2*batch*m*n*k (no tile, no wave). From
    64 rows on, m is padded to 64-row tiles and n to 128 columns (the Hopper wgmma tile is 64 rows
    high; NVIDIA, "CUDA C++ Programming Guide", warpgroup MMA) but the tiles are not quantized into
    waves: split-K and stream-K (Osama et al., arXiv 2301.03598) hand each SM an equal share of the
    k-iterations. `cost.roofline` takes the least of this and `gpu_padded_flops` for serving
    profiles only (`extra["serving_gemm_kernels"]`), so training figures are unchanged.

    Left out: the partial-sum reduction of split-K (a write and read of m x n per split, small
    beside the weight at decode sizes); fewer rows than the kernel's minimum MMA height (8 or 16)
    still spend the useful FLOPs only, since such kernels are bandwidth-bound anyway.
    """
    tile = np.ceil(m / SKINNY_GEMM_ROWS) * SKINNY_GEMM_ROWS * np.ceil(n / 128.0) * 128.0
    padded = batch * tile * 2.0 * k
    return np.asarray(np.where(m < SKINNY_GEMM_ROWS, 2.0 * batch * m * n * k, padded))


def systolic_padded_flops(
    m: np.ndarray,
    n: np.ndarray,
    k: np.ndarray,
    batch: np.ndarray,
    *,
    array_dim: int,
    units: int,
    moving_tile: int,
) -> np.ndarray:
    """Padded FLOPs of a GEMM on systolic arrays (Trainium TensorE, TPU MXU).

    Derivation: an A x A weight-stationary array holds an A (contracting, k) x A (stationary, n)
    block of the weights and streams the moving operand (m rows) through it; one pass of
    `m_p <= moving_tile` rows takes `m_p + A` cycles (A cycles to fill and drain the pipeline), and
    does 2*A*A*m_p FLOPs when full. So k and n are padded to multiples of A, and m pays A extra
    cycles per pass. Work items are (n block, m pass) pairs, `tiles = batch * ceil(n/A) *
    ceil(m/moving_tile)`, each accumulating over `ceil(k/A)` weight blocks; they are spread over
    the `units` arrays of the chip in `waves = ceil(tiles/units)`, each wave as long as its longest
    pass, `min(m, moving_tile) + A` cycles per weight block. With a peak of `units * 2A^2` FLOPs
    per cycle:

        F_pad = waves * units * ceil(k/A) * (min(m, T) + A) * 2A^2 * T / (T + A),    T = moving_tile

    The last factor normalises fill/drain to the best shape (m a multiple of T): measured
    efficiencies (`gemm_efficiency`) already include the A cycles per full pass, so on
    well-shaped GEMMs F_pad == F and only worse shapes pay more. The NKI ISA documents the
    128 x 128 TensorE, the 128-row stationary limit and the 512-column moving limit
    (AWS Neuron "NKI Trainium/Inferentia2 Architecture Guide" and `nki.isa.nc_matmul`,
    https://awsdocs-neuron.readthedocs-hosted.com/); T = 512 on TPUs is an assumption.

    Left out: overlap of one pass's drain with the next pass's fill (if hardware overlaps them,
    small-m GEMMs are charged too much); weight-load time of the stationary block; splitting k
    across arrays; the Vector/Scalar engines that evacuate PSUM.
    """
    a = float(array_dim)
    t = float(moving_tile)
    units = max(int(units), 1)
    n_tiles = batch * _ceil_div(n, a) * _ceil_div(m, t)
    waves = _ceil_div(n_tiles, units)
    return np.asarray(waves * units * _ceil_div(k, a) * (np.minimum(m, t) + a) * 2.0 * a * a * t / (t + a))


def ramp_flops(padded_flops: np.ndarray, half_flops: float) -> np.ndarray:
    """Small-GEMM ramp: work plus a fixed start-up equivalent to `half_flops` FLOPs.

    The profile's ramp eff(F) = eff_max * F / (F + F_half) (a GEMM of F_half FLOPs reaches half of
    the large-GEMM efficiency) is the same as charging F + F_half FLOPs at eff_max: a fixed
    start-up time F_half / (peak * eff_max) per GEMM (pipeline fill, too few threads, per-call
    setup). Applied to the padded work so that time stays monotone in every dimension. Citation:
    the classic "half-performance length" n_1/2 of Hockney and Jesshope, "Parallel Computers 2"
    (1988). Left out: any shape dependence of the start-up beyond its size.
    """
    return padded_flops + max(float(half_flops), 0.0)
