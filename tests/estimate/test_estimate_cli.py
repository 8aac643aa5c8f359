"""`twofold estimate`: JSON contract, dp derived from --chips, user mistakes exit 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_helpers import run_cli  # noqa: E402

BASE = ("estimate", "--model", "llama3.1-8b", "--chip", "h100", "--seq-len", "2048", "--global-batch", "64")


def test_json_contract_and_derived_dp(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, *BASE, "--chips", "16", "--tp", "4", "--pp", "2", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["layout"]["dp"] == 16 // (4 * 2)
    for key in (
        "step_time_s",
        "tokens_per_s_per_chip",
        "mfu",
        "memory_per_chip_gib",
        "fits",
        "layout",
        "breakdown",
        "memory",
    ):
        assert key in d
    assert sum(d["breakdown"].values()) == pytest.approx(d["step_time_s"], rel=1e-9)
    assert set(d["breakdown"]) >= {
        "compute_forward_s",
        "tp_s",
        "pp_s",
        "dp_s",
        "bubble_s",
        "optimizer_s",
        "other_s",
    }


def test_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, *BASE, "--chips", "8", "--tp", "8")
    assert code == 0
    assert "where the step time goes" in out and "tokens/s/chip" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--chips", "16", "--tp", "3"), "chips=16"),
        (("--tp", "3"), "tp=3: does not divide num_attention_heads=32"),
        (("--chips", "16", "--dp", "4"), "dp=4: dp*tp*pp*cp must equal chips=16"),
        (("--chips", "8", "--vp", "2"), "vp=2"),
        (("--chips", "8", "--ep", "2"), "ep=2"),
        (("--chips", "8", "--recompute", "some"), "recompute"),
        (("--chips", "8", "--infer"), "infer"),
        (("--chips", "6"), "global_batch=64"),
    ],
)
def test_user_mistakes_exit_2(
    capsys: pytest.CaptureFixture[str], extra: tuple[str, ...], message: str
) -> None:
    code, out, err = run_cli(capsys, *BASE, *extra)
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert out == ""


def test_v100_estimates_in_fp16_and_refuses_bf16(capsys: pytest.CaptureFixture[str]) -> None:
    """Catalog V100: FP16 tensor cores only (NVIDIA Volta whitepaper); bf16 exits 2 naming the field."""
    args = ("estimate", "--model", "llama-tiny", "--chip", "v100", "--chips", "8", "--seq-len", "256")
    code, out, err = run_cli(capsys, *args, "--global-batch", "16", "--precision", "fp16", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert (d["chip"], d["system"], d["workload"]["precision"]) == ("v100", "dgx-1v", "fp16")
    assert 0 < d["mfu"] < 1
    code, out, err = run_cli(capsys, *args, "--global-batch", "16", "--precision", "bf16")
    assert code == 2 and out == ""
    assert err.startswith("error: precision='bf16'") and "v100" in err


@pytest.mark.parametrize(
    ("chip", "stack", "zero"), [("tpu-v5p", "auto", 3), ("h100", "auto", 1), ("h100", "maxtext", 3)]
)
def test_the_default_zero_stage_is_the_stack_s(
    capsys: pytest.CaptureFixture[str], chip: str, stack: str, zero: int
) -> None:
    """Without --zero an estimate takes ZeRO-1 where the stack has it, else the stack's nearest
    stage (MaxText, the TPU reference stack, shards with its FSDP mesh: 3); --zero still wins."""
    args = ("estimate", "--model", "llama3.1-8b", "--chip", chip, "--chips", "16", "--stack", stack, "--json")
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert json.loads(out)["layout"]["zero"] == zero
    code, out, err = run_cli(capsys, *args, "--zero", "0")
    assert code == 0 and json.loads(out)["layout"]["zero"] == 0
