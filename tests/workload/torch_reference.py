"""Plain PyTorch transformer modules: the reference twofold's operator graph and parameter counts
are checked against (with `torch.utils.flop_counter.FlopCounterMode` and `numel`).

Written from the Hugging Face `transformers` modelling files (Llama, Mixtral, DeepSeek-V3, BERT),
independently of `twofold.workload.graph`: separate q/k/v and gate/up projections where HF has
them (twofold fuses them), a loop over experts on the tokens actually routed to each, and
`F.scaled_dot_product_attention` for attention. Only the `ModelConfig` fields are shared.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torch.utils.flop_counter as fc
from torch import nn
from torch.utils.checkpoint import checkpoint
from torch.utils.flop_counter import FlopCounterMode

from twofold.workload.model import ModelConfig

_aten = torch.ops.aten

# On CPU, scaled_dot_product_attention runs the fused `_scaled_dot_product_flash_attention_for_cpu`
# kernel, which FlopCounterMode does not register (it counts 0). Map it to PyTorch's own formulas
# for the fused GPU kernels (flash/efficient/cudnn), so the CPU run counts what a GPU run counts.
# When d_v != d_qk (MLA) the CPU takes the math path, which FlopCounterMode counts as bmm.
_CPU_SDPA = {
    _aten._scaled_dot_product_flash_attention_for_cpu: (
        lambda q, k, v, *args, out_shape=None, **kwargs: fc.sdpa_flop_count(q, k, v)
    ),
    _aten._scaled_dot_product_flash_attention_for_cpu_backward: (
        lambda g, q, k, v, *args, out_shape=None, **kwargs: fc.sdpa_backward_flop_count(g, q, k, v)
    ),
}
_GEMM_OPS = {"aten.mm", "aten.addmm"}


def flop_counter() -> FlopCounterMode:
    return FlopCounterMode(display=False, custom_mapping=_CPU_SDPA)


def by_family(counter: FlopCounterMode) -> dict[str, int]:
    """FlopCounterMode's global counts split into 'gemm' (mm/addmm) and 'attention' (the rest:
    sdpa kernels, and bmm, which these modules only use inside attention)."""
    out = {"gemm": 0, "attention": 0}
    for op, flops in counter.get_flop_counts()["Global"].items():
        out["gemm" if str(op) in _GEMM_OPS else "attention"] += flops
    return out


def _norm(model: ModelConfig, width: int) -> nn.Module:
    if model.norm == "layernorm":
        return nn.LayerNorm(width)
    return nn.RMSNorm(width)


def _rotate(x: torch.Tensor) -> torch.Tensor:
    """Rotary embedding (rotate-half form, as HF Llama): elementwise, no matmul."""
    half = x.shape[-1] // 2
    pos = torch.arange(x.shape[-2], dtype=x.dtype)[:, None]
    freq = 10000.0 ** (-torch.arange(half, dtype=x.dtype) / half)
    angle = torch.cat([pos * freq, pos * freq], dim=-1)
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * angle.cos() + rotated * angle.sin()


class Attention(nn.Module):
    """MHA/GQA/MQA with separate q, k, v projections (HF LlamaAttention layout)."""

    def __init__(self, model: ModelConfig) -> None:
        super().__init__()
        h, d = model.hidden_size, model.head_dim
        self.heads, self.kv_heads, self.d = model.num_attention_heads, model.num_kv_heads, d
        self.causal, self.rope = model.causal, model.position_embedding == "rope"
        self.q = nn.Linear(h, self.heads * d, bias=model.qkv_bias)
        self.k = nn.Linear(h, self.kv_heads * d, bias=model.qkv_bias)
        self.v = nn.Linear(h, self.kv_heads * d, bias=model.qkv_bias)
        self.o = nn.Linear(self.heads * d, h, bias=model.attn_out_bias)
        self.q_norm = nn.RMSNorm(d) if model.qk_norm else None
        self.k_norm = nn.RMSNorm(d) if model.qk_norm else None
        self.sinks = nn.Parameter(torch.zeros(self.heads)) if model.attention_sinks else None
        self.checkpoint_core = False

    def core(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        gqa = self.kv_heads != self.heads
        return F.scaled_dot_product_attention(q, k, v, is_causal=self.causal, enable_gqa=gqa)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        q = self.q(x).view(b, s, self.heads, self.d).transpose(1, 2)
        k = self.k(x).view(b, s, self.kv_heads, self.d).transpose(1, 2)
        v = self.v(x).view(b, s, self.kv_heads, self.d).transpose(1, 2)
        if self.q_norm is not None and self.k_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.rope:
            q, k = _rotate(q), _rotate(k)
        if self.checkpoint_core:  # selective recompute: only the attention core is recomputed
            out = checkpoint(self.core, q, k, v, use_reentrant=False)
        else:
            out = self.core(q, k, v)
        return self.o(out.transpose(1, 2).reshape(b, s, self.heads * self.d))


class MLAttention(nn.Module):
    """DeepSeek-V3 multi-head latent attention, training form (HF DeepseekV3Attention)."""

    def __init__(self, model: ModelConfig) -> None:
        super().__init__()
        h, self.heads = model.hidden_size, model.num_attention_heads
        self.rope, self.nope, self.dv = model.qk_rope_head_dim, model.qk_nope_head_dim, model.v_head_dim
        self.rank = model.kv_lora_rank or 0
        bias = model.qkv_bias
        d_qk = self.nope + self.rope
        if model.q_lora_rank:
            self.q_path = nn.Sequential(
                nn.Linear(h, model.q_lora_rank, bias=bias),
                nn.RMSNorm(model.q_lora_rank),
                nn.Linear(model.q_lora_rank, self.heads * d_qk, bias=False),
            )
        else:
            self.q_path = nn.Linear(h, self.heads * d_qk, bias=bias)
        self.kv_a = nn.Linear(h, self.rank + self.rope, bias=bias)
        self.kv_norm = nn.RMSNorm(self.rank)
        self.kv_b = nn.Linear(self.rank, self.heads * (self.nope + self.dv), bias=False)
        self.o = nn.Linear(self.heads * self.dv, h, bias=model.attn_out_bias)
        self.causal = model.causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        q = self.q_path(x).view(b, s, self.heads, -1).transpose(1, 2)
        latent, k_rope = self.kv_a(x).split([self.rank, self.rope], dim=-1)
        kv = self.kv_b(self.kv_norm(latent)).view(b, s, self.heads, -1).transpose(1, 2)
        k_nope, v = kv.split([self.nope, self.dv], dim=-1)
        k_rope = _rotate(k_rope.view(b, 1, s, self.rope)).expand(b, self.heads, s, self.rope)
        q_nope, q_rope = q.split([self.nope, self.rope], dim=-1)
        q = torch.cat([q_nope, _rotate(q_rope)], dim=-1)
        k = torch.cat([k_nope, k_rope], dim=-1)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.o(out.transpose(1, 2).reshape(b, s, self.heads * self.dv))


class MLP(nn.Module):
    """Gated (gate, up, down: HF LlamaMLP) or plain (up, down: GPT-2/BERT) MLP."""

    def __init__(self, model: ModelConfig, width: int) -> None:
        super().__init__()
        h, bias = model.hidden_size, model.mlp_bias
        self.gate = nn.Linear(h, width, bias=bias) if model.mlp_gated else None
        self.up = nn.Linear(h, width, bias=bias)
        self.down = nn.Linear(width, h, bias=bias)
        self.act = F.silu if model.activation == "silu" else F.gelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate is not None:
            return self.down(self.act(self.gate(x)) * self.up(x))
        return self.down(self.act(self.up(x)))


class MoE(nn.Module):
    """Top-k routed experts (HF MixtralSparseMoeBlock: softmax, top-k, renormalize) + shared experts.

    `routed_counts` holds, after a forward, the tokens each expert received.
    """

    def __init__(self, model: ModelConfig) -> None:
        super().__init__()
        self.top_k = model.num_experts_per_tok
        self.router = nn.Linear(model.hidden_size, model.num_experts, bias=model.router_bias)
        self.experts = nn.ModuleList(
            MLP(model, model.moe_intermediate_size) for _ in range(model.num_experts)
        )
        self.shared = nn.ModuleList(
            MLP(model, model.shared_expert_intermediate_size) for _ in range(model.num_shared_experts)
        )
        self.routed_counts: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        weights, chosen = self.router(x).softmax(dim=-1).topk(self.top_k, dim=-1)
        weights = weights / weights.sum(dim=-1, keepdim=True)
        out = torch.zeros_like(x)
        self.routed_counts = []
        for e, expert in enumerate(self.experts):
            token, slot = torch.where(chosen == e)
            self.routed_counts.append(int(token.numel()))
            if token.numel():
                out = out.index_add(0, token, expert(x[token]) * weights[token, slot, None])
        for shared in self.shared:
            out = out + shared(x)
        return out.reshape(shape)


class Layer(nn.Module):
    """Pre-norm decoder layer, or post-norm (BERT) encoder layer."""

    def __init__(self, model: ModelConfig, *, moe: bool) -> None:
        super().__init__()
        self.attn = MLAttention(model) if model.is_mla else Attention(model)
        self.ffn = MoE(model) if moe else MLP(model, model.intermediate_size)
        self.norm1, self.norm2 = _norm(model, model.hidden_size), _norm(model, model.hidden_size)
        self.post_norm = model.family == "bert"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.post_norm:
            x = self.norm1(x + self.attn(x))
            return self.norm2(x + self.ffn(x))
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class LanguageModel(nn.Module):
    """Embedding, layers (dense first, then MoE), final norm or BERT MLM head, LM head, loss."""

    def __init__(self, model: ModelConfig) -> None:
        super().__init__()
        h, vocab = model.hidden_size, model.vocab_size
        self.embed = nn.Embedding(vocab, h)
        self.positions = (
            nn.Embedding(model.max_position_embeddings, h) if model.position_embedding == "learned" else None
        )
        self.types = nn.Embedding(model.type_vocab_size, h) if model.type_vocab_size else None
        bert = model.family == "bert"
        self.embed_norm = _norm(model, h) if bert or model.family == "bloom" else None  # BLOOM: both
        self.layers = nn.ModuleList(
            Layer(model, moe=i >= model.first_k_dense_layers and model.is_moe)
            for i in range(model.num_layers)
        )
        self.final_norm = None if bert else _norm(model, h)
        self.transform = (
            nn.Sequential(nn.Linear(h, h), nn.GELU(), nn.LayerNorm(h)) if model.lm_head_transform else None
        )
        self.lm_head = nn.Linear(h, vocab, bias=model.lm_head_bias)
        if model.tie_word_embeddings:
            self.lm_head.weight = self.embed.weight
        self.recompute_layers = False

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        if self.positions is not None:
            x = x + self.positions(torch.arange(tokens.shape[1]))
        if self.types is not None:
            x = x + self.types(torch.zeros_like(tokens))
        if self.embed_norm is not None:
            x = self.embed_norm(x)
        for layer in self.layers:
            x = checkpoint(layer, x, use_reentrant=False) if self.recompute_layers else layer(x)
        if self.final_norm is not None:
            x = self.final_norm(x)
        if self.transform is not None:
            x = self.transform(x)
        logits = self.lm_head(x)
        return F.cross_entropy(logits.flatten(0, 1), tokens.flatten())


def parameter_count(module: nn.Module) -> int:
    """Elements of all parameters, shared (tied) tensors once."""
    return sum(p.numel() for p in module.parameters())
