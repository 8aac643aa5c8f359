"""The FLOP formulas the sources use for their "TFLOP/s per chip" and MFU figures.

A published TFLOP/s figure is (the source's FLOP count for one step) / (measured step time) / chips.
To compare a prediction with it, twofold predicts the step time and divides the *source's* count by
it, so the FLOP convention cancels and only the time is tested. Each function returns FLOPs for one
optimizer step of `global_batch` sequences of `seq_len` tokens (forward + backward, all chips).
"""

from __future__ import annotations

from twofold.workload.model import ModelConfig
from twofold.workload.params import param_counts

__all__ = [
    "megatron_model_flops",
    "megatron_causal_flops",
    "narayanan_flops",
    "maxtext_flops",
    "six_n_flops",
    "SOURCE_FORMULAS",
    "source_step_flops",
]


def megatron_model_flops(model: ModelConfig, global_batch: int, seq_len: int) -> float:
    """Megatron-LM `num_floating_point_operations` ("model FLOPs", no recompute).

    Megatron-LM megatron/training/training.py (core_r0.8.0 and later), derived in Narayanan et al.
    2021 (arXiv 2104.04473) appendix "Floating-point operations": every GEMM runs three times
    (forward, weight gradient, data gradient), a (m x n)(n x k) GEMM is 2mnk FLOPs, so per layer

        12 B s h^2 * [ (1 + g/a + s/h) * r  +  (f/h) * k * m_gate  +  (f_sh/h) * m_gate ]  +  6 B s h V / l

    with a heads, g key/value groups, r = a * head_dim / h, f the (expert) FFN width, k experts per
    token, f_sh the shared-expert width, m_gate = 3/2 for gated (SwiGLU) MLPs, V the vocabulary. The
    s/h term is the attention score and context GEMMs over the *full* s x s matrix (no causal
    halving). Left out by Megatron: norms, activations, softmax, the router GEMM, the embedding
    lookup, the optimizer; MLA projections (DeepSeek) are not in this formula.
    """
    b, s = float(global_batch), float(seq_len)
    h, a, g = float(model.hidden_size), float(model.num_attention_heads), float(model.num_kv_heads)
    r = a * model.head_dim / h
    gate = 1.5 if model.mlp_gated else 1.0
    if model.is_moe:
        mlp = model.moe_intermediate_size / h * model.num_experts_per_tok * gate
        shared = model.num_shared_experts * model.shared_expert_intermediate_size / h * gate
    else:
        mlp, shared = model.intermediate_size / h * gate, 0.0
    per_layer = (1.0 + g / a + s / h) * r + mlp + shared
    logits = model.vocab_size / (2.0 * model.num_layers * h)
    return 12.0 * b * s * model.num_layers * h * h * (per_layer + logits)


def narayanan_flops(model: ModelConfig, global_batch: int, seq_len: int) -> float:
    """Narayanan et al. 2021 eq. (3): FLOPs per iteration *including* activation recomputation.

    "Efficient Large-Scale Language Model Training on GPU Clusters Using Megatron-LM", SC21,
    arXiv 2104.04473, section 5.1 and appendix: for a GPT model with l layers, hidden h, FFN 4h,
    vocabulary V, batch B and sequence s,

        F = 96 B s l h^2 (1 + s / (6h) + V / (16 l h))

    i.e. 24 B s h^2 + 4 B s^2 h forward FLOPs per layer counted four times (forward, recomputed
    forward, backward = 2x forward) plus 6 B s h V for the logit layer (not recomputed). Tables 1
    and 2 report TFLOP/s with this count, so it is closer to hardware FLOPs than to model FLOPs.
    Assumes FFN = 4h and multi-head attention (true for the paper's models); the count does not
    change with the layout or with the recompute setting actually used.
    """
    b, s, n_l, h, v = (
        float(x) for x in (global_batch, seq_len, model.num_layers, model.hidden_size, model.vocab_size)
    )
    return 96.0 * b * s * n_l * h * h * (1.0 + s / (6.0 * h) + v / (16.0 * n_l * h))


def maxtext_flops(model: ModelConfig, global_batch: int, seq_len: int, *, causal: bool = False) -> float:
    """MaxText `calculate_tflops_training_per_device` (src/MaxText/maxtext_utils.py), times the chips.

    With B the batch, S the sequence, E the embedding width, H query heads, G kv heads, D head_dim,
    F the MLP width and A the number of MLP input activations (2 for gated MLPs):
    ffn = 2BSFE*A + 2BSFE; qkv = 2BSE(H + 2G)D; projection = 2BSEHD; embedding (logits) = 2BSEV;
    attention = 4BS^2HD, halved for causal masking by newer MaxText (PR #1988, `causal=True`);
    total = 3 * [ (ffn + qkv + projection) * layers + embedding ] + 3 * attention * layers.
    For MoE (dropless): router 2BSE*experts plus top-k experts of width F.
    Left out by MaxText: norms, softmax, the optimizer, recomputation.
    """
    b, s = float(global_batch), float(seq_len)
    e, d = float(model.hidden_size), float(model.head_dim)
    heads, kv = float(model.num_attention_heads), float(model.num_kv_heads)
    activations = 2.0 if model.mlp_gated else 1.0
    if model.is_moe:
        width = float(model.moe_intermediate_size)
        ffn = model.num_experts_per_tok * (2 * b * s * width * e * activations + 2 * b * s * width * e)
        ffn += 2 * b * s * e * model.num_experts
    else:
        width = float(model.intermediate_size)
        ffn = 2 * b * s * width * e * activations + 2 * b * s * width * e
    qkv = 2 * b * s * e * (heads + 2 * kv) * d
    projection = 2 * b * s * e * heads * d
    embedding = 2 * b * s * e * model.vocab_size
    attention = 4 * b * s * s * heads * d * (0.5 if causal else 1.0)
    layers = float(model.num_layers)
    return 3 * ((ffn + qkv + projection) * layers + embedding) + 3 * attention * layers


def six_n_flops(model: ModelConfig, global_batch: int, seq_len: int) -> float:
    """The "6ND" rule (Kaplan et al. 2020, arXiv 2001.08361, section 2.1): 6 FLOPs per active
    parameter per token, forward and backward, no attention term. N: the active parameters
    (`workload.params`; routed experts top-k times), embeddings included, as "6 * num_params"
    loggers count them."""
    return 6.0 * param_counts(model).active * float(global_batch) * float(seq_len)


def megatron_causal_flops(model: ModelConfig, global_batch: int, seq_len: int) -> float:
    """`megatron_model_flops` with the attention score and context GEMMs counted over the causal
    half of the s x s matrix (what a kernel that skips masked tiles executes)."""
    b, s, h = float(global_batch), float(seq_len), float(model.hidden_size)
    r = model.num_attention_heads * model.head_dim / h
    full_attention = 12.0 * b * s * model.num_layers * h * h * (s / h) * r
    return megatron_model_flops(model, global_batch, seq_len) - 0.5 * full_attention


SOURCE_FORMULAS = ("megatron", "megatron_causal", "narayanan", "maxtext", "maxtext_causal", "6n")


def source_step_flops(formula: str, model: ModelConfig, global_batch: int, seq_len: int) -> float:
    """FLOPs of one step under a named source convention (see `SOURCE_FORMULAS`)."""
    if formula == "megatron":
        return megatron_model_flops(model, global_batch, seq_len)
    if formula == "narayanan":
        return narayanan_flops(model, global_batch, seq_len)
    if formula == "maxtext":
        return maxtext_flops(model, global_batch, seq_len)
    if formula == "maxtext_causal":
        return maxtext_flops(model, global_batch, seq_len, causal=True)
    if formula == "megatron_causal":
        return megatron_causal_flops(model, global_batch, seq_len)
    if formula == "6n":
        return six_n_flops(model, global_batch, seq_len)
    raise ValueError(f"unknown FLOP formula {formula!r}; known: {', '.join(SOURCE_FORMULAS)}")
