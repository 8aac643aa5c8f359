"""Parameter counts against (1) `numel` of equivalent PyTorch modules, (2) exact counts of public
checkpoints, (3) the catalog's published figures."""

from __future__ import annotations

import importlib.util
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_reference import LanguageModel, parameter_count

from twofold.errors import InputError
from twofold.workload.model import ModelConfig
from twofold.workload.params import param_counts, weight_bytes


def _config(**overrides: object) -> ModelConfig:
    base: dict[str, object] = {
        "name": "tiny",
        "family": "llama",
        "num_layers": 2,
        "hidden_size": 32,
        "num_attention_heads": 4,
        "num_kv_heads": 4,
        "head_dim": 8,
        "intermediate_size": 48,
        "vocab_size": 64,
        "max_position_embeddings": 16,
    }
    return ModelConfig(**(base | overrides))  # type: ignore[arg-type]


CONFIGS = {
    "llama-gqa-untied": {"num_kv_heads": 2},
    "qwen3-qk-norm-tied": {"qk_norm": True, "tie_word_embeddings": True, "head_dim": 12},
    "gpt2-learned-biases": {
        "family": "gpt2",
        "norm": "layernorm",
        "mlp_gated": False,
        "activation": "gelu",
        "position_embedding": "learned",
        "tie_word_embeddings": True,
        "qkv_bias": True,
        "attn_out_bias": True,
        "mlp_bias": True,
    },
    "bloom-alibi-embedding-norm": {
        "family": "bloom",
        "norm": "layernorm",
        "mlp_gated": False,
        "activation": "gelu",
        "position_embedding": "alibi",
        "tie_word_embeddings": True,
        "qkv_bias": True,
        "attn_out_bias": True,
        "mlp_bias": True,
    },
    "gptj-lm-head-bias-mqa": {
        "family": "gptj",
        "norm": "layernorm",
        "mlp_gated": False,
        "activation": "gelu_new",
        "num_kv_heads": 1,
        "mlp_bias": True,
        "lm_head_bias": True,
    },
    "bert-mlm": {
        "family": "bert",
        "norm": "layernorm",
        "causal": False,
        "mlp_gated": False,
        "activation": "gelu",
        "position_embedding": "learned",
        "type_vocab_size": 2,
        "tie_word_embeddings": True,
        "qkv_bias": True,
        "attn_out_bias": True,
        "mlp_bias": True,
        "lm_head_bias": True,
        "lm_head_transform": True,
    },
    "mixtral-moe": {
        "num_kv_heads": 2,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 16,
    },
    "gpt-oss-moe-biases-sinks": {
        "num_kv_heads": 2,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 16,
        "qkv_bias": True,
        "attn_out_bias": True,
        "mlp_bias": True,
        "router_bias": True,
        "attention_sinks": True,
    },
    "deepseek-mla-shared": {
        "family": "deepseek_v3",
        "num_layers": 3,
        "head_dim": 12,
        "q_lora_rank": 16,
        "kv_lora_rank": 8,
        "qk_nope_head_dim": 8,
        "qk_rope_head_dim": 4,
        "v_head_dim": 6,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 16,
        "num_shared_experts": 1,
        "shared_expert_intermediate_size": 16,
        "first_k_dense_layers": 1,
        "router_bias": True,
    },
    "mla-no-q-lora-bias": {
        "family": "deepseek_v3",
        "head_dim": 12,
        "kv_lora_rank": 8,
        "qk_nope_head_dim": 8,
        "qk_rope_head_dim": 4,
        "v_head_dim": 8,
        "qkv_bias": True,
    },
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_total_equals_torch_numel(name: str) -> None:
    model = _config(**CONFIGS[name])
    reference = LanguageModel(model)
    counts = param_counts(model)
    assert counts.total == parameter_count(reference)
    layer = reference.layers[-1]
    assert counts.attention_per_layer == parameter_count(layer.attn)
    assert counts.norms_per_layer == parameter_count(layer.norm1) + parameter_count(layer.norm2)
    if model.is_moe:
        assert counts.moe_layer == parameter_count(layer)
        assert counts.expert_each == parameter_count(layer.ffn.experts[0])
        assert counts.router_per_layer == parameter_count(layer.ffn.router)
    else:
        assert counts.dense_layer == parameter_count(layer)


def test_active_counts_top_k_routed_experts_once_each() -> None:
    """Hand derivation: active = total - (E - k) * one expert * MoE layers."""
    model = _config(**CONFIGS["deepseek-mla-shared"])
    counts = param_counts(model)
    assert counts.active == counts.total - (4 - 2) * counts.expert_each * model.num_moe_layers
    dense = _config()
    assert param_counts(dense).active == param_counts(dense).total


# Exact counts of public checkpoints: the number of parameters in the Hugging Face safetensors of
# each repository (the Hub's "Model size"), for the architecture in its config.json.
PUBLISHED_EXACT = {
    # meta-llama/Llama-2-7b-hf (config.json: 4096 hidden, 32 layers, 32 heads, 11008 MLP, 32000 vocab).
    "llama-2-7b": (
        {
            "num_layers": 32,
            "hidden_size": 4096,
            "num_attention_heads": 32,
            "num_kv_heads": 32,
            "head_dim": 128,
            "intermediate_size": 11008,
            "vocab_size": 32000,
        },
        6_738_415_616,
    ),
    # meta-llama/Meta-Llama-3-8B (GQA with 8 kv heads, 14336 MLP, 128256 vocab).
    "llama-3-8b": (
        {
            "num_layers": 32,
            "hidden_size": 4096,
            "num_attention_heads": 32,
            "num_kv_heads": 8,
            "head_dim": 128,
            "intermediate_size": 14336,
            "vocab_size": 128256,
        },
        8_030_261_248,
    ),
    # mistralai/Mixtral-8x7B-v0.1 (8 experts, top-2, 14336 expert width).
    "mixtral-8x7b": (
        {
            "num_layers": 32,
            "hidden_size": 4096,
            "num_attention_heads": 32,
            "num_kv_heads": 8,
            "head_dim": 128,
            "intermediate_size": 14336,
            "vocab_size": 32000,
            "num_experts": 8,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 14336,
        },
        46_702_792_704,
    ),
    # openai-community/gpt2 (GPT2LMHeadModel, tied head, learned positions, biases everywhere).
    "gpt2": (
        {
            "family": "gpt2",
            "num_layers": 12,
            "hidden_size": 768,
            "num_attention_heads": 12,
            "num_kv_heads": 12,
            "head_dim": 64,
            "intermediate_size": 3072,
            "vocab_size": 50257,
            "max_position_embeddings": 1024,
            "norm": "layernorm",
            "mlp_gated": False,
            "activation": "gelu_new",
            "position_embedding": "learned",
            "tie_word_embeddings": True,
            "qkv_bias": True,
            "attn_out_bias": True,
            "mlp_bias": True,
        },
        124_439_808,
    ),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_EXACT))
def test_total_equals_published_checkpoint_count(name: str) -> None:
    fields, expected = PUBLISHED_EXACT[name]
    assert param_counts(_config(**fields)).total == expected


def _significant_figures(value: float) -> int:
    digits = f"{value:g}".replace(".", "").replace("-", "").lstrip("0")
    return max(len(digits.rstrip("0")), 1)


def _rounds_to(total_b: float, published_b: float) -> bool:
    """`published_b` is `total_b` rounded to the published figure's significant figures."""
    figures = _significant_figures(published_b)
    scale = 10 ** (math.floor(math.log10(abs(total_b))) - figures + 1)
    return math.isclose(round(total_b / scale) * scale, published_b, rel_tol=1e-9)


_HAS_CATALOG = importlib.util.find_spec("twofold.workload.registry") is not None


@pytest.mark.skipif(not _HAS_CATALOG, reason="the model catalog (twofold.workload.registry) is not there yet")
def test_catalog_totals_match_published_figures() -> None:
    """Within 1% of the published count, or equal to it rounded to its significant figures: the
    figure in a model's name is a size class ("Llama 2 7B" holds 6.74B, "GPT-NeoX-20B" 20.6B)."""
    from twofold.workload.registry import catalog_entry, list_models

    checked = 0
    for model in list_models():
        entry = catalog_entry(model.name)
        published = entry["published_params_b"]
        if published is None:
            continue
        # A multimodal checkpoint's published size includes its vision tower (`unmodelled_params_b`).
        total_b = param_counts(model).total / 1e9 + entry["unmodelled_params_b"]
        assert abs(total_b - published) <= 0.01 * published or _rounds_to(total_b, published), (
            model.name,
            total_b,
            published,
        )
        checked += 1
    assert checked > 0


@pytest.mark.skipif(not _HAS_CATALOG, reason="the model catalog (twofold.workload.registry) is not there yet")
def test_catalog_active_params_match_published_figures() -> None:
    """Published active counts have two significant figures ("3.3B", "37B"), so 2% tolerance.
    The gpt-oss model card leaves the input embedding out of "active" (OpenAI 2025, table 1), and
    so does DeepSeek-V2 (arXiv:2405.04434: V2's 21B is 20.85B without it, 21.38B with it; V2-Lite's
    2.4B is 2.45B without it, 2.66B with it, printed truncated, hence 2.5% for that family)."""
    from twofold.workload.registry import catalog_entry, list_models

    for model in list_models():
        published = catalog_entry(model.name).get("published_active_params_b")
        if published is None:
            continue
        counts = param_counts(model)
        without_embedding = model.family in ("gpt_oss", "deepseek_v2")
        active = counts.active - (counts.embedding if without_embedding else 0)
        rel = 0.025 if model.family == "deepseek_v2" else 0.02
        assert active / 1e9 == pytest.approx(published, rel=rel), model.name


def test_significant_figure_rounding_rule() -> None:
    assert _rounds_to(6.738, 7) and _rounds_to(68.98, 70) and _rounds_to(0.3352, 0.34)
    assert not _rounds_to(405.85, 405) and not _rounds_to(7.24, 7.3) and not _rounds_to(6.2, 7)


@settings(max_examples=40, deadline=None)
@given(precision=st.sampled_from(["fp32", "bf16", "fp8", "fp4"]), layers=st.integers(1, 8))
def test_weight_bytes_scale_with_precision(precision: str, layers: int) -> None:
    model = _config(num_layers=layers)
    expected = {"fp32": 4, "bf16": 2, "fp8": 1, "fp4": 0.5}[precision]
    assert weight_bytes(model, precision) == param_counts(model).total * expected


def test_unknown_precision_is_an_input_error() -> None:
    with pytest.raises(InputError):
        weight_bytes(_config(), "fp7")
