"""The config.json importer, against hand-written configs of each family.

References: the expected fields are derived by hand in each test from the family's conventions in
`transformers` (src/transformers/models/<family>/configuration_*.py and modeling_*.py), e.g.
GPT2MLP's width `n_inner or 4 * n_embd`, Qwen2Attention's q/k/v bias.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twofold.errors import InputError
from twofold.workload.hf_config import SUPPORTED_MODEL_TYPES, from_hf_config, load_hf_config


def _llama(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "model_type": "llama",
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "intermediate_size": 11008,
        "vocab_size": 32000,
    }
    config.update(overrides)
    return config


# ---------------------------------------------------------------- key mapping, one test per family


def test_gpt2_keys_plain_mlp_four_times_width_tied_learned_positions() -> None:
    m = from_hf_config(
        {
            "model_type": "gpt2",
            "n_embd": 768,
            "n_layer": 12,
            "n_head": 12,
            "vocab_size": 50257,
            "n_positions": 1024,
        }
    )
    assert (m.hidden_size, m.num_layers, m.num_attention_heads, m.num_kv_heads) == (768, 12, 12, 12)
    assert m.head_dim == 768 // 12
    assert m.intermediate_size == 4 * 768  # n_inner absent -> 4 * n_embd
    assert not m.mlp_gated and m.activation == "gelu_new" and m.norm == "layernorm"
    assert m.position_embedding == "learned" and m.max_position_embeddings == 1024
    assert m.tie_word_embeddings and m.qkv_bias and m.attn_out_bias and m.mlp_bias and not m.lm_head_bias
    assert m.causal and not m.is_moe and m.family == "gpt2"


def test_gpt2_explicit_n_inner_wins() -> None:
    m = from_hf_config(
        {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 10, "n_inner": 100}
    )
    assert m.intermediate_size == 100


def test_gpt_neox_keys_rotary_layernorm_untied() -> None:
    config = {
        "model_type": "gpt_neox",
        "hidden_size": 6144,
        "num_hidden_layers": 44,
        "num_attention_heads": 64,
        "intermediate_size": 24576,
        "vocab_size": 50432,
        "max_position_embeddings": 2048,
        "rotary_pct": 0.25,
    }
    m = from_hf_config(config)
    assert (m.num_layers, m.hidden_size, m.head_dim, m.num_kv_heads) == (44, 6144, 6144 // 64, 64)
    assert m.intermediate_size == 24576 and not m.mlp_gated and m.activation == "gelu"
    assert m.position_embedding == "rope" and m.norm == "layernorm" and not m.tie_word_embeddings
    assert m.qkv_bias and m.attn_out_bias and m.mlp_bias
    assert not from_hf_config({**config, "attention_bias": False}).qkv_bias


def test_mpt_keys_alibi_no_bias_tied_expansion_ratio() -> None:
    config = {"model_type": "mpt", "d_model": 512, "n_layers": 6, "n_heads": 8, "vocab_size": 1000}
    m = from_hf_config({**config, "attn_config": {"alibi": True}, "max_seq_len": 4096})
    assert (m.hidden_size, m.num_layers, m.num_attention_heads, m.head_dim) == (512, 6, 8, 64)
    assert m.intermediate_size == 4 * 512  # MptConfig default expansion_ratio = 4
    assert m.position_embedding == "alibi" and m.max_position_embeddings == 4096
    assert m.tie_word_embeddings and not (m.qkv_bias or m.attn_out_bias or m.mlp_bias)  # no_bias defaults on
    assert not m.mlp_gated and m.norm == "layernorm"
    assert from_hf_config({**config, "expansion_ratio": 2.5}).intermediate_size == 1280  # int(2.5 * 512)
    assert from_hf_config({**config, "no_bias": False}).mlp_bias
    learned = from_hf_config({**config, "attn_config": {"alibi": False}, "learned_pos_emb": True})
    assert learned.position_embedding == "learned"
    mqa = from_hf_config({**config, "attn_config": {"attn_type": "multiquery_attention"}})
    assert mqa.num_kv_heads == 1


def test_bert_encoder_with_tied_mlm_head() -> None:
    config = {
        "model_type": "bert",
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "intermediate_size": 4096,
        "vocab_size": 30522,
    }
    m = from_hf_config(config)
    assert (m.num_layers, m.hidden_size, m.head_dim, m.intermediate_size) == (24, 1024, 64, 4096)
    assert not m.causal and m.position_embedding == "learned" and m.max_position_embeddings == 512
    assert m.type_vocab_size == 2 and m.norm == "layernorm" and not m.mlp_gated and m.activation == "gelu"
    assert m.tie_word_embeddings and m.lm_head_bias and m.lm_head_transform
    assert m.qkv_bias and m.attn_out_bias and m.mlp_bias


def test_llama_gated_rmsnorm_rope_and_kv_heads_default_to_heads() -> None:
    m = from_hf_config(_llama())
    assert (m.num_attention_heads, m.num_kv_heads, m.head_dim) == (32, 32, 4096 // 32)
    assert m.mlp_gated and m.activation == "silu" and m.norm == "rmsnorm" and m.position_embedding == "rope"
    assert not (m.qkv_bias or m.attn_out_bias or m.mlp_bias or m.tie_word_embeddings)
    assert m.max_position_embeddings == 2048  # LlamaConfig default


def test_llama_gqa_head_dim_key_and_biases() -> None:
    m = from_hf_config(
        _llama(
            num_key_value_heads=8, head_dim=96, attention_bias=True, mlp_bias=True, tie_word_embeddings=True
        )
    )
    assert m.num_kv_heads == 8 and m.head_dim == 96  # an explicit head_dim wins over 4096 / 32
    assert m.qkv_bias and m.attn_out_bias and m.mlp_bias and m.tie_word_embeddings


def test_mistral_sliding_window_covers_every_layer() -> None:
    m = from_hf_config(_llama(model_type="mistral", sliding_window=4096))
    assert (m.sliding_window, m.sliding_window_layers) == (4096, 32)
    m = from_hf_config(_llama(model_type="mistral", sliding_window=None))
    assert (m.sliding_window, m.sliding_window_layers) == (None, 0)


def test_qwen2_qkv_bias_and_opt_in_sliding_window() -> None:
    base = _llama(model_type="qwen2", num_hidden_layers=28, sliding_window=131072, max_window_layers=20)
    m = from_hf_config(base)
    assert m.qkv_bias and not m.attn_out_bias
    assert (m.sliding_window, m.sliding_window_layers) == (None, 0)  # use_sliding_window defaults off
    m = from_hf_config({**base, "use_sliding_window": True})
    assert (m.sliding_window, m.sliding_window_layers) == (131072, 28 - 20)  # layers >= max_window_layers


def test_qwen3_qk_norm_and_head_dim() -> None:
    m = from_hf_config(_llama(model_type="qwen3", hidden_size=2048, num_attention_heads=32, head_dim=128))
    assert m.qk_norm and m.head_dim == 128 and not m.qkv_bias


def test_mixtral_experts_are_intermediate_size_wide() -> None:
    m = from_hf_config(
        _llama(model_type="mixtral", intermediate_size=14336, num_local_experts=8, num_experts_per_tok=2)
    )
    assert m.is_moe and (m.num_experts, m.num_experts_per_tok, m.moe_intermediate_size) == (8, 2, 14336)
    assert m.num_moe_layers == 32 and not m.router_bias and m.num_shared_experts == 0


def _qwen3_moe(**overrides: Any) -> dict[str, Any]:
    return _llama(
        model_type="qwen3_moe",
        num_hidden_layers=8,
        num_experts=16,
        num_experts_per_tok=4,
        moe_intermediate_size=256,
        **overrides,
    )


def test_qwen3_moe_sparse_layers_follow_step_and_mlp_only_layers() -> None:
    m = from_hf_config(_qwen3_moe())
    assert (m.num_experts, m.num_experts_per_tok, m.moe_intermediate_size) == (16, 4, 256)
    assert m.num_moe_layers == 8 and m.qk_norm
    # step 2: layers i with (i+1) % 2 == 0 are sparse -> 1, 3, 5, 7; dropping 1 leaves 3 sparse layers.
    assert from_hf_config(_qwen3_moe(decoder_sparse_step=2)).num_moe_layers == 4
    assert from_hf_config(_qwen3_moe(decoder_sparse_step=2, mlp_only_layers=[1])).num_dense_layers == 5


def _deepseek(**overrides: Any) -> dict[str, Any]:
    config = {
        "model_type": "deepseek_v3",
        "hidden_size": 1024,
        "num_hidden_layers": 6,
        "num_attention_heads": 16,
        "intermediate_size": 4096,
        "vocab_size": 1000,
        "n_routed_experts": 32,
        "n_shared_experts": 2,
        "num_experts_per_tok": 4,
        "moe_intermediate_size": 256,
        "first_k_dense_replace": 1,
        "q_lora_rank": 384,
        "kv_lora_rank": 128,
        "qk_rope_head_dim": 16,
        "qk_nope_head_dim": 32,
        "v_head_dim": 48,
    }
    config.update(overrides)
    return config


def test_deepseek_v3_mla_and_moe_keys() -> None:
    m = from_hf_config(_deepseek())
    assert m.is_mla and (m.q_lora_rank, m.kv_lora_rank) == (384, 128)
    assert (m.qk_rope_head_dim, m.qk_nope_head_dim, m.v_head_dim) == (16, 32, 48)
    assert m.head_dim == 32 + 16 and m.num_kv_heads == m.num_attention_heads == 16
    assert (m.num_experts, m.num_experts_per_tok, m.moe_intermediate_size) == (32, 4, 256)
    assert (m.num_shared_experts, m.shared_expert_intermediate_size) == (2, 256)
    assert (m.first_k_dense_layers, m.num_moe_layers, m.intermediate_size) == (1, 5, 4096)
    assert from_hf_config(_deepseek(q_lora_rank=None)).q_lora_rank is None  # V2-Lite style: no q compression


def _gpt_oss(**overrides: Any) -> dict[str, Any]:
    return _llama(
        model_type="gpt_oss",
        hidden_size=2880,
        num_hidden_layers=4,
        num_attention_heads=64,
        num_key_value_heads=8,
        head_dim=64,
        intermediate_size=2880,
        num_local_experts=32,
        experts_per_token=4,
        sliding_window=128,
        **overrides,
    )


def test_gpt_oss_experts_biases_and_layer_types() -> None:
    layer_types = ["sliding_attention", "full_attention", "sliding_attention", "sliding_attention"]
    m = from_hf_config(_gpt_oss(layer_types=layer_types))
    assert (m.num_experts, m.num_experts_per_tok, m.moe_intermediate_size) == (32, 4, 2880)
    assert m.head_dim == 64 and m.num_kv_heads == 8
    assert (m.sliding_window, m.sliding_window_layers) == (128, 3)
    assert m.qkv_bias and m.attn_out_bias and m.mlp_bias and m.router_bias and m.attention_sinks
    # without layer_types: GptOssConfig alternates, starting with a sliding layer -> 2 of 4
    assert from_hf_config(_gpt_oss()).sliding_window_layers == 2


def test_gpt_oss_accepts_num_experts_per_tok_alone_but_not_a_disagreement() -> None:
    config = _gpt_oss()
    del config["experts_per_token"]
    assert from_hf_config({**config, "num_experts_per_tok": 2}).num_experts_per_tok == 2
    with pytest.raises(InputError, match=r"num_experts_per_tok=3.*experts_per_token=4"):
        from_hf_config(_gpt_oss(num_experts_per_tok=3))


def _llama4(**text: Any) -> dict[str, Any]:
    return {
        "model_type": "llama4",
        "text_config": _llama(
            model_type="llama4_text",
            hidden_size=512,
            num_hidden_layers=8,
            num_attention_heads=8,
            num_key_value_heads=2,
            head_dim=64,
            intermediate_size=256,
            intermediate_size_mlp=1024,
            num_local_experts=16,
            num_experts_per_tok=1,
            **text,
        ),
    }


def test_llama4_interleaved_moe_shared_expert_and_chunked_layers() -> None:
    # Llama4TextConfig: moe_layers = range(step - 1, L, step); no_rope_layers default: every 4th is NoPE.
    m = from_hf_config(_llama4(interleave_moe_layer_step=2, attention_chunk_size=2048))
    assert (m.num_moe_layers, m.num_dense_layers, m.intermediate_size) == (4, 4, 1024)
    assert (m.num_experts, m.num_experts_per_tok, m.moe_intermediate_size) == (16, 1, 256)
    assert (m.num_shared_experts, m.shared_expert_intermediate_size) == (1, 256)
    assert (m.sliding_window, m.sliding_window_layers) == (2048, 6)  # chunked = windowed, 6 of 8
    every = from_hf_config(_llama4(no_rope_layers=[1, 0, 1, 0, 1, 0, 1, 0]))
    assert every.num_moe_layers == 8 and every.sliding_window_layers == 4 and every.sliding_window == 8192
    with pytest.raises(InputError, match="no_rope_layers"):
        from_hf_config(_llama4(no_rope_layers=[1, 0]))
    with pytest.raises(InputError, match="num_local_experts"):
        text = {**_llama4()["text_config"], "num_local_experts": None}
        from_hf_config({"model_type": "llama4", "text_config": text})


def test_gemma3_text_config_window_pattern_and_defaults() -> None:
    text = _llama(model_type="gemma3_text", num_hidden_layers=12, head_dim=256, num_key_value_heads=4)
    text["sliding_window"] = 1024
    m = from_hf_config({"model_type": "gemma3", "text_config": text})
    assert m.family == "gemma3" and m.head_dim == 256 and m.qk_norm and m.tie_word_embeddings
    assert (m.sliding_window, m.sliding_window_layers) == (1024, 10)  # layers 5 and 11 are global
    assert m.activation == "gelu_pytorch_tanh" and m.mlp_gated
    flat = from_hf_config({**text, "sliding_window_pattern": 3})
    assert flat.family == "gemma3_text" and flat.sliding_window_layers == 8


def test_name_and_source() -> None:
    assert from_hf_config(_llama()).name == "llama"
    assert from_hf_config(_llama(_name_or_path="org/model")).name == "org/model"
    m = from_hf_config(_llama(_name_or_path="org/model"), name="mine", source="here")
    assert (m.name, m.source) == ("mine", "here")


def test_every_supported_family_has_a_test_above() -> None:
    tested = {"gpt2", "gpt_neox", "mpt", "bert", "llama", "mistral", "qwen2", "qwen3", "mixtral"}
    tested |= {"qwen3_moe", "deepseek_v3", "gpt_oss", "llama4", "gemma3", "gemma3_text"}
    # test_hf_config_families.py
    tested |= {"bloom", "opt", "falcon", "gptj", "gpt_bigcode", "olmo", "olmo2", "gemma", "gemma2"}
    tested |= {"phi", "phi3", "starcoder2", "qwen2_moe", "deepseek_v2", "dbrx"}
    assert set(SUPPORTED_MODEL_TYPES) == tested


@given(
    kv_heads=st.integers(1, 16),
    group=st.integers(1, 8),
    head_dim=st.integers(1, 256),
    layers=st.integers(1, 200),
)
def test_llama_attention_shape_invariants(kv_heads: int, group: int, head_dim: int, layers: int) -> None:
    heads = kv_heads * group
    m = from_hf_config(
        _llama(
            hidden_size=heads * head_dim,
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            num_hidden_layers=layers,
        )
    )
    assert m.num_attention_heads * m.head_dim == m.hidden_size
    assert m.num_attention_heads % m.num_kv_heads == 0 and m.num_layers == layers


# ---------------------------------------------------------------- bad input: field, value, rule


def _error(config: Any) -> InputError:
    with pytest.raises(InputError) as info:
        from_hf_config(config)
    return info.value


def test_not_a_json_object() -> None:
    err = _error([1, 2])
    assert err.field == "config" and "list" in str(err) and "JSON object" in str(err)


def test_unsupported_model_type_lists_supported() -> None:
    err = _error(_llama(model_type="gemma9"))
    assert (err.field, err.value) == ("model_type", "gemma9")
    assert "gemma" in str(err) and "llama" in str(err) and "deepseek_v3" in str(err)


def test_missing_model_type() -> None:
    config = _llama()
    del config["model_type"]
    assert _error(config).field == "model_type"


def test_missing_key_names_key_and_family() -> None:
    err = _error({"model_type": "gpt2", "n_layer": 12, "n_head": 12, "vocab_size": 50257})
    assert err.field == "n_embd" and "n_embd" in str(err) and "gpt2" in str(err)


def test_missing_deepseek_q_lora_rank() -> None:
    config = _deepseek()
    del config["q_lora_rank"]
    assert "q_lora_rank" in str(_error(config))


def test_zero_layers() -> None:
    err = _error(_llama(num_hidden_layers=0))
    assert str(err).startswith("num_hidden_layers=0") and "positive" in str(err)


def test_negative_hidden_size() -> None:
    err = _error(_llama(hidden_size=-4096))
    assert str(err).startswith("hidden_size=-4096") and "positive" in str(err)


@pytest.mark.parametrize("value", [4096.5, "4096", True, None, [4096]])
def test_non_integer_size(value: Any) -> None:
    err = _error(_llama(hidden_size=value))
    assert err.field == "hidden_size" and err.value == value and "integer" in str(err)


def test_heads_not_dividing_hidden() -> None:
    err = _error(_llama(hidden_size=1000, num_attention_heads=12))
    assert str(err).startswith("num_attention_heads=12") and "hidden_size=1000" in str(err)


def test_gpt2_heads_not_dividing_n_embd_uses_gpt2_key_names() -> None:
    err = _error({"model_type": "gpt2", "n_embd": 100, "n_layer": 1, "n_head": 3, "vocab_size": 10})
    assert str(err).startswith("n_head=3") and "n_embd=100" in str(err)


def test_kv_heads_not_dividing_heads() -> None:
    err = _error(_llama(num_key_value_heads=3))
    assert str(err).startswith("num_key_value_heads=3") and "num_attention_heads=32" in str(err)


def test_experts_per_token_exceeding_experts() -> None:
    err = _error(_llama(model_type="mixtral", num_local_experts=8, num_experts_per_tok=9))
    assert str(err).startswith("num_experts_per_tok=9") and "num_local_experts=8" in str(err)


def test_layer_types_of_wrong_length() -> None:
    err = _error(_gpt_oss(layer_types=["full_attention"]))
    assert err.field == "layer_types" and "4" in str(err)


@given(
    key=st.sampled_from(
        ["hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size"]
    ),
    value=st.one_of(st.integers(max_value=0), st.floats(allow_nan=False), st.text(max_size=3), st.booleans()),
)
def test_any_bad_required_size_is_an_input_error_naming_it(key: str, value: Any) -> None:
    with pytest.raises(InputError) as info:
        from_hf_config(_llama(**{key: value}))
    assert info.value.field == key


# ---------------------------------------------------------------- files


def test_load_file_and_directory(tmp_path: Path) -> None:
    folder = tmp_path / "My-Model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(_llama()))
    by_file = load_hf_config(folder / "config.json")
    assert by_file == load_hf_config(folder)
    assert by_file.name == "My-Model" and by_file.source == str(folder / "config.json")
    assert by_file.hidden_size == 4096


def test_invalid_json_file_names_path(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "llama",')
    with pytest.raises(InputError, match="invalid JSON") as info:
        load_hf_config(path)
    assert str(path) in str(info.value)


def test_json_that_is_not_an_object_names_path(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("[1, 2]")
    with pytest.raises(InputError, match="not a JSON object") as info:
        load_hf_config(path)
    assert str(path) in str(info.value)


def test_missing_file_names_path(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "config.json"
    with pytest.raises(InputError, match="not found") as info:
        load_hf_config(path)
    assert str(path) in str(info.value)
