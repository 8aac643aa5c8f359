"""Import a Hugging Face `config.json` into a family-neutral `ModelConfig`.

Each family names the same quantities differently (`n_embd` in gpt2, `d_model` in mpt,
`hidden_size` elsewhere) and hides some of the architecture in the model code rather than the
config (gpt2 always has biases, qwen2 always has a q/k/v bias, bert is always an encoder). The
per-family readers below encode both, following the `transformers` configuration and modelling
files of each `model_type` (github.com/huggingface/transformers, src/transformers/models/<family>/).

Keys that size the model (hidden width, layers, heads, vocabulary, MLP width, expert counts, the
MLA ranks) are required: a config.json without them is a mistake, never silently the library's
default model. Keys that only refine the architecture (`num_key_value_heads`, biases, tying,
context length) fall back to the `transformers` default of that family.

What is not represented: layer positions of dense vs MoE layers (only their count, as
`first_k_dense_layers`), which layers skip rope (Llama 4's NoPE layers), Gemma's extra
pre/post-feed-forward norms and embedding scale, vision towers of multimodal checkpoints,
partial rotary (`rotary_pct`), parallel residuals, rope scaling,
DeepSeek's multi-token-prediction module and router score-correction bias, BERT's pooler and
next-sentence head, the checkpoint's weight quantization. None changes a GEMM shape of the main model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from twofold.errors import InputError
from twofold.workload.hf_reader import ConfigReader
from twofold.workload.model import ModelConfig

__all__ = ["SUPPORTED_MODEL_TYPES", "from_hf_config", "load_hf_config"]

# `transformers` defaults for the context length of each family's configuration class.
_DEFAULT_MAX_POSITIONS = {
    "llama": 2048,
    "mistral": 4096 * 32,
    "mixtral": 4096 * 32,
    "qwen2": 32768,
    "qwen3": 32768,
    "qwen3_moe": 32768,
    "deepseek_v3": 4096,
    "gpt_oss": 131072,
    "llama4_text": 4096 * 32,
    "gemma3": 131072,
    "gemma3_text": 131072,
    "gpt_neox": 2048,
    "bert": 512,
    "olmo": 2048,
    "olmo2": 2048,
    "gemma": 8192,
    "gemma2": 8192,
    "phi": 2048,
    "phi3": 4096,
    "starcoder2": 4096,
    "qwen2_moe": 32768,
    "deepseek_v2": 2048,
}


def _heads(
    r: ConfigReader,
    hidden: int,
    *,
    hidden_key: str = "hidden_size",
    heads_key: str = "num_attention_heads",
    kv_key: str | None = "num_key_value_heads",
    head_dim_key: str | None = "head_dim",
) -> dict[str, int]:
    heads = r.int(heads_key)
    kv_heads = r.int(kv_key, heads) if kv_key else heads
    if heads % kv_heads:
        raise InputError(kv_key or heads_key, kv_heads, f"does not divide {heads_key}={heads}")
    head_dim = r.int(head_dim_key, None) if head_dim_key else None
    if head_dim is None:
        if hidden % heads:
            rule = f"does not divide {hidden_key}={hidden} (and no head_dim is given)"
            raise InputError(heads_key, heads, rule)
        head_dim = hidden // heads
    return {"num_attention_heads": heads, "num_kv_heads": kv_heads, "head_dim": head_dim}


_QWEN_WINDOW_TYPES = ("qwen2", "qwen3", "qwen3_moe", "qwen2_moe")


def _sliding_window(r: ConfigReader, num_layers: int) -> dict[str, Any]:
    """Window size and how many layers use it.

    `layer_types` (newer configs) lists each layer; otherwise the family rule of `transformers`:
    mistral/mixtral/phi3/starcoder2 window every layer; qwen2/qwen3/qwen2_moe only with
    `use_sliding_window`, on layers >= `max_window_layers`; gpt_oss and gemma2 alternate, starting
    with a sliding layer; gemma3 has one global layer in every `sliding_window_pattern` (6), the
    others slide.
    """
    window = r.int("sliding_window", None)
    if r.model_type in _QWEN_WINDOW_TYPES and not r.bool("use_sliding_window", False):
        window = None
    layer_types = r.config.get("layer_types")
    if layer_types is not None:
        allowed = ("full_attention", "sliding_attention")
        if not isinstance(layer_types, list) or len(layer_types) != num_layers:
            raise InputError("layer_types", layer_types, f"must be a list of {num_layers} layer types")
        for kind in layer_types:
            if kind not in allowed:
                raise InputError("layer_types", kind, f"unsupported; supported: {', '.join(allowed)}")
        count = layer_types.count("sliding_attention")
    elif window is None:
        count = 0
    elif r.model_type in _QWEN_WINDOW_TYPES:
        first = r.int("max_window_layers", num_layers, minimum=0)
        count = max(0, num_layers - first)
    elif r.model_type in ("gpt_oss", "gemma2"):
        # GptOss / Gemma2: even layers (0, 2, ...) slide, odd layers attend globally.
        count = (num_layers + 1) // 2
    elif r.model_type in ("gemma3", "gemma3_text"):
        # Gemma3TextConfig: layer i is global when (i + 1) % sliding_window_pattern == 0.
        count = num_layers - num_layers // r.int("sliding_window_pattern", 6)
    else:
        count = num_layers
    if count and window is None:
        raise InputError("sliding_window", None, "required when layer_types has sliding_attention layers")
    return {"sliding_window": window if count else None, "sliding_window_layers": count}


def _top_k(r: ConfigReader, key: str, num_experts: int, experts_key: str) -> int:
    top_k = r.int(key)
    if top_k > num_experts:
        raise InputError(key, top_k, f"exceeds {experts_key}={num_experts}")
    return top_k


def _decoder(r: ConfigReader, *, intermediate_key: str | None = "intermediate_size") -> dict[str, Any]:
    """The keys llama-style decoders share (llama, mistral, mixtral, qwen*, deepseek_v3, gpt_oss)."""
    hidden = r.int("hidden_size")
    layers = r.int("num_hidden_layers")
    fields: dict[str, Any] = {
        "num_layers": layers,
        "hidden_size": hidden,
        "vocab_size": r.int("vocab_size"),
        "max_position_embeddings": r.int(
            "max_position_embeddings", _DEFAULT_MAX_POSITIONS.get(r.model_type, 4096)
        ),
        "mlp_gated": True,
        "activation": r.str("hidden_act", "silu"),
        "norm": "rmsnorm",
        "position_embedding": "rope",
        "tie_word_embeddings": r.bool("tie_word_embeddings", False),
    }
    if intermediate_key:
        fields["intermediate_size"] = r.int(intermediate_key)
    return fields


def _llama(r: ConfigReader) -> dict[str, Any]:
    fields = _decoder(r)
    bias = r.bool("attention_bias", False)
    fields.update(_heads(r, fields["hidden_size"]), qkv_bias=bias, attn_out_bias=bias)
    fields["mlp_bias"] = r.bool("mlp_bias", False)
    return fields


def _mistral(r: ConfigReader) -> dict[str, Any]:
    fields = _decoder(r)
    fields.update(_heads(r, fields["hidden_size"]), **_sliding_window(r, fields["num_layers"]))
    return fields


def _mixtral(r: ConfigReader) -> dict[str, Any]:
    fields = _mistral(r)
    experts = r.int("num_local_experts")
    fields.update(
        num_experts=experts,
        num_experts_per_tok=_top_k(r, "num_experts_per_tok", experts, "num_local_experts"),
        moe_intermediate_size=fields["intermediate_size"],  # every layer is MoE; experts are this wide
    )
    return fields


def _qwen2(r: ConfigReader) -> dict[str, Any]:
    fields = _mistral(r)
    fields.update(qkv_bias=True)  # Qwen2Attention: q/k/v projections always have a bias, o_proj none
    return fields


def _qwen3(r: ConfigReader) -> dict[str, Any]:
    fields = _mistral(r)
    bias = r.bool("attention_bias", False)
    fields.update(qkv_bias=bias, attn_out_bias=bias, qk_norm=True)
    return fields


def _qwen3_moe(r: ConfigReader) -> dict[str, Any]:
    """Layer i is sparse unless listed in `mlp_only_layers` or (i+1) % decoder_sparse_step != 0."""
    fields = _qwen3(r)
    fields.update(_qwen_sparse_layers(r, fields["num_layers"]))
    return fields


def _qwen_sparse_layers(r: ConfigReader, layers: int) -> dict[str, Any]:
    """The MoE fields of Qwen2-MoE / Qwen3-MoE (`Qwen2MoeDecoderLayer`, `Qwen3MoeDecoderLayer`)."""
    experts = r.int("num_experts")
    step = r.int("decoder_sparse_step", 1)
    mlp_only = r.config.get("mlp_only_layers") or []
    if not isinstance(mlp_only, list) or any(
        isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < layers for i in mlp_only
    ):
        raise InputError("mlp_only_layers", mlp_only, f"must be a list of layer indices in 0..{layers - 1}")
    sparse = [i for i in range(layers) if i not in mlp_only and (i + 1) % step == 0]
    top_k = _top_k(r, "num_experts_per_tok", experts, "num_experts")
    moe_width = r.int("moe_intermediate_size")
    if not sparse:
        return {}
    return {
        "num_experts": experts,
        "num_experts_per_tok": top_k,
        "moe_intermediate_size": moe_width,
        "first_k_dense_layers": layers - len(sparse),
    }


def _qwen2_moe(r: ConfigReader) -> dict[str, Any]:
    """Qwen1.5-MoE / Qwen2-MoE (HF `Qwen2MoeConfig`, `Qwen2MoeSparseMoeBlock`): sparse layers as
    Qwen3-MoE, a q/k/v bias (`qkv_bias`, default true), and one always-on shared expert of width
    `shared_expert_intermediate_size` beside the routed ones. Left out: the shared expert's
    sigmoid gate (`hidden -> 1`, one GEMV per token)."""
    fields = _mistral(r)
    fields.update(qkv_bias=r.bool("qkv_bias", True), **_qwen_sparse_layers(r, fields["num_layers"]))
    if "num_experts" in fields:
        shared = r.int("shared_expert_intermediate_size", 0, minimum=0)
        fields.update(num_shared_experts=1 if shared else 0, shared_expert_intermediate_size=shared)
    return fields


def _deepseek_v3(r: ConfigReader) -> dict[str, Any]:
    """MoE from layer `first_k_dense_replace` on (every `moe_layer_freq`-th), MLA attention.

    After the kv up-projection every head has its own key and value, so the attention kernel sees
    `num_kv_heads == num_attention_heads` (the config's `num_key_value_heads` is not used by the
    model code); what is cached is the latent, sized by `kv_lora_rank + qk_rope_head_dim`.
    """
    return _deepseek_mla(r, first_dense_default=3, shared_default=1)


def _deepseek_v2(r: ConfigReader) -> dict[str, Any]:
    """DeepSeek-V2 / V2-Lite (HF `DeepseekV2Config`, `DeepseekV2DecoderLayer`; arXiv 2405.04434
    section 2): the same MLA and shared-plus-routed MoE GEMMs as DeepSeek-V3, with the V2
    defaults (`first_k_dense_replace` 0, `n_shared_experts` 2). V2-Lite has no query compression
    (`q_lora_rank: null`). Softmax routing and its group-limited top-k change no GEMM shape."""
    return _deepseek_mla(r, first_dense_default=0, shared_default=2)


def _deepseek_mla(r: ConfigReader, *, first_dense_default: int, shared_default: int) -> dict[str, Any]:
    fields = _decoder(r)
    layers = fields["num_layers"]
    heads = r.int("num_attention_heads")
    rope_dim = r.int("qk_rope_head_dim")
    nope_dim = r.int("qk_nope_head_dim")
    experts = r.int("n_routed_experts")
    first_dense = r.int("first_k_dense_replace", first_dense_default, minimum=0)
    if first_dense > layers:
        raise InputError("first_k_dense_replace", first_dense, f"exceeds num_hidden_layers={layers}")
    freq = r.int("moe_layer_freq", 1)
    sparse = [i for i in range(first_dense, layers) if i % freq == 0]
    moe_width = r.int("moe_intermediate_size")
    shared = r.int("n_shared_experts", shared_default, minimum=0)
    bias = r.bool("attention_bias", False)
    fields.update(
        num_attention_heads=heads,
        num_kv_heads=heads,
        head_dim=nope_dim + rope_dim,
        qkv_bias=bias,
        attn_out_bias=bias,
        q_lora_rank=r.nullable_int("q_lora_rank", "null means no query compression"),
        kv_lora_rank=r.int("kv_lora_rank"),
        qk_rope_head_dim=rope_dim,
        qk_nope_head_dim=nope_dim,
        v_head_dim=r.int("v_head_dim"),
        num_experts=experts,
        num_experts_per_tok=_top_k(r, "num_experts_per_tok", experts, "n_routed_experts"),
        moe_intermediate_size=moe_width,
        # HF builds one shared MLP of width moe_intermediate_size * n_shared_experts: same GEMM
        # FLOPs and weights as n_shared_experts experts of width moe_intermediate_size.
        num_shared_experts=shared,
        shared_expert_intermediate_size=moe_width if shared else 0,
        first_k_dense_layers=layers - len(sparse),
    )
    return fields


def _gpt_oss(r: ConfigReader) -> dict[str, Any]:
    fields = _decoder(r)
    fields.update(_heads(r, fields["hidden_size"]), **_sliding_window(r, fields["num_layers"]))
    experts = r.int("num_local_experts")
    if r.has("experts_per_token"):  # the key of OpenAI's config; HF also writes num_experts_per_tok
        top_k = _top_k(r, "experts_per_token", experts, "num_local_experts")
        if r.has("num_experts_per_tok") and r.int("num_experts_per_tok") != top_k:
            other = r.config["num_experts_per_tok"]
            raise InputError("num_experts_per_tok", other, f"disagrees with experts_per_token={top_k}")
    elif r.has("num_experts_per_tok"):
        top_k = _top_k(r, "num_experts_per_tok", experts, "num_local_experts")
    else:
        raise InputError(
            "experts_per_token",
            None,
            "required key missing from a model_type='gpt_oss' config (or num_experts_per_tok)",
        )
    bias = r.bool("attention_bias", True)
    fields.update(
        qkv_bias=bias,
        attn_out_bias=bias,
        mlp_bias=True,  # GptOssExperts: gate_up_proj_bias and down_proj_bias
        router_bias=True,  # GptOssTopKRouter: a bias per expert
        attention_sinks=True,  # GptOssAttention.sinks: one learned logit per head
        num_experts=experts,
        num_experts_per_tok=top_k,
        moe_intermediate_size=fields["intermediate_size"],
    )
    return fields


def _text_config(r: ConfigReader, text_type: str) -> ConfigReader:
    """The language model's keys of a multimodal config.json (`text_config`), or the config itself."""
    text = r.mapping("text_config")
    return ConfigReader(text, text_type) if text else r


def _llama4(r: ConfigReader) -> dict[str, Any]:
    """Llama 4 (HF `Llama4TextConfig` / `Llama4TextDecoderLayer`), read from `text_config`.

    MoE layers are every `interleave_moe_layer_step`-th (HF: `moe_layers = range(step - 1, L,
    step)`, or an explicit `moe_layers` list): `num_local_experts` routed experts and one shared
    expert, all `intermediate_size` wide, top-`num_experts_per_tok` (1) routing; dense layers are
    `intermediate_size_mlp` wide. Layers that use rope (`no_rope_layers[i] == 1`; by default all
    but every 4th) attend within chunks of `attention_chunk_size` (8192) tokens; the others (NoPE)
    attend globally. A chunked layer is modelled as a sliding window of the chunk size: the same
    keys while the context is within one chunk and the same cache bound (at most one chunk), but
    beyond the first chunk a query sees `pos mod chunk + 1` keys, not the full window, so prefill
    attention FLOPs of longer prompts are over-counted (at most 2x on those layers). Left out: the
    weightless L2 q/k norm (`use_qk_norm`), attention temperature tuning on NoPE layers, the vision
    tower and projector.
    """
    t = _text_config(r, "llama4_text")
    fields = _decoder(t, intermediate_key="intermediate_size_mlp")
    layers = fields["num_layers"]
    fields["tie_word_embeddings"] = r.bool("tie_word_embeddings", t.bool("tie_word_embeddings", False))
    fields.update(_heads(t, fields["hidden_size"]))
    bias = t.bool("attention_bias", False)
    fields.update(qkv_bias=bias, attn_out_bias=bias)
    experts = t.int("num_local_experts")
    step = t.int("interleave_moe_layer_step", 1)
    moe_layers = t.config.get("moe_layers") or list(range(step - 1, layers, step))
    if not isinstance(moe_layers, list) or any(
        isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < layers for i in moe_layers
    ):
        raise InputError("moe_layers", moe_layers, f"must be a list of layer indices in 0..{layers - 1}")
    rope_flags = t.config.get("no_rope_layers") or [int((i + 1) % 4 != 0) for i in range(layers)]
    if not isinstance(rope_flags, list) or len(rope_flags) != layers or not set(rope_flags) <= {0, 1}:
        raise InputError("no_rope_layers", rope_flags, f"must be a list of {layers} flags (1: rope, 0: NoPE)")
    chunk = t.int("attention_chunk_size", 8192)
    width = t.int("intermediate_size")
    fields.update(
        sliding_window=chunk if sum(rope_flags) else None,
        sliding_window_layers=sum(rope_flags),
        num_experts=experts,
        num_experts_per_tok=_top_k(t, "num_experts_per_tok", experts, "num_local_experts"),
        moe_intermediate_size=width,
        num_shared_experts=1,
        shared_expert_intermediate_size=width,
        first_k_dense_layers=layers - len(set(moe_layers)),
    )
    return fields


def _gemma3(r: ConfigReader) -> dict[str, Any]:
    """Gemma 3 (HF `Gemma3TextConfig`; the 4B-27B checkpoints nest it in `text_config`).

    GeGLU MLP (`hidden_activation`, gelu tanh), q/k RMSNorm, tied embeddings, `head_dim` given
    (not hidden/heads), one global layer in `sliding_window_pattern` (6) and the others sliding
    over `sliding_window` keys (Gemma Team 2025, Gemma 3 Technical Report, arXiv:2503.19786,
    section 2.1). Left out: the post-attention and pre/post-feed-forward norms (two more RMSNorms
    per layer), the sqrt(hidden) embedding scale, the SigLIP vision tower.
    """
    t = _text_config(r, "gemma3_text")
    hidden = t.int("hidden_size")
    layers = t.int("num_hidden_layers")
    fields: dict[str, Any] = {
        "num_layers": layers,
        "hidden_size": hidden,
        "intermediate_size": t.int("intermediate_size"),
        "vocab_size": t.int("vocab_size", 262208),  # Gemma3TextConfig default
        "max_position_embeddings": t.int("max_position_embeddings", 131072),
        "mlp_gated": True,
        "activation": t.str("hidden_activation", "gelu_pytorch_tanh"),
        "norm": "rmsnorm",
        "position_embedding": "rope",
        "tie_word_embeddings": r.bool("tie_word_embeddings", t.bool("tie_word_embeddings", True)),
        "qk_norm": True,
    }
    bias = t.bool("attention_bias", False)
    fields.update(_heads(t, hidden), qkv_bias=bias, attn_out_bias=bias, **_sliding_window(t, layers))
    return fields


def _gpt2(r: ConfigReader) -> dict[str, Any]:
    hidden = r.int("n_embd")
    inner = r.int("n_inner", None)
    return {
        "num_layers": r.int("n_layer"),
        "hidden_size": hidden,
        **_heads(r, hidden, hidden_key="n_embd", heads_key="n_head", kv_key=None, head_dim_key=None),
        "intermediate_size": inner if inner is not None else 4 * hidden,  # GPT2MLP: n_inner or 4*n_embd
        "vocab_size": r.int("vocab_size"),
        "max_position_embeddings": r.int("n_positions", 1024),
        "mlp_gated": False,
        "activation": r.str("activation_function", "gelu_new"),
        "norm": "layernorm",
        "position_embedding": "learned",
        "tie_word_embeddings": r.bool("tie_word_embeddings", True),
        "qkv_bias": True,
        "attn_out_bias": True,
        "mlp_bias": True,
    }


def _gpt_neox(r: ConfigReader) -> dict[str, Any]:
    hidden = r.int("hidden_size")
    bias = r.bool("attention_bias", True)
    return {
        "num_layers": r.int("num_hidden_layers"),
        "hidden_size": hidden,
        **_heads(r, hidden, kv_key=None, head_dim_key=None),
        "intermediate_size": r.int("intermediate_size"),
        "vocab_size": r.int("vocab_size"),
        "max_position_embeddings": r.int("max_position_embeddings", 2048),
        "mlp_gated": False,
        "activation": r.str("hidden_act", "gelu"),
        "norm": "layernorm",
        "position_embedding": "rope",
        "tie_word_embeddings": r.bool("tie_word_embeddings", False),
        "qkv_bias": bias,
        "attn_out_bias": bias,
        "mlp_bias": True,
    }


def _mpt(r: ConfigReader) -> dict[str, Any]:
    """MPT (mosaicml llm-foundry / HF `MptConfig`); `attn_config` and `ffn_config` are nested."""
    hidden = r.int("d_model")
    heads = r.int("n_heads")
    attn = r.mapping("attn_config")
    attn_type = attn.get("attn_type", "multihead_attention")
    kv_heads = heads
    if attn_type == "multiquery_attention":
        kv_heads = 1
    elif attn_type == "grouped_query_attention":
        kv_heads = ConfigReader(attn, "mpt").int("kv_n_heads")
        if heads % kv_heads:
            raise InputError("kv_n_heads", kv_heads, f"does not divide n_heads={heads}")
    fields = _heads(r, hidden, hidden_key="d_model", heads_key="n_heads", kv_key=None, head_dim_key=None)
    fields["num_kv_heads"] = kv_heads
    if attn.get("alibi", True):  # HF MptModel always uses ALiBi; llm-foundry may switch it off
        position = "alibi"
    elif attn.get("rope", False):
        position = "rope"
    else:
        position = "learned" if r.bool("learned_pos_emb", True) else "none"
    ffn = r.mapping("ffn_config")
    if "ffn_hidden_size" in ffn:
        intermediate = ConfigReader(ffn, "mpt").int("ffn_hidden_size")
    else:
        ratio = r.config.get("expansion_ratio", 4)
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or ratio <= 0:
            raise InputError("expansion_ratio", ratio, "must be a positive number")
        intermediate = int(ratio * hidden)  # llm-foundry resolve_ffn_hidden_size truncates
        if intermediate < 1:
            raise InputError("expansion_ratio", ratio, f"gives an MLP width below 1 with d_model={hidden}")
    bias = not r.bool("no_bias", True)
    return {
        "num_layers": r.int("n_layers"),
        "hidden_size": hidden,
        **fields,
        "intermediate_size": intermediate,
        "vocab_size": r.int("vocab_size"),
        "max_position_embeddings": r.int("max_seq_len", 2048),
        "mlp_gated": False,
        "activation": "gelu",
        "norm": "layernorm",
        "position_embedding": position,
        "tie_word_embeddings": r.bool("tie_word_embeddings", True),
        "qkv_bias": bias,
        "attn_out_bias": bias,
        "mlp_bias": bias,
    }


def _bert(r: ConfigReader) -> dict[str, Any]:
    """BERT with its masked-LM head (BertForMaskedLM): transform + tied decoder with a bias."""
    hidden = r.int("hidden_size")
    position = r.str("position_embedding_type", "absolute")
    if position != "absolute":
        raise InputError("position_embedding_type", position, "unsupported; supported: absolute")
    return {
        "num_layers": r.int("num_hidden_layers"),
        "hidden_size": hidden,
        **_heads(r, hidden, kv_key=None, head_dim_key=None),
        "intermediate_size": r.int("intermediate_size"),
        "vocab_size": r.int("vocab_size"),
        "max_position_embeddings": r.int("max_position_embeddings", 512),
        "type_vocab_size": r.int("type_vocab_size", 2, minimum=0),
        "mlp_gated": False,
        "activation": r.str("hidden_act", "gelu"),
        "norm": "layernorm",
        "causal": r.bool("is_decoder", False),
        "position_embedding": "learned",
        "tie_word_embeddings": r.bool("tie_word_embeddings", True),
        "qkv_bias": True,
        "attn_out_bias": True,
        "mlp_bias": True,
        "lm_head_bias": True,
        "lm_head_transform": True,
    }


def _key(r: ConfigReader, *names: str) -> str:
    """The first of `names` the config has (older configs spell a key differently), else the first."""
    return next((name for name in names if r.has(name)), names[0])


def _activation(r: ConfigReader, *keys: str, default: str) -> str:
    """The first non-null activation key (Gemma configs carry `hidden_activation: null` beside
    `hidden_act`)."""
    for key in keys:
        if r.config.get(key) is not None:
            return r.str(key, default)
    return default


def _bloom(r: ConfigReader) -> dict[str, Any]:
    """BLOOM (HF `BloomConfig`, `BloomModel`; BigScience 2022, arXiv:2211.05100 section 3.2):
    ALiBi instead of position embeddings, a LayerNorm on the word embeddings
    (`word_embeddings_layernorm`, counted in `workload.params`), fused q/k/v and every linear
    with a bias, a plain 4h GELU MLP (`BloomMLP`), the head tied to the embedding."""
    hidden_key = _key(r, "hidden_size", "n_embed")
    hidden = r.int(hidden_key)
    return {
        "num_layers": r.int(_key(r, "n_layer", "num_hidden_layers")),
        "hidden_size": hidden,
        **_heads(
            r,
            hidden,
            hidden_key=hidden_key,
            heads_key=_key(r, "n_head", "num_attention_heads"),
            kv_key=None,
            head_dim_key=None,
        ),
        "intermediate_size": 4 * hidden,  # BloomMLP: dense_h_to_4h, always 4 * hidden_size
        "vocab_size": r.int("vocab_size"),
        "max_position_embeddings": r.int("seq_length", 2048),  # ALiBi: no table; BLOOM trained at 2048
        "mlp_gated": False,
        "activation": "gelu",  # BloomGelu (tanh approximation)
        "norm": "layernorm",
        "position_embedding": "alibi",
        "tie_word_embeddings": r.bool("tie_word_embeddings", True),
        "qkv_bias": True,
        "attn_out_bias": True,
        "mlp_bias": True,
    }


def _opt(r: ConfigReader) -> dict[str, Any]:
    """OPT (HF `OPTConfig`, `OPTDecoderLayer`; Zhang et al. 2022, arXiv:2205.01068 table 1):
    learned positions, LayerNorm, plain ReLU MLP of `ffn_dim`, biases (`enable_bias`), tied head.
    `word_embed_proj_dim` different from `hidden_size` (OPT-350m's project_in/project_out) is
    refused. Left out: the two extra rows of `OPTLearnedPositionalEmbedding` (offset 2)."""
    hidden = r.int("hidden_size")
    proj = r.int("word_embed_proj_dim", hidden)
    if proj != hidden:
        rule = (
            f"differs from hidden_size={hidden}: the embedding projections (project_in/project_out) "
            "of such OPT models are not modelled"
        )
        raise InputError("word_embed_proj_dim", proj, rule)
    bias = r.bool("enable_bias", True)
    return {
        "num_layers": r.int("num_hidden_layers"),
        "hidden_size": hidden,
        **_heads(r, hidden, kv_key=None, head_dim_key=None),
        "intermediate_size": r.int("ffn_dim"),
        "vocab_size": r.int("vocab_size"),
        "max_position_embeddings": r.int("max_position_embeddings", 2048),
        "mlp_gated": False,
        "activation": r.str("activation_function", "relu"),
        "norm": "layernorm",
        "position_embedding": "learned",
        "tie_word_embeddings": r.bool("tie_word_embeddings", True),
        "qkv_bias": bias,
        "attn_out_bias": bias,
        "mlp_bias": bias,
    }


def _falcon(r: ConfigReader) -> dict[str, Any]:
    """Falcon (HF `FalconConfig`, `FalconAttention`, `FalconDecoderLayer`; Almazrouei et al. 2023,
    arXiv:2311.16867 section 4): fused q/k/v with `num_kv_heads` key/value heads under
    `new_decoder_architecture` (Falcon-40B/180B), one (`multi_query`, Falcon-7B) or all heads
    otherwise; attention and MLP in parallel (`parallel_attn`) off one input; plain GELU MLP of
    `ffn_hidden_size` (default 4h); rotary positions unless `alibi`; `bias` on every linear; tied
    head. Left out: the norm count of the parallel block (one or two LayerNorms, as two)."""
    hidden_key = _key(r, "hidden_size", "n_embed")
    hidden = r.int(hidden_key)
    heads_key = _key(r, "num_attention_heads", "n_head")
    fields = _heads(r, hidden, hidden_key=hidden_key, heads_key=heads_key, kv_key=None, head_dim_key=None)
    heads = fields["num_attention_heads"]
    if r.bool("new_decoder_architecture", False):
        kv_key = _key(r, "num_kv_heads", "n_head_kv")
        kv_heads = r.int(kv_key, heads)
        if heads % kv_heads:
            raise InputError(kv_key, kv_heads, f"does not divide {heads_key}={heads}")
        fields["num_kv_heads"] = kv_heads
    elif r.bool("multi_query", True):
        fields["num_kv_heads"] = 1
    bias = r.bool("bias", False)
    return {
        "num_layers": r.int(_key(r, "num_hidden_layers", "n_layer")),
        "hidden_size": hidden,
        **fields,
        "intermediate_size": r.int("ffn_hidden_size", 4 * hidden),
        "vocab_size": r.int("vocab_size"),
        "max_position_embeddings": r.int("max_position_embeddings", 2048),
        "mlp_gated": False,
        "activation": r.str("activation", "gelu"),
        "norm": "layernorm",
        "position_embedding": "alibi" if r.bool("alibi", False) else "rope",
        "tie_word_embeddings": r.bool("tie_word_embeddings", True),
        "qkv_bias": bias,
        "attn_out_bias": bias,
        "mlp_bias": bias,
    }


def _gptj(r: ConfigReader) -> dict[str, Any]:
    """GPT-J (HF `GPTJConfig`, `GPTJBlock`): attention and MLP in parallel off one LayerNorm, q/k/v
    and output projections without bias, a plain MLP `n_inner` (default 4h) wide with biases,
    rotary on the first `rotary_dim` dims of each head, an untied LM head with a bias. Left out:
    the block's single norm (counted as two)."""
    hidden = r.int("n_embd")
    inner = r.int("n_inner", None)
    return {
        "num_layers": r.int("n_layer"),
        "hidden_size": hidden,
        **_heads(r, hidden, hidden_key="n_embd", heads_key="n_head", kv_key=None, head_dim_key=None),
        "intermediate_size": inner if inner is not None else 4 * hidden,
        "vocab_size": r.int("vocab_size"),
        "max_position_embeddings": r.int("n_positions", 2048),
        "mlp_gated": False,
        "activation": r.str("activation_function", "gelu_new"),
        "norm": "layernorm",
        "position_embedding": "rope",
        "tie_word_embeddings": r.bool("tie_word_embeddings", False),
        "mlp_bias": True,
        "lm_head_bias": True,  # GPTJForCausalLM.lm_head = nn.Linear(n_embd, vocab_size): bias on
    }


def _gpt_bigcode(r: ConfigReader) -> dict[str, Any]:
    """GPTBigCode / StarCoder (HF `GPTBigCodeConfig`, `GPTBigCodeAttention`): GPT-2 layout (learned
    positions, LayerNorm, biases everywhere, plain MLP `n_inner` or 4h, tied head) with
    multi-query attention (`multi_query`, default true: one key/value head)."""
    if r.bool("add_cross_attention", False):
        raise InputError(
            "add_cross_attention", True, "unsupported: cross-attention to an encoder is not modelled"
        )
    fields = _gpt2(r)
    fields["activation"] = r.str("activation_function", "gelu_pytorch_tanh")
    fields["max_position_embeddings"] = r.int("n_positions", 1024)
    if r.bool("multi_query", True):
        fields["num_kv_heads"] = 1
    return fields


def _olmo(r: ConfigReader) -> dict[str, Any]:
    """OLMo (HF `OlmoConfig`, `OlmoDecoderLayer`; Groeneveld et al. 2024, arXiv:2402.00838 section
    2.1): the Llama layout (SwiGLU, rotary) with LayerNorms that have no weight or bias
    (`OlmoLayerNorm`; counted in `workload.params` as an ordinary LayerNorm, 4h per layer).
    `clip_qkv` changes no shape."""
    fields = _llama(r)
    fields["norm"] = "layernorm"
    return fields


def _olmo2(r: ConfigReader) -> dict[str, Any]:
    """OLMo 2 (HF `Olmo2Config`, `Olmo2DecoderLayer`; OLMo Team 2024, arXiv:2501.00656 section
    2.1): the Llama GEMMs with RMSNorm after attention and MLP (not before) and RMSNorm on q and k
    over the full projection width (`q_norm`, `k_norm`; counted per head in `workload.params`)."""
    fields = _llama(r)
    fields["qk_norm"] = True
    return fields


def _gemma(r: ConfigReader) -> dict[str, Any]:
    """Gemma (HF `GemmaConfig`, `GemmaDecoderLayer`; Gemma Team 2024, arXiv:2403.08295 table 1):
    GeGLU MLP (`hidden_activation`, else `hidden_act`), `head_dim` given (256: q width 4096 for
    hidden 3072 in Gemma-7B), multi-query in Gemma-2B, tied embeddings. Left out: the sqrt(hidden)
    embedding scale."""
    fields = _decoder(r)
    fields["activation"] = _activation(r, "hidden_activation", "hidden_act", default="gelu_pytorch_tanh")
    fields["tie_word_embeddings"] = r.bool("tie_word_embeddings", True)
    bias = r.bool("attention_bias", False)
    fields.update(_heads(r, fields["hidden_size"]), qkv_bias=bias, attn_out_bias=bias)
    return fields


def _gemma2(r: ConfigReader) -> dict[str, Any]:
    """Gemma 2 (HF `Gemma2Config`, `Gemma2DecoderLayer`; Gemma Team 2024, arXiv:2408.00118 section
    2): Gemma's GEMMs, local sliding-window attention (`sliding_window`, 4096) on every other layer
    starting with the first (or as `layer_types` lists). Left out: the post-attention and
    pre/post-feed-forward norms (two more RMSNorms per layer), attention and final logit
    soft-capping (elementwise)."""
    fields = _gemma(r)
    fields.update(_sliding_window(r, fields["num_layers"]))
    return fields


def _phi(r: ConfigReader) -> dict[str, Any]:
    """Phi-1/1.5/2 (HF `PhiConfig`, `PhiDecoderLayer`): attention and MLP in parallel off one
    LayerNorm, q/k/v/dense with biases, plain `gelu_new` MLP with biases, partial rotary
    (`partial_rotary_factor`), an untied LM head with a bias (`PhiForCausalLM.lm_head`).
    `qk_layernorm` is a per-head norm on q and k. Left out: the block's single norm (counted as two)."""
    fields = _decoder(r)
    fields.update(_heads(r, fields["hidden_size"]))
    fields.update(
        mlp_gated=False,
        activation=r.str("hidden_act", "gelu_new"),
        norm="layernorm",
        qkv_bias=True,
        attn_out_bias=True,
        mlp_bias=True,
        lm_head_bias=True,
        qk_norm=r.bool("qk_layernorm", False),
    )
    return fields


def _phi3(r: ConfigReader) -> dict[str, Any]:
    """Phi-3 (HF `Phi3Config`, `Phi3Attention`, `Phi3MLP`): the Llama GEMMs with q/k/v fused
    (`qkv_proj`) and gate/up fused (`gate_up_proj`), no biases, untied head; a `sliding_window`,
    when given, applies to every layer (Phi-3-mini-4k: 2047). Long-context rope scaling changes no
    shape."""
    return _mistral(r)


def _starcoder2(r: ConfigReader) -> dict[str, Any]:
    """StarCoder2 (HF `Starcoder2Config`, `Starcoder2Attention`, `Starcoder2MLP`; Lozhkov et al.
    2024, arXiv:2402.19173 section 6): GQA with rotary positions, biases on every linear
    (`use_bias`), LayerNorm, a plain `gelu_pytorch_tanh` MLP (`c_fc`, `c_proj`), a sliding window on
    every layer when given."""
    fields = _mistral(r)
    bias = r.bool("use_bias", True)
    fields.update(
        mlp_gated=False,
        activation=r.str("hidden_act", "gelu_pytorch_tanh"),
        norm="layernorm",
        tie_word_embeddings=r.bool("tie_word_embeddings", True),
        qkv_bias=bias,
        attn_out_bias=bias,
        mlp_bias=bias,
    )
    return fields


def _dbrx(r: ConfigReader) -> dict[str, Any]:
    """DBRX (HF `DbrxConfig`, `DbrxAttention`, `DbrxExperts`): fused q/k/v with
    `attn_config.kv_n_heads` key/value heads, rotary, LayerNorms without bias, every layer MoE with
    `ffn_config.moe_num_experts` GLU experts (w1, v1, w2) `ffn_config.ffn_hidden_size` wide,
    top-`moe_top_k`, no shared expert, untied head. `clip_qkv` changes no shape."""
    hidden = r.int("d_model")
    heads = r.int("n_heads")
    attn = ConfigReader(r.mapping("attn_config"), "dbrx")
    kv_heads = attn.int("kv_n_heads", 1)
    if heads % kv_heads:
        raise InputError("attn_config.kv_n_heads", kv_heads, f"does not divide n_heads={heads}")
    ffn = ConfigReader(r.mapping("ffn_config"), "dbrx")
    width = ffn.int("ffn_hidden_size")
    experts = ffn.int("moe_num_experts")
    act = ffn.mapping("ffn_act_fn").get("name", "silu")
    if not isinstance(act, str) or not act:
        raise InputError("ffn_config.ffn_act_fn.name", act, "must be a non-empty string")
    fields = _heads(r, hidden, hidden_key="d_model", heads_key="n_heads", kv_key=None, head_dim_key=None)
    fields["num_kv_heads"] = kv_heads
    return {
        "num_layers": r.int("n_layers"),
        "hidden_size": hidden,
        **fields,
        "intermediate_size": width,
        "vocab_size": r.int("vocab_size"),
        "max_position_embeddings": r.int("max_seq_len", 2048),
        "mlp_gated": True,
        "activation": act,
        "norm": "layernorm",
        "position_embedding": "rope",
        "tie_word_embeddings": r.bool("tie_word_embeddings", False),
        "num_experts": experts,
        "num_experts_per_tok": _top_k(ffn, "moe_top_k", experts, "moe_num_experts"),
        "moe_intermediate_size": width,
    }


# Model types whose layers `ModelConfig` cannot represent honestly, with the reason.
_UNREPRESENTABLE = {
    "mamba": "state-space (Mamba) layers are not modelled",
    "mamba2": "state-space (Mamba-2) layers are not modelled",
    "falcon_mamba": "state-space (Mamba) layers are not modelled",
    "falcon_h1": "hybrid attention/state-space (Mamba-2) layers are not modelled",
    "jamba": "hybrid attention/state-space (Mamba) layers are not modelled",
    "zamba": "hybrid attention/state-space (Mamba) layers are not modelled",
    "zamba2": "hybrid attention/state-space (Mamba-2) layers are not modelled",
    "bamba": "hybrid attention/state-space (Mamba-2) layers are not modelled",
    "nemotron_h": "hybrid attention/state-space (Mamba-2) layers are not modelled",
    "granitemoehybrid": "hybrid attention/state-space (Mamba-2) layers are not modelled",
    "rwkv": "recurrent (RWKV) layers are not modelled",
    "recurrent_gemma": "recurrent (Griffin RG-LRU) layers are not modelled",
    "xlstm": "recurrent (xLSTM) layers are not modelled",
    "t5": "encoder-decoder models (cross-attention) are not modelled",
    "mt5": "encoder-decoder models (cross-attention) are not modelled",
    "bart": "encoder-decoder models (cross-attention) are not modelled",
}


_FAMILIES: dict[str, Callable[[ConfigReader], dict[str, Any]]] = {
    "bert": _bert,
    "bloom": _bloom,
    "dbrx": _dbrx,
    "deepseek_v2": _deepseek_v2,
    "deepseek_v3": _deepseek_v3,
    "falcon": _falcon,
    "gemma": _gemma,
    "gemma2": _gemma2,
    "gemma3": _gemma3,
    "gemma3_text": _gemma3,
    "gpt2": _gpt2,
    "gpt_bigcode": _gpt_bigcode,
    "gpt_neox": _gpt_neox,
    "gpt_oss": _gpt_oss,
    "gptj": _gptj,
    "llama": _llama,
    "llama4": _llama4,
    "mistral": _mistral,
    "mixtral": _mixtral,
    "mpt": _mpt,
    "olmo": _olmo,
    "olmo2": _olmo2,
    "opt": _opt,
    "phi": _phi,
    "phi3": _phi3,
    "qwen2": _qwen2,
    "qwen2_moe": _qwen2_moe,
    "qwen3": _qwen3,
    "qwen3_moe": _qwen3_moe,
    "starcoder2": _starcoder2,
}
SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(sorted(_FAMILIES))


def from_hf_config(config: Mapping[str, Any], *, name: str | None = None, source: str = "") -> ModelConfig:
    """The `ModelConfig` of a parsed config.json; `name` defaults to `_name_or_path` or the family.

    Raises `InputError` naming the key, its value and the rule for every malformed input.
    """
    if not isinstance(config, Mapping):
        raise InputError("config", type(config).__name__, "is not a JSON object")
    supported = ", ".join(SUPPORTED_MODEL_TYPES)
    if "model_type" not in config:
        raise InputError("model_type", None, f"required key missing; supported model types: {supported}")
    model_type = config["model_type"]
    if isinstance(model_type, str) and model_type in _UNREPRESENTABLE:
        rule = f"unsupported: {_UNREPRESENTABLE[model_type]}; supported model types: {supported}"
        raise InputError("model_type", model_type, rule)
    if not isinstance(model_type, str) or model_type not in _FAMILIES:
        raise InputError("model_type", model_type, f"unsupported; supported model types: {supported}")
    fields = _FAMILIES[model_type](ConfigReader(config, model_type))
    if name is None:
        path_name = config.get("_name_or_path")
        name = path_name if isinstance(path_name, str) and path_name else model_type
    return ModelConfig(name=name, family=model_type, source=source, **fields)


def load_hf_config(path: str | Path, *, name: str | None = None) -> ModelConfig:
    """Read a config.json file (or a directory holding one); errors name the path."""
    file = Path(path)
    if file.is_dir():
        file = file / "config.json"
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("model", str(file), "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError("model", str(file), f"cannot be read: {exc}") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            "model", str(file), f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(config, dict):
        raise InputError("model", str(file), f"is not a JSON object (found {type(config).__name__})")
    if name is None and not config.get("_name_or_path"):
        name = file.parent.name if file.name == "config.json" and file.parent.name else file.stem
    return from_hf_config(config, name=name, source=str(file))
