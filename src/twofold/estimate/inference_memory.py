"""Memory per chip of a serving layout (weights, KV cache, activations, headroom) and its capacity.

On the most loaded pipeline stage (ceil(L/pp) layers), per chip:
- weights: the stage's non-expert parameters / tp plus its routed experts / (tp * ep) (experts
  split over the ep groups, everything else replicated across them), plus the first stage's input
  embedding or the last stage's LM head and final norm (both when pp = 1; with tied embeddings and
  pp > 1 the last stage keeps its own copy), vocab-parallel over tp; every parameter in the
  weight precision (`workload.params.weight_bytes`' convention).
- KV cache: `batch / ep` sequences of input + output tokens (`estimate.kv`).
- activations: the transient working set of the prefill of one micro-batch (b sequences, the
  largest of the two phases): the residual stream `b * N * hidden` plus the largest operator's
  activation inputs and outputs (the caching allocator reuses the rest between operators).
  Linear in b, so computed once per sequence.
- headroom: `parallel.memory`'s WORKSPACE_FIXED_GIB (runtime context, collective buffers,
  workspaces) plus FRAGMENTATION_FRACTION of the allocated bytes: the same documented assumptions
  as training.

Left out: CUDA graphs / compiled Neuron graphs per batch size, the sampler's logits buffers, and
the paged allocator's block rounding.
"""

from __future__ import annotations

import math

import numpy as np

from twofold.estimate.inference_types import InferenceLayout, InferenceWorkload, micro_batches
from twofold.estimate.kv import kv_cache_bytes
from twofold.parallel.memory import FRAGMENTATION_FRACTION, WORKSPACE_FIXED_GIB, stage_params
from twofold.workload.graph import activation_bytes, prefill_ops
from twofold.workload.model import ModelConfig
from twofold.workload.ops import Op
from twofold.workload.params import param_counts
from twofold.workload.precision import bytes_per_element

__all__ = [
    "activation_bytes_per_sequence",
    "capacity",
    "memory_for_batches",
    "split_bytes",
    "weight_bytes_per_chip",
]

# Sequences per chip beyond which the capacity search stops (no memory is that large).
_MAX_SEQUENCES = 1 << 40


def split_bytes(op: Op, act_bytes: float, weight_bytes: float) -> tuple[float, float]:
    """(weight bytes, KV-cache bytes) one execution of `op` moves; the rest of its traffic is
    activations. GEMM weights are `batch*k*n` elements (`workload.layers.gemm`); the embedding
    reads table rows; attention reads the cached K/V (everything but its Q input) and the cache
    append writes them."""
    d = op.dims
    if op.kind == "gemm":
        return float(d.get("batch", 1) * d.get("k", 0) * d.get("n", 0) * weight_bytes), 0.0
    if op.kind == "embedding":
        return float(op.bytes_read), 0.0
    if op.kind == "attention":
        q = d.get("batch", 1) * d.get("q_len", 1) * d.get("heads", 0) * d.get("head_dim", 0) * act_bytes
        return 0.0, max(float(op.bytes_read) - q, 0.0)
    if op.name.endswith("kv_cache_write"):
        return 0.0, float(op.bytes_read + op.bytes_written)
    return 0.0, 0.0


def activation_bytes_per_sequence(
    model: ModelConfig, layout: InferenceLayout, workload: InferenceWorkload
) -> float:
    """Prefill working set of one sequence on one chip (module docstring): residual stream plus
    the largest operator's activation traffic."""
    ab = activation_bytes(workload.precision)
    wb = bytes_per_element(workload.weights, "weight_precision")
    ops = prefill_ops(
        model,
        batch=1,
        seq_len=workload.input_tokens,
        precision=workload.precision,
        kv_precision=workload.kv,
        weight_precision=workload.weights,
        tp=layout.tp,
        ep=layout.ep,
    )
    largest = 0.0
    for op in ops:
        w, kv = split_bytes(op, ab, wb)
        largest = max(largest, op.bytes_read + op.bytes_written - w - kv)
    return float(workload.input_tokens * model.hidden_size * ab + largest)


def weight_bytes_per_chip(model: ModelConfig, layout: InferenceLayout, weight_precision: str) -> float:
    """Weight bytes on one chip of the most loaded stage (module docstring)."""
    counts = param_counts(model)
    layers = math.ceil(model.num_layers / layout.pp)
    non_expert, experts = stage_params(counts, model, np.asarray(float(layers)))
    tied = counts.embedding if model.tie_word_embeddings else 0
    last = counts.lm_head + counts.final_norm + tied
    ends = (
        counts.embedding + counts.lm_head + counts.final_norm
        if layout.pp == 1
        else max(counts.embedding, last)
    )
    params = (float(non_expert) + ends) / layout.tp + float(experts) / (layout.tp * layout.ep)
    return params * bytes_per_element(weight_precision, "weight_precision")


def memory_for_batches(
    model: ModelConfig,
    layout: InferenceLayout,
    workload: InferenceWorkload,
    batch: np.ndarray,
    *,
    act_per_seq_bytes: float,
) -> dict[str, np.ndarray]:
    """Bytes per chip for each batch size (sequences per replica): weights, kv_cache, activations,
    headroom and total. `model` is the served (possibly padded) model."""
    batch = np.asarray(batch, dtype=float)
    _, b = micro_batches(batch, layout)
    weights = np.full_like(batch, weight_bytes_per_chip(model, layout, workload.weights))
    kv = kv_cache_bytes(
        model,
        workload.kv,
        context_len=workload.max_context_len,
        sequences=batch / layout.ep,
        tp=layout.tp,
        layers=math.ceil(model.num_layers / layout.pp),
    )
    act = b * act_per_seq_bytes
    allocated = weights + kv + act
    headroom = WORKSPACE_FIXED_GIB * 2**30 + FRAGMENTATION_FRACTION * allocated
    return {
        "weights": weights,
        "kv_cache": kv,
        "activations": act,
        "headroom": headroom,
        "total": allocated + headroom,
    }


def capacity(
    model: ModelConfig,
    layout: InferenceLayout,
    workload: InferenceWorkload,
    capacity_bytes: float,
    *,
    act_per_seq_bytes: float,
) -> dict[str, int]:
    """`max_batch`: the largest batch (a multiple of ep) whose memory per chip fits, 0 if none;
    `kv_capacity_tokens`: the KV-cache tokens (at this workload's mix of full and sliding-window
    layers) one replica can hold beside the weights and the activations of `workload.batch`.

    Memory grows monotonically with the batch, so the largest fitting one is found by bisection
    between 0 and the bound the KV cache alone sets.
    """
    ep = layout.ep
    layers = math.ceil(model.num_layers / layout.pp)
    ctx = workload.max_context_len
    per_seq = float(kv_cache_bytes(model, workload.kv, context_len=ctx, tp=layout.tp, layers=layers))
    weights = weight_bytes_per_chip(model, layout, workload.weights)
    budget = (capacity_bytes - WORKSPACE_FIXED_GIB * 2**30) / (1.0 + FRAGMENTATION_FRACTION) - weights

    def fits(n: int) -> bool:
        mem = memory_for_batches(
            model, layout, workload, np.array([n * ep]), act_per_seq_bytes=act_per_seq_bytes
        )
        return bool(mem["total"][0] <= capacity_bytes)

    hi = int(min(max(budget, 0.0) // per_seq, _MAX_SEQUENCES)) if per_seq > 0 else 0
    lo = 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1

    _, b = micro_batches(np.array([workload.batch]), layout)
    free = max(budget - float(b[0]) * act_per_seq_bytes, 0.0)
    per_token = per_seq / ctx
    tokens = int(free // per_token) * ep if per_token > 0 else 0
    return {"max_batch": lo * ep, "kv_capacity_tokens": tokens}
