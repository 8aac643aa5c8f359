"""The readers added for published runs on older and other families: bloom, opt, falcon, gptj,
gpt_bigcode, olmo, olmo2, gemma, gemma2, phi, phi3, starcoder2, qwen2_moe, deepseek_v2, dbrx.

Two checks per family. (1) Key mapping, derived by hand from the family's `transformers` code
(github.com/huggingface/transformers, src/transformers/models/<type>/configuration_<type>.py and
modeling_<type>.py). (2) The key check that the reader got the GEMM shapes right: the parameter
count computed from a real checkpoint's config.json (the catalog entry) equals that checkpoint's
published count, from a source independent of twofold (paper, model card or the checkpoint's
tensor sizes), within 1% (the published figure is cited beside it).
"""

from __future__ import annotations

from typing import Any

import pytest

from twofold.errors import InputError
from twofold.workload.hf_config import from_hf_config
from twofold.workload.params import param_counts
from twofold.workload.registry import get_model

# catalog id -> (published total parameters, where it is published). Exact counts where the source
# prints one; otherwise the rounded figure, checked within 1%.
PUBLISHED_TOTALS = {
    # BigScience 2022, arXiv:2211.05100, section 3.2 / table 3: 176,247M.
    "bloom-176b": 176_247e6,
    # Zhang et al. 2022, OPT, arXiv:2205.01068, table 1: 175B, 66B, 30B.
    "opt-175b": 175e9,
    "opt-66b": 66e9,
    "opt-30b": 30e9,
    # Almazrouei et al. 2023, The Falcon Series, arXiv:2311.16867, table 1: 180B (the 7B and 40B
    # names are size classes: 6.92B and 41.3B tied, checked by the catalog's rounding rule).
    "falcon-180b": 180e9,
    # EleutherAI/gpt-j-6b model card: n_parameters 6,053,381,344.
    "gpt-j-6b": 6_053_381_344,
    # Li et al. 2023, StarCoder, arXiv:2305.06161: 15.5B (gpt_bigcode, multi-query attention).
    "starcoder-15b": 15.5e9,
    # allenai/OLMo-7B-hf on the Hub: 6.89B (safetensors).
    "olmo-7b": 6.89e9,
    # OLMo Team 2024, arXiv:2501.00656, and the Hub sizes of allenai/OLMo-2-1124-7B / -13B.
    "olmo-2-7b": 7.3e9,
    "olmo-2-13b": 13.7e9,
    # Gemma Team 2024, arXiv:2403.08295, table 2: 786,432,000 + 7,751,248,896 = 8,537,680,896.
    "gemma-7b": 8_537_680_896,
    # Gemma Team 2024, arXiv:2408.00118, table 2: 9B 917,504,000 + 8,324,201,984; 27B 27.2B.
    "gemma-2-9b": 9_241_705_984,
    "gemma-2-27b": 27.2e9,
    # microsoft/phi-2 on the Hub: 2.78B (safetensors).
    "phi-2": 2.78e9,
    # Abdin et al. 2024, Phi-3 Technical Report, arXiv:2404.14219: phi-3-mini 3.8B.
    "phi-3-mini": 3.8e9,
    # Qwen Team 2024, Qwen1.5-MoE blog: 14.3B total.
    "qwen1.5-moe-a2.7b": 14.3e9,
    # DeepSeek-AI 2024, DeepSeek-V2, arXiv:2405.04434: V2 236B total; V2-Lite 15.7B (appendix B).
    "deepseek-v2": 236e9,
    "deepseek-v2-lite": 15.7e9,
    # Databricks 2024, "Introducing DBRX": 132B total.
    "dbrx": 132e9,
    # mosaicml/mpt-30b model card: 29.95B.
    "mpt-30b": 29.95e9,
}


@pytest.mark.parametrize("model_id", sorted(PUBLISHED_TOTALS))
def test_total_from_the_checkpoint_config_matches_the_published_count(model_id: str) -> None:
    total = param_counts(get_model(model_id)).total
    assert total == pytest.approx(PUBLISHED_TOTALS[model_id], rel=0.01), (model_id, total)


def test_exact_counts_where_the_source_prints_every_digit() -> None:
    """BLOOM's embedding LayerNorm and Gemma's 256-wide heads make these exact, not approximate."""
    assert (
        param_counts(get_model("bloom-176b")).total == 176_247_271_424
    )  # arXiv:2211.05100 table 3 rounds it
    assert param_counts(get_model("gemma-7b")).total == 8_537_680_896  # arXiv:2403.08295 table 2
    # Gemma 2 has four RMSNorms per layer, twofold counts two: 42 * 2 * 3584 fewer.
    assert param_counts(get_model("gemma-2-9b")).total == 9_241_705_984 - 42 * 2 * 3584


def _cfg(model_type: str, **keys: Any) -> dict[str, Any]:
    return {"model_type": model_type, **keys}


def _error(config: dict[str, Any]) -> InputError:
    with pytest.raises(InputError) as info:
        from_hf_config(config)
    return info.value


# ---------------------------------------------------------------- key mapping, one test per family


def test_bloom_alibi_plain_4h_mlp_biases_tied_and_n_embed_spelling() -> None:
    m = from_hf_config(_cfg("bloom", n_embed=64, n_layer=2, n_head=8, vocab_size=100))
    assert (m.hidden_size, m.num_layers, m.num_attention_heads, m.num_kv_heads, m.head_dim) == (
        64,
        2,
        8,
        8,
        8,
    )
    assert m.intermediate_size == 256 and not m.mlp_gated and m.position_embedding == "alibi"
    assert m.qkv_bias and m.attn_out_bias and m.mlp_bias and m.tie_word_embeddings and m.norm == "layernorm"


def test_opt_learned_positions_relu_ffn_dim_and_projection_refused() -> None:
    keys = {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "ffn_dim": 96,
        "vocab_size": 100,
    }
    m = from_hf_config(_cfg("opt", **keys))
    assert (m.intermediate_size, m.activation, m.position_embedding) == (96, "relu", "learned")
    assert m.qkv_bias and m.mlp_bias and m.tie_word_embeddings and not m.mlp_gated
    assert not from_hf_config(_cfg("opt", **keys, enable_bias=False)).mlp_bias
    err = _error(_cfg("opt", **keys, word_embed_proj_dim=32))
    assert (err.field, err.value) == ("word_embed_proj_dim", 32) and "project_in" in str(err)


def test_falcon_kv_heads_by_architecture_flag() -> None:
    keys = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 8, "vocab_size": 100}
    seven = from_hf_config(_cfg("falcon", **keys))  # multi_query defaults to true (Falcon-7B)
    assert seven.num_kv_heads == 1 and seven.intermediate_size == 256 and seven.position_embedding == "rope"
    assert seven.tie_word_embeddings and not seven.qkv_bias
    assert from_hf_config(_cfg("falcon", **keys, multi_query=False)).num_kv_heads == 8
    new = from_hf_config(_cfg("falcon", **keys, new_decoder_architecture=True, num_kv_heads=2, bias=True))
    assert new.num_kv_heads == 2 and new.qkv_bias and new.mlp_bias
    assert (
        from_hf_config(_cfg("falcon", **keys, alibi=True, ffn_hidden_size=80)).position_embedding == "alibi"
    )
    assert from_hf_config(_cfg("falcon", **keys, ffn_hidden_size=80)).intermediate_size == 80
    err = _error(_cfg("falcon", **keys, new_decoder_architecture=True, num_kv_heads=3))
    assert (err.field, err.value) == ("num_kv_heads", 3) and "does not divide" in str(err)


def test_gptj_bias_free_attention_biased_mlp_and_lm_head() -> None:
    m = from_hf_config(_cfg("gptj", n_embd=64, n_layer=2, n_head=4, vocab_size=100))
    assert (
        m.intermediate_size == 256 and not (m.qkv_bias or m.attn_out_bias) and m.mlp_bias and m.lm_head_bias
    )
    assert not m.tie_word_embeddings and m.position_embedding == "rope" and m.max_position_embeddings == 2048


def test_gpt_bigcode_multi_query_learned_positions() -> None:
    keys = {"n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 100}
    m = from_hf_config(_cfg("gpt_bigcode", **keys))
    assert m.num_kv_heads == 1 and m.position_embedding == "learned" and m.qkv_bias and m.tie_word_embeddings
    assert m.activation == "gelu_pytorch_tanh" and m.max_position_embeddings == 1024
    assert from_hf_config(_cfg("gpt_bigcode", **keys, multi_query=False)).num_kv_heads == 4
    err = _error(_cfg("gpt_bigcode", **keys, add_cross_attention=True))
    assert err.field == "add_cross_attention" and "cross-attention" in str(err)


def _llama_keys(**extra: Any) -> dict[str, Any]:
    keys = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 96}
    return {**keys, "vocab_size": 100, **extra}


def test_olmo_swiglu_layernorm_and_olmo2_rmsnorm_qk_norm() -> None:
    olmo = from_hf_config(_cfg("olmo", **_llama_keys()))
    assert olmo.mlp_gated and olmo.norm == "layernorm" and not olmo.qk_norm and not olmo.tie_word_embeddings
    olmo2 = from_hf_config(_cfg("olmo2", **_llama_keys(num_key_value_heads=2)))
    assert olmo2.norm == "rmsnorm" and olmo2.qk_norm and olmo2.num_kv_heads == 2


def test_gemma_head_dim_geglu_tied_and_gemma2_alternating_window() -> None:
    gemma = from_hf_config(
        _cfg("gemma", **_llama_keys(head_dim=32, hidden_act="gelu", hidden_activation=None))
    )
    assert (
        gemma.head_dim == 32 and gemma.mlp_gated and gemma.activation == "gelu" and gemma.tie_word_embeddings
    )
    keys = _llama_keys(num_hidden_layers=5, head_dim=32, sliding_window=16)
    gemma2 = from_hf_config(_cfg("gemma2", **keys))
    assert (gemma2.sliding_window, gemma2.sliding_window_layers) == (16, 3)  # layers 0, 2, 4 slide
    assert gemma2.activation == "gelu_pytorch_tanh"


def test_phi_parallel_block_biases_and_lm_head_bias() -> None:
    m = from_hf_config(_cfg("phi", **_llama_keys()))
    assert not m.mlp_gated and m.norm == "layernorm" and m.qkv_bias and m.mlp_bias and m.lm_head_bias
    assert m.activation == "gelu_new" and not m.qk_norm
    assert from_hf_config(_cfg("phi", **_llama_keys(qk_layernorm=True))).qk_norm


def test_phi3_llama_shapes_window_on_every_layer() -> None:
    m = from_hf_config(_cfg("phi3", **_llama_keys(sliding_window=31)))
    assert m.mlp_gated and not m.qkv_bias and (m.sliding_window, m.sliding_window_layers) == (31, 2)


def test_starcoder2_gqa_biases_plain_mlp_window() -> None:
    m = from_hf_config(_cfg("starcoder2", **_llama_keys(num_key_value_heads=2, sliding_window=8)))
    assert not m.mlp_gated and m.norm == "layernorm" and m.qkv_bias and m.mlp_bias and m.tie_word_embeddings
    assert (m.num_kv_heads, m.sliding_window_layers) == (2, 2)
    assert not from_hf_config(_cfg("starcoder2", **_llama_keys(use_bias=False))).mlp_bias


def test_qwen2_moe_shared_expert_and_sparse_step() -> None:
    keys = _llama_keys(num_hidden_layers=4, num_experts=8, num_experts_per_tok=2, moe_intermediate_size=16)
    m = from_hf_config(_cfg("qwen2_moe", **keys, shared_expert_intermediate_size=48, decoder_sparse_step=2))
    assert (m.num_experts, m.num_experts_per_tok, m.moe_intermediate_size) == (8, 2, 16)
    assert (m.num_shared_experts, m.shared_expert_intermediate_size, m.first_k_dense_layers) == (1, 48, 2)
    assert m.qkv_bias and m.sliding_window is None
    no_shared = from_hf_config(_cfg("qwen2_moe", **keys, shared_expert_intermediate_size=0))
    assert no_shared.num_shared_experts == 0
    err = _error(_cfg("qwen2_moe", **{**keys, "num_experts_per_tok": 9}))
    assert err.field == "num_experts_per_tok" and "exceeds num_experts=8" in str(err)


def test_deepseek_v2_mla_without_q_lora_and_v2_defaults() -> None:
    keys = _llama_keys(
        num_hidden_layers=3,
        kv_lora_rank=8,
        qk_rope_head_dim=4,
        qk_nope_head_dim=8,
        v_head_dim=8,
        n_routed_experts=4,
        num_experts_per_tok=2,
        moe_intermediate_size=16,
        q_lora_rank=None,
    )
    m = from_hf_config(_cfg("deepseek_v2", **keys))
    assert m.is_mla and m.q_lora_rank is None and m.head_dim == 12 and m.num_kv_heads == 4
    assert (m.first_k_dense_layers, m.num_shared_experts, m.shared_expert_intermediate_size) == (0, 2, 16)
    del keys["q_lora_rank"]
    err = _error(_cfg("deepseek_v2", **keys))
    assert err.field == "q_lora_rank" and "null means no query compression" in str(err)


def test_dbrx_nested_attn_and_ffn_configs() -> None:
    config = _cfg(
        "dbrx",
        d_model=64,
        n_layers=2,
        n_heads=8,
        vocab_size=100,
        attn_config={"kv_n_heads": 2},
        ffn_config={"ffn_hidden_size": 48, "moe_num_experts": 4, "moe_top_k": 2},
    )
    m = from_hf_config(config)
    assert (m.num_kv_heads, m.num_experts, m.num_experts_per_tok, m.moe_intermediate_size) == (2, 4, 2, 48)
    assert m.mlp_gated and m.norm == "layernorm" and not m.tie_word_embeddings and m.first_k_dense_layers == 0
    err = _error({**config, "attn_config": {"kv_n_heads": 3}})
    assert (err.field, err.value) == ("attn_config.kv_n_heads", 3)
    err = _error({**config, "ffn_config": {"moe_num_experts": 4, "moe_top_k": 2}})
    assert err.field == "ffn_hidden_size" and "dbrx" in str(err)
    err = _error({**config, "ffn_config": {"ffn_hidden_size": 48, "moe_num_experts": 4, "moe_top_k": 5}})
    assert err.field == "moe_top_k" and "exceeds moe_num_experts=4" in str(err)


# ---------------------------------------------------------------- what cannot be represented


@pytest.mark.parametrize(
    ("model_type", "rule"),
    [
        ("mamba", "state-space (Mamba) layers"),
        ("jamba", "hybrid attention/state-space"),
        ("nemotron_h", "hybrid attention/state-space"),
        ("rwkv", "recurrent (RWKV)"),
        ("t5", "encoder-decoder"),
    ],
)
def test_unrepresentable_model_types_name_the_reason(model_type: str, rule: str) -> None:
    err = _error(_cfg(model_type, hidden_size=64))
    assert (err.field, err.value) == ("model_type", model_type)
    assert rule in str(err) and "not modelled" in str(err) and "supported model types" in str(err)


@pytest.mark.parametrize(
    ("model_type", "key", "value"),
    [
        ("bloom", "n_head", 7),  # does not divide hidden_size
        ("opt", "ffn_dim", 0),
        ("falcon", "bias", "yes"),
        ("gptj", "n_inner", -1),
        ("gemma", "head_dim", 2.5),
        ("phi3", "num_key_value_heads", 3),
    ],
)
def test_bad_values_name_the_key(model_type: str, key: str, value: Any) -> None:
    keys = _llama_keys(ffn_dim=96, n_embd=64, n_layer=2, n_head=4, hidden_size=64)
    err = _error(_cfg(model_type, **{**keys, key: value}))
    assert err.field == key and err.value == value
