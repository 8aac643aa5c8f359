"""The models people serve (issue 15 item 5): Llama 4, Qwen3, gpt-oss-20b and Gemma 3 catalog entries.

Reference: the parameter counts their authors publish, typed in below from the cited documents
(independently of the catalog files), and the layer structure stated in the model cards and
technical reports. The counts are `workload.params.param_counts` of the built `ModelConfig`.
"""

from __future__ import annotations

import pytest

from twofold.workload import catalog_entry, get_model
from twofold.workload.params import param_counts

# id: (published total B, published active B or None, tolerance, source). Totals of multimodal
# checkpoints include their vision tower, which the catalog records as `unmodelled_params_b`.
PUBLISHED = {
    # Meta model cards (huggingface.co/meta-llama/Llama-4-*-Instruct): "17B (Activated) 109B (Total)",
    # "17B (Activated) 400B (Total)". Two significant figures on "17B": 2%.
    "llama4-scout": (109, 17, 0.02, "Llama-4-Scout-17B-16E model card"),
    "llama4-maverick": (400, 17, 0.02, "Llama-4-Maverick-17B-128E model card"),
    # Qwen3 Technical Report, arXiv:2505.09388, Table 1 and the model cards (e.g. "Number of
    # Parameters: 8.2B"); one decimal on 0.6B and 1.7B: 3%.
    "qwen3-0.6b": (0.6, None, 0.03, "Qwen3-0.6B model card"),
    "qwen3-1.7b": (1.7, None, 0.03, "Qwen3-1.7B model card"),
    "qwen3-4b": (4.0, None, 0.01, "Qwen3-4B model card"),
    "qwen3-8b": (8.2, None, 0.01, "Qwen3-8B model card"),
    "qwen3-14b": (14.8, None, 0.01, "Qwen3-14B model card"),
    "qwen3-32b": (32.8, None, 0.01, "Qwen3-32B model card"),
    "qwen3-30b-a3b": (30.5, 3.3, 0.02, "Qwen3-30B-A3B model card"),
    "qwen3-235b-a22b": (235, 22, 0.01, "Qwen3-235B-A22B model card"),
    # OpenAI 2025, gpt-oss-120b & gpt-oss-20b Model Card, arXiv:2508.10925, Table 1: 20.91B total,
    # 3.61B active (without the input embedding). 120b: 116.83B / 5.13B.
    "gpt-oss-20b": (20.91, 3.61, 0.005, "gpt-oss model card Table 1"),
    "gpt-oss-120b": (116.83, 5.13, 0.005, "gpt-oss model card Table 1"),
    # Gemma 3 Technical Report, arXiv:2503.19786, Table 1 (vision + embedding + non-embedding, in M):
    # 1B 0+302+698, 4B 417+675+3209, 12B 417+1012+10759, 27B 417+1416+25600. 1%.
    "gemma3-1b": (1.000, None, 0.01, "Gemma 3 report Table 1"),
    "gemma3-4b": (4.301, None, 0.01, "Gemma 3 report Table 1"),
    "gemma3-12b": (12.188, None, 0.01, "Gemma 3 report Table 1"),
    "gemma3-27b": (27.433, None, 0.01, "Gemma 3 report Table 1"),
}


@pytest.mark.parametrize("model_id", sorted(PUBLISHED))
def test_total_and_active_parameters_match_the_published_figures(model_id: str) -> None:
    total_b, active_b, tol, source = PUBLISHED[model_id]
    model = get_model(model_id)
    counts = param_counts(model)
    entry = catalog_entry(model_id)
    assert counts.total / 1e9 + entry["unmodelled_params_b"] == pytest.approx(total_b, rel=tol), source
    if active_b is not None:
        # gpt-oss counts the unembedding but not the embedding as active (model card Table 1).
        active = counts.active - (counts.embedding if model.family == "gpt_oss" else 0)
        assert active / 1e9 == pytest.approx(active_b, rel=tol), source


def test_llama4_layer_structure() -> None:
    """Model cards: Scout 16 experts on every layer, Maverick 128 experts on alternate layers; one shared
    expert, top-1 routing; chunked attention (8192) on 3 of 4 layers, the 4th NoPE and global."""
    scout, maverick = get_model("llama4-scout"), get_model("llama4-maverick")
    assert (scout.num_moe_layers, scout.num_experts, scout.num_experts_per_tok) == (48, 16, 1)
    assert (maverick.num_moe_layers, maverick.num_dense_layers, maverick.num_experts) == (24, 24, 128)
    for m in (scout, maverick):
        assert m.num_shared_experts == 1 and m.moe_intermediate_size == 8192
        assert m.shared_expert_intermediate_size == 8192
        assert (m.sliding_window, m.sliding_window_layers) == (8192, 36)
    assert maverick.intermediate_size == 16384  # the dense layers' MLP (intermediate_size_mlp)


def test_gemma3_five_of_six_layers_slide() -> None:
    """Gemma 3 report section 2.1: 5 local layers per global layer; window 1024 (512 in the 1B config)."""
    cases = (("gemma3-1b", 26, 512), ("gemma3-4b", 34, 1024), ("gemma3-27b", 62, 1024))
    for model_id, layers, window in cases:
        m = get_model(model_id)
        assert m.num_layers == layers and m.sliding_window == window
        assert m.sliding_window_layers == layers - layers // 6
        assert m.tie_word_embeddings and m.qk_norm


def test_sliding_layers_bound_the_kv_cache() -> None:
    """Gemma 3 27B at 32k tokens caches 32k tokens on its 10 global layers and 1024 on the 52 sliding ones."""
    from twofold.estimate.kv import kv_bytes_per_token_layer, kv_cache_bytes

    m = get_model("gemma3-27b")
    per = kv_bytes_per_token_layer(m, "bf16")
    assert per == 2 * 16 * 128 * 2
    expected = (10 * 32768 + 52 * 1024) * per
    assert float(kv_cache_bytes(m, "bf16", context_len=32768)) == pytest.approx(expected)
