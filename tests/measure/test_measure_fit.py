"""The fit recovers a known profile from measurements a fake device generates with it.

Reference: the hand-set chip and profile below. `FakeDevice` (the one-method device seam) times
each kernel with the cost model and those parameters, deterministically; the fit must give back
the achievable rates (peak x efficiency), the ramp, the bandwidth, the attention efficiency and
the overhead it was built with.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from twofold.cost.profile import CalibrationProfile
from twofold.hardware.types import Chip
from twofold.measure.bench import Timing
from twofold.measure.fake import FakeDevice
from twofold.measure.kernels import Kernel, plan_kernels
from twofold.measure.run import measure, time_plan

CPU = Chip(
    id="fake-cpu",
    name="Fake CPU",
    vendor="test",
    family="cpu",
    architecture="cpu",
    fp32_dense_tflops=0.5,
    bf16_dense_tflops=2.0,
    hbm_bandwidth_tb_s=0.1,
    hbm_capacity_gib=16.0,
    compute_units=2,
)
GPU = replace(CPU, id="fake-gpu", architecture="gpu", family="nvidia-gpu", compute_units=8)
TRUE = CalibrationProfile(
    chip_id="fake",
    gemm_efficiency={"fp32": 0.8, "bf16": 0.6},
    gemm_half_flops=2e7,
    memory_efficiency=0.5,
    attention_efficiency=0.3,
    op_overhead_s=2e-5,
)


def _rates(chip: Chip, profile: CalibrationProfile) -> dict[str, float]:
    return {
        "fp32": chip.peak_tflops("fp32") * profile.gemm_efficiency["fp32"],
        "bf16": chip.peak_tflops("bf16") * profile.gemm_efficiency["bf16"],
        "bandwidth": chip.hbm_bandwidth_tb_s * profile.memory_efficiency,
        "half": profile.gemm_half_flops,
        "attention": profile.attention_efficiency,
        "overhead": profile.op_overhead_s,
    }


@pytest.mark.parametrize("chip", [CPU, GPU], ids=["cpu", "gpu"])
def test_fit_recovers_known_parameters(chip: Chip) -> None:
    result = measure(FakeDevice(chip, TRUE), quick=True, write=False, rounds=1)
    got, want = _rates(result.fit.chip, result.fit.profile), _rates(chip, TRUE)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=2e-3), key
    # Efficiencies are fractions of the measured peaks, never above 1.
    assert all(0 < v <= 1 for v in result.fit.profile.gemm_efficiency.values())
    assert 0 < result.fit.profile.memory_efficiency <= 1
    # With the true mechanism parameters recovered, held-out steps are predicted exactly.
    for row in result.validation:
        assert row.error_pct == pytest.approx(0.0, abs=0.5)


def test_fit_with_noise_stays_close() -> None:
    result = measure(FakeDevice(CPU, TRUE, noise=0.03), quick=False, write=False, rounds=1)
    got, want = _rates(result.fit.chip, result.fit.profile), _rates(CPU, TRUE)
    for key in ("fp32", "bf16", "bandwidth", "attention"):
        assert got[key] == pytest.approx(want[key], rel=0.06), key
    assert result.summary()["heldout_median_abs_error_pct"] < 6.0


def test_heldout_steps_never_reach_the_fit() -> None:
    def slow_heldout(kernel: Kernel) -> float:
        return 10.0 if kernel.role == "heldout" else 0.0

    plain = measure(FakeDevice(CPU, TRUE), quick=True, write=False, rounds=1)
    skewed = measure(FakeDevice(CPU, TRUE, extra_s=slow_heldout), quick=True, write=False, rounds=1)
    assert _rates(skewed.fit.chip, skewed.fit.profile) == pytest.approx(
        _rates(plain.fit.chip, plain.fit.profile)
    )
    assert all(r.error_pct < -90 for r in skewed.validation if r.role == "heldout")


def test_plan_holds_out_other_shapes() -> None:
    for quick in (True, False):
        steps = [k for k in plan_kernels(quick=quick, bf16=True) if k.kind == "train_step"]
        fit = {(k.model.name, k.dims["micro_batch"], k.dims["seq_len"]) for k in steps if k.role == "fit"}
        held = {
            (k.model.name, k.dims["micro_batch"], k.dims["seq_len"]) for k in steps if k.role == "heldout"
        }
        assert fit and held and not fit & held
        # Every held-out step differs from every fit step in size, batch or sequence length.
        assert {m for m, _, _ in held} - {m for m, _, _ in fit}


class _Scripted:
    """A device whose k-th call for a kernel returns the k-th scripted time."""

    def __init__(self, script: dict[str, list[float]]) -> None:
        self.script = {k: list(v) for k, v in script.items()}
        self.info = FakeDevice(CPU, TRUE).info

    def time_kernel(self, kernel: Kernel) -> Timing:
        t = self.script[kernel.name].pop(0)
        return Timing(time_s=t, min_s=t * 0.9, repeats=3)


def test_rounds_take_the_least_disturbed_pass() -> None:
    a = Kernel(kind="copy", dims={"numel": 1024})
    b = Kernel(kind="add", dims={"numel": 1024})
    device = _Scripted({a.name: [5.0, 1.0, 9.0], b.name: [2.0, 2.5, 2.2]})
    (ka, ta), (kb, tb) = time_plan(device, [a, b], rounds=3)  # default: smallest pass median
    assert (ka, kb) == (a, b)
    assert ta.time_s == 1.0 and ta.round_s == (5.0, 1.0, 9.0) and ta.min_s == pytest.approx(0.9)
    assert tb.time_s == 2.0 and tb.repeats == 9
    assert math.isclose(tb.min_s, 1.8)
    device = _Scripted({a.name: [5.0, 1.0, 9.0], b.name: [2.0, 2.5, 2.2]})
    (_, ta), (_, tb) = time_plan(device, [a, b], rounds=3, statistic="min")
    assert ta.time_s == pytest.approx(0.9) and tb.time_s == pytest.approx(1.8)


def test_disturbed_timings_raise_a_warning() -> None:
    assert measure(FakeDevice(CPU, TRUE), quick=True, write=False, rounds=1).warnings == []

    def one_fit_step_slow(kernel: Kernel) -> float:
        return 5.0 if kernel.kind == "train_step" and kernel.dims["micro_batch"] == 4 else 0.0

    result = measure(FakeDevice(CPU, TRUE, extra_s=one_fit_step_slow), quick=True, write=False, rounds=1)
    assert len(result.warnings) == 1 and "disturbed" in result.warnings[0]


def test_fp32_fit_ignores_a_different_bf16_ramp() -> None:
    """The ramp is fitted on fp32 GEMMs: bf16 GEMMs with a 50x larger ramp (as AMX tiles show on
    a CPU) leave the fp32 rate, the ramp and hence the fp32 step predictions exactly as they were."""
    slow_bf16 = replace(TRUE, gemm_half_flops=TRUE.gemm_half_flops * 50)
    extra_cost = FakeDevice(CPU, slow_bf16)

    def bf16_ramp(kernel: Kernel) -> float:
        if kernel.kind != "gemm" or kernel.dtype != "bf16":
            return 0.0
        # The fake's own time with the true ramp is added by FakeDevice; add the difference.
        return extra_cost.time_kernel(kernel).time_s - FakeDevice(CPU, TRUE).time_kernel(kernel).time_s

    plain = measure(FakeDevice(CPU, TRUE), quick=True, write=False, rounds=1)
    skewed = measure(FakeDevice(CPU, TRUE, extra_s=bf16_ramp), quick=True, write=False, rounds=1)
    for key in ("fp32", "half", "bandwidth", "attention", "overhead"):
        assert _rates(skewed.fit.chip, skewed.fit.profile)[key] == pytest.approx(
            _rates(plain.fit.chip, plain.fit.profile)[key], rel=1e-6
        ), key
    for a, b in zip(plain.validation, skewed.validation, strict=True):
        assert a.predicted_s == pytest.approx(b.predicted_s, rel=1e-6)
