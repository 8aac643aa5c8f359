"""Operators: the unit every cost model prices.

A workload (model + training step or inference phase + batch + sequence + precision + shard) is
expanded by `workload.graph` into a tuple of `Op`s. Each carries its shape, FLOPs, and bytes moved
between HBM and the chip for one execution, and `count`, how many times it runs per step (e.g. once
per layer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["EXPERT_GEMM_PREFIX", "Op", "OpKind", "Phase"]

# Name prefix of the routed-expert GEMMs of MoE layers (`workload.layers`; backward ops append
# .dgrad/.wgrad, casts .cast): what the grouped-GEMM calibration and the grouped casts apply to.
EXPERT_GEMM_PREFIX = "layer.moe.experts."

OpKind = Literal[
    "gemm",  # dims: m, n, k (and optional batch): [batch x] (m x k) @ (k x n)
    "attention",  # dims: batch, heads, kv_heads, q_len, kv_len, head_dim, (v_head_dim); flags: causal
    # dims: batch, in_channels, out_channels, out_h, out_w, kernel_h, kernel_w, groups, role
    # (0 forward, 1 input gradient, 2 weight gradient); as GEMMs: workload.imported.conv_as_gemm
    "conv",
    "norm",
    "elementwise",  # activations, residual adds, rope, dropout, scaling
    "embedding",
    "softmax",
    "loss",
    "router",  # MoE top-k selection / scatter / gather (not the router GEMM, which is a gemm)
    "optimizer",
]
Phase = Literal["forward", "backward", "recompute", "optimizer"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Op:
    """One operator execution; `count` executions per step."""

    name: str  # dotted: "layer.attn.qkv", "lm_head", "optimizer.adamw"
    kind: OpKind
    phase: Phase
    flops: float  # per execution (a multiply-add counts 2)
    bytes_read: float  # per execution, from HBM
    bytes_written: float  # per execution, to HBM
    count: int = 1
    dims: Mapping[str, int] = field(default_factory=dict)
    dtype: str = "bf16"  # compute precision of the op
    causal: bool = False
    # FLOPs that contribute to the output when masking lets a kernel skip work (causal or sliding-window
    # attention: about half of `flops`); None = all of `flops`. `flops` itself counts what PyTorch's
    # FlopCounterMode counts (full score matrix).
    useful_flops: float | None = None
    # When the stack runs framework primitives one by one (eager, no hand-fused kernels: Hugging
    # Face-style models in plain PyTorch, `cost.stack` `fused_elementwise: false`), a memory-bound
    # op is several kernels and moves more than the fused kernel `bytes_read`/`bytes_written`
    # describe: `unfused_traffic` times the bytes in `unfused_kernels` launches (derivations where
    # `workload.layers` builds the op). 1 and 1 for ops that are one kernel either way.
    unfused_traffic: float = 1.0
    unfused_kernels: int = 1

    @property
    def total_flops(self) -> float:
        return self.flops * self.count

    @property
    def total_bytes(self) -> float:
        return (self.bytes_read + self.bytes_written) * self.count
