"""The operator graph of a training step or an inference phase, on one chip.

`forward_ops`, `training_ops`, `prefill_ops` and `decode_ops` expand a `ModelConfig` into `Op`s
with shapes, FLOPs and HBM bytes per execution and `count` executions per step. Per-layer ops are
named `layer.<block>.<op>` with `count` = the number of layers of that type (`layer.attn.*`: every
layer; `layer.mlp.*`: dense layers; `layer.moe.*`: MoE layers); model-level ops (`embedding`,
`final_norm`, `lm_head`, `loss`) run once. Routed-expert GEMMs appear once per distinct
tokens-per-expert value (`m`), with `count` = layers x experts receiving that many tokens.
FLOP and byte conventions, sharding and what is left out: `workload.layers` and
docs/operators.md. The optimizer is priced from (sharded) parameter counts by `optimizer_ops`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import replace

from twofold.checks import non_negative, one_of, positive_int
from twofold.errors import InputError
from twofold.workload.backward import backward_ops, with_casts
from twofold.workload.finetune import Finetune, check_finetune_model, finetune_training_ops
from twofold.workload.layers import (
    CP_ALGORITHMS,
    Plan,
    attention_layer_ops,
    ffn_layer_ops,
    gemm,
    norm,
    pointwise,
)
from twofold.workload.model import ModelConfig
from twofold.workload.ops import Op
from twofold.workload.params import EMBEDDING_NORM_FAMILIES, POST_NORM_FAMILIES
from twofold.workload.precision import bytes_per_element

__all__ = [
    "GEMM_ONLY_PRECISIONS",
    "RECOMPUTE_MODES",
    "activation_bytes",
    "decode_ops",
    "forward_ops",
    "optimizer_ops",
    "prefill_ops",
    "totals",
    "training_ops",
]

RECOMPUTE_MODES = ("none", "selective", "full")
# Training precisions that apply to the GEMMs only: FP8/FP4 training recipes (Transformer Engine,
# Megatron-LM `--fp8-format`, NVIDIA's MXFP8/NVFP4 recipes) run the linear layers' GEMMs in the low
# precision and keep attention, softmax, norms, activations and the loss in BF16 (Micikevicius et
# al., "FP8 Formats for Deep Learning", arXiv 2209.05433, section 4; NVIDIA Transformer Engine docs).
GEMM_ONLY_PRECISIONS = frozenset({"fp8", "mxfp8", "fp4", "mxfp4", "nvfp4"})
LOSS_FLOPS = 4  # per logit: max, subtract+exp, accumulate, (log and pick per row)
ADAMW_FLOPS = 16  # per parameter: two moment updates, bias corrections, sqrt, divide, decay, step


def activation_bytes(precision: str) -> float:
    """Bytes per element of the activations between GEMMs (residual stream, norms, attention's
    inputs and outputs, tensor-parallel all-reduces) under `precision`: 2 (BF16) for the
    GEMM-only precisions above, whose recipes cast to FP8/FP4 only at a GEMM's input; otherwise
    the precision's own width. Serving recipes are the same: TensorRT-LLM / ModelOpt FP8 and NVFP4
    checkpoints quantize the inputs of the linear layers and keep the rest in BF16 (NVIDIA
    TensorRT Model Optimizer docs, "Quantization formats"), as does vLLM's FP8 (dynamic per-token
    activation scales at each linear layer; vLLM docs, "FP8 W8A8"). Left out: FP8 attention
    kernels (TensorRT-LLM's FP8 context FMHA with an FP8 KV cache), priced at BF16 here; the KV
    cache's own precision is a separate setting (`kv_precision`)."""
    return 2.0 if precision in GEMM_ONLY_PRECISIONS else bytes_per_element(precision)


def _positive(field: str, value: int) -> int:
    return positive_int(field, value)


A2A_CP = "all-to-all context parallelism (DeepSpeed-Ulysses splits heads over tp*cp)"


def _check_sharding(
    model: ModelConfig, *, tp: int, cp: int, ep: int, etp: int, context_parallel: str = "ring"
) -> None:
    """Megatron-LM's divisibility rules for one layout (user input: flags), and DeepSpeed-Ulysses'
    head rules for all-to-all context parallelism (`parallel.rules`)."""
    for field, value in (("tp", tp), ("cp", cp), ("ep", ep), ("etp", etp)):
        _positive(field, value)
    heads, kv = model.num_attention_heads, model.num_kv_heads
    if heads % tp:
        raise InputError("tp", tp, f"does not divide num_attention_heads={heads}")
    if not model.is_mla and kv % tp and tp % kv:
        raise InputError("tp", tp, f"neither divides nor is a multiple of num_kv_heads={kv}")
    if one_of("context_parallel", context_parallel, CP_ALGORITHMS) == "all-to-all" and cp > 1:
        if heads % (tp * cp):
            raise InputError(
                "cp", cp, f"{A2A_CP}: tp*cp={tp * cp} does not divide num_attention_heads={heads}"
            )
        kv_rank = max(kv // tp, 1)
        if not model.is_mla and kv_rank % cp and cp % kv_rank:
            raise InputError(
                "cp",
                cp,
                f"{A2A_CP}: neither divides nor is a multiple of the {kv_rank} key/value heads per "
                f"tensor-parallel rank (num_kv_heads={kv}, tp={tp})",
            )
    if model.num_dense_layers and model.intermediate_size % tp:
        raise InputError("tp", tp, f"does not divide intermediate_size={model.intermediate_size}")
    if model.is_moe:
        if model.moe_intermediate_size % etp:
            raise InputError(
                "etp", etp, f"does not divide moe_intermediate_size={model.moe_intermediate_size}"
            )
        if tp % etp:
            raise InputError("etp", etp, f"does not divide tp={tp}")
        shared = model.num_shared_experts * model.shared_expert_intermediate_size
        if shared % tp:
            raise InputError("tp", tp, f"does not divide the shared-expert width {shared}")
        if model.num_experts % ep:
            raise InputError("ep", ep, f"does not divide num_experts={model.num_experts}")
    elif ep != 1:
        raise InputError("ep", ep, f"must be 1: {model.name} has no experts")
    elif etp != tp:
        raise InputError("etp", etp, f"must equal tp: {model.name} has no experts")


def _plan(
    model: ModelConfig,
    *,
    batch: int,
    q_len: int,
    kv_len: int,
    precision: str,
    weight_precision: str | None,
    tp: int,
    cp: int,
    ep: int,
    sequence_parallel: bool,
    etp: int | None = None,
    kv_cache_precision: str | None = None,
    decode: bool = False,
    expert_tokens: Sequence[int] | None = None,
    gemm_only: bool = False,
    context_parallel: str = "ring",
) -> Plan:
    _positive("batch", batch)
    etp = tp if etp is None else etp
    _check_sharding(model, tp=tp, cp=cp, ep=ep, etp=etp, context_parallel=context_parallel)
    if model.position_embedding == "learned" and kv_len > model.max_position_embeddings:
        field = "context_len" if decode else "seq_len"
        raise InputError(
            field, kv_len, f"exceeds the {model.max_position_embeddings} learned positions of {model.name}"
        )
    low = gemm_only and precision in GEMM_ONLY_PRECISIONS
    plan = Plan(
        model=model,
        batch=batch,
        q_len=q_len,
        kv_len=kv_len,
        cp=cp,
        tp=tp,
        ep=ep,
        etp=etp,
        dtype="bf16" if low else precision,
        act_bytes=2.0 if low else bytes_per_element(precision),
        gemm_dtype=precision if low else None,
        gemm_act_bytes=bytes_per_element(precision) if low else None,
        weight_bytes=bytes_per_element(weight_precision or precision, "weight_precision"),
        sequence_parallel=sequence_parallel and tp > 1,
        kv_cache_bytes=None
        if kv_cache_precision is None
        else bytes_per_element(kv_cache_precision, "kv_precision"),
        decode=decode,
        expert_tokens=None if expert_tokens is None else tuple(expert_tokens),
        context_parallel=context_parallel,
    )
    if plan.sequence_parallel and plan.tokens % tp:
        raise InputError(
            "tp", tp, f"does not divide the {plan.tokens} tokens per chip (sequence parallelism)"
        )
    if expert_tokens is not None:
        local = model.num_experts // ep if model.is_moe else 0
        if len(plan.expert_tokens or ()) != local or any(
            isinstance(m, bool) or not isinstance(m, int) or m < 0 for m in expert_tokens
        ):
            raise InputError(
                "expert_tokens", expert_tokens, f"must be {local} non-negative integers (experts per chip)"
            )
    return plan


def _model_level_ops(plan: Plan, *, logits_tokens: int, loss: bool) -> tuple[list[Op], list[Op]]:
    """Before the layers: embedding (+ positions, token types, embedding norm of BERT and BLOOM).
    After them: final norm, (BERT MLM transform), LM head, loss."""
    model, h = plan.model, plan.model.hidden_size
    tw = plan.token_wise
    ops = [
        Op(
            name="embedding",
            kind="embedding",
            phase="forward",
            flops=0.0,
            bytes_read=tw * h * plan.weight_bytes,
            bytes_written=tw * h * plan.act_bytes,
            dims={"tokens": tw, "hidden": h, "vocab": model.vocab_size},
            dtype=plan.dtype,
        )
    ]
    tables = (model.position_embedding == "learned") + (model.type_vocab_size > 0)
    if tables:
        ops.append(
            pointwise(
                "embedding.position",
                plan,
                kind="elementwise",
                elements=tw * h,
                flops_per_element=tables,
                reads=1 + tables,
                writes=1,
            )
        )
    if model.family in EMBEDDING_NORM_FAMILIES:
        ops.append(norm("embedding.norm", plan, tokens=tw, width=h, count=1))
    embed, ops = ops, []
    if model.family not in POST_NORM_FAMILIES:
        final_tokens = logits_tokens // plan.tp if plan.sequence_parallel else logits_tokens
        ops.append(norm("final_norm", plan, tokens=final_tokens, width=h, count=1))
    if model.lm_head_transform:  # BERT MLM head: dense, gelu, LayerNorm, then the decoder
        ops.append(gemm("lm_head.transform", plan, m=logits_tokens, k=h, n=h, count=1, bias=True))
        ops.append(
            pointwise(
                "lm_head.act",
                plan,
                kind="elementwise",
                elements=logits_tokens * h,
                flops_per_element=8,
                reads=1,
                writes=1,
            )
        )
        ops.append(norm("lm_head.norm", plan, tokens=logits_tokens, width=h, count=1, kind="layernorm"))
    vocab = math.ceil(model.vocab_size / plan.tp)  # Megatron pads the vocabulary to a multiple of tp
    ops.append(gemm("lm_head", plan, m=logits_tokens, k=h, n=vocab, count=1, bias=model.lm_head_bias))
    if loss:
        ops.append(_cross_entropy(plan, tokens=logits_tokens, vocab=vocab))
    return embed, ops


# Bytes per logit of Megatron-Core's vocab-parallel cross-entropy (`_cross_entropy`): fp32 passes
# on top of reading the logits once (its backward's: `workload.backward`).
CE_FORWARD_FP32_READS, CE_FORWARD_FP32_WRITES = 5, 4


def _cross_entropy(plan: Plan, *, tokens: int, vocab: int) -> Op:
    """Vocab-parallel cross-entropy over `tokens x vocab` logits (vocab = this rank's share).

    Megatron-Core's `VocabParallelCrossEntropy` (megatron/core/tensor_parallel/cross_entropy.py,
    the loss of every Megatron-LM / NeMo / Megatron-Bridge row) works in fp32 on the full logits,
    in place: `.float()` (read the logits in the activation precision, write fp32), max over the
    vocabulary (read), subtract the max (read, write), `exp` (read, write), sum (read), divide by the
    sum to keep the softmax for the backward (read, write): per logit `act + 5*4` bytes read and
    `4*4` written. Its backward multiplies the saved softmax (minus the one-hot target, a sparse
    update) by the output gradient in place (read, write fp32) and `.float()`'s backward casts the
    result back (read fp32, write `act`): `2*4` read, `4 + act` written (`workload.backward.
    backward_ops` prices ops of kind "loss" so). The max and sum all-reduces over tp are left out (b*s
    floats). FLOPs: `LOSS_FLOPS` per logit (FlopCounterMode counts none). Left out: the fused
    variant (`--cross-entropy-loss-fusion`) saves about a quarter of these passes; frameworks that
    compute the loss in bf16 or chunked (Liger-style fused linear cross-entropy) move less.
    """
    elements = tokens * vocab
    fp32 = 4.0
    return Op(
        name="loss",
        kind="loss",
        phase="forward",
        flops=float(LOSS_FLOPS * elements),
        bytes_read=elements * (plan.act_bytes + CE_FORWARD_FP32_READS * fp32),
        bytes_written=elements * CE_FORWARD_FP32_WRITES * fp32 + fp32 * tokens,
        dims={"elements": elements, "tokens": tokens, "vocab": vocab},
        dtype=plan.dtype,
    )


def _forward(plan: Plan, *, logits_tokens: int, loss: bool) -> tuple[Op, ...]:
    embed, head = _model_level_ops(plan, logits_tokens=logits_tokens, loss=loss)
    return (*embed, *attention_layer_ops(plan), *ffn_layer_ops(plan), *head)


def forward_ops(
    model: ModelConfig,
    *,
    batch: int,
    seq_len: int,
    precision: str = "bf16",
    tp: int = 1,
    cp: int = 1,
    ep: int = 1,
    kv_len: int | None = None,
    weight_precision: str | None = None,
    sequence_parallel: bool = True,
    loss: bool = True,
    expert_tokens: Sequence[int] | None = None,
    etp: int | None = None,
    context_parallel: str = "ring",
) -> tuple[Op, ...]:
    """Training-style forward of `batch` sequences of `seq_len` tokens on one chip of a layout.

    `cp` splits the sequence (each chip has `seq_len/cp` query positions, attending to all
    `kv_len` keys; default `kv_len = seq_len`, a longer one puts the queries at its end, as in
    chunked prefill). `context_parallel` (`workload.layers.CP_ALGORITHMS`): attention as ring
    steps, or, "all-to-all" (DeepSpeed-Ulysses), one kernel on the full sequence for heads/cp
    heads (head rules: `_check_sharding`). The LM head and the loss run on every token.
    `expert_tokens`: tokens routed to each of the chip's `num_experts/ep` experts (observed);
    default a balanced routing. `etp`: expert tensor parallelism (None: tp; `workload.layers` for
    what a smaller one changes).
    A `precision` in `GEMM_ONLY_PRECISIONS` applies to the GEMMs only (everything else in BF16),
    each GEMM's activation input cast by a quantization op `<gemm>.cast` (`workload.backward.with_casts`).
    """
    _positive("seq_len", seq_len)
    if seq_len % _positive("cp", cp):
        raise InputError("cp", cp, f"does not divide seq_len={seq_len}")
    kv = seq_len if kv_len is None else _positive("kv_len", kv_len)
    if kv < seq_len:
        raise InputError("kv_len", kv_len, f"must be at least seq_len={seq_len}")
    plan = _plan(
        model,
        batch=batch,
        q_len=seq_len // cp,
        kv_len=kv,
        precision=precision,
        weight_precision=weight_precision,
        tp=tp,
        cp=cp,
        ep=ep,
        sequence_parallel=sequence_parallel,
        expert_tokens=expert_tokens,
        gemm_only=True,
        etp=etp,
        context_parallel=context_parallel,
    )
    ops = _forward(plan, logits_tokens=plan.tokens, loss=loss)
    return ops if plan.gemm_dtype is None else with_casts(ops, plan)


def training_ops(
    model: ModelConfig,
    *,
    micro_batch: int,
    seq_len: int,
    precision: str = "bf16",
    recompute: str = "none",
    tp: int = 1,
    cp: int = 1,
    ep: int = 1,
    weight_precision: str | None = None,
    sequence_parallel: bool = True,
    expert_tokens: Sequence[int] | None = None,
    etp: int | None = None,
    finetune: Finetune | None = None,
    context_parallel: str = "ring",
) -> tuple[Op, ...]:
    """Forward + backward (+ recompute) of one micro-batch on one chip; no optimizer.

    `finetune` (LoRA/QLoRA, `workload.finetune`): frozen base weights, adapters, dequantization;
    None is full training. Fine-tuning runs in bf16/fp16/fp32 (no FP8 training recipe).
    `context_parallel`: how attention runs when cp > 1 (`forward_ops`).

    Recompute (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
    Models", arXiv 2205.05198): `full` runs every per-layer forward op again in the backward pass
    (the layer input is the only checkpoint); `selective` reruns only the attention core (the
    softmax/score part, their section 4.2; with FlashAttention the score matrix is never stored,
    so this is the core's forward kernel again). Recomputed ops carry phase "recompute".
    """
    one_of("recompute", recompute, RECOMPUTE_MODES)
    if finetune is not None:
        check_finetune_model(model)
        if precision in GEMM_ONLY_PRECISIONS:
            raise InputError(
                "precision", precision, "LoRA/QLoRA fine-tuning is modelled in bf16, fp16 or fp32"
            )
    fwd = forward_ops(
        model,
        batch=micro_batch,
        seq_len=seq_len,
        precision=precision,
        tp=tp,
        cp=cp,
        ep=ep,
        weight_precision=weight_precision,
        sequence_parallel=sequence_parallel,
        expert_tokens=expert_tokens,
        etp=etp,
        context_parallel=context_parallel,
    )
    # Low-precision recipes keep non-GEMM activations (attention's inputs) in BF16.
    act = activation_bytes(precision)
    gemm_act = bytes_per_element(precision)
    weight = bytes_per_element(weight_precision or precision, "weight_precision")
    if finetune is not None:
        both = finetune_training_ops(fwd, model, finetune, act_bytes=act)
        fwd = tuple(op for op in both if op.phase == "forward")
        bwd = [op for op in both if op.phase == "backward"]
        return (*fwd, *_recomputed(fwd, recompute), *bwd)
    bwd = [
        b
        for op in reversed(fwd)
        for b in backward_ops(op, act_bytes=act, gemm_act_bytes=gemm_act, weight_bytes=weight)
    ]
    return (*fwd, *_recomputed(fwd, recompute), *bwd)


def _recomputed(fwd: Sequence[Op], recompute: str) -> list[Op]:
    if recompute == "full":
        return [replace(op, phase="recompute") for op in fwd if op.name.startswith("layer.")]
    if recompute == "selective":
        return [replace(op, phase="recompute") for op in fwd if op.name.startswith("layer.attn.core")]
    return []


def prefill_ops(
    model: ModelConfig,
    *,
    batch: int,
    seq_len: int,
    precision: str = "bf16",
    kv_precision: str = "bf16",
    tp: int = 1,
    ep: int = 1,
    weight_precision: str | None = None,
    expert_tokens: Sequence[int] | None = None,
) -> tuple[Op, ...]:
    """Inference prefill: forward over the prompt, keys/values written to the cache, logits only
    for the last position of each sequence (what serving engines sample from), no loss. No
    sequence parallelism: norms and residuals are replicated across the `tp` ranks. FP8/FP4
    precisions apply to the GEMMs only (`activation_bytes`): attention, norms and the residual
    stream run in BF16, the KV cache in `kv_precision`.
    """
    _positive("seq_len", seq_len)
    plan = _plan(
        model,
        batch=batch,
        q_len=seq_len,
        kv_len=seq_len,
        precision=precision,
        weight_precision=weight_precision,
        tp=tp,
        cp=1,
        ep=ep,
        sequence_parallel=False,
        kv_cache_precision=kv_precision,
        expert_tokens=expert_tokens,
        gemm_only=True,
    )
    return _forward(plan, logits_tokens=batch, loss=False)


def decode_ops(
    model: ModelConfig,
    *,
    batch: int,
    context_len: int,
    precision: str = "bf16",
    kv_precision: str = "bf16",
    tp: int = 1,
    ep: int = 1,
    weight_precision: str | None = None,
    expert_tokens: Sequence[int] | None = None,
) -> tuple[Op, ...]:
    """One decode step: one new token for each of `batch` sequences holding `context_len` tokens
    (the new one included) in the KV cache. Attention reads the whole cache in `kv_precision`
    (sliding-window layers a rolling cache of the window); every GEMM reads its full weight, and
    each expert that receives a token reads its own: the expected number of distinct experts the
    step's tokens touch under uniform routing (`layers.touched_experts`), not all of them. MLA
    uses the absorbed form (`layers._mla_ops`). FP8/FP4 apply to the GEMMs only, as in
    `prefill_ops`.
    """
    _positive("context_len", context_len)
    plan = _plan(
        model,
        batch=batch,
        q_len=1,
        kv_len=context_len,
        precision=precision,
        weight_precision=weight_precision,
        tp=tp,
        cp=1,
        ep=ep,
        sequence_parallel=False,
        kv_cache_precision=kv_precision,
        decode=True,
        expert_tokens=expert_tokens,
        gemm_only=True,
    )
    return _forward(plan, logits_tokens=batch, loss=False)


def optimizer_ops(num_params: float, precision: str) -> tuple[Op, ...]:
    """AdamW update of `num_params` parameters (the shard a chip owns) in mixed precision.

    Mixed-precision training (Micikevicius et al. 2018, "Mixed Precision Training", arXiv
    1710.03740) keeps fp32 master weights and the two fp32 Adam moments (Loshchilov & Hutter 2019,
    "Decoupled Weight Decay Regularization", arXiv 1711.05101), and Megatron-LM accumulates
    gradients in fp32 under bf16. Per parameter the fused update reads the fp32 gradient, master
    weight and both moments (16 bytes) and writes master weight and moments (12 bytes) plus the
    `precision` copy the next forward uses (none when `precision` is fp32). FLOPs: `ADAMW_FLOPS`
    per parameter (nominal; the update is memory-bound). Left out: gradient clipping's norm
    reduction, loss scaling, the fp8 cast of weights in fp8 recipes.
    """
    non_negative("num_params", num_params)
    copy = 0.0 if precision == "fp32" else bytes_per_element(precision)
    return (
        Op(
            name="optimizer.adamw",
            kind="optimizer",
            phase="optimizer",
            flops=ADAMW_FLOPS * float(num_params),
            bytes_read=16.0 * num_params,
            bytes_written=(12.0 + copy) * num_params,
            dims={"params": round(num_params)},
            dtype="fp32",
        ),
    )


def totals(ops: Iterable[Op]) -> dict[str, float | dict[str, float]]:
    """Sums over `count` executions: flops, useful_flops, bytes, and flops by phase, kind, phase.kind."""
    out: dict[str, float | dict[str, float]] = {}
    flops = useful = moved = 0.0
    by_phase: dict[str, float] = {}
    by_kind: dict[str, float] = {}
    by_both: dict[str, float] = {}
    for op in ops:
        f = op.total_flops
        flops += f
        useful += (op.useful_flops if op.useful_flops is not None else op.flops) * op.count
        moved += op.total_bytes
        by_phase[op.phase] = by_phase.get(op.phase, 0.0) + f
        by_kind[op.kind] = by_kind.get(op.kind, 0.0) + f
        key = f"{op.phase}.{op.kind}"
        by_both[key] = by_both.get(key, 0.0) + f
    out.update(
        flops=flops,
        useful_flops=useful,
        bytes=moved,
        by_phase=by_phase,
        by_kind=by_kind,
        by_phase_kind=by_both,
    )
    return out
