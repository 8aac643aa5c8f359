"""The search's vectorised path against the plain per-layout path of the real estimator.

Reference: `twofold.estimate.estimate_training`, called once per layout (which also runs
`parallel.rules.check_layout` on it), must give exactly the numbers that `plan_training` ranks,
which come from `evaluate_layouts` over the whole enumerated table, in chunks.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from twofold.cost.calibration import shipped_calibration
from twofold.estimate import BREAKDOWN_TERMS, estimate_training, evaluate_layouts
from twofold.hardware.catalog import get_chip, system_for
from twofold.parallel.layout import TrainingWorkload
from twofold.parallel.memory import DEFAULT_MEM_HEADROOM
from twofold.search import plan as plan_module
from twofold.search.enumerate import EnumerateOptions, enumerate_layouts
from twofold.search.plan import plan_training
from twofold.workload import get_model
from twofold.workload.model import ModelConfig


def _tiny_moe() -> ModelConfig:
    return ModelConfig(
        name="tiny-moe",
        family="mixtral",
        num_layers=4,
        hidden_size=128,
        num_attention_heads=4,
        num_kv_heads=2,
        head_dim=32,
        intermediate_size=256,
        vocab_size=1024,
        num_experts=4,
        num_experts_per_tok=2,
        moe_intermediate_size=256,
    )


CASES = [
    (lambda: get_model("llama-tiny"), "h100", 16, TrainingWorkload(global_batch=16, seq_len=256)),
    (_tiny_moe, "trn2", 8, TrainingWorkload(global_batch=8, seq_len=128, precision="bf16")),
]


@pytest.mark.parametrize(("make_model", "chip_id", "chips", "workload"), CASES)
def test_plan_numbers_equal_per_layout_estimates(make_model, chip_id, chips, workload, monkeypatch) -> None:
    model = make_model()
    base = get_chip(chip_id)
    system = system_for(base)
    # The plan searches the ZeRO stages the chip's reference stack implements (`cost.stack`).
    running = shipped_calibration()
    stages = running.stack_for(base).zero_stages(running.stack_family(base.id))
    options = EnumerateOptions(zero_stages=stages)
    table, _ = enumerate_layouts(model, workload, chips, system=system, options=options)
    # Usable memory at the median footprint, so that about half the layouts fit and half do not.
    mem = evaluate_layouts(model, system, workload, table, chip=base).memory_per_chip_gib
    capacity = float(np.median(mem)) / (1.0 - DEFAULT_MEM_HEADROOM)
    chip = dataclasses.replace(base, hbm_capacity_gib=capacity)
    monkeypatch.setattr(plan_module, "CHUNK_LAYOUTS", 97)  # several chunks, the last one short

    result = plan_training(model, system, chips, workload, chip=chip, top_k=len(table))
    assert 0 < result.fitting_layouts < result.evaluated_layouts == len(table)
    by_layout = {r.layout: r.step for r in result.top}
    assert len(by_layout) == result.fitting_layouts

    n_fit = 0
    for i in range(len(table)):
        layout = table.row(i)
        est = estimate_training(model, system, layout, workload, chip=chip, chips=chips)
        if not est.fits:
            assert layout not in by_layout
            continue
        n_fit += 1
        got = by_layout[layout]
        assert got.step_time_s == est.step_time_s
        assert got.tokens_per_s_per_chip == est.tokens_per_s_per_chip
        assert got.mfu == est.mfu
        assert got.memory_per_chip_gib == est.memory_per_chip_gib
        for term in BREAKDOWN_TERMS:
            assert got.breakdown_s[term] == est.breakdown[term]
    assert n_fit == result.fitting_layouts
