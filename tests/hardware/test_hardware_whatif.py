"""A what-if chip travels in its system: estimates price that chip, not the catalog entry of its id.

Reference: properties of the model. Decode at batch 1 is memory-bound, so TPOT falls when the
HBM bandwidth rises (3.35 -> 10 TB/s on H100); a training step at any layout cannot be faster on a
chip with half the peak FLOPS. Before `System.chip`, `system_for` returned the catalog system, which
holds only the chip id, and both estimates silently priced the catalog H100.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from twofold.errors import InputError
from twofold.estimate import estimate_training
from twofold.estimate.inference import estimate_inference
from twofold.estimate.inference_types import InferenceLayout, InferenceWorkload
from twofold.hardware.catalog import chip_of, get_chip, get_system, system_for
from twofold.parallel.layout import Layout, TrainingWorkload
from twofold.workload.registry import get_model


def test_a_catalog_chip_gives_the_catalog_system_unchanged() -> None:
    h100 = get_chip("h100")
    assert system_for(h100) == get_system("hgx-h100")
    assert system_for(h100).chip is None
    assert chip_of(system_for(h100)) is h100


def test_a_modified_chip_travels_in_its_system() -> None:
    fast = replace(get_chip("h100"), hbm_bandwidth_tb_s=10.0)
    system = system_for(fast)
    assert system.id == "hgx-h100" and system.levels == get_system("hgx-h100").levels
    assert chip_of(system) is fast
    assert system != get_system("hgx-h100")


def test_a_system_refuses_a_chip_of_another_id() -> None:
    with pytest.raises(InputError, match="system.chip"):
        replace(get_system("hgx-h100"), chip=get_chip("h200"))


def test_estimate_inference_uses_the_modified_chip() -> None:
    model = get_model("llama3.1-8b")
    layout, workload = InferenceLayout(tp=1), InferenceWorkload(batch=1, input_tokens=512, output_tokens=128)
    h100 = get_chip("h100")
    base = estimate_inference(model, system_for(h100), layout, workload)
    fast = estimate_inference(model, system_for(replace(h100, hbm_bandwidth_tb_s=10.0)), layout, workload)
    assert fast.tpot_s < base.tpot_s


def test_estimate_training_uses_the_modified_chip() -> None:
    model = get_model("llama3.1-8b")
    layout, workload = Layout(dp=8, zero=2, micro_batch=2), TrainingWorkload(global_batch=64, seq_len=4096)
    h100 = get_chip("h100")
    base = estimate_training(model, system_for(h100), layout, workload)
    half = replace(h100, bf16_dense_tflops=h100.bf16_dense_tflops / 2)  # type: ignore[operator]
    slow = estimate_training(model, system_for(half), layout, workload)
    assert slow.step_time_s > base.step_time_s * 1.3
    # MFU is against the modified chip's peak: still a fraction of it, not of the catalog's.
    assert slow.mfu > base.mfu * 0.5
