"""The mechanism calibration: recovers known multipliers, shrinks toward 1, honours leave-one-out."""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from twofold.cost.calibration import TrainingCalibration
from twofold.validate.calibrate import FitRow, apply, calibrated_step_time, fit, theta_of, to_training


def _rows(theta_compute: float, theta_comm: float, source: str = "s", n: int = 8) -> list[FitRow]:
    """Rows whose published figure is what the true multipliers give (figure ~ 1/t)."""
    out = []
    for i in range(n):
        compute, comm = 1.0 + i, 0.2 * (i % 3 + 1)
        true_t = theta_compute * compute + theta_comm * comm
        raw_t = compute + comm
        out.append(
            FitRow(
                id=f"{source}{i}",
                source=source,
                log_error=math.log(true_t / raw_t),
                time_sign=-1,
                step_time_s=raw_t,
                groups={"compute[x]": compute, "comm": comm},
            )
        )
    return out


def test_fit_recovers_known_multipliers_without_ridge() -> None:
    result = fit(_rows(1.3, 2.0), ridge_lambda=0.0)
    assert math.isclose(result.theta["compute[x]"], 1.3, rel_tol=1e-6)
    assert math.isclose(result.theta["comm"], 2.0, rel_tol=1e-6)
    assert all(abs(apply(r, result.theta)) < 1e-6 for r in _rows(1.3, 2.0))


@settings(max_examples=25, deadline=None)
@given(st.floats(0.5, 2.0), st.floats(0.1, 5.0))
def test_ridge_shrinks_toward_one(theta: float, lam: float) -> None:
    # One parameter: the ridge penalty can only pull log(theta) toward 0.
    rows = [
        FitRow(
            id=r.id,
            source=r.source,
            log_error=r.log_error,
            time_sign=r.time_sign,
            step_time_s=r.step_time_s,
            groups={"compute[x]": r.groups["compute[x]"]},
        )
        for r in _rows(theta, 1.0)
    ]
    free = fit(rows, ridge_lambda=0.0).theta["compute[x]"]
    shrunk = fit(rows, ridge_lambda=lam).theta["compute[x]"]
    assert abs(math.log(shrunk)) <= abs(math.log(free)) + 1e-9


def test_leave_one_source_out_ignores_that_source() -> None:
    rows = _rows(1.2, 1.0, source="a") + _rows(3.0, 1.0, source="b")
    without_b = fit(rows, exclude_source="b", ridge_lambda=0.0)
    assert math.isclose(without_b.theta["compute[x]"], 1.2, rel_tol=1e-6)
    assert without_b.rows_used == 8


def test_collective_efficiency_is_bounded_at_the_link_rate() -> None:
    # Data made with comm at half its modelled time: unbounded, theta_comm = 0.5 (efficiency 2,
    # faster than the links); the bounded fit stops at theta = 1 and leaves the rest unexplained.
    rows = _rows(1.0, 0.5)
    result = fit(rows, ridge_lambda=0.0)
    assert result.theta["comm"] == 1.0
    # An overlap parameter may sit below comm (hidden fraction) but never above it.
    over = [
        replace(r, groups={"compute[x]": r.groups["compute[x]"], "tp[f]": r.groups["comm"]})
        for r in _rows(1.0, 1.6)
    ]
    assert fit(over, ridge_lambda=0.0).theta["tp[f]"] <= 1.0 + 1e-12
    under = [
        replace(r, groups={"compute[x]": r.groups["compute[x]"], "tp[f]": r.groups["comm"]})
        for r in _rows(1.0, 0.6)
    ]
    assert math.isclose(fit(under, ridge_lambda=0.0).theta["tp[f]"], 0.6, rel_tol=1e-6)


def test_product_group_is_scaled_by_both_multipliers() -> None:
    # Routed-expert GEMMs ("gemm[x]*expert_gemm") run at the family's GEMM multiplier times the
    # expert multiplier. Hand count: 2 s dense GEMM, 1 s expert GEMM, 0.5 s unscaled;
    # theta_gemm 1.5, theta_expert 2: t = 0.5 + 1.5*2 + 1.5*2*1 = 6.5 s.
    row = FitRow(
        id="r", source="s", log_error=0.0, time_sign=-1, step_time_s=3.5,
        groups={"gemm[x]": 2.0, "gemm[x]*expert_gemm": 1.0},
    )  # fmt: skip
    assert calibrated_step_time(row, {"gemm[x]": 1.5, "expert_gemm": 2.0}) == 6.5


def test_fit_recovers_a_multiplier_that_only_appears_in_a_product() -> None:
    theta_gemm, theta_expert = 1.4, 1.8
    rows = []
    for i in range(10):
        dense, expert = 1.0 + i, 0.3 * (i % 4)  # some rows without experts (dense models)
        true_t = theta_gemm * dense + theta_gemm * theta_expert * expert
        rows.append(
            FitRow(
                id=f"r{i}",
                source="s",
                log_error=math.log(true_t / (dense + expert)),
                time_sign=-1,
                step_time_s=dense + expert,
                groups={"gemm[x]": dense, "gemm[x]*expert_gemm": expert},
            )  # fmt: skip
        )
    result = fit(rows, ridge_lambda=0.0)
    assert set(result.theta) == {"gemm[x]", "expert_gemm"}
    assert math.isclose(result.theta["gemm[x]"], theta_gemm, rel_tol=1e-6)
    assert math.isclose(result.theta["expert_gemm"], theta_expert, rel_tol=1e-6)
    # factor = 1 / theta, and back.
    factors = to_training(result.theta, TrainingCalibration())
    assert math.isclose(factors.expert_gemm_efficiency_factor, 1 / theta_expert, rel_tol=1e-6)
    assert math.isclose(theta_of(factors)["expert_gemm"], theta_expert, rel_tol=1e-6)


def test_op_overhead_round_trips_as_a_time_multiplier() -> None:
    # Unlike the efficiency factors (1 / theta), the per-op overhead factor IS theta: the fitted
    # multiplier of the overhead's seconds.
    base = TrainingCalibration(chip_families={"h100": "NVIDIA Hopper"})
    factors = to_training({"op_overhead": 3.0, "gemm[NVIDIA Hopper 16-bit]": 1.25}, base)
    assert factors.op_overhead_factor == 3.0
    assert factors.gemm_efficiency_factor["NVIDIA Hopper 16-bit"] == 0.8
    assert theta_of(factors)["op_overhead"] == 3.0


def test_weak_prior_lets_the_overhead_move_where_a_unit_ridge_would_not() -> None:
    # Rows whose published times need 3x the modelled per-op overhead (a 10% share of the step):
    # with the overhead's 100x weaker ridge the fit gets close to 3; a unit ridge on the same rows
    # would hold it much nearer 1 (the RIDGE_SCALE rationale in validate.calibrate).
    rows = []
    for i in range(20):
        roofline, overhead = 1.0 + 0.1 * i, 0.1 + 0.01 * i
        rows.append(
            FitRow(
                id=f"r{i}",
                source="s",
                log_error=math.log((roofline + 3.0 * overhead) / (roofline + overhead)),
                time_sign=-1,
                step_time_s=roofline + overhead,
                groups={"op_overhead": overhead},
            )
        )
    weak = fit(rows).theta["op_overhead"]
    unit = fit([replace(r, groups={"other": r.groups["op_overhead"]}) for r in rows]).theta[
        "other"
    ]
    assert 2.5 < weak <= 3.0 + 1e-9
    assert unit < weak


def _fsdp_rows(lost: float) -> list[FitRow]:
    """Rows whose published time is the model's plus `lost` of the FSDP time it hides (which is
    not in the modelled step)."""
    rows = []
    for i in range(12):
        step, hidden = 10.0 + i, 1.0 + 0.5 * i
        rows.append(
            FitRow(
                id=f"f{i}",
                source="s",
                log_error=math.log((step + lost * hidden) / step),
                time_sign=-1,
                step_time_s=step,
                groups={"fsdp_overlap": hidden},
            )
        )
    return rows


def test_fsdp_overlap_is_fitted_as_a_fraction_and_bounded() -> None:
    # 40% of the hidden time lost: theta 1.4, overlap 0.6 (weak prior: close to it). Data asking
    # for more than all of it (150%) stops at the bound: theta 2, overlap 0.
    theta = fit(_fsdp_rows(0.4)).theta["fsdp_overlap"]
    assert 1.38 < theta <= 1.4 + 1e-9
    factors = to_training({"fsdp_overlap": theta}, TrainingCalibration())
    assert factors.fsdp_comm_overlap == 2.0 - theta
    assert theta_of(factors)["fsdp_overlap"] == 2.0 - factors.fsdp_comm_overlap
    assert fit(_fsdp_rows(1.5)).theta["fsdp_overlap"] == 2.0
    assert to_training({"fsdp_overlap": 2.0}, TrainingCalibration()).fsdp_comm_overlap == 0.0
