"""Sweep specs with a `finetune` key: validated at the boundary, carried into every training
scenario, and absent from the scenario key of full training (stored sweeps keep their keys).

Reference: `twofold plan --finetune ...` (the same `Finetune` through `plan_training`)."""

from __future__ import annotations

import json

import pytest

from twofold.errors import InputError
from twofold.sweep.scenario import plan_scenario
from twofold.sweep.spec import parse_spec

BASE = {"axes": {"models": ["llama3.1-8b"], "chips": ["h100"], "chip_counts": [8], "global_batches": [16]}}


def test_finetune_key_reaches_every_scenario_and_the_plan() -> None:
    spec = parse_spec(BASE | {"finetune": {"method": "qlora", "rank": 8}})
    (scenario,) = spec.scenarios()
    assert scenario.finetune == {
        "method": "qlora",
        "rank": 8,
        "targets": "attention-mlp",
        "base_precision": "nf4",
    }
    outcome = plan_scenario(scenario)
    assert outcome.status == "ok"
    assert json.loads(outcome.result_json)["workload"]["finetune"]["method"] == "qlora"


def test_full_training_scenarios_keep_their_canonical_json() -> None:
    (plain,) = parse_spec(BASE).scenarios()
    (full,) = parse_spec(BASE | {"finetune": "full"}).scenarios()
    assert "finetune" not in plain.to_dict() and plain.canonical_json() == full.canonical_json()
    (lora,) = parse_spec(BASE | {"finetune": "lora"}).scenarios()
    assert lora.canonical_json() != plain.canonical_json()


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("prefix", "finetune.finetune"),
        ({"method": "lora", "targets": "mlp"}, "finetune.lora_targets"),
        ({"method": "lora", "alpha": 16}, "finetune.alpha"),
        ({"rank": 8}, "finetune"),
    ],
)
def test_bad_finetune_values_name_their_place(value: object, field: str) -> None:
    with pytest.raises(InputError) as err:
        parse_spec(BASE | {"finetune": value})
    assert err.value.field == field


def test_inference_sweeps_refuse_finetune() -> None:
    doc = {
        "mode": "inference",
        "finetune": "lora",
        "axes": {
            "models": ["llama3.1-8b"],
            "chips": ["h100"],
            "chip_counts": [1],
            "input_tokens": [128],
            "output_tokens": [128],
        },
    }
    with pytest.raises(InputError) as err:
        parse_spec(doc)
    assert err.value.field == "finetune"
