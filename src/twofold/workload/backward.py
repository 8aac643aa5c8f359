"""The training-only ops derived from a forward graph: each op's backward (`backward_ops`) and the
quantization cast in front of each low-precision GEMM (`with_casts`). `workload.graph` builds the
forward and calls these; FLOP and byte conventions as in `workload.layers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from twofold.workload.layers import Plan
from twofold.workload.ops import EXPERT_GEMM_PREFIX, Op

__all__ = ["CE_BACKWARD_FP32_READS", "CE_BACKWARD_FP32_WRITES", "backward_ops", "with_casts"]

# Bytes per logit of the backward of Megatron-Core's vocab-parallel cross-entropy
# (`workload.graph._cross_entropy` derives them): fp32 passes on top of writing the logits'
# gradient once.
CE_BACKWARD_FP32_READS, CE_BACKWARD_FP32_WRITES = 2, 1


def with_casts(ops: Sequence[Op], plan: Plan) -> tuple[Op, ...]:
    """Insert the quantization kernel of each low-precision GEMM's activation input before it.

    Transformer Engine's FP8/MXFP8 recipes (NVIDIA Transformer Engine documentation, "Using FP8
    with Transformer Engine"; Micikevicius et al., "FP8 Formats for Deep Learning", arXiv
    2209.05433) keep activations in BF16 and cast each GEMM input to FP8 (computing its amax or
    block scales) just before the GEMM: one pass reading the BF16 tensor and writing the FP8 one
    (`m*k` elements). The op's backward (`backward_ops`, 2x the traffic) stands for the cast of the
    output gradient that feeds the dgrad and wgrad GEMMs. Left out: casts fused into the preceding
    norm or activation kernel (TE's LayerNormLinear does this for two of a layer's four GEMMs, so
    this overcounts them), the once-per-step cast of the weights, and amax-history bookkeeping.
    The routed experts of an MoE layer share one cast per GEMM name (see the comment below).
    """
    low = plan.gemm_act_bytes or 1.0
    # Routed-expert GEMMs: Transformer Engine's GroupedLinear quantizes the inputs of all of a
    # layer's local experts in one multi-tensor kernel (`fused_multi_cast_transpose` in TE 1.x,
    # `split_quantize` in TE 2.x), so their casts are one op per MoE layer over every expert's rows.
    grouped: dict[str, float] = {}
    for op in ops:
        if _is_expert_gemm(op, plan):
            grouped[op.name] = grouped.get(op.name, 0.0) + op.count * _input_elements(op)
    layers = max(plan.model.num_moe_layers, 1)
    out: list[Op] = []
    for op in ops:
        if op.kind == "gemm" and op.dtype == plan.gemm_dtype:
            elements, count = _input_elements(op), op.count
            if _is_expert_gemm(op, plan):
                if op.name not in grouped:
                    out.append(op)
                    continue  # this layer's experts of that name are already cast
                elements, count = grouped.pop(op.name) / layers, layers
            out.append(
                Op(
                    name=f"{op.name}.cast",
                    kind="elementwise",
                    phase="forward",
                    flops=float(elements),
                    bytes_read=elements * plan.act_bytes,
                    bytes_written=elements * low,
                    count=count,
                    dims={"elements": elements},  # type: ignore[dict-item]  # fractional per layer for grouped experts
                    dtype=plan.dtype,
                )
            )
        out.append(op)
    return tuple(out)


def _input_elements(op: Op) -> float:
    return op.dims.get("batch", 1) * op.dims["m"] * op.dims["k"]


def _is_expert_gemm(op: Op, plan: Plan) -> bool:
    return op.kind == "gemm" and op.dtype == plan.gemm_dtype and op.name.startswith(EXPERT_GEMM_PREFIX)


def backward_ops(
    op: Op, *, act_bytes: float, weight_bytes: float, gemm_act_bytes: float | None = None
) -> list[Op]:
    """The backward ops of one forward op.

    GEMM `Y = X W`: dgrad `dX = dY W^T` and wgrad `dW = X^T dY`, each as many FLOPs as the forward
    (FlopCounterMode counts both `mm`s; every GEMM input of a full model needs a gradient because
    the embedding is trained). Attention: FlopCounterMode's `sdpa_backward_flop_count`, the
    FlashAttention-2 backward (Dao 2023, arXiv 2307.08691, algorithm 2): recompute S = QK^T, then
    dP = dO V^T, dV = P^T dO, dQ = dS K, dK = dS^T Q: `2*b*h*q*kv*(3*d_qk + 2*d_v)` (2.5x the
    forward when d_qk = d_v); it reads Q, K, V, O, dO and writes dQ, dK, dV. Other ops: 2x the
    forward FLOPs, reading the saved input and the output gradient, writing the input gradient;
    the cross-entropy loss moves what `workload.graph._cross_entropy` derives (`CE_BACKWARD_*`).
    """
    if op.kind == "gemm":
        out_bytes, act_bytes = act_bytes, act_bytes if gemm_act_bytes is None else gemm_act_bytes
        d = op.dims
        m, n, k, b = d["m"], d["n"], d["k"], d.get("batch", 1)
        flops = 2.0 * b * m * n * k
        extra = {"batch": b} if b > 1 else {}
        return [
            Op(
                name=f"{op.name}.dgrad",
                kind="gemm",
                phase="backward",
                flops=flops,
                bytes_read=b * (m * n * act_bytes + k * n * weight_bytes),
                bytes_written=b * m * k * out_bytes,
                count=op.count,
                dims={"m": m, "n": k, "k": n} | extra,
                dtype=op.dtype,
            ),
            Op(
                name=f"{op.name}.wgrad",
                kind="gemm",
                phase="backward",
                flops=flops,
                bytes_read=b * (m * k + m * n) * act_bytes,
                bytes_written=b * k * n * weight_bytes,
                count=op.count,
                dims={"m": k, "n": n, "k": m} | extra,
                dtype=op.dtype,
            ),
        ]
    if op.kind == "attention":
        d = op.dims
        scale = (3 * d["head_dim"] + 2 * d["v_head_dim"]) / (d["head_dim"] + d["v_head_dim"])
        q_bytes = d["batch"] * d["q_len"] * d["heads"] * act_bytes
        kv_bytes = d["batch"] * d["kv_len"] * d["kv_heads"] * (d["head_dim"] + d["v_head_dim"]) * act_bytes
        return [
            replace(
                op,
                phase="backward",
                flops=op.flops * scale,
                useful_flops=None if op.useful_flops is None else op.useful_flops * scale,
                bytes_read=q_bytes * (d["head_dim"] + 2 * d["v_head_dim"]) + kv_bytes,
                bytes_written=q_bytes * d["head_dim"] + kv_bytes,
            )
        ]
    if op.kind == "loss" and "vocab" in op.dims:
        elements = op.dims["elements"]
        return [
            replace(
                op,
                phase="backward",
                flops=2 * op.flops,
                bytes_read=elements * CE_BACKWARD_FP32_READS * 4.0,
                bytes_written=elements * (CE_BACKWARD_FP32_WRITES * 4.0 + act_bytes),
            )
        ]
    return [
        replace(
            op,
            phase="backward",
            flops=2 * op.flops,
            bytes_read=op.bytes_read + op.bytes_written,
            bytes_written=op.bytes_read,
        )
    ]
