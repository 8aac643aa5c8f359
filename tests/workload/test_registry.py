"""The model catalog: every entry loads, names resolve, and the architectures match their papers.

The architecture table below is copied from the papers' own tables (cited per row), independently
of the catalog's config.json files, so a wrong key in a catalog file fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

import twofold
from twofold.errors import InputError
from twofold.workload import ModelConfig, catalog_entry, get_model, list_models

CATALOG_IDS = sorted(
    f.name.removesuffix(".json")
    for f in resources.files("twofold.workload").joinpath("catalog").iterdir()
    if f.name.endswith(".json")
)


def test_catalog_is_not_empty_and_lists_every_file_in_id_order() -> None:
    assert len(CATALOG_IDS) >= 14
    assert [m.name for m in list_models()] == CATALOG_IDS


@pytest.mark.parametrize("model_id", CATALOG_IDS)
def test_every_entry_loads_with_metadata(model_id: str) -> None:
    model = get_model(model_id)
    assert isinstance(model, ModelConfig) and model.name == model_id
    entry = catalog_entry(model_id)
    assert entry["id"] == model_id and entry["source"] and model.source == entry["source"]
    published = entry["published_params_b"]
    assert published is None or published > 0
    if model.is_moe and published is not None:
        assert 0 < entry["published_active_params_b"] < published


def test_only_synthetic_models_lack_a_published_size() -> None:
    unpublished = {m.name for m in list_models() if catalog_entry(m.name)["published_params_b"] is None}
    assert unpublished == {"llama-tiny"}


def test_every_family_is_in_the_catalog() -> None:
    from twofold.workload.hf_config import SUPPORTED_MODEL_TYPES

    assert {m.family for m in list_models()} == set(SUPPORTED_MODEL_TYPES)


def test_names_are_unique_across_ids_and_aliases() -> None:
    seen: dict[str, str] = {}
    for model_id in CATALOG_IDS:
        for name in (model_id, *catalog_entry(model_id)["aliases"]):
            assert seen.setdefault(name.lower(), model_id) == model_id, name


@pytest.mark.parametrize(
    ("alias", "model_id"),
    [
        ("llama3-8b", "llama3.1-8b"),
        ("LLAMA3-70B", "llama3.1-70b"),
        ("llama3-405b", "llama3.1-405b"),
        ("gpt3", "gpt3-175b"),
        ("mixtral", "mixtral-8x7b"),
        ("DeepSeek-V3", "deepseek-v3"),
        ("meta-llama/Llama-3.1-70B", "llama3.1-70b"),
        ("gpt2", "gpt2-small"),
        (" Llama2-7B ", "llama2-7b"),
    ],
)
def test_aliases_resolve_case_insensitively(alias: str, model_id: str) -> None:
    assert get_model(alias) is get_model(model_id)  # parsed once, cached
    assert catalog_entry(alias)["id"] == model_id


# (layers, hidden, heads, kv heads, MLP or expert width, vocab, experts, active experts), from:
PAPER_ARCHITECTURES = {
    # Touvron et al. 2023, arXiv:2307.09288, Table 1 and section 2.2 (GQA for 70B; 8 kv heads per the
    # released code); widths from the released params.json (ffn_dim_multiplier rounding).
    "llama2-7b": (32, 4096, 32, 32, 11008, 32000, 0, 0),
    "llama2-70b": (80, 8192, 64, 8, 28672, 32000, 0, 0),
    # Llama Team 2024, arXiv:2407.21783, Table 3 (vocabulary "128K": 128256 tokens in the tokenizer).
    "llama3.1-8b": (32, 4096, 32, 8, 14336, 128256, 0, 0),
    "llama3.1-70b": (80, 8192, 64, 8, 28672, 128256, 0, 0),
    "llama3.1-405b": (126, 16384, 128, 8, 53248, 128256, 0, 0),
    # Brown et al. 2020, arXiv:2005.14165, Table 2.1 (d_ff = 4 * d_model, section 2.1).
    "gpt3-175b": (96, 12288, 96, 96, 4 * 12288, 50257, 0, 0),
    # Jiang et al. 2024, Mixtral of Experts, arXiv:2401.04088, Table 1.
    "mixtral-8x7b": (32, 4096, 32, 8, 14336, 32000, 8, 2),
    # DeepSeek-AI 2024, arXiv:2412.19437, section 4.2 (1 shared + 256 routed experts, 8 active).
    "deepseek-v3": (61, 7168, 128, 128, 2048, 129280, 256, 8),
    # Devlin et al. 2019, arXiv:1810.04805, section 3 (L=24, H=1024, A=16; d_ff = 4H).
    "bert-large": (24, 1024, 16, 16, 4096, 30522, 0, 0),
    # Radford et al. 2019 / openai/gpt-2 hparams (12 layers, 768 wide, 12 heads).
    "gpt2-small": (12, 768, 12, 12, 3072, 50257, 0, 0),
}


@pytest.mark.parametrize("model_id", sorted(PAPER_ARCHITECTURES))
def test_catalog_matches_published_architecture(model_id: str) -> None:
    m = get_model(model_id)
    width = m.moe_intermediate_size if m.is_moe else m.intermediate_size
    got = (m.num_layers, m.hidden_size, m.num_attention_heads, m.num_kv_heads, width, m.vocab_size)
    assert (*got, m.num_experts, m.num_experts_per_tok) == PAPER_ARCHITECTURES[model_id]


def test_deepseek_v3_mla_dimensions_match_paper() -> None:
    # arXiv:2412.19437 section 4.2: d_c = 512, d'_c = 1536, d_h = 128, d_h^R = 64, first 3 layers dense.
    m = get_model("deepseek-v3")
    assert (m.kv_lora_rank, m.q_lora_rank, m.qk_nope_head_dim, m.qk_rope_head_dim) == (512, 1536, 128, 64)
    assert m.v_head_dim == 128 and m.first_k_dense_layers == 3 and m.num_shared_experts == 1


def test_unknown_model_lists_near_matches() -> None:
    with pytest.raises(InputError) as info:
        get_model("llama3-7b")
    err = info.value
    assert (err.field, err.value) == ("model", "llama3-7b")
    assert "did you mean" in str(err) and "llama3-8b" in str(err)


def test_unknown_hub_name_gets_suggestions_not_file_not_found() -> None:
    with pytest.raises(InputError, match="did you mean") as info:
        get_model("meta-llama/Llama-3.1-7B")
    assert "llama" in str(info.value).lower()


def test_unknown_catalog_entry() -> None:
    with pytest.raises(InputError, match="unknown model"):
        catalog_entry("no-such-model")


def test_config_json_path(tmp_path: Path) -> None:
    folder = tmp_path / "my-gpt"
    folder.mkdir()
    config = {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 100}
    (folder / "config.json").write_text(json.dumps(config))
    by_file = get_model(str(folder / "config.json"))
    assert by_file.name == "my-gpt" and by_file.hidden_size == 64 and by_file.intermediate_size == 256
    assert get_model(str(folder)) == by_file


def test_missing_json_path_is_reported_as_a_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(InputError, match="not found") as info:
        get_model(str(path))
    assert str(path) in str(info.value)


def test_catalog_entry_is_a_fresh_copy() -> None:
    entry = catalog_entry("mixtral-8x7b")
    entry["aliases"].append("scribble")
    entry["published_params_b"] = 0
    assert "scribble" not in catalog_entry("mixtral-8x7b")["aliases"]
    assert catalog_entry("mixtral-8x7b")["published_params_b"] == 46.7


def test_top_level_exports() -> None:
    assert twofold.get_model is get_model and twofold.list_models is list_models
    assert twofold.ModelConfig is ModelConfig
    for name in ("from_hf_config", "load_hf_config", "catalog_entry"):
        assert name in twofold.__all__ and callable(getattr(twofold, name))


def test_importing_the_catalog_stays_light() -> None:
    code = "import sys, twofold.workload as w; w.list_models(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
