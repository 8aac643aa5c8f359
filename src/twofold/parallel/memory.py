"""Memory per chip of a training layout: model states by ZeRO stage, activations, headroom.

All functions take NumPy arrays of layout columns (one entry per layout) and return bytes per chip.

Model states (Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training Trillion Parameter
Models", SC 2020, arXiv 1910.02054, section 3.1): mixed-precision Adam keeps 2 bytes of bf16/fp16
weights, 2 bytes of bf16/fp16 gradients and K = 12 bytes of optimizer state per parameter (fp32
master copy 4, first moment 4, second moment 4): 2 + 2 + 12 = 16 bytes. Pure fp32 training keeps
4 + 4 + 8 (no master copy). fp8/mxfp8/fp4 training (Transformer Engine style) keeps the same bf16
weights and fp32 master/moments as bf16 training; the low-precision weight casts are transient and
are left to the workspace headroom. ZeRO shards, over the data-parallel group: stage 1 the
optimizer states, stage 2 also the gradients, stage 3 (FSDP) also the weights. Where a stack keeps
its states otherwise (`cost.stack` model_state_bytes: Megatron-Core's fp32 gradient buffer,
2 + 4 + 12; nanotron's bf16 DDP buckets beside its fp32 accumulation buffer, 2 + 6 + 12; FSDP2's
and MaxText's fp32 weights as the master copy, 4 + 4 + 8), `memory_per_chip` takes its bytes
(`states`); the ZeRO sharding is the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from twofold.checks import fraction
from twofold.errors import InputError
from twofold.parallel.arrays import LayoutArrays
from twofold.units import GIB
from twofold.workload.finetune import (
    Finetune,
    adapter_params,
    base_bytes_per_param,
    layer_linear_weights,
    target_gemms,
)
from twofold.workload.model import ModelConfig
from twofold.workload.params import ParamCounts

__all__ = [
    "DEFAULT_MEM_HEADROOM",
    "FRAGMENTATION_FRACTION",
    "WORKSPACE_FIXED_GIB",
    "StateBytes",
    "activation_bytes_per_token",
    "finetune_activation_delta",
    "finetune_memory",
    "layer_activation_bytes",
    "memory_per_chip",
    "state_bytes",
    "usable_memory_bytes",
    "whole_model_memory",
    "with_workspace",
]

# Headroom (an assumption, not a measurement): a fixed part for what lives outside the caching
# allocator's tensors (CUDA/Neuron runtime context, NCCL/collective buffers, GEMM workspaces; about
# 0.5-1 GiB each on current stacks) and a fraction of the allocated tensors for fragmentation of
# the caching allocator. Both are overridable module constants; calibration may replace them.
WORKSPACE_FIXED_GIB = 1.0
FRAGMENTATION_FRACTION = 0.05

# Fit rule: a layout fits when its predicted memory per chip is at most capacity * (1 - headroom).
# The workspace above is part of the *prediction* (what the allocator is expected to hold on
# average); the headroom is a *margin on the decision*, kept beside it for what the prediction
# cannot see: the caching allocator's peak reserved memory exceeds its allocated memory by
# fragmentation that varies from run to run (PyTorch "CUDA semantics: memory management",
# `torch.cuda.memory_reserved` vs `memory_allocated`; `expandable_segments` exists to shrink it),
# NCCL grows its buffers with the number of communicators and channels, and the memory model itself
# leaves terms out (module docstring). A layout predicted at 79.9 of 80 GiB is one nobody launches.
# 5% is an assumption (the order of the fragmentation term above), not a fit; `mem_headroom`
# parameters and the `--mem-headroom` flags override it, 0 restores "total <= capacity".
DEFAULT_MEM_HEADROOM = 0.05


def usable_memory_bytes(capacity_bytes: float, mem_headroom: float = DEFAULT_MEM_HEADROOM) -> float:
    """capacity * (1 - mem_headroom): the memory per chip a layout may use (`DEFAULT_MEM_HEADROOM`).
    InputError unless 0 <= mem_headroom < 1."""
    fraction("mem_headroom", mem_headroom, "a fraction of the memory")
    return float(capacity_bytes) * (1.0 - float(mem_headroom))


@dataclass(frozen=True, kw_only=True, slots=True)
class StateBytes:
    """Bytes per parameter of the weights, the gradients and the optimizer states."""

    weights: float
    gradients: float
    optimizer: float


def state_bytes(precision: str, mixed: tuple[float, float, float] | None = None) -> StateBytes:
    """Per-parameter bytes of mixed-precision AdamW by training precision (module docstring).
    `mixed`: (weights, gradients, optimizer) bytes of mixed-precision training where the stack keeps
    its states otherwise (`cost.stack` model_state_bytes); pure fp32 training ignores it."""
    if precision == "fp32" or precision == "tf32":
        return StateBytes(weights=4.0, gradients=4.0, optimizer=8.0)
    if precision in ("bf16", "fp16", "fp8", "mxfp8", "fp4"):
        if mixed is not None:
            return StateBytes(weights=mixed[0], gradients=mixed[1], optimizer=mixed[2])
        return StateBytes(weights=2.0, gradients=2.0, optimizer=12.0)
    raise InputError("precision", precision, "must be one of fp32, bf16, fp16, fp8, mxfp8, fp4 for training")


def activation_bytes_per_element(precision: str) -> float:
    """Activations are stored in bf16 (fp32 when training in fp32); fp8 GEMM inputs are cast copies."""
    return 4.0 if precision in ("fp32", "tf32") else 2.0


def activation_bytes_per_token(
    model: ModelConfig, *, moe: bool, flash_attention: bool, dropout: bool, act_bytes: float
) -> tuple[float, float, float]:
    """Stored activations of one transformer layer per token: (replicated, tp-sharded, scores/key).

    Generalises Korthikanti et al., "Reducing Activation Recomputation in Large Transformer Models",
    MLSys 2023, arXiv 2205.05198, section 4.1, whose layer stores (bytes, 16-bit activations, per
    token, h = hidden, a = heads, s = keys): attention 11h + 5as, MLP 19h, layer norms 4h, i.e.
    sbh(34 + 5as/h) for s tokens of b sequences. Term by term, with e = bytes per activation:

    - replicated across tensor-parallel ranks without sequence parallelism: the two norm inputs
      (2eh), the QKV-GEMM input and the MLP input (2eh), the two dropout masks (2h bytes when the
      model uses dropout). Korthikanti: 4 + 2 + 2 + 1 + 1 = 10.
    - sharded by tensor parallelism: Q and K (e(a + kv)d, GQA-aware; 4 in the paper for MHA), V
      (e kv d_v; 2), the output-projection input (e a d_v; 2) and the MLP: plain e*2f (GeLU input
      and output: 16 for f = 4h), gated e*3f (gate and up outputs kept for SwiGLU's backward, and
      their product, the down-projection input). Korthikanti: 24.
    - per key (multiplied by the number of keys): the softmax output (e*a), its dropout mask (a) and
      the dropout output (e*a): 5a per key in the paper. FlashAttention (Dao et al. 2022) does not
      store them (recomputed blockwise in the backward pass; the dropout mask regenerated from the
      RNG state); it keeps the fp32 log-sum-exp per head and token instead (4a bytes, sharded).

    MoE layers (top-k routing, dropless, balanced): the MLP becomes the fp32 router logits (4E,
    replicated), per routed copy the dispatched input, the expert MLP's intermediate and the expert
    output kept for the weighted combine (k(2eh + e*3f_e) gated), and the shared experts as a dense
    MLP of width num_shared * f_shared. MLA (DeepSeek) stores the q and kv latents (replicated) and
    the up-projected q/k (width a*d_qk) and v (a*d_v). Left out: the router's softmax/top-k index
    tensors, the capacity-factor padding of token-dropping MoE, rotary caches, and QK-norm outputs.
    """
    h, a, d, e = model.hidden_size, model.num_attention_heads, model.head_dim, act_bytes
    mask = 1.0 if dropout else 0.0
    if model.is_mla:
        kv_heads, d_v = a, model.v_head_dim
        latents = e * ((model.q_lora_rank or 0) + (model.kv_lora_rank or 0) + model.qk_rope_head_dim)
    else:
        kv_heads, d_v, latents = model.num_kv_heads, d, 0.0
    replicated = 2 * e * h + 2 * e * h + 2 * mask * h + latents
    sharded = e * (a + kv_heads) * d + e * kv_heads * d_v + e * a * d_v
    sharded += 4.0 * a if flash_attention else 0.0
    per_key = 0.0 if flash_attention else (e * a + mask * a + mask * e * a)
    gemms = 3 if model.mlp_gated else 2
    if moe:
        replicated += 4.0 * model.num_experts
        k, f_e = model.num_experts_per_tok, model.moe_intermediate_size
        sharded += k * (2 * e * h + e * gemms * f_e)
        sharded += e * gemms * model.num_shared_experts * model.shared_expert_intermediate_size
    else:
        sharded += e * gemms * model.intermediate_size
    return replicated, sharded, per_key


def layer_activation_bytes(
    model: ModelConfig,
    *,
    micro_batch: np.ndarray | int,
    seq_len: int,
    tp: np.ndarray | int,
    cp: np.ndarray | int = 1,
    sequence_parallel: np.ndarray | bool = True,
    recompute: np.ndarray | int = 0,
    moe: bool = False,
    flash_attention: bool = True,
    dropout: bool = False,
    act_bytes: float = 2.0,
) -> np.ndarray:
    """Activation bytes one layer keeps for one micro-batch on one chip, by recompute mode.

    recompute 0 (none): tokens * (replicated / t_sp + sharded / t) + tokens * keys * per_key / t,
    with tokens = micro_batch * seq_len / cp on this chip, t = tp, t_sp = tp with sequence
    parallelism else 1, keys = seq_len (each local query attends over the whole sequence).
    Korthikanti eq. 2 (no parallelism) sbh(34 + 5as/h); eq. 3 (TP) sbh(10 + 24/t + 5as/(ht));
    eq. 4 (TP + SP) sbh/t (34 + 5as/h).
    recompute 1 (selective): the attention core is recomputed, so the per-key term (and the
    FlashAttention log-sum-exp) is not stored: Korthikanti eq. 6, 34 sbh/t with SP.
    recompute 2 (full): only the layer input is kept, e*h per token (/t with SP): "2sbh" per layer.
    Context parallelism splits the sequence, so every term divides by cp (ring attention's remote
    K/V chunks are transient).
    """
    rep, shard, per_key = activation_bytes_per_token(
        model, moe=moe, flash_attention=flash_attention, dropout=dropout, act_bytes=act_bytes
    )
    tp_f = np.asarray(tp, dtype=float)
    t_sp = np.where(np.asarray(sequence_parallel, dtype=bool), tp_f, 1.0)
    tokens = np.asarray(micro_batch, dtype=float) * seq_len / np.asarray(cp, dtype=float)
    rc = np.asarray(recompute)
    lse = 4.0 * model.num_attention_heads if flash_attention else 0.0
    full_layer = tokens * (rep / t_sp + shard / tp_f + seq_len * per_key / tp_f)
    selective = tokens * (rep / t_sp + (shard - lse) / tp_f)
    layer_input = tokens * act_bytes * model.hidden_size / t_sp
    return np.asarray(np.where(rc == 0, full_layer, np.where(rc == 1, selective, layer_input)))


def model_states_bytes(
    part_params: np.ndarray, shard_group: np.ndarray, zero: np.ndarray, sb: StateBytes
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weights, gradients, optimizer) bytes of `part_params` parameters held by one chip.

    ZeRO stage z shards over the `shard_group` ranks holding replicas of these parameters:
    optimizer states from z >= 1, gradients from z >= 2, weights from z = 3 (Rajbhandari et al.
    2020, fig. 1: Psi(2 + 2 + K) -> Psi(2 + 2) + K Psi/N_d -> 2Psi + (2 + K)Psi/N_d -> (2+2+K)Psi/N_d).
    """
    g = np.asarray(shard_group, dtype=float)
    w = sb.weights * part_params / np.where(zero >= 3, g, 1.0)
    gr = sb.gradients * part_params / np.where(zero >= 2, g, 1.0)
    opt = sb.optimizer * part_params / np.where(zero >= 1, g, 1.0)
    return w, gr, opt


def stage_params(
    counts: ParamCounts, model: ModelConfig, layers_on_stage: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Parameters of the layers on a stage of `layers_on_stage` layers, averaged over layer types:
    (non-expert, routed-expert). A stage of a model with leading dense layers holds them in the
    proportion of the whole model (left out: a stage made only of MoE layers is heavier)."""
    n = max(model.num_layers, 1)
    non_expert = (
        counts.num_dense_layers * counts.dense_layer
        + counts.num_moe_layers * (counts.moe_layer - counts.routed_experts_per_layer)
    ) / n
    expert = counts.num_moe_layers * counts.routed_experts_per_layer / n
    return layers_on_stage * non_expert, layers_on_stage * expert


def _in_flight(lay: LayoutArrays, rank: np.ndarray) -> np.ndarray:
    """Micro-batches whose activations pipeline rank `rank` holds at its peak, in units of its
    whole stage (all vp chunks).

    1F1B: min(pp - rank, m). Interleaved (Megatron-LM `schedules.py`,
    `forward_backward_pipelining_with_interleaving`): rank r runs (pp - r - 1) * 2 + (vp - 1) * pp
    warm-up chunk forwards before its first backward, so it holds that plus one chunk's
    activations, each 1/vp of the stage: for r = 0, pp + (pp - 1)/vp (Narayanan et al. 2021
    section 2.2.1; Korthikanti et al. 2022 eq. 5's factor 1 + (p - 1)/(p m)); for the last rank
    ((vp - 1) pp + 1)/vp.
    """
    chunks = (lay.pp - rank - 1.0) * 2.0 + (lay.vp - 1.0) * lay.pp + 1.0
    interleaved = np.minimum(chunks, lay.microbatches * lay.vp) / lay.vp
    return np.asarray(np.where(lay.vp > 1, interleaved, np.minimum(lay.pp - rank, lay.microbatches)))


def memory_per_chip(
    model: ModelConfig,
    counts: ParamCounts,
    lay: LayoutArrays,
    precision: str,
    seq_len: int,
    *,
    flash_attention: bool = True,
    dropout: bool = False,
    finetune: Finetune | None = None,
    states: tuple[float, float, float] | None = None,
) -> dict[str, np.ndarray]:
    """Bytes per chip on the most loaded pipeline stage: weights, gradients, optimizer_states,
    activations, workspace and total.

    `states`: the stack's (weights, gradients, optimizer) bytes per parameter of mixed-precision
    training (`state_bytes`; None: 2 + 2 + 12). The gathered ZeRO-3 layers are held in the
    training precision's 2 bytes whatever the stack stores (FSDP gathers its compute copy).

    `finetune` (LoRA/QLoRA): `finetune_memory` replaces the model states and adjusts the
    activations; everything else below holds for it too.

    Parameters per chip: non-expert parameters / tp (vocab-parallel embedding and LM head
    included), routed experts / (ep * etp) (expert tensor parallelism, etp = tp by default as in
    Megatron-Core; the routed tokens' activations are the same bytes either way), layers / pp on
    the largest stage. The first stage adds the input embedding, the last
    the LM head and final norm (and, with tied embeddings and pp > 1, its own copy of the embedding
    matrix, as Megatron keeps); pp = 1 holds everything. Both end stages are computed and the larger
    total is reported.

    In-flight micro-batches (Narayanan et al., "Efficient Large-Scale Language Model Training on GPU
    Clusters Using Megatron-LM", SC 2021, arXiv 2104.04473, section 2.2; Korthikanti et al. 2022
    section 4.2.3): under 1F1B the first stage holds min(pp, m) micro-batches of its layers'
    activations, the last stage one; interleaved, see `_in_flight`. Full recompute adds the working
    set of one layer recomputed for backward.

    The last stage also keeps the fp32 logits of one micro-batch for the cross-entropy backward
    (4 bytes x tokens x vocab / tp, vocab-parallel), Korthikanti section 4.3's output-layer term.

    ZeRO-3 additionally holds the gathered (unsharded) weights of two layers (the one computing and
    the one prefetched), as FSDP does with one layer per unit. Headroom: WORKSPACE_FIXED_GIB plus
    FRAGMENTATION_FRACTION of everything else. The estimator assumes FlashAttention-style attention
    and no dropout (modern LLM pretraining); Korthikanti's GPT-3 setting is flash_attention=False,
    dropout=True.
    """
    sb = state_bytes(precision, states)
    e = activation_bytes_per_element(precision)
    tp, zero = lay.tp, lay.zero
    ne_layers, ex_layers = stage_params(counts, model, lay.stage_layers)
    ne_layers = ne_layers / tp
    experts = ex_layers / (lay.ep * lay.etp)
    single = lay.pp == 1
    ends = counts.embedding + counts.lm_head + counts.final_norm
    tied_copy = counts.embedding if model.tie_word_embeddings else 0
    first_extra = np.where(single, ends, counts.embedding) / tp
    last_extra = np.where(single, ends, counts.lm_head + counts.final_norm + tied_copy) / tp

    # Activations of one micro-batch through one (average) layer of this model.
    n = max(model.num_layers, 1)
    kw: dict[str, Any] = dict(
        micro_batch=lay.micro_batch,
        seq_len=seq_len,
        tp=tp,
        cp=lay.cp,
        sequence_parallel=lay.sp,
        flash_attention=flash_attention,
        dropout=dropout,
        act_bytes=e,
    )

    def per_layer(recompute: np.ndarray | int) -> np.ndarray:
        dense = layer_activation_bytes(model, recompute=recompute, moe=False, **kw)
        if not model.is_moe:
            return dense
        moe = layer_activation_bytes(model, recompute=recompute, moe=True, **kw)
        return np.asarray((model.num_dense_layers * dense + model.num_moe_layers * moe) / n)

    stored = per_layer(lay.recompute)
    working = np.where(lay.recompute == 2, per_layer(0), 0.0)
    if finetune is not None:
        return finetune_memory(model, counts, lay, precision, seq_len, finetune, stored, working)
    inflight_first = _in_flight(lay, rank=lay.pp - lay.pp)
    inflight_last = _in_flight(lay, rank=lay.pp - 1.0)
    tokens = lay.micro_batch * seq_len / lay.cp
    logits = 4.0 * tokens * model.vocab_size / tp
    act_first = lay.stage_layers * stored * inflight_first + working + np.where(single, logits, 0.0)
    act_last = lay.stage_layers * stored * inflight_last + working + logits

    # ZeRO-3 working set: two layers gathered beyond this chip's shard.
    per_layer_ne = ne_layers / lay.stage_layers
    per_layer_ex = experts / lay.stage_layers
    gathered = (
        2.0
        * state_bytes(precision).weights  # the compute copy FSDP gathers, whatever the stack stores
        * (per_layer_ne * (1.0 - 1.0 / lay.shard_group) + per_layer_ex * (1.0 - 1.0 / lay.expert_dp_group))
    )
    fsdp_buffer = np.where(zero >= 3, gathered, 0.0)

    def stage(extra: np.ndarray, act: np.ndarray) -> dict[str, np.ndarray]:
        w1, g1, o1 = model_states_bytes(ne_layers + extra, lay.shard_group, zero, sb)
        w2, g2, o2 = model_states_bytes(experts, lay.expert_dp_group, zero, sb)
        parts = {
            "weights": w1 + w2 + fsdp_buffer,
            "gradients": g1 + g2,
            "optimizer_states": o1 + o2,
            "activations": act,
        }
        return with_workspace(parts)

    first, last = stage(first_extra, act_first), stage(last_extra, act_last)
    pick_last = last["total"] > first["total"]
    return {k: np.where(pick_last, last[k], first[k]) for k in first}


def finetune_activation_delta(
    model: ModelConfig, ft: Finetune, act_bytes: float
) -> tuple[float, float, float]:
    """Per token and layer, what LoRA changes in the stored activations: (replicated, tp-sharded,
    adapter) bytes, added to `activation_bytes_per_token`'s terms.

    Assumptions (stated, not measured): a targeted projection keeps its input exactly as in full
    training (the adapter's A needs it for its weight gradient), so `attention-mlp` and `all` store
    what full training stores; a frozen, untargeted projection's input is not needed (its dgrad needs
    only the weight), so with `attention` targets the MLP input (e*h, replicated) and the down
    projection's input (e*f, sharded) are not kept, while SwiGLU's gate and up outputs still are
    (the activation's backward needs them). Each adapter keeps its rank-r intermediate x A for B's
    weight gradient: e*r per adapter, whole on every tensor-parallel rank. Left out: LoRA dropout
    (with `lora_dropout > 0`, PEFT and LitGPT keep a dropped copy of each targeted input and its
    mask; dropout 0 is assumed).
    """
    e = act_bytes
    adapters = sum(n for name, n in target_gemms(model, ft.targets).items() if name.startswith("layer."))
    if ft.targets == "attention":
        return -e * model.hidden_size, -e * model.intermediate_size, e * ft.rank * adapters
    return 0.0, 0.0, e * ft.rank * adapters


def finetune_memory(
    model: ModelConfig,
    counts: ParamCounts,
    lay: LayoutArrays,
    precision: str,
    seq_len: int,
    ft: Finetune,
    stored: np.ndarray,
    working: np.ndarray,
) -> dict[str, np.ndarray]:
    """Memory per chip of a LoRA/QLoRA step (`memory_per_chip` with a `finetune`).

    Weights: the frozen base, its transformer-layer linear weights at `base_bytes_per_param` (NF4
    4.127 bits with double quantization, Dettmers et al. 2023 section 3; int8 1 byte; bf16 2) and
    the rest (embedding, norms, biases, LM head) in the training precision, divided by tp and,
    under ZeRO-3 (FSDP shards frozen parameters too), by the shard group; plus the adapters
    (`workload.finetune.adapter_params`, per tp rank) in the training precision. Gradients and
    optimizer states exist for the adapters only (`state_bytes`: bf16 gradient, fp32 master and
    AdamW m and v, 2 + 12 bytes), sharded by ZeRO stage as in full training. Activations:
    `stored` and `working` of full training plus `finetune_activation_delta` per token on every
    stored layer (not under full recompute, which keeps the layer input only). ZeRO-3 gathers two
    layers of base weights as in full training. Left out: QLoRA's transient bf16 copy of one
    dequantized weight (a few hundred MiB at most, in the workspace) and paged optimizer states.
    """
    sb = state_bytes(precision)
    e = activation_bytes_per_element(precision)
    tp, zero, single = lay.tp, lay.zero, lay.pp == 1
    linear = float(layer_linear_weights(model))
    layer_rest = counts.dense_layer - linear
    base_linear = base_bytes_per_param(ft.base) if ft.quantized else sb.weights
    per_layer_base = (linear * base_linear + layer_rest * sb.weights) / tp
    ends = counts.embedding + counts.lm_head + counts.final_norm
    tied_copy = counts.embedding if model.tie_word_embeddings else 0
    first_extra = np.where(single, ends, counts.embedding) * sb.weights / tp
    last_extra = np.where(single, ends, counts.lm_head + counts.final_norm + tied_copy) * sb.weights / tp
    z3 = zero >= 3
    shard = np.where(z3, lay.shard_group, 1.0)
    layer_ad, outer_ad = adapter_params(model, ft, tp=tp)
    has_outer = ft.targets == "all"

    rep, shard_d, lora = finetune_activation_delta(model, ft, e)
    t_sp = np.where(lay.sp, tp, 1.0)
    tokens = lay.micro_batch * seq_len / lay.cp
    delta = np.where(lay.recompute == 2, 0.0, tokens * (rep / t_sp + shard_d / tp + lora))
    stored = stored + delta
    inflight_first = _in_flight(lay, rank=lay.pp - lay.pp)
    inflight_last = _in_flight(lay, rank=lay.pp - 1.0)
    logits = 4.0 * tokens * model.vocab_size / tp + (tokens * e * ft.rank if has_outer else 0.0)
    act_first = lay.stage_layers * stored * inflight_first + working + np.where(single, logits, 0.0)
    act_last = lay.stage_layers * stored * inflight_last + working + logits
    fsdp_buffer = np.where(z3, 2.0 * per_layer_base * (1.0 - 1.0 / lay.shard_group), 0.0)

    def stage(
        extra: np.ndarray, adapters_outer: np.ndarray | float, act: np.ndarray
    ) -> dict[str, np.ndarray]:
        adapters = lay.stage_layers * layer_ad + adapters_outer
        w, g, o = model_states_bytes(adapters, lay.shard_group, zero, sb)
        base = (lay.stage_layers * per_layer_base + extra) / shard
        parts = {
            "weights": base + w + fsdp_buffer,
            "gradients": g,
            "optimizer_states": o,
            "activations": act,
        }
        return with_workspace(parts)

    first = stage(first_extra, np.where(single, outer_ad, 0.0), act_first)
    last = stage(last_extra, outer_ad, act_last)
    pick_last = last["total"] > first["total"]
    return {k: np.where(pick_last, last[k], first[k]) for k in first}


def with_workspace(parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`parts` (weights, gradients, optimizer_states, activations: bytes per chip) with the
    `workspace` headroom, WORKSPACE_FIXED_GIB plus FRAGMENTATION_FRACTION of what is allocated,
    and the `total`."""
    allocated = parts["weights"] + parts["gradients"] + parts["optimizer_states"] + parts["activations"]
    parts["workspace"] = WORKSPACE_FIXED_GIB * GIB + FRAGMENTATION_FRACTION * allocated
    parts["total"] = allocated + parts["workspace"]
    return parts


def whole_model_memory(
    lay: LayoutArrays,
    sb: StateBytes,
    *,
    trainable_params: float,
    frozen_params: float,
    activation_bytes: float,
    compute_weight_bytes: float | None = None,
) -> dict[str, np.ndarray]:
    """Bytes per chip of a model that is replicated or sharded whole (data parallel, ZeRO 0-3,
    hybrid sharding: an imported graph, `workload.protocol`), as `memory_per_chip` keys.

    Weights, gradients and optimizer states of the trainable parameters by ZeRO stage over the
    shard group (`model_states_bytes`); frozen parameters hold weights only, unsharded. ZeRO-3 adds
    the gathered weights of two units beyond the chip's shard (the one computing and the one
    prefetched), a unit being 1/`lay.stage_layers` of the parameters (one per repeated block, as
    FSDP wraps them). `activation_bytes`: what one micro-batch keeps for its backward (no pipeline:
    one micro-batch in flight). Headroom as `memory_per_chip` (`with_workspace`).
    `compute_weight_bytes`: bytes per parameter of the gathered compute copy (default `sb.weights`;
    a stack whose fp32 weights are the master copy gathers bf16 ones).
    """
    trainable = np.full_like(lay.dp, float(trainable_params))
    w, g, o = model_states_bytes(trainable, lay.shard_group, lay.zero, sb)
    gathered_bytes = sb.weights if compute_weight_bytes is None else compute_weight_bytes
    unit = gathered_bytes * trainable / lay.stage_layers
    gathered = np.where(lay.zero >= 3, 2.0 * unit * (1.0 - 1.0 / lay.shard_group), 0.0)
    parts = {
        "weights": w + sb.weights * float(frozen_params) + gathered,
        "gradients": g,
        "optimizer_states": o,
        "activations": np.full_like(w, float(activation_bytes)),
    }
    return with_workspace(parts)
