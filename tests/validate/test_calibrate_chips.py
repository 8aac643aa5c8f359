"""Calibrating on runs of one chip leaves every other chip's chip-specific factors as shipped.

Reference: the shipped `cost/calibration.yaml` (`shipped_calibration()`): after `with_stack` of a
stack calibrated on A100 runs, every chip outside the NVIDIA Ampere family has the shipped GEMM
factor at every precision, TP/EP overlap and collective efficiencies; Ampere chips have the runs'."""

from __future__ import annotations

import pytest
from _calibrate_runs import generated, hand_set_stack

from twofold.cost.calibration import shipped_calibration
from twofold.validate.user_fit import fit_stack

PRECISIONS = ("bf16", "fp8", "fp4")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - a StackFit
    truth = hand_set_stack("truth", {"gemm_efficiency_factor": {"NVIDIA Ampere 16-bit": 0.7}})
    cases = generated(tmp_path_factory.mktemp("runs") / "a100.csv", truth)[1]
    return fit_stack(cases, name="team", base_stack="megatron", leave_one_out=False)


def test_only_the_runs_family_gets_a_gemm_factor(fitted) -> None:  # noqa: ANN001
    assert set(fitted.stack.factors["gemm_efficiency_factor"]) == {"NVIDIA Ampere 16-bit"}
    assert set(fitted.stack.intervals) <= {"NVIDIA Ampere"}


def test_other_families_keep_their_shipped_chip_factors(fitted) -> None:  # noqa: ANN001
    shipped = shipped_calibration()
    calibrated = shipped.with_stack(fitted.stack)
    others = [chip for chip, family in shipped.chip_families.items() if family != "NVIDIA Ampere"]
    assert others
    for chip in others:
        for precision in PRECISIONS:
            assert calibrated.gemm_factor(chip, precision) == shipped.gemm_factor(chip, precision), chip
        assert calibrated.tp_overlap(chip) == shipped.tp_overlap(chip)
        assert calibrated.ep_overlap(chip) == shipped.ep_overlap(chip)
    assert calibrated.collective_efficiency == shipped.collective_efficiency
    assert calibrated.fsdp_collective_efficiency == shipped.fsdp_collective_efficiency
    assert calibrated.expert_gemm_efficiency_factor == shipped.expert_gemm_efficiency_factor


def test_the_calibrated_family_gets_the_runs_factor(fitted) -> None:  # noqa: ANN001
    shipped = shipped_calibration()
    calibrated = shipped.with_stack(fitted.stack)
    factor = fitted.stack.factors["gemm_efficiency_factor"]["NVIDIA Ampere 16-bit"]
    assert calibrated.gemm_factor("a100", "bf16") == pytest.approx(factor)
    assert factor < shipped.gemm_factor("a100", "bf16")  # the runs were slower: it moved toward 0.7


def test_another_stack_after_it_starts_from_the_shipped_factors_again(fitted) -> None:  # noqa: ANN001
    shipped = shipped_calibration()
    again = shipped.with_stack(fitted.stack).with_stack("fsdp")
    assert again.gemm_factor("a100", "bf16") == shipped.gemm_factor("a100", "bf16")
    assert again.op_overhead_factor == shipped.op_overhead_factor
    assert again.collective_efficiency_by_stack == shipped.collective_efficiency_by_stack
