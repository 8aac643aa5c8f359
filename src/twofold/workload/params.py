"""Exact parameter counts of a `ModelConfig`, the way the reference implementation builds it.

Every count is the number of elements of the `nn.Parameter`s of the Hugging Face `transformers`
module of the family (`<Family>ForCausalLM`, and `BertForMaskedLM` for BERT), so that
`param_counts(m).total == sum(p.numel() for p in model.parameters())` (tied weights once):

- Linear layers: `in * out` weights plus `out` biases where the family has them.
- Norms: RMSNorm has a weight of the normalized width; LayerNorm a weight and a bias.
- Standard attention: q `hidden -> heads*head_dim`, k and v `hidden -> kv_heads*head_dim` each
  (GQA/MQA), output `heads*head_dim -> hidden`; `qk_norm` adds two RMSNorm weights of `head_dim`
  (Qwen3: one shared across heads); `attention_sinks` one logit per head (gpt_oss).
- Multi-head latent attention (DeepSeek-V2/V3, arXiv 2405.04434 section 2.1 and 2412.19437 section
  2.1.1; HF `DeepseekV3Attention`): q_a `hidden -> q_lora_rank`, q_a_layernorm (RMSNorm),
  q_b `q_lora_rank -> heads*(nope+rope)` (or q `hidden -> heads*(nope+rope)` without q LoRA),
  kv_a `hidden -> kv_lora_rank + rope`, kv_a_layernorm (RMSNorm of kv_lora_rank),
  kv_b `kv_lora_rank -> heads*(nope + v_head_dim)`, o `heads*v_head_dim -> hidden`. With
  `qkv_bias`, the two down projections (q_a or q, kv_a) get biases; the up projections never do.
- MLP: gated (SwiGLU/GeGLU) `3*hidden*ffn` (gate, up, down), plain `2*hidden*ffn`; biases
  `2*ffn + hidden` resp. `ffn + hidden` with `mlp_bias`. Routed and shared experts are MLPs of
  their own width with the same gating and biases; the router is `hidden -> num_experts`, plus one
  bias per expert with `router_bias` (gpt_oss router bias, DeepSeek-V3 `e_score_correction_bias`).
- Embeddings: `vocab*hidden`, plus `max_position_embeddings*hidden` for learned positions and
  `type_vocab_size*hidden` token types. The LM head is `vocab*hidden` unless tied, plus a bias with
  `lm_head_bias`, plus BERT's MLM transform (`lm_head_transform`: dense `hidden*hidden + hidden`
  and a LayerNorm).
- Block norms: two per layer. Post-norm encoders (family `bert`) also normalize the embeddings
  (a LayerNorm) and have no final norm; every other family has a final norm, and BLOOM a
  LayerNorm on the embeddings as well.

Conventions: `active` (parameters a token touches) is `total` minus the routed experts a token is
not sent to, so it includes the input embedding and the LM head, as Mixtral's "12.9B active" and
DeepSeek-V3's "37B activated" do; the gpt-oss model card counts the unembedding but not the
embedding (OpenAI, "gpt-oss-120b & gpt-oss-20b Model Card", 2025, table 1). DeepSeek-V3's
multi-token-prediction module is not part of `ModelConfig`, so DeepSeek-V3 counts the 671B of the
main model (the HF checkpoint's 685B adds the 14B MTP module; arXiv 2412.19437 section 1).
BERT counts `BertForMaskedLM` (no pooler, no next-sentence head).

Left out: Qwen2-MoE's shared-expert gate (`hidden -> 1`), Gemma's extra pre/post-feed-forward
norms, OLMo2's full-width q/k norms, bias-free LayerNorms (MPT `no_bias`, DBRX) and OLMo's
weightless ones, the single norm of parallel attention+MLP blocks (GPT-J, Phi, Falcon-7B: counted
as two), OPT's two extra position rows, vision towers, quantization scales (see
`workload.precision` for their bytes). Each is below 0.1% of the checkpoints in the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass

from twofold.workload.model import ModelConfig
from twofold.workload.precision import bytes_per_element

__all__ = ["ParamCounts", "param_counts", "weight_bytes"]

# Families that normalize after the residual (post-LN): embedding LayerNorm, no final norm.
POST_NORM_FAMILIES = frozenset({"bert"})
# Families with a LayerNorm on the word embeddings: the post-norm ones, and BLOOM
# (`BloomModel.word_embeddings_layernorm`), which also has a final norm.
EMBEDDING_NORM_FAMILIES = POST_NORM_FAMILIES | {"bloom"}


@dataclass(frozen=True, kw_only=True, slots=True)
class ParamCounts:
    """Parameter counts (elements) of a model, whole and by part."""

    total: int
    active: int  # per token: routed experts counted top-k times, everything else once
    embedding: int  # word + learned position + token type (+ embedding norm of post-norm models)
    lm_head: int  # untied output weight, its bias, BERT's MLM transform; 0 when tied and bare
    final_norm: int
    attention_per_layer: int  # projections, their biases, q/k norms, MLA latent norms, sinks
    norms_per_layer: int  # the two block norms
    dense_mlp_per_layer: int  # the MLP of a dense layer
    router_per_layer: int
    expert_each: int  # one routed expert
    routed_experts_per_layer: int  # all routed experts of one MoE layer
    shared_experts_per_layer: int
    dense_layer: int  # attention + norms + MLP
    moe_layer: int  # attention + norms + router + all experts
    moe_layer_active: int  # attention + norms + router + top-k routed + shared experts
    num_dense_layers: int
    num_moe_layers: int

    @property
    def non_embedding(self) -> int:
        """Parameters outside the input embedding and the LM head."""
        return self.total - self.embedding - self.lm_head


def norm_params(model: ModelConfig, width: int) -> int:
    """Elements of one norm over `width`: RMSNorm a weight, LayerNorm a weight and a bias."""
    return width * (2 if model.norm == "layernorm" else 1)


def mlp_params(model: ModelConfig, ffn: int) -> int:
    """One MLP of width `ffn`: gated `3*h*ffn` (+ `2*ffn + h` biases), plain `2*h*ffn` (+ `ffn + h`)."""
    h = model.hidden_size
    if model.mlp_gated:
        return 3 * h * ffn + ((2 * ffn + h) if model.mlp_bias else 0)
    return 2 * h * ffn + ((ffn + h) if model.mlp_bias else 0)


def attention_params(model: ModelConfig) -> int:
    """One attention block: projections, biases, q/k norms, MLA latent norms, sinks."""
    h, heads = model.hidden_size, model.num_attention_heads
    if model.is_mla:
        rope, nope, dv = model.qk_rope_head_dim, model.qk_nope_head_dim, model.v_head_dim
        kv_rank = model.kv_lora_rank or 0
        bias = model.qkv_bias
        if model.q_lora_rank:
            q_rank = model.q_lora_rank
            q = h * q_rank + (q_rank if bias else 0) + q_rank + q_rank * heads * (nope + rope)
        else:
            q = h * heads * (nope + rope) + (heads * (nope + rope) if bias else 0)
        kv = h * (kv_rank + rope) + ((kv_rank + rope) if bias else 0) + kv_rank
        kv += kv_rank * heads * (nope + dv)
        out = heads * dv * h + (h if model.attn_out_bias else 0)
        return q + kv + out + (heads if model.attention_sinks else 0)
    d, kv_heads = model.head_dim, model.num_kv_heads
    qkv_width = (heads + 2 * kv_heads) * d
    total = h * qkv_width + (qkv_width if model.qkv_bias else 0)
    total += heads * d * h + (h if model.attn_out_bias else 0)
    if model.qk_norm:
        total += 2 * d
    if model.attention_sinks:
        total += heads
    return total


def param_counts(model: ModelConfig) -> ParamCounts:
    """Exact parameter counts of `model` (see the module docstring for the layout counted)."""
    h, vocab = model.hidden_size, model.vocab_size
    post_norm = model.family in POST_NORM_FAMILIES

    embedding = vocab * h
    if model.position_embedding == "learned":
        embedding += model.max_position_embeddings * h
    embedding += model.type_vocab_size * h
    if model.family in EMBEDDING_NORM_FAMILIES:
        embedding += norm_params(model, h)

    lm_head = 0 if model.tie_word_embeddings else vocab * h
    lm_head += vocab if model.lm_head_bias else 0
    if model.lm_head_transform:
        lm_head += h * h + h + 2 * h  # dense with bias, then a LayerNorm

    final_norm = 0 if post_norm else norm_params(model, h)
    attention = attention_params(model)
    norms = 2 * norm_params(model, h)
    dense_mlp = mlp_params(model, model.intermediate_size)

    if model.is_moe:
        router = model.num_experts * h + (model.num_experts if model.router_bias else 0)
        expert = mlp_params(model, model.moe_intermediate_size)
        shared = model.num_shared_experts * mlp_params(model, model.shared_expert_intermediate_size)
    else:
        router = expert = shared = 0
    routed = model.num_experts * expert

    dense_layer = attention + norms + dense_mlp
    moe_layer = attention + norms + router + routed + shared
    moe_active = attention + norms + router + model.num_experts_per_tok * expert + shared
    n_dense, n_moe = model.num_dense_layers, model.num_moe_layers

    outer = embedding + lm_head + final_norm
    return ParamCounts(
        total=outer + n_dense * dense_layer + n_moe * moe_layer,
        active=outer + n_dense * dense_layer + n_moe * moe_active,
        embedding=embedding,
        lm_head=lm_head,
        final_norm=final_norm,
        attention_per_layer=attention,
        norms_per_layer=norms,
        dense_mlp_per_layer=dense_mlp,
        router_per_layer=router,
        expert_each=expert,
        routed_experts_per_layer=routed,
        shared_experts_per_layer=shared,
        dense_layer=dense_layer,
        moe_layer=moe_layer,
        moe_layer_active=moe_active,
        num_dense_layers=n_dense,
        num_moe_layers=n_moe,
    )


def weight_bytes(model: ModelConfig, precision: str) -> float:
    """Bytes of all weights stored in `precision` (block scales included, `workload.precision`).

    Every parameter in the same format; real checkpoints keep norms, router and embeddings in
    bf16 when the experts are fp8/fp4, which this does not model.
    """
    return param_counts(model).total * bytes_per_element(precision)
