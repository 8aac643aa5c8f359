"""The architecture of a transformer model, in the vocabulary of Hugging Face `config.json`.

`ModelConfig` is family-neutral: the importer (`workload.hf_config`) maps each family's own key
names (`n_embd` for gpt2, `d_model` for mpt, ...) onto these fields. Every later layer (operators,
memory, cost) reads only this object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from twofold.workload.protocol import ALL_AXES

__all__ = ["ModelConfig"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelConfig:
    """A decoder-only or encoder-only transformer, dense or mixture-of-experts.

    Attention: `num_kv_heads < num_attention_heads` is GQA, `num_kv_heads == 1` MQA. When
    `kv_lora_rank` is set the model uses multi-head latent attention (DeepSeek MLA), expanded into
    GEMMs as in DeepSeek-V3 (arXiv 2412.19437, section 2.1.1; HF `DeepseekV3Attention`), with
    h = num_attention_heads, d_qk = qk_nope_head_dim + qk_rope_head_dim (= head_dim):
    q down hidden -> q_lora_rank (then RMSNorm) and q up q_lora_rank -> h*d_qk (or, when
    q_lora_rank is None, one hidden -> h*d_qk); kv down hidden -> kv_lora_rank + qk_rope_head_dim
    (the rope part is one shared key head; RMSNorm on the latent); kv up kv_lora_rank ->
    h*(qk_nope_head_dim + v_head_dim); attention with q/k width d_qk and v width v_head_dim;
    output h*v_head_dim -> hidden. Training-time form: the inference-time absorption of the up
    projections into q and output is not modelled.
    MoE: layers `first_k_dense_layers .. num_layers-1` route each token to `num_experts_per_tok` of
    `num_experts` experts of width `moe_intermediate_size`, plus `num_shared_experts` always-on
    experts of width `shared_expert_intermediate_size`.
    """

    name: str
    family: str  # the config.json model_type: llama, mistral, mixtral, qwen2, qwen3, gpt2, bert, ...
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int = 4096

    mlp_gated: bool = True  # SwiGLU/GeGLU (three matrices) vs plain (two)
    activation: str = "silu"
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    causal: bool = True  # False for encoders (BERT)
    position_embedding: Literal["rope", "learned", "alibi", "none"] = "rope"
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    qk_norm: bool = False  # per-head RMSNorm on q and k (Qwen3)
    attn_out_bias: bool = False
    mlp_bias: bool = False
    lm_head_bias: bool = False
    lm_head_transform: bool = False  # BERT MLM head: dense hidden->hidden, activation, layernorm
    type_vocab_size: int = 0  # BERT token-type embeddings
    attention_sinks: bool = False  # one learned sink logit per head (gpt_oss)
    sliding_window: int | None = None  # window of sliding-window layers (gpt_oss, mistral)
    sliding_window_layers: int = 0  # how many layers use the window

    # Mixture of experts (num_experts == 0: dense).
    num_experts: int = 0
    num_experts_per_tok: int = 0
    moe_intermediate_size: int = 0
    num_shared_experts: int = 0
    shared_expert_intermediate_size: int = 0
    first_k_dense_layers: int = 0
    router_bias: bool = False

    # Multi-head latent attention (DeepSeek-V2/V3); None = standard attention.
    q_lora_rank: int | None = None
    kv_lora_rank: int | None = None
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0

    source: str = ""  # where the architecture comes from (HF repo, paper)

    # `workload.protocol.TrainingModel`: an architecture takes every layout axis, any micro-batch
    # and sequence length, and counts tokens.
    @property
    def parallel_axes(self) -> frozenset[str]:
        return ALL_AXES

    @property
    def fixed_micro_batch(self) -> int | None:
        return None

    @property
    def fixed_seq_len(self) -> int | None:
        return None

    @property
    def counts_tokens(self) -> bool:
        return True

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None

    @property
    def num_moe_layers(self) -> int:
        return self.num_layers - self.first_k_dense_layers if self.is_moe else 0

    @property
    def num_dense_layers(self) -> int:
        return self.num_layers - self.num_moe_layers
