"""Invariants between catalog chips built on the same die (`cost.mamf.SAME_DIE`).

Reference: a property, not a figure. Two chips on the same die have the same tensor cores, clocks
and kernels; the one with at least as much HBM bandwidth and capacity (H200 over H100, GB200 over
B200, MI325X over MI300X) can run every kernel at least as fast and holds at least as much, so on
the same layout it is never slower, in training and in serving. H200 used to borrow its bf16 GEMM
efficiency from its own FP8 row (0.7344 against H100's measured 0.8033) and trained ~3% slower.
"""

from __future__ import annotations

import pytest

from twofold.cost.defaults import shipped_profile
from twofold.cost.mamf import SAME_DIE
from twofold.estimate import estimate_training
from twofold.estimate.inference import estimate_inference
from twofold.estimate.inference_types import InferenceLayout, InferenceWorkload
from twofold.hardware.catalog import get_chip, system_for
from twofold.parallel.layout import Layout, TrainingWorkload
from twofold.workload.registry import get_model


def _ordered(pair: tuple[str, str]) -> tuple[str, str]:
    """(smaller, bigger): the bigger has at least the other's bandwidth and capacity."""
    a, b = (get_chip(c) for c in pair)
    if b.hbm_bandwidth_tb_s >= a.hbm_bandwidth_tb_s and b.hbm_capacity_gib >= a.hbm_capacity_gib:
        return a.id, b.id
    assert a.hbm_bandwidth_tb_s >= b.hbm_bandwidth_tb_s and a.hbm_capacity_gib >= b.hbm_capacity_gib
    return b.id, a.id


PAIRS = [_ordered(p) for p in SAME_DIE]
TRAINING = [
    ("llama3.1-8b", Layout(dp=8, zero=2, micro_batch=2), 8),
    ("llama3.1-8b", Layout(dp=64, zero=2, micro_batch=2), 64),
    ("llama3.1-70b", Layout(dp=8, tp=8, zero=1, micro_batch=1, recompute="selective"), 64),
]


def test_the_pairs_share_their_peaks() -> None:
    for small, big in PAIRS:
        a, b = get_chip(small), get_chip(big)
        assert b.bf16_dense_tflops >= a.bf16_dense_tflops  # type: ignore[operator]


def test_h200_bf16_efficiency_is_h100s_measured_one_marked_assumed() -> None:
    h100, h200 = shipped_profile("h100"), shipped_profile("h200")
    assert h100 is not None and h200 is not None
    assert h200.gemm_efficiency["bf16"] == h100.gemm_efficiency["bf16"]
    assert h100.provenance["gemm_efficiency.bf16"].startswith("GT")
    assert h200.provenance["gemm_efficiency.bf16"].startswith("assumed")
    assert "h100" in h200.provenance["gemm_efficiency.bf16"]


def test_the_assumption_reaches_the_estimate_provenance() -> None:
    model = get_model("llama3.1-8b")
    workload = TrainingWorkload(global_batch=128, seq_len=4096)
    layout = Layout(dp=8, zero=2, micro_batch=2)
    h200 = estimate_training(model, system_for(get_chip("h200")), layout, workload)
    h100 = estimate_training(model, system_for(get_chip("h100")), layout, workload)
    assert any("gemm_efficiency.bf16" in a and "h100" in a for a in h200.provenance["assumed"])
    assert not any("gemm_efficiency.bf16" in a for a in h100.provenance["assumed"])


@pytest.mark.parametrize(("small", "big"), PAIRS)
@pytest.mark.parametrize(("model_name", "layout", "chips"), TRAINING)
def test_training_never_slower_on_the_bigger_sibling(
    small: str, big: str, model_name: str, layout: Layout, chips: int
) -> None:
    model = get_model(model_name)
    workload = TrainingWorkload(global_batch=512, seq_len=4096)
    slow = estimate_training(model, system_for(get_chip(small)), layout, workload)
    fast = estimate_training(model, system_for(get_chip(big)), layout, workload)
    assert fast.tokens_per_s_per_chip >= slow.tokens_per_s_per_chip * (1 - 1e-9)
    assert fast.fits or not slow.fits


_W = InferenceWorkload
SERVING = [
    ("llama3.1-8b", InferenceLayout(tp=1), InferenceWorkload(batch=1, input_tokens=1024, output_tokens=256)),
    ("llama3.1-8b", InferenceLayout(tp=2), InferenceWorkload(batch=32, input_tokens=2048, output_tokens=512)),
    ("llama3.1-70b", InferenceLayout(tp=8), _W(batch=16, input_tokens=2048, output_tokens=256)),
]


@pytest.mark.parametrize(("small", "big"), PAIRS)
@pytest.mark.parametrize(("model_name", "layout", "workload"), SERVING)
def test_serving_never_slower_on_the_bigger_sibling(
    small: str, big: str, model_name: str, layout: InferenceLayout, workload: InferenceWorkload
) -> None:
    model = get_model(model_name)
    slow = estimate_inference(model, system_for(get_chip(small)), layout, workload)
    fast = estimate_inference(model, system_for(get_chip(big)), layout, workload)
    assert fast.ttft_s <= slow.ttft_s * (1 + 1e-9)
    assert fast.tpot_s <= slow.tpot_s * (1 + 1e-9)
    assert fast.max_batch >= slow.max_batch
