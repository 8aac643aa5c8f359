"""Spec validation and expansion: every mistake named by its field, before any work starts."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest
from _sweep_reference import TINY_SPEC
from hypothesis import given, settings
from hypothesis import strategies as st

from twofold.errors import InputError
from twofold.sweep.spec import Scenario, load_spec, parse_spec, scenario_key


def _spec(**axes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(TINY_SPEC)
    for name, values in axes.items():
        if values is None:
            del doc["axes"][name]
        else:
            doc["axes"][name] = values
    return doc


@pytest.mark.parametrize(
    ("doc", "field", "words"),
    [
        (_spec(chip_count=[8]), "axes.chip_count", "unknown axis"),
        (_spec(chips=["h100", "trn2", "h1000"]), "axes.chips[2]", "did you mean"),
        (_spec(models=["llama-tiny", "lama3-8b"]), "axes.models[1]", "did you mean"),
        (_spec(systems=["hgx-h100", "dgx-h1000"], chips=None), "axes.systems[1]", "unknown system"),
        (_spec(chip_counts=[]), "axes.chip_counts", "is empty"),
        (_spec(seq_lens=[]), "axes.seq_lens", "is empty"),
        (_spec(chip_counts=[8, 0]), "axes.chip_counts[1]", "positive integer"),
        (_spec(global_batches=[-16]), "axes.global_batches[0]", "positive integer"),
        (_spec(seq_lens=[True]), "axes.seq_lens[0]", "positive integer"),
        (_spec(precisions=["bf17"]), "axes.precisions[0]", "must be one of"),
        (_spec(chips=["h100", "h100-sxm"]), "axes.chips[1]", "repeats axes.chips[0]"),
        (_spec(systems=["hgx-h100"]), "axes", "exactly one of"),
        (_spec(chip_counts=None), "axes.chip_counts", "required"),
        (_spec(input_tokens=[512]), "axes.input_tokens", "not an axis of training"),
        (_spec(budgets=[1e6]), "axes.budgets", "not available yet"),
        (_spec(chips=["local"]), "axes.chips[0]", "catalog chips"),
        ({**TINY_SPEC, "objectve": "throughput"}, "objectve", "unknown spec field"),
        ({**TINY_SPEC, "objective": "speed"}, "objective", "must be one of"),
        ({**TINY_SPEC, "mode": "serving"}, "mode", "must be one of"),
        ({**TINY_SPEC, "top_k": 0}, "top_k", "positive integer"),
        ({**TINY_SPEC, "max_ttft_ms": 100}, "max_ttft_ms", "inference"),
        ({**TINY_SPEC, "mode": "inference", "objective": "throughput"}, "axes.seq_lens", "not an axis"),
        (["not", "a", "mapping"], "spec", "mapping"),
    ],
)
def test_malformed_spec_is_rejected_naming_the_field(doc: object, field: str, words: str) -> None:
    with pytest.raises(InputError) as info:
        parse_spec(doc)
    assert info.value.field == field
    assert words in str(info.value)


def test_unknown_chip_message_names_position_value_and_near_matches() -> None:
    with pytest.raises(InputError) as info:
        parse_spec(_spec(chips=["h100", "trn2", "h1000"]))
    message = str(info.value)
    assert message.startswith("axes.chips[2]='h1000': unknown chip; did you mean:")
    assert "h100" in message.split("did you mean:")[1]


def test_scenarios_are_the_product_in_spec_order_with_catalog_ids() -> None:
    # Aliases resolve to catalog ids and a chip brings its default system (hardware catalog).
    spec = parse_spec(_spec(chips=["nvidia-h100", "Trainium2"], chip_counts=[1, 8], seq_lens=[256, 512]))
    got = [(s.chip, s.system, s.chips, s.seq_len) for s in spec.scenarios()]
    expected = [
        (chip, system, n, seq)
        for chip, system in (("h100", "hgx-h100"), ("trn2", "trn2.48xlarge"))
        for n in (1, 8)
        for seq in (256, 512)
    ]
    assert got == expected
    assert len(spec) == 8
    assert all(s.global_batch == 16 and s.precision == "bf16" and s.top_k == 2 for s in spec.scenarios())


def test_defaults_are_those_of_twofold_plan() -> None:
    spec = parse_spec({"axes": {"models": ["llama-tiny"], "chips": ["h100"], "chip_counts": [8]}})
    (scenario,) = spec.scenarios()
    # cli/plan.py: 4096 tokens x 1024 sequences, bf16, top 10, throughput.
    assert (scenario.seq_len, scenario.global_batch, scenario.precision) == (4096, 1024, "bf16")
    assert (scenario.objective, scenario.top_k, scenario.mode) == ("throughput", 10, "training")


def test_systems_axis_picks_the_named_system_and_its_chip() -> None:
    spec = parse_spec(_spec(chips=None, systems=["p5.48xlarge", "trn2-ultraserver"]))
    assert {(s.chip, s.system) for s in spec.scenarios()} == {
        ("h100", "p5.48xlarge"),
        ("trn2", "trn2-ultraserver"),
    }


def test_key_is_sha256_of_sorted_compact_json_and_version() -> None:
    scenario = Scenario(
        mode="training",
        model="llama-tiny",
        chip="h100",
        system="hgx-h100",
        chips=8,
        precision="bf16",
        objective="throughput",
        top_k=2,
        seq_len=256,
        global_batch=16,
    )
    # The canonical form written out by hand: every field, keys sorted, no spaces.
    canonical = (
        '{"chip":"h100","chips":8,"global_batch":16,"input_tokens":null,"max_tpot_ms":null,'
        '"max_ttft_ms":null,"mode":"training","model":"llama-tiny","model_digest":"",'
        '"objective":"throughput","output_tokens":null,"precision":"bf16","seq_len":256,'
        '"stack":"auto","system":"hgx-h100","top_k":2}'
    )
    assert scenario.canonical_json() == canonical
    assert scenario_key(scenario, "1.2.3") == hashlib.sha256((canonical + "\n1.2.3").encode()).hexdigest()
    assert scenario_key(scenario, "1.2.4") != scenario_key(scenario, "1.2.3")
    assert Scenario.from_dict(json.loads(canonical)) == scenario


def test_a_config_json_model_is_keyed_by_its_content(tmp_path: Path) -> None:
    config = {
        "model_type": "llama",
        "num_hidden_layers": 2,
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 128,
        "vocab_size": 256,
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    spec_file = tmp_path / "s.yaml"
    spec_file.write_text("axes:\n  models: [config.json]\n  chips: [h100]\n  chip_counts: [2]\n")
    (first,) = load_spec(spec_file).scenarios()
    assert first.model == str((tmp_path / "config.json").resolve())
    assert first.model_digest == hashlib.sha256((tmp_path / "config.json").read_bytes()).hexdigest()
    (tmp_path / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 4}))
    (second,) = load_spec(spec_file).scenarios()
    assert scenario_key(first, "v") != scenario_key(second, "v")


def test_spec_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("axes: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_spec(bad)


_CHIPS = ["h100", "h200", "trn2", "tpu-v5p", "mi300x", "b200"]


@settings(max_examples=40, deadline=None)
@given(
    chips=st.lists(st.sampled_from(_CHIPS), min_size=1, max_size=4, unique=True),
    counts=st.lists(st.integers(1, 4096), min_size=1, max_size=4, unique=True),
    seq_lens=st.lists(st.sampled_from([128, 256, 1024, 4096, 8192]), min_size=1, max_size=3, unique=True),
    precisions=st.lists(st.sampled_from(["bf16", "fp8", "fp32"]), min_size=1, max_size=2, unique=True),
)
def test_expansion_size_and_keys_are_the_product_of_the_axes(
    chips: list[str], counts: list[int], seq_lens: list[int], precisions: list[str]
) -> None:
    spec = parse_spec(_spec(chips=chips, chip_counts=counts, seq_lens=seq_lens, precisions=precisions))
    scenarios = spec.scenarios()
    assert len(scenarios) == len(spec) == math.prod(map(len, (chips, counts, seq_lens, precisions)))
    assert len({scenario_key(s, "v") for s in scenarios}) == len(scenarios)
    assert {(s.chip, s.chips, s.seq_len, s.precision) for s in scenarios} == {
        (c, n, q, p) for c in chips for n in counts for q in seq_lens for p in precisions
    }
