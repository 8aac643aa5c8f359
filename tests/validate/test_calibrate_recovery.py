"""`twofold calibrate` recovers factors set by hand, from runs that twofold itself predicted with them.

Reference: the hand-set factors of `TRUTH`. The runs are the estimator's predictions with a stack
carrying them (`_calibrate_runs.generated`), so an exact fit exists; with a negligible ridge the
fit must find it, and with the default ridge a handful of runs moves only what they identify."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from _calibrate_runs import generated, hand_set_stack

from twofold.cost.calibration import shipped_calibration
from twofold.validate.user_fit import fit_stack

TRUTH = {
    "gemm_efficiency_factor": {"NVIDIA Ampere 16-bit": 0.78},
    "attention_efficiency_factor": 0.70,
    "memory_bound_efficiency_factor": 0.62,
    "op_overhead_factor": 2.5,
    "fsdp_comm_overlap_by_flavour": {"megatron-fsdp": 0.75},
    "collective_efficiency_by_stack": {"truth": 0.7},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list:
    path = tmp_path_factory.mktemp("runs") / "runs.csv"
    return generated(path, hand_set_stack("truth", TRUTH))[1]


def test_a_fit_with_a_negligible_prior_recovers_the_hand_set_factors(runs: list) -> None:
    # From the shipped calibration of the 290-row fit (issue 16) the re-linearisation reaches the
    # hand-set truth in more passes than the default (3 passes stop at overlap 0.68, 10 reach 0.74).
    fit = fit_stack(
        runs, name="found", base_stack="megatron", ridge_lambda=1e-6, leave_one_out=False, anchor_passes=10
    )
    assert fit.converged
    got = fit.stack.factors
    assert got["gemm_efficiency_factor"]["NVIDIA Ampere 16-bit"] == pytest.approx(0.78, rel=0.03)
    assert got["attention_efficiency_factor"] == pytest.approx(0.70, rel=0.05)
    assert got["memory_bound_efficiency_factor"] == pytest.approx(0.62, rel=0.05)
    assert got["op_overhead_factor"] == pytest.approx(2.5, rel=0.05)
    assert got["fsdp_comm_overlap_by_flavour"]["megatron-fsdp"] == pytest.approx(0.75, abs=0.05)
    assert got["collective_efficiency_by_stack"]["found"] == pytest.approx(0.7, rel=0.1)
    # and the estimator with the recovered stack reproduces the runs
    assert max(r.ape_pct for r in fit.runs) < 2.0


# The stack-file factor of each fitted parameter, and how to read its time multiplier back.
FACTOR_OF = {
    "attention": ("attention_efficiency_factor", None),
    "memory_bound": ("memory_bound_efficiency_factor", None),
    "op_overhead": ("op_overhead_factor", None),
    "fsdp_overlap": ("fsdp_comm_overlap_by_flavour", "megatron-fsdp"),
    "gemm[NVIDIA Ampere 16-bit]": ("gemm_efficiency_factor", "NVIDIA Ampere 16-bit"),
}


def _factor(factors: dict, key: str, sub: str | None) -> float:
    return factors[key][sub] if sub else factors[key]


def test_the_default_prior_moves_what_the_runs_identify_toward_the_truth(runs: list) -> None:
    # With the default prior, selection (validate.user_select) frees the GEMM factor and the
    # software factors the runs identify; each freed factor moves toward its hand-set value and
    # every other factor stays exactly at the shipped one.
    fit = fit_stack(runs, name="found", base_stack="megatron")
    shipped = shipped_calibration().with_stack("megatron")
    before = {
        "attention_efficiency_factor": shipped.attention_efficiency_factor,
        "memory_bound_efficiency_factor": shipped.memory_bound_efficiency_factor,
        "op_overhead_factor": shipped.op_overhead_factor,
        "fsdp_comm_overlap_by_flavour": {
            "megatron-fsdp": shipped.fsdp_comm_overlap_by_flavour.get(
                "megatron-fsdp", shipped.fsdp_comm_overlap
            )
        },
        "gemm_efficiency_factor": {"NVIDIA Ampere 16-bit": shipped.gemm_factor("a100", "bf16")},
    }
    got = fit.stack.factors
    software = set(fit.freed) - {"gemm[NVIDIA Ampere 16-bit]"}
    assert "gemm[NVIDIA Ampere 16-bit]" in fit.freed and software  # the grid identifies some
    for param, (key, sub) in FACTOR_OF.items():
        truth, was, now = (_factor(d, key, sub) for d in (TRUTH, before, got))
        if param in fit.freed:
            assert abs(math.log(now / truth)) < abs(math.log(was / truth)), param
        else:
            assert now == pytest.approx(was, abs=1e-4), param
    summary = fit.summary()
    assert summary["in_sample_mean_ape_pct"] < summary["base_mean_ape_pct"]
    assert all(r.loo_predicted is not None for r in fit.runs)
    assert set(fit.loo_theta_range) == set(fit.theta)
    assert "NVIDIA Ampere" in fit.stack.intervals


def test_three_runs_move_few_parameters(runs: list) -> None:
    few = fit_stack(runs[:3], name="few", base_stack="megatron", leave_one_out=False)
    many = fit_stack(runs, name="many", base_stack="megatron", leave_one_out=False)
    assert len(few.moved) < len(many.moved)
    assert few.stack.intervals == {}  # too few runs for a family interval


def test_a_fit_written_and_read_back_is_the_same_stack(runs: list, tmp_path: Path) -> None:
    from twofold.cost.stack import load_stack_file
    from twofold.validate.user_fit import write_stack

    fit = fit_stack(runs, name="found", base_stack="megatron", leave_one_out=False)
    back = load_stack_file(write_stack(fit, tmp_path / "found.yaml"))
    assert back.id == "found"
    assert {k: dict(v) if hasattr(v, "items") else v for k, v in back.factors.items()} == {
        k: dict(v) if hasattr(v, "items") else v for k, v in fit.stack.factors.items()
    }
    assert back.describe("NVIDIA Ampere") == fit.stack.describe("NVIDIA Ampere")
