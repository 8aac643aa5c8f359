"""Time of each operator on one chip: a roofline with architecture-aware GEMM efficiency.

For one execution of an op:

    t = max(t_compute, t_memory) + op_overhead_s
    t_memory  = (bytes_read + bytes_written) / (hbm_bandwidth * memory_efficiency
                                                 [* memory_bound_efficiency for memory-bound kinds])
    t_compute = GEMM:       (F_pad + gemm_half_flops) / (peak(dtype) * gemm_efficiency(dtype))
                attention:  useful flops / (peak(dtype) * gemm_efficiency * attention_efficiency
                                            [* attention_backward_ratio for the backward]),
                            useful = op.useful_flops, or flops * causal_fraction if causal
                other kinds: 0 (memory-bound: norms, elementwise, softmax, embedding, loss, router,
                             optimizer)

The roofline is Williams, Waterman and Patterson, "Roofline: an insightful visual performance model
for multicore architectures", CACM 52(4), 2009. F_pad (padded FLOPs) is in `cost.gemm`. Taking
the max assumes compute and memory traffic overlap perfectly inside a kernel; the fixed overhead
(launch, instruction issue, synchronisation) does not overlap with either.

`memory_bound_efficiency` (`profile.extra`, default 1; the training calibration sets it, see
`cost.calibration`) scales the bandwidth of the memory-bound kinds only (norms, elementwise,
softmax, embedding, loss, router, optimizer: unfused kernels make extra passes over their tensors),
not the weight/activation streaming of GEMMs and attention. `expert_gemm_efficiency` (same place,
default 1) divides the compute term of the routed-expert GEMMs (`layer.moe.experts.*`, run as a
grouped GEMM in Megatron-Core; `cost.calibration` gives the mechanism and its citation); their
memory term and every other GEMM are unchanged. `serving_gemm_kernels` (same place, set by
`estimate.inference`) prices GPU GEMMs at the least of the tiled work and the GEMV / split-K /
stream-K work (`cost.gemm.skinny_padded_flops`): decode GEMMs of a few rows are not padded to tiles
and waves.

Left out: vector/scalar-engine throughput of memory-bound ops (on Trainium the Vector and Scalar
engines, on GPUs the CUDA cores, can bound norms and softmax before HBM does); caches and on-chip
reuse across ops (fusion); clock throttling under power limits; overlap of consecutive kernels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from twofold.cost.calibration import EXPERT_GEMM_PREFIX, MEMORY_BOUND_KINDS
from twofold.cost.defaults import profile_for
from twofold.cost.gemm import gpu_padded_flops, ramp_flops, skinny_padded_flops, systolic_padded_flops
from twofold.cost.profile import CalibrationProfile, gemm_efficiency
from twofold.errors import InputError
from twofold.hardware.types import Chip
from twofold.workload.ops import Op

# The fused attention backward runs at a lower fraction of peak than its forward: FlashAttention-2
# reaches up to 73% of A100's peak in the forward pass and up to 63% in the backward pass (Dao,
# "FlashAttention-2: Faster Attention with Better Parallelism and Work Partitioning", arXiv
# 2307.08691, section 4.1), a ratio of 0.63 / 0.73 = 0.86: the backward has more non-matmul work
# (recomputing P, dS) and atomic or split reductions for dQ. A profile may override it with
# `extra["attention_backward_ratio"]`. Left out: its dependence on head dimension and sequence length.
ATTENTION_BACKWARD_RATIO = 0.63 / 0.73

__all__ = ["OpTimeTerms", "op_time_terms", "op_times_s", "ops_time_s", "time_breakdown", "causal_fraction"]


@dataclass(frozen=True, kw_only=True, slots=True)
class OpTimeTerms:
    """Per-op seconds for ONE execution, split into its roofline terms (arrays aligned with ops)."""

    compute_s: np.ndarray
    memory_s: np.ndarray
    overhead_s: np.ndarray
    time_s: np.ndarray  # max(compute_s, memory_s) + overhead_s

    @property
    def compute_bound(self) -> np.ndarray:
        # An op with no compute term (a norm, or an empty op) counts as memory-bound.
        return (self.compute_s >= self.memory_s) & (self.compute_s > 0)


def causal_fraction(q_len: np.ndarray, kv_len: np.ndarray) -> np.ndarray:
    """Fraction of the q_len x kv_len score matrix a causal kernel computes.

    Query i (0-based) of the last q_len positions sees `kv_len - q_len + i + 1` keys (the mask is
    aligned to the bottom-right, as in decoding with a KV cache and in PyTorch's
    `scaled_dot_product_attention(is_causal=True)` when q_len == kv_len), so the computed share is
    `(q_len*(kv_len - q_len) + q_len*(q_len+1)/2) / (q_len*kv_len)`, about 1/2 for q_len == kv_len.
    FlashAttention skips fully masked blocks (Dao, "FlashAttention-2", 2023, sec. 3.1), so its time
    follows this share, while `FlopCounterMode` (and hence `Op.flops`) counts the full matrix.
    Left out: the partly masked diagonal blocks, which a kernel computes in full (an extra ~block/
    (2*kv_len) of the work).
    """
    q = np.maximum(q_len, 1.0)
    kv = np.maximum(kv_len, q)
    return np.asarray((q * (kv - q) + q * (q + 1.0) / 2.0) / (q * kv))


def _or_nan(value: float | None) -> float:
    return np.nan if value is None else float(value)


def _attention_flops(ops: Sequence[Op]) -> np.ndarray:
    """FLOPs an attention kernel spends: `op.useful_flops` where the graph gives it (causal or
    sliding-window masks), else `flops * causal_fraction` for causal ops, else `flops`."""
    flops = np.array([op.flops for op in ops], dtype=float)
    useful = np.array([_or_nan(getattr(op, "useful_flops", None)) for op in ops], dtype=float)
    causal = np.array([op.causal for op in ops], dtype=bool)
    share = causal_fraction(_dim(ops, "q_len", 1.0), _dim(ops, "kv_len", 1.0))
    from_mask = np.where(causal, flops * share, flops)
    return np.where(np.isnan(useful), from_mask, np.minimum(useful, flops))


def _dim(ops: Sequence[Op], name: str, default: float) -> np.ndarray:
    return np.array([float(op.dims.get(name, default)) for op in ops], dtype=float)


def _peaks_flops_per_s(
    ops: Sequence[Op], chip: Chip, profile: CalibrationProfile, mask: np.ndarray
) -> np.ndarray:
    """Achievable FLOP/s (peak(dtype) * gemm_efficiency(dtype)) for the ops in `mask`, else nan."""
    rates = np.full(len(ops), np.nan)
    cache: dict[str, float] = {}
    for i in np.flatnonzero(mask):
        dtype = ops[int(i)].dtype
        if dtype not in cache:
            cache[dtype] = chip.peak_tflops(dtype) * 1e12 * gemm_efficiency(profile, dtype)
        rates[i] = cache[dtype]
    return rates


def _kernel_rates(ops: Sequence[Op], chip: Chip, profile: CalibrationProfile) -> np.ndarray:
    """FLOP/s of the stack's attention kernel for each attention op (`cost.attention`: its published
    speed by pass, mask, head dimension and key length, as a fraction of the 16-bit dense peak),
    times `extra["attention_kernel_factor"]`; nan where the kernel has no table (or the op runs in
    another precision than 16-bit), which keeps the profile's constant attention efficiency."""
    out = np.full(len(ops), np.nan)
    kernel = profile.attention_kernel
    if kernel is None:
        return out
    from twofold.cost.attention import attention_fraction

    factor = float(profile.extra.get("attention_kernel_factor", 1.0))
    try:
        peak = chip.peak_tflops("bf16") * 1e12
    except InputError:
        return out
    for i, op in enumerate(ops):
        if op.dtype not in ("bf16", "fp16", "fp8", "mxfp8", "fp4"):
            continue
        q_len = float(op.dims.get("q_len", 1.0))
        if q_len < 16:  # decode steps: not what the training kernel tables measure
            continue
        fraction = attention_fraction(
            kernel,
            profile.attention_family,
            op.phase,
            bool(op.causal),
            float(op.dims.get("head_dim", 128.0)),
            float(op.dims.get("kv_len", q_len)),
        )
        if fraction is not None:
            out[i] = peak * fraction * factor
    return out


def _gemm_compute_flops(
    ops: Sequence[Op], chip: Chip, profile: CalibrationProfile, idx: np.ndarray
) -> np.ndarray:
    """Padded + ramp FLOPs for the GEMMs at `idx` (ops without m/n/k dims are charged their flops)."""
    sub = [ops[i] for i in idx]
    flops = np.array([op.flops for op in sub], dtype=float)
    m, n, k = (_dim(sub, d, 0.0) for d in ("m", "n", "k"))
    batch = _dim(sub, "batch", 1.0)
    has_shape = (m > 0) & (n > 0) & (k > 0)
    padded = flops.copy()
    if chip.architecture == "gpu":
        padded = gpu_padded_flops(m, n, k, batch, sms=chip.compute_units or 1, tiles=profile.gemm_tiles)
        if profile.extra.get("serving_gemm_kernels"):  # GEMV / split-K / stream-K (cost.gemm)
            padded = np.minimum(padded, skinny_padded_flops(m, n, k, batch))
    elif chip.architecture == "systolic" and chip.systolic_array_dim:
        units = chip.matrix_units or chip.compute_units or 1
        padded = systolic_padded_flops(
            m,
            n,
            k,
            batch,
            array_dim=chip.systolic_array_dim,
            units=units,
            moving_tile=profile.systolic_moving_tile,
        )
    # Padded work is never less than the useful work the op declares (e.g. a graph that counts a
    # GEMM's flops differently from 2*batch*m*n*k).
    padded = np.where(has_shape, np.maximum(padded, flops), flops)
    return np.where(flops > 0, ramp_flops(padded, profile.gemm_half_flops), 0.0)


def op_time_terms(ops: Sequence[Op], chip: Chip, profile: CalibrationProfile | None = None) -> OpTimeTerms:
    """Roofline terms of one execution of each op (see the module docstring for the model)."""
    profile = profile if profile is not None else profile_for(chip)
    count = len(ops)
    kinds = np.array([op.kind for op in ops], dtype=object)
    is_gemm = kinds == "gemm"
    is_attention = kinds == "attention"
    rates = _peaks_flops_per_s(ops, chip, profile, is_gemm | is_attention)

    compute_s = np.zeros(count)
    gemm_idx = np.flatnonzero(is_gemm)
    if gemm_idx.size:
        compute_s[gemm_idx] = _gemm_compute_flops(ops, chip, profile, gemm_idx) / rates[gemm_idx]
        expert = float(profile.extra.get("expert_gemm_efficiency", 1.0))
        if expert != 1.0:
            grouped = np.array(
                [ops[int(i)].name.startswith(EXPERT_GEMM_PREFIX) for i in gemm_idx], dtype=np.bool_
            )
            compute_s[gemm_idx[grouped]] /= expert
    attn_idx = np.flatnonzero(is_attention)
    if attn_idx.size:
        sub = [ops[int(i)] for i in attn_idx]
        bwd_ratio = float(profile.extra.get("attention_backward_ratio", ATTENTION_BACKWARD_RATIO))
        eff = (
            np.array([bwd_ratio if op.phase == "backward" else 1.0 for op in sub])
            * profile.attention_efficiency
        )
        useful = _attention_flops(sub)
        compute_s[attn_idx] = useful / (rates[attn_idx] * eff)
        kernel_rates = _kernel_rates(sub, chip, profile)
        measured = ~np.isnan(kernel_rates)
        compute_s[attn_idx[measured]] = useful[measured] / kernel_rates[measured]
    conv_idx = np.flatnonzero(kinds == "conv")  # implicit GEMM (cost.conv)
    if conv_idx.size:
        from twofold.cost.conv import conv_compute_s

        conv_rates = _peaks_flops_per_s(ops, chip, profile, kinds == "conv")[conv_idx]
        compute_s[conv_idx] = conv_compute_s(ops, chip, profile, conv_idx, conv_rates)

    moved = np.array([op.bytes_read + op.bytes_written for op in ops], dtype=float)
    unfused = bool(profile.extra.get("unfused_elementwise", 0.0))
    if unfused:
        # Framework primitives one by one (`Op.unfused_traffic`; `cost.stack` fused_elementwise).
        moved = moved * np.array([op.unfused_traffic for op in ops], dtype=float)
    bandwidth = chip.hbm_bandwidth_bytes_per_s * profile.memory_efficiency
    elementwise = float(profile.extra.get("memory_bound_efficiency", 1.0))
    if elementwise != 1.0:
        slow = np.array([op.kind in MEMORY_BOUND_KINDS for op in ops], dtype=bool)
        memory_s = moved / (bandwidth * np.where(slow, elementwise, 1.0))
    else:
        memory_s = moved / bandwidth
    overhead_s = np.full(count, float(profile.op_overhead_s))
    if unfused:
        overhead_s = overhead_s * np.array([op.unfused_kernels for op in ops], dtype=float)
    amax = float(profile.extra.get("cast_amax_pass", 0.0))
    if amax:
        # Dynamic FP8 scaling (torchao Float8Linear, TE current scaling): the amax of each tensor is
        # reduced before it is cast, one more read of the BF16 input and, in eager mode, one more
        # kernel (`cost.stack` fp8_recipe; TE delayed scaling takes the scale from the amax history).
        cast = np.array([op.name.endswith(".cast") for op in ops], dtype=bool)
        read = np.array([op.bytes_read for op in ops], dtype=float)
        memory_s = np.where(cast, memory_s + amax * read / bandwidth, memory_s)
        overhead_s = np.where(cast, overhead_s * 2.0, overhead_s)
    time_s = np.maximum(compute_s, memory_s) + overhead_s
    return OpTimeTerms(compute_s=compute_s, memory_s=memory_s, overhead_s=overhead_s, time_s=time_s)


def op_times_s(ops: Sequence[Op], chip: Chip, profile: CalibrationProfile | None = None) -> np.ndarray:
    """Seconds for ONE execution of each op (multiply by `op.count` for the step)."""
    return op_time_terms(ops, chip, profile).time_s


def ops_time_s(ops: Sequence[Op], chip: Chip, profile: CalibrationProfile | None = None) -> float:
    """Seconds for all executions of all ops, run one after another: sum(time * count)."""
    counts = np.array([op.count for op in ops], dtype=float)
    return float(np.dot(op_times_s(ops, chip, profile), counts)) if len(ops) else 0.0


def time_breakdown(
    ops: Sequence[Op], chip: Chip, profile: CalibrationProfile | None = None
) -> dict[str, float]:
    """Seconds per step (time * count) by op kind, plus the split by bound.

    Keys: every op kind present; `compute_bound` and `memory_bound` (ops whose compute term is
    >= / < their memory term); `overhead` (the fixed per-op part, already inside the others);
    `total`. Kind entries sum to `total`, and so do `compute_bound` + `memory_bound`.
    """
    terms = op_time_terms(ops, chip, profile)
    counts = np.array([op.count for op in ops], dtype=float)
    step = terms.time_s * counts
    out: dict[str, float] = {}
    for op, seconds in zip(ops, step, strict=True):
        out[op.kind] = out.get(op.kind, 0.0) + float(seconds)
    out["compute_bound"] = float(step[terms.compute_bound].sum())
    out["memory_bound"] = float(step[~terms.compute_bound].sum())
    out["overhead"] = float((terms.overhead_s * counts).sum())
    out["total"] = float(step.sum())
    return out
