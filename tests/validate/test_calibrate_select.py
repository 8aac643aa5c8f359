"""The rule that decides which factors `twofold calibrate` frees (`validate.user_select`).

References: the one-standard-error rule on the forward path as the module defines it (Hastie,
Tibshirani, Friedman, ESL 2nd ed., 3.3.2 and 7.10), worked by hand on made-up leave-one-run-out
errors; and runs twofold generated with a hand-set attention factor, which the rule must free when
the runs vary the share of the step spent in attention and keep at its prior when they do not."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from _calibrate_runs import generated, hand_set_stack

from twofold.cost.calibration import shipped_calibration
from twofold.validate.user_fit import fit_stack
from twofold.validate.user_select import MIN_GAIN_PCT, forward_select, paired_excess

CHIP = "gemm[chip]"


def _select(apes: dict[frozenset[str], list[float]], candidates: set[str]) -> tuple[frozenset[str], tuple]:
    """`forward_select` on a table of per-run errors (the same table in every round)."""
    return forward_select({CHIP}, candidates, lambda _start: lambda free: apes.get(free))


def test_paired_excess_is_the_mean_and_standard_error_of_the_differences() -> None:
    mean, se = paired_excess([3.0, 5.0, 7.0], [1.0, 2.0, 3.0])  # differences 2, 3, 4
    assert mean == pytest.approx(3.0)
    assert se == pytest.approx(1.0 / math.sqrt(3.0))  # std(ddof=1) = 1
    assert paired_excess([2.0], [1.0])[1] == math.inf


def test_a_gain_larger_than_its_noise_frees_the_parameter() -> None:
    apes = {
        frozenset({CHIP}): [6.0, 8.0, 7.0, 9.0],
        frozenset({CHIP, "a"}): [3.0, 4.0, 3.5, 4.5],  # every run gains 3-4.5 points
        frozenset({CHIP, "b"}): [6.0, 8.0, 7.0, 9.0],
        frozenset({CHIP, "a", "b"}): [3.0, 4.0, 3.5, 4.5],
    }
    free, steps = _select(apes, {"a", "b"})
    assert free == {CHIP, "a"}  # b gains nothing: the smaller model is within one se of the best
    assert [s.parameter for s in steps] == ["", "a", "b"]
    assert [s.freed for s in steps] == [True, True, False]


def test_a_gain_within_its_noise_or_below_the_floor_keeps_the_prior() -> None:
    noisy = {
        frozenset({CHIP}): [5.0, 5.0, 5.0, 5.0],
        frozenset({CHIP, "a"}): [1.0, 9.0, 2.0, 7.0],  # mean gain 0.25, se 1.9
    }
    assert _select(noisy, {"a"})[0] == {CHIP}
    tiny = {
        frozenset({CHIP}): [5.0, 5.0, 5.0, 5.0],
        frozenset({CHIP, "a"}): [5.0 - MIN_GAIN_PCT / 2] * 4,  # consistent, but below the floor
    }
    assert _select(tiny, {"a"})[0] == {CHIP}


def test_two_factors_needed_together_are_freed_together() -> None:
    # Either alone gains nothing, both together remove the error: forward selection that stopped
    # at the first step without gain would keep both at their prior; the path to the end does not.
    apes = {
        frozenset({CHIP}): [4.0, 6.0, 5.0, 5.0],
        frozenset({CHIP, "a"}): [4.0, 6.0, 5.0, 5.0],
        frozenset({CHIP, "b"}): [4.0, 6.0, 5.0, 5.1],
        frozenset({CHIP, "a", "b"}): [0.1, 0.2, 0.1, 0.2],
    }
    assert _select(apes, {"a", "b"})[0] == {CHIP, "a", "b"}


def test_without_leave_one_out_only_the_chip_factors_are_free() -> None:
    assert _select({}, {"a", "b"}) == (frozenset({CHIP}), ())


# One small model on one A100: the runs spend no time in collectives or FSDP.
ATTENTION_VARIES = tuple(("qwen3-0.6b", 1, 1, seq, 1, 8, "") for seq in (1024, 4096, 8192, 16384, 32768))
ATTENTION_NEGLIGIBLE = tuple(("qwen3-0.6b", 1, 1, 256, m, 8 * m, "") for m in (1, 2, 4, 8, 16))


@pytest.mark.parametrize(("grid", "freed"), [(ATTENTION_VARIES, True), (ATTENTION_NEGLIGIBLE, False)])
def test_generated_runs_free_attention_only_when_they_vary_it(
    grid: tuple, freed: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import _calibrate_runs

    monkeypatch.setattr(_calibrate_runs.grid_runs, "__defaults__", ("a100", grid))
    truth = hand_set_stack("truth", {"attention_efficiency_factor": 0.5})
    runs = generated(tmp_path / "runs.csv", truth)[1]
    fit = fit_stack(runs, name="found", base_stack="megatron", leave_one_out=False)
    assert ("attention" in fit.freed) is freed
    got = fit.stack.factors["attention_efficiency_factor"]
    before = shipped_calibration().attention_efficiency_factor
    if freed:  # moved toward the hand-set 0.5
        assert abs(math.log(got / 0.5)) < abs(math.log(before / 0.5))
    else:
        assert got == pytest.approx(before, abs=1e-4)
    assert "fsdp_overlap" not in fit.freed and f"comm_stack[{fit.stack.id}]" not in fit.freed
