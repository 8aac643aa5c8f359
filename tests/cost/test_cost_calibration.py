"""Training calibration in the cost and collective models: the factors are applied exactly where
`cost.calibration` says, an explicit or measured profile overrides them, and the shipped file is
well-formed. References: hand derivations in the tests (roofline with the factors written out)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from twofold.cost import op_time_terms, profile_for, shipped_profile
from twofold.cost.calibration import (
    UNCALIBRATED,
    TrainingCalibration,
    calibration_from_dict,
    calibration_to_dict,
    save_calibration,
    shipped_calibration,
)
from twofold.errors import InputError
from twofold.hardware.catalog import get_chip, get_system, list_chips
from twofold.workload.ops import Op

H100 = get_chip("h100")
CAL = TrainingCalibration(
    gemm_efficiency_factor={"NVIDIA Hopper 16-bit": 0.8, "NVIDIA Hopper 8-bit": 0.5},
    attention_efficiency_factor=0.6,
    memory_bound_efficiency_factor=0.4,
    collective_efficiency=0.9,
    chip_families={"h100": "NVIDIA Hopper"},
)


def _op(kind: str, dtype: str = "bf16", phase: str = "forward") -> Op:
    return Op(
        name=f"t.{kind}", kind=kind, phase=phase, flops=1e12 if kind in ("gemm", "attention") else 0.0,
        bytes_read=1e9, bytes_written=1e9, dtype=dtype,
        dims={"m": 8192, "n": 8192, "k": 8192} if kind == "gemm" else {},
    )  # fmt: skip


def test_factors_scale_the_mechanisms_they_name_and_nothing_else() -> None:
    base = shipped_profile("h100")
    assert base is not None
    raw = op_time_terms([_op("gemm"), _op("gemm", "fp8"), _op("attention"), _op("norm")], H100, base)
    cal = op_time_terms(
        [_op("gemm"), _op("gemm", "fp8"), _op("attention"), _op("norm")], H100, profile_for(H100, CAL)
    )
    # GEMM compute: peak * eff * factor, per precision class.
    assert cal.compute_s[0] == pytest.approx(raw.compute_s[0] / 0.8, rel=1e-12)
    assert cal.compute_s[1] == pytest.approx(raw.compute_s[1] / 0.5, rel=1e-12)
    # Attention: its own factor only (the 16-bit GEMM factor is divided back out).
    assert cal.compute_s[2] == pytest.approx(raw.compute_s[2] / 0.6, rel=1e-12)
    # Memory-bound kinds: bandwidth * factor; GEMM and attention traffic keep memory_efficiency.
    assert cal.memory_s[3] == pytest.approx(raw.memory_s[3] / 0.4, rel=1e-12)
    assert np.allclose(cal.memory_s[:3], raw.memory_s[:3], rtol=1e-12)


def test_uncalibrated_and_unknown_family_keep_the_microbenchmark_profile() -> None:
    assert profile_for(H100, UNCALIBRATED) is shipped_profile("h100")
    other = TrainingCalibration(gemm_efficiency_factor={"NVIDIA Hopper 16-bit": 0.8})  # no chip families
    assert profile_for(H100, other).gemm_efficiency["bf16"] == shipped_profile("h100").gemm_efficiency["bf16"]


def test_a_measured_profile_overrides_the_calibration() -> None:
    own = replace(shipped_profile("h100"), chip_id="local")
    assert profile_for(replace(H100, calibration=own), CAL) is own


def test_default_profile_is_the_shipped_calibration() -> None:
    shipped = shipped_calibration()
    factor = shipped.gemm_factor("h100", "bf16")
    expected = shipped_profile("h100").gemm_efficiency["bf16"] * factor
    assert profile_for(H100).gemm_efficiency["bf16"] == pytest.approx(expected, rel=1e-12)


def test_collective_efficiency_reaches_the_training_estimate() -> None:
    from twofold.estimate import estimate_training
    from twofold.parallel.layout import Layout, TrainingWorkload
    from twofold.workload.registry import get_model

    model, system = get_model("llama-3-8b"), get_system("hgx-h100")
    layout = Layout(tp=8, dp=1, micro_batch=1)
    work = TrainingWorkload(global_batch=8, seq_len=4096, precision="bf16")
    plain = estimate_training(model, system, layout, work, calibration=UNCALIBRATED)
    slow = estimate_training(
        model, system, layout, work, calibration=TrainingCalibration(collective_efficiency=0.5)
    )
    # Reference: the same system with every link at half its bandwidth, uncalibrated.
    halved = replace(
        system,
        levels=tuple(
            replace(lv, bandwidth_gb_s_per_chip=lv.bandwidth_gb_s_per_chip / 2) for lv in system.levels
        ),
    )
    ref = estimate_training(model, halved, layout, work, calibration=UNCALIBRATED)
    assert slow.breakdown["tp"] == pytest.approx(ref.breakdown["tp"], rel=1e-12)
    assert slow.breakdown["tp"] > 1.5 * plain.breakdown["tp"]
    assert slow.breakdown["compute_forward"] == pytest.approx(plain.breakdown["compute_forward"], rel=1e-12)


def test_shipped_file_round_trips_and_covers_the_catalog(tmp_path) -> None:  # noqa: ANN001
    shipped = shipped_calibration()
    assert {c.id for c in list_chips()} <= set(shipped.chip_families)
    save_calibration(shipped, tmp_path / "c.yaml", "header")
    import yaml

    again = calibration_from_dict(yaml.safe_load((tmp_path / "c.yaml").read_text()))
    assert calibration_to_dict(again) == calibration_to_dict(shipped)
    with pytest.raises(InputError, match="positive"):
        calibration_from_dict({"collective_efficiency": 0})


def test_expert_gemm_factor_slows_only_routed_expert_gemm_compute() -> None:
    # Hand derivation: an expert GEMM's compute term is the dense one / (family factor * expert
    # factor); the same GEMM under another name (shared expert, dense MLP) sees the family factor
    # only; memory terms are untouched. Backward ops keep the prefix (".dgrad"/".wgrad").
    cal = replace(CAL, expert_gemm_efficiency_factor=0.7)
    ops = [
        replace(_op("gemm"), name="layer.moe.experts.up_gate"),
        replace(_op("gemm"), name="layer.moe.experts.down.dgrad"),
        replace(_op("gemm"), name="layer.moe.shared.up_gate"),
        replace(_op("norm"), name="layer.moe.experts.act"),
    ]
    base = shipped_profile("h100")
    assert base is not None
    raw = op_time_terms(ops, H100, base)
    got = op_time_terms(ops, H100, profile_for(H100, cal))
    assert got.compute_s[0] == pytest.approx(raw.compute_s[0] / (0.8 * 0.7), rel=1e-12)
    assert got.compute_s[1] == pytest.approx(raw.compute_s[1] / (0.8 * 0.7), rel=1e-12)
    assert got.compute_s[2] == pytest.approx(raw.compute_s[2] / 0.8, rel=1e-12)
    assert np.allclose(got.memory_s[:3], raw.memory_s[:3], rtol=1e-12)
    # The factor alone (no other factor set) is still applied, and it round-trips through YAML.
    only = TrainingCalibration(expert_gemm_efficiency_factor=0.5, chip_families={"h100": "NVIDIA Hopper"})
    alone = op_time_terms(ops[:1], H100, profile_for(H100, only))
    assert alone.compute_s[0] == pytest.approx(raw.compute_s[0] / 0.5, rel=1e-12)
    assert calibration_from_dict(calibration_to_dict(cal)).expert_gemm_efficiency_factor == 0.7


def test_op_overhead_factor_scales_the_fixed_per_op_time_on_gpus_only() -> None:
    # Hand derivation: time = max(compute, memory) + op_overhead_s; the factor multiplies the
    # second term on a GPU and leaves every roofline term alone. A TPU (compiled graph) keeps its
    # profile's overhead.
    cal = replace(
        CAL, op_overhead_factor=3.0, chip_families={"h100": "NVIDIA Hopper", "tpu-v5p": "Google TPU"}
    )
    ops = [_op("gemm"), _op("norm"), _op("attention")]
    base = profile_for(H100, replace(cal, op_overhead_factor=1.0))
    got = op_time_terms(ops, H100, profile_for(H100, cal))
    raw = op_time_terms(ops, H100, base)
    assert np.allclose(got.overhead_s, 3.0 * raw.overhead_s, rtol=1e-12)
    assert np.allclose(got.time_s - got.overhead_s, raw.time_s - raw.overhead_s, rtol=1e-12)
    tpu = get_chip("tpu-v5p")
    assert (
        profile_for(tpu, cal).op_overhead_s
        == profile_for(tpu, replace(cal, op_overhead_factor=1.0)).op_overhead_s
    )
    # It round-trips through the YAML form and refuses a non-positive value by name.
    assert calibration_from_dict(calibration_to_dict(cal)).op_overhead_factor == 3.0
    with pytest.raises(InputError, match="op_overhead_factor"):
        calibration_from_dict({"op_overhead_factor": -1})


def test_unfitted_precision_class_takes_the_family_then_the_cross_family_prior() -> None:
    # Hopper has 16- and 8-bit factors: its 4-bit prior is their geometric mean. Ampere has none:
    # its 8-bit prior is the geometric mean of the 8-bit factors of the families that have one.
    cal = replace(
        CAL,
        gemm_efficiency_factor={
            "NVIDIA Hopper 16-bit": 0.8,
            "NVIDIA Hopper 8-bit": 0.5,
            "Google TPU 8-bit": 0.9,
        },
        chip_families={"h100": "NVIDIA Hopper", "a100": "NVIDIA Ampere"},
    )
    assert cal.gemm_factor("h100", "fp4") == pytest.approx(math.sqrt(0.8 * 0.5), rel=1e-12)
    assert cal.gemm_factor("h100", "fp8") == 0.5
    assert cal.gemm_factor("a100", "fp8") == pytest.approx(math.sqrt(0.5 * 0.9), rel=1e-12)


def test_fsdp_comm_overlap_round_trips_and_is_a_fraction() -> None:
    cal = replace(CAL, fsdp_comm_overlap=0.35)
    assert calibration_from_dict(calibration_to_dict(cal)).fsdp_comm_overlap == 0.35
    with pytest.raises(InputError, match="fsdp_comm_overlap"):
        calibration_from_dict({"fsdp_comm_overlap": 1.5})
