"""Inference sweeps: each scenario is the plan of `plan_inference`, with the spec's latency targets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from twofold.errors import InputError
from twofold.sweep import SweepStore, parse_spec, run_sweep, scenario_key

infer_plan = pytest.importorskip("twofold.search.infer_plan")

SPEC = {
    "mode": "inference",
    "top_k": 2,
    "max_tpot_ms": 50,
    "axes": {
        "models": ["llama-tiny"],
        "chips": ["h100", "trn2"],
        "chip_counts": [1, 4],
        "input_tokens": [512],
        "output_tokens": [128],
    },
}


def test_inference_results_are_the_plans_of_plan_inference(tmp_path: Path) -> None:
    from twofold.estimate.inference_types import InferenceWorkload
    from twofold.hardware.catalog import get_chip, get_system
    from twofold.workload import get_model

    spec = parse_spec(SPEC)
    summary = run_sweep(spec, tmp_path / "s.db", workers=1)
    assert (summary.planned, summary.complete) == (4, True)
    with SweepStore(tmp_path / "s.db") as store:
        stored = {r.key: r.result for r in store.results()}
    for s in spec.scenarios():
        assert (s.input_tokens, s.output_tokens, s.max_tpot_ms, s.max_ttft_ms) == (512, 128, 50.0, None)
        reference = infer_plan.plan_inference(
            get_model(s.model),
            get_system(s.system),
            s.chips,
            InferenceWorkload(batch=1, input_tokens=512, output_tokens=128, precision="bf16"),
            max_tpot_ms=50.0,
            top_k=2,
            chip=get_chip(s.chip),
        ).to_dict()
        del reference["elapsed_s"]
        assert stored[scenario_key(s, summary.version)] == json.loads(json.dumps(reference))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"axes": {**SPEC["axes"], "input_tokens": None}}, "axes.input_tokens"),
        ({"axes": {**SPEC["axes"], "global_batches": [8]}}, "axes.global_batches"),
        ({"max_tpot_ms": -1}, "max_tpot_ms"),
        ({"objective": "mfu"}, "objective"),
    ],
)
def test_inference_spec_mistakes_name_the_field(change: dict, field: str) -> None:
    doc = {**SPEC, **change}
    doc["axes"] = {k: v for k, v in doc["axes"].items() if v is not None}
    with pytest.raises(InputError) as info:
        parse_spec(doc)
    assert info.value.field == field
